import Testing
@testable import SpoolSignatures

@Suite struct Base64Tests {
    /// RFC 4648 section 10.
    @Test(arguments: [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="),
                      ("fooba", "Zm9vYmE="), ("foobar", "Zm9vYmFy")])
    func rfc4648Vectors(plain: String, encoded: String) {
        #expect(Base64.encode(bytes(plain)) == encoded)
        #expect(Base64.decode(encoded) == bytes(plain))
    }

    @Test func everyByteValueRoundTrips() {
        for n in 0..<70 {
            let b = (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 97 &+ 200) }
            #expect(Base64.decode(Base64.encode(b)) == b)
        }
        let all = Array(0...255).map(UInt8.init)
        #expect(Base64.encode(all).hasPrefix("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd"))
        #expect(Base64.decode(Base64.encode(all)) == all)
        #expect(Base64.encode([0xfb, 0xff]) == "+/8=")
    }

    /// Strict: one spelling per byte string.
    @Test(arguments: [
        "Zg", "Zg=", "Zm9", "Z===", "====", "Zg==Zg==", "Zm8=Zm9v", "Zg=a", "Z=g=",   // length and padding placement
        "Zh==", "Zm9=",                                                              // unused bits not zero
        "Zm9v\n", " Zm9v", "Zm 9v", "Zm9v\r\n",                                      // whitespace
        "-_8=", "Zm9v_w==", "Zm9v-w==",                                              // URL-safe alphabet
        "Zm9\u{0}", "Zm9é",
    ])
    func rejections(text: String) {
        #expect(Base64.decode(text) == nil, "\(text.debugDescription) was accepted")
    }
}

@Suite struct HexTests {
    @Test func roundTripAndCase() {
        #expect(Hex.encode([0x00, 0x0f, 0xa0, 0xff]) == "000fa0ff")
        #expect(Hex.decode(Array("000FA0ff".utf8)[...]) == [0x00, 0x0f, 0xa0, 0xff])
        #expect(Hex.decode([][...]) == [])
        for bad in ["0", "0g", "xx", "0 ", "+1", "é0"] { #expect(Hex.decode(Array(bad.utf8)[...]) == nil, "\(bad)") }
    }
}

@Suite struct ConstantTimeTests {
    @Test func equality() {
        #expect(constantTimeEqual([], []))
        #expect(constantTimeEqual([1, 2, 3], [1, 2, 3]))
        #expect(!constantTimeEqual([1, 2, 3], [1, 2, 4]))
        #expect(!constantTimeEqual([1, 2, 3], [1, 2]))
        #expect(!constantTimeEqual([1, 2], [1, 2, 0]))   // a shorter value padded with zeros is still different
        #expect(!constantTimeEqual([], [0]))
        #expect(!constantTimeEqual([0x80], [0x00]))
    }
}
