import Testing
import SpoolWire
@testable import SpoolCore

@Suite struct SpoolKeyTests {
    @Test func plainKeysKeepTheirName() throws {
        for k in ["WAEE8PohgVwv2teP", "a", "A-b_c-9", String(repeating: "x", count: 128)] {
            #expect(try SpoolKey(k).fileName == k)
        }
    }

    @Test func otherKeysAreHexEncoded() throws {
        #expect(try SpoolKey("a/b").fileName == "~612f62")
        #expect(try SpoolKey("..").fileName == "~2e2e")
        #expect(try SpoolKey(".hidden").fileName == "~2e68696464656e")
        #expect(try SpoolKey("é").fileName == "~c3a9")
        #expect(try SpoolKey("~x").fileName == "~7e78")
        #expect(try SpoolKey(String(repeating: "é", count: 50)).fileName.count == 1 + 50 * 4)
        #expect(throws: SpoolError.self) { try SpoolKey(String(repeating: "é", count: 51)) }
    }

    @Test(arguments: [
        "", "\0", "a\0b", "line\nbreak", "tab\there", "del\u{7F}", String(repeating: "x", count: 129),
        String(repeating: "/", count: 128), String(repeating: "a", count: 10_000),
    ])
    func hostileKeysAreRejected(_ k: String) {
        #expect(throws: SpoolError.self) { try SpoolKey(k) }
    }

    @Test func invalidUTF8IsRejected() {
        #expect(throws: SpoolError.self) { try SpoolKey(bytes: [0x61, 0xFF, 0x62]) }
    }

    @Test func namesAreSafeAndRoundTrip() throws {
        let keys = ["/", "..", ".", "../../etc/passwd", "a b", "C:\\x", "日本語", "-", "_", "~", "~7e", "a.b", "%2e%2e",
                    String(repeating: "z", count: 99) + "!", "emoji 🎬", " leading", "trailing "]
        var names = Set<String>()
        for k in keys {
            let key = try SpoolKey(k)
            let n = key.fileName
            #expect(!n.contains("/") && !n.contains(".") && !n.contains("\0") && !n.isEmpty && n.utf8.count <= 255)
            #expect(!n.hasPrefix("."))
            #expect(SpoolKey(fileName: n)?.value == k)
            names.insert(n)
        }
        #expect(names.count == keys.count, "two different keys share a file name")
    }

    @Test func foreignNamesDoNotDecode() {
        for n in ["~", "~6", "~zz", "~4142", "~61", "a.b", ".x", "~612F", "", String(repeating: "a", count: 129)] {
            // "~4142" is "AB", which is plain and must only ever be stored as "AB"; "~61" likewise.
            #expect(SpoolKey(fileName: n) == nil, "\(n) should not decode")
        }
    }

    @Test func injectiveOverExhaustiveShortKeys() throws {
        // Every key of one or two bytes from a mixed alphabet: distinct keys, distinct names.
        let alphabet: [UInt8] = Array("aZ09-_~./ %".utf8) + [0xC3]
        var seen: [String: [UInt8]] = [:]
        for a in alphabet {
            for b in [nil] + alphabet.map(Optional.some) {
                let bytes = [a] + (b.map { [$0] } ?? [])
                guard let key = try? SpoolKey(bytes: bytes) else { continue }
                if let prev = seen[key.fileName] { Issue.record("\(prev) and \(bytes) share \(key.fileName)") }
                seen[key.fileName] = bytes
            }
        }
        #expect(seen.count > 100)
    }
}
