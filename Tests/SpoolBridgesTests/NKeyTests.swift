import Foundation
import Testing
import SpoolTestSupport
@testable import SpoolBridges

/// Python's `nkeys` package (PyPI), an independent implementation, if installed; the tests that need it say so.
let nkeysAvailable: Bool = {
    let ok = (try? runProcess("/usr/bin/env", ["python3", "-c", "import nkeys"]).status) == 0
    if !ok { FileHandle.standardError.write(Data("\n**** SKIPPED: NKEY oracle tests need `pip install nkeys`; they did NOT run ****\n\n".utf8)) }
    return ok
}()

/// NKEY seeds and .creds files byte by byte, checked against the `nkeys` package; INFO's nonce and connect_urls.
@Suite struct NKeyTests {
    func python(_ script: String, _ args: [String]) throws -> String {
        let r = try runProcess("/usr/bin/env", ["python3", "-c", script] + args)
        #expect(r.status == 0, "\(r.stderr)")
        return r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test(.enabled(if: nkeysAvailable, "needs the nkeys package"))
    func ourSeedsPublicKeysAndSignaturesAgreeWithTheNkeysPackage() throws {
        for _ in 0..<5 {
            let raw = (0..<32).map { _ in UInt8.random(in: 0...255) }
            let text = NKeySeed.encodeSeed(raw)
            let seed = try NKeySeed(text: text)
            let nonce = "n" + String(UInt64.random(in: 0...UInt64.max), radix: 36)
            let theirs = try python("""
                import nkeys, sys, base64
                kp = nkeys.from_seed(sys.argv[1].encode())
                print(kp.public_key.decode(), base64.urlsafe_b64encode(kp.sign(sys.argv[2].encode())).decode().rstrip("="))
                """, [text, nonce]).split(separator: " ")
            #expect(try seed.publicKey() == String(theirs[0]))
            #expect(try seed.sign(Array(nonce.utf8)) == String(theirs[1]))
        }
        // A seed the package made is read by us.
        let made = try python("""
            import nkeys, os
            seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
            print(seed.decode(), nkeys.from_seed(seed).public_key.decode())
            """, []).split(separator: " ")
        #expect(try NKeySeed(text: String(made[0]) + "\n").publicKey() == String(made[1]))
    }

    @Test func malformedSeedsAreRefused() throws {
        let good = NKeySeed.encodeSeed(Array(repeating: 7, count: 32))
        #expect(good.hasPrefix("SU") && good.count == 58)
        _ = try NKeySeed(text: "  " + good + "\r\n")
        var flipped = Array(good.utf8)
        flipped[20] = flipped[20] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
        let cases: [(String, String)] = [
            (String(decoding: flipped, as: UTF8.self), "checksum"),
            (good.lowercased(), "not an NKEY seed"),
            (String(good.dropLast()), "not an NKEY seed"),
            (good + "A", "not an NKEY seed"),
            ("", "not an NKEY seed"),
            (NKeySeed.encode(prefix: NKeySeed.userPrefix, Array(repeating: 1, count: 33)), "not an NKEY seed"),  // a public key, not a seed
        ]
        for (text, why) in cases {
            #expect { try NKeySeed(text: text) } throws: { ($0 as? BridgeError)?.message.contains(why) == true }
        }
        // An account seed (SA...) does not authenticate a client.
        let b1 = NKeySeed.seedPrefix | 0 >> 5, b2: UInt8 = 0
        let body = [b1, b2] + Array(repeating: UInt8(3), count: 32)
        let crc = CRC16.xmodem(body[...])
        let account = Base32.encode(body + [UInt8(crc & 0xFF), UInt8(crc >> 8)])
        #expect(account.hasPrefix("SA"))
        #expect { try NKeySeed(text: account) } throws: { ($0 as? BridgeError)?.message.contains("not a user seed") == true }
    }

    @Test func base32AndCRCAgainstKnownValues() {
        // RFC 4648 section 10 test vectors (without padding), and CRC-16/XMODEM of "123456789" = 0x31C3.
        let vectors = ["": "", "f": "MY", "fo": "MZXQ", "foo": "MZXW6", "foob": "MZXW6YQ", "fooba": "MZXW6YTB", "foobar": "MZXW6YTBOI"]
        for (plain, coded) in vectors {
            #expect(Base32.encode(Array(plain.utf8)) == coded)
            #expect(Base32.decode(Array(coded.utf8)[...]) == Array(plain.utf8))
        }
        #expect(Base32.decode(Array("MZ".utf8)[...]) == nil, "leftover bits that are not zero")
        #expect(Base32.decode(Array("MY=".utf8)[...]) == nil)
        #expect(CRC16.xmodem(Array("123456789".utf8)[...]) == 0x31C3)
        #expect(Base64URL.encode([0xFB, 0xFF]) == "-_8")
        #expect(Base64URL.encode(Array("foobar".utf8)) == "Zm9vYmFy")
    }

    @Test func credsFilesAsTheToolsWriteThem() throws {
        let seed = NKeySeed.encodeSeed(Array(repeating: 9, count: 32))
        let jwt = "eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.eyJzdWIiOiJVQUJDIn0.c2lnbmF0dXJl"
        let file = """
            -----BEGIN NATS USER JWT-----
            \(jwt)
            ------END NATS USER JWT------

            ************************* IMPORTANT *************************
            NKEY Seed printed below can be used to sign and prove identity.

            -----BEGIN USER NKEY SEED-----
            \(seed)
            ------END USER NKEY SEED------
            """
        let creds = try NATSCredentials(text: file)
        #expect(creds.jwt == jwt)
        #expect(try creds.seed.publicKey() == (try NKeySeed(text: seed).publicKey()))
        #expect(throws: BridgeError.self) { try NATSCredentials(text: file.replacingOccurrences(of: "NATS USER JWT", with: "X")) }
        #expect(throws: BridgeError.self) { try NATSCredentials(text: file.replacingOccurrences(of: jwt, with: "not a jwt")) }
        #expect(throws: BridgeError.self) { try NATSCredentials(text: file.replacingOccurrences(of: seed, with: "SUXYZ")) }
    }

    @Test func infoNonceAndConnectURLs() throws {
        let info = try NATSServerInfo.parse(Array(#"{"server_id":"x","headers":true,"nonce":"abc-_","connect_urls":["10.0.0.1:4222","[::1]:4223"]}"#.utf8)[...])
        #expect(info.nonce == "abc-_" && info.connectURLs == ["10.0.0.1:4222", "[::1]:4223"])
        for bad in [#"{"connect_urls":"x"}"#, #"{"connect_urls":[1]}"#, #"{"nonce":5}"#, #"{"nonce":"a b"}"#] {
            #expect(throws: NATSProtocolError.self, "\(bad)") { try NATSServerInfo.parse(Array(bad.utf8)[...]) }
        }
        var o = NATSCommand.ConnectOptions()
        o.nkey = try NKeySeed(text: NKeySeed.encodeSeed(Array(repeating: 5, count: 32)))
        #expect(throws: BridgeError.self) { try NATSCommand.connect(o, nonce: nil) }
        let connect = String(decoding: try NATSCommand.connect(o, nonce: "abc"), as: UTF8.self)
        #expect(connect.contains(#""nkey":"U"#) && connect.contains(#""sig":""#) && !connect.contains("jwt"))
        o.jwt = "a.b.c"
        let withJWT = String(decoding: try NATSCommand.connect(o, nonce: "abc"), as: UTF8.self)
        #expect(withJWT.contains(#""jwt":"a.b.c""#) && !withJWT.contains(#""nkey""#))
    }
}
