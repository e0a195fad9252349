import Testing
@testable import SpoolUI

@Suite struct EscapeTests {
    @Test func escapesEveryDangerousByte() {
        #expect(htmlEscaped("") == "")
        #expect(htmlEscaped("plain key-1_x") == "plain key-1_x")
        #expect(htmlEscaped("<script>") == "&lt;script&gt;")
        #expect(htmlEscaped("\"><img src=x onerror=alert(1)>") == "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;")
        #expect(htmlEscaped("</textarea>") == "&lt;/textarea&gt;")
        #expect(htmlEscaped("a&b") == "a&amp;b")
        #expect(htmlEscaped("&amp;") == "&amp;amp;")
        #expect(htmlEscaped("it's") == "it&#39;s")
        #expect(htmlEscaped("a\nb\tc") == "a\nb\tc")
        #expect(htmlEscaped("\r") == "\\x0d")
        #expect(htmlEscaped("\u{0}") == "\\x00")
        #expect(htmlEscaped("\u{1b}[31m") == "\\x1b[31m")
        #expect(htmlEscaped("\u{7f}") == "\\x7f")
        #expect(htmlEscaped("\u{80}\u{9b}\u{9f}") == "\\x80\\x9b\\x9f")
        #expect(htmlEscaped("\u{a0}é€😀") == "\u{a0}é€😀")
    }

    @Test func everyByteValue() {
        // Byte by byte over all of Latin-1 and ASCII: only the five characters and the controls change.
        for v in UInt32(0)...0xFF {
            let s = String(UnicodeScalar(v)!)
            let e = htmlEscaped(s)
            switch v {
            case 0x26: #expect(e == "&amp;")
            case 0x3C: #expect(e == "&lt;")
            case 0x3E: #expect(e == "&gt;")
            case 0x22: #expect(e == "&quot;")
            case 0x27: #expect(e == "&#39;")
            case 0x09, 0x0A: #expect(e == s)
            case 0..<0x20, 0x7F...0x9F:
                let h = String(v, radix: 16)
                #expect(e == "\\x" + (h.count == 1 ? "0" : "") + h)
            default: #expect(e == s)
            }
            #expect(!e.unicodeScalars.contains { $0 == "<" || $0 == ">" || $0 == "\"" || $0 == "'" })
        }
    }

    @Test func percentRoundTrip() {
        for s in ["abc", "a b/c?d#e%f&g=h+i", "<script>", "é\u{85}", "~._-"] {
            let e = percentEncoded(s)
            #expect(e.utf8.allSatisfy { $0 == 0x25 || ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || "-._~".utf8.contains($0) })
            #expect(percentDecoded(e[...]) == Array(s.utf8))
        }
        #expect(percentDecoded("%4"[...]) == nil)
        #expect(percentDecoded("%zz"[...]) == nil)
        #expect(percentDecoded("a+b"[...]) == Array("a+b".utf8))
    }

    @Test func loopbackHosts() {
        for h in ["localhost", "LOCALHOST", "127.0.0.1", "127.1.2.3", "::1"] { #expect(UIHandler.isLoopbackHost(h), "\(h)") }
        for h in ["evil.com", "127.0.0.1.evil.com", "0.0.0.0", "10.0.0.1", "localhost.evil", "127.0.0", ""] { #expect(!UIHandler.isLoopbackHost(h), "\(h)") }
        #expect(UIHandler.hostName("[::1]:8081") == "::1")
        #expect(UIHandler.hostName("localhost:9000") == "localhost")
    }
}
