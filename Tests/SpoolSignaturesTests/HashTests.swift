import Testing
@testable import SpoolSignatures

func hex(_ bytes: [UInt8]) -> String { Hex.encode(bytes) }
func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }
func unhex(_ s: String) -> [UInt8] { Hex.decode(Array(s.utf8)[...])! }

/// SHA-256 against FIPS 180-4's examples (NIST CSRC "SHA256.pdf": "abc", the 448- and 896-bit messages) and the
/// long-message vector of a million 'a'; the padding boundaries against Python's hashlib (OpenSSL).
@Suite struct SHA256Tests {
    @Test(arguments: [
        ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        ("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
        ("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
         "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"),
    ])
    func nistVectors(message: String, digest: String) {
        #expect(hex(SHA256.hash(bytes(message))) == digest)
    }

    /// 55 bytes: the length fits in the same block; 56: it does not (a second block of padding); 63, 64, 65:
    /// around a whole block.
    @Test(arguments: [
        (55, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318"),
        (56, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a"),
        (63, "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34"),
        (64, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb"),
        (65, "635361c48bb9eab14198e76ea8ab7f1a41685d6ad62aa9146d301d4f17eb0ae0"),
    ])
    func paddingBoundaries(count: Int, digest: String) {
        #expect(hex(SHA256.hash([UInt8](repeating: UInt8(ascii: "a"), count: count))) == digest)
    }

    @Test func oneMillionA() {
        let digest = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
        #expect(hex(SHA256.hash([UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000))) == digest)
        // The same million fed in uneven pieces (1, 63, 64, 65, 1000 ... bytes) through the buffering path.
        var h = SHA256()
        let a = [UInt8](repeating: UInt8(ascii: "a"), count: 1000)
        var fed = 0, step = 0
        let sizes = [1, 63, 64, 65, 1000, 7, 128, 200]
        while fed < 1_000_000 {
            let n = min(sizes[step % sizes.count], 1_000_000 - fed)
            h.update(a[0..<n])
            fed += n
            step += 1
        }
        #expect(hex(h.finalize()) == digest)
    }

    /// Every split of a 200-byte message into two pieces gives the one-shot digest.
    @Test func splitsAgreeWithOneShot() {
        let m = (0..<200).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
        let whole = SHA256.hash(m)
        for cut in 0...m.count {
            var h = SHA256()
            h.update(m[..<cut])
            h.update(m[cut...])
            #expect(h.finalize() == whole, "cut at \(cut)")
        }
        var s = SHA256()
        s.update(String(decoding: m.prefix(100).map { $0 & 0x7F }, as: UTF8.self))
        #expect(s.finalize() == SHA256.hash(m.prefix(100).map { $0 & 0x7F }))
    }
}

/// HMAC-SHA256 against RFC 4231 section 4, test cases 1 to 7 (case 5's output truncated to 128 bits, as there).
@Suite struct HMACSHA256Tests {
    static let cases: [(key: [UInt8], data: [UInt8], mac: String)] = [
        ([UInt8](repeating: 0x0b, count: 20), bytes("Hi There"),
         "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
        (bytes("Jefe"), bytes("what do ya want for nothing?"),
         "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
        ([UInt8](repeating: 0xaa, count: 20), [UInt8](repeating: 0xdd, count: 50),
         "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
        (Array(1...25), [UInt8](repeating: 0xcd, count: 50),
         "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"),
        ([UInt8](repeating: 0x0c, count: 20), bytes("Test With Truncation"),
         "a3b6167473100ee06e0c796c2955552b"),
        ([UInt8](repeating: 0xaa, count: 131), bytes("Test Using Larger Than Block-Size Key - Hash Key First"),
         "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
        ([UInt8](repeating: 0xaa, count: 131),
         bytes("This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm."),
         "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"),
    ]

    @Test(arguments: 0..<7)
    func rfc4231(index: Int) {
        let c = Self.cases[index]
        let mac = HMACSHA256(key: c.key).authenticationCode(c.data)
        #expect(mac.count == 32)
        // Case 5 publishes only the first 128 bits.
        #expect(hex(Array(mac.prefix(c.mac.count / 2))) == c.mac, "test case \(index + 1)")
    }

    /// GitHub's documented example ("Validating webhook deliveries").
    @Test func githubDocumentedExample() {
        let mac = HMACSHA256(key: bytes("It's a Secret to Everybody")).authenticationCode(bytes("Hello, World!"))
        #expect(hex(mac) == "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17")
    }

    /// A key of exactly one block is used as it is; one byte more is hashed first.
    @Test func keyOfOneBlockAndOneMore() {
        let m = bytes("message")
        let k64 = [UInt8](repeating: 0x42, count: 64), k65 = [UInt8](repeating: 0x42, count: 65)
        // Python: hmac.new(b'\x42'*64, b'message', 'sha256') and b'\x42'*65.
        #expect(hex(HMACSHA256(key: k64).authenticationCode(m)) == "3e2dff13376eef21c977d2636c96b03becad305320781276694855a3ea9eb883")
        #expect(HMACSHA256(key: k65).authenticationCode(m) == HMACSHA256(key: SHA256.hash(k65)).authenticationCode(m))
        #expect(HMACSHA256(key: k64).authenticationCode(m) != HMACSHA256(key: k65).authenticationCode(m))
    }

    @Test func piecewiseEqualsOneShot() {
        let h = HMACSHA256(key: bytes("key"))
        var c = h.start()
        c.update("id"); c.update("."); c.update(bytes("123")); c.update(Array(bytes(".body"))[...])
        #expect(c.finalize() == h.authenticationCode(bytes("id.123.body")))
        // The precomputed key states are not consumed: a second message from the same value is independent.
        #expect(h.authenticationCode(bytes("id.123.body")) == h.authenticationCode(bytes("id.123.body")))
    }
}
