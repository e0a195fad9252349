import Testing
@testable import SpoolWire

/// Every rejection the parser owns, with the status the server must answer.
struct HTTPParserRejectionTests {
    struct Case: CustomTestStringConvertible, Sendable {
        let name: String
        let input: String
        let status: Int
        var testDescription: String { name }
    }

    static let h = "Host: example.com\r\n"

    static let cases: [Case] = [
        // Line endings and NUL
        Case(name: "bare CR in request line", input: "GET / HTTP/1.1\r" + "Host: a\r\n\r\n", status: 400),
        Case(name: "bare LF request line", input: "GET / HTTP/1.1\nHost: a\r\n\r\n", status: 400),
        Case(name: "bare LF field line", input: "GET / HTTP/1.1\r\nHost: a\n\r\n", status: 400),
        Case(name: "bare LF end of head", input: "GET / HTTP/1.1\r\nHost: a\r\n\n", status: 400),
        Case(name: "bare CR inside value", input: "GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", status: 400),
        Case(name: "NUL in target", input: "GET /\u{0} HTTP/1.1\r\nHost: a\r\n\r\n", status: 400),
        Case(name: "NUL in value", input: "GET / HTTP/1.1\r\nHost: a\r\nX: a\u{0}b\r\n\r\n", status: 400),
        Case(name: "bare LF before request line", input: "\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", status: 400),
        Case(name: "too many empty lines", input: String(repeating: "\r\n", count: 9) + "GET / HTTP/1.1\r\nHost: a\r\n\r\n", status: 400),
        // Request line
        Case(name: "HTTP/0.9 style", input: "GET /\r\n\r\n", status: 400),
        Case(name: "method only", input: "GET\r\n\r\n", status: 400),
        Case(name: "HTTP/2.0", input: "GET / HTTP/2.0\r\nHost: a\r\n\r\n", status: 505),
        Case(name: "HTTP/1.2", input: "GET / HTTP/1.2\r\nHost: a\r\n\r\n", status: 505),
        Case(name: "HTTP/0.9 version", input: "GET / HTTP/0.9\r\nHost: a\r\n\r\n", status: 505),
        Case(name: "lowercase version", input: "GET / http/1.1\r\nHost: a\r\n\r\n", status: 400),
        Case(name: "garbage version", input: "GET / HTTP/1.1x\r\nHost: a\r\n\r\n", status: 400),
        Case(name: "version two digits", input: "GET / HTTP/10.1\r\nHost: a\r\n\r\n", status: 400),
        Case(name: "double space", input: "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", status: 400),
        Case(name: "trailing space", input: "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", status: 400),
        Case(name: "space in target", input: "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", status: 400),
        Case(name: "method not a token", input: "G(T / HTTP/1.1\r\nHost: a\r\n\r\n", status: 400),
        Case(name: "leading space", input: " GET / HTTP/1.1\r\nHost: a\r\n\r\n", status: 400),
        Case(name: "absolute-form", input: "GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n", status: 400),
        Case(name: "authority-form", input: "CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n", status: 400),
        Case(name: "asterisk for GET", input: "GET * HTTP/1.1\r\nHost: a\r\n\r\n", status: 400),
        Case(name: "DEL in target", input: "GET /\u{7F} HTTP/1.1\r\nHost: a\r\n\r\n", status: 400),
        Case(name: "non-ASCII in target", input: "GET /é HTTP/1.1\r\nHost: a\r\n\r\n", status: 400),
        Case(name: "fragment in target", input: "GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", status: 400),
        Case(name: "tab separator", input: "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", status: 400),
        // Fields
        Case(name: "space before colon", input: "GET / HTTP/1.1\r\nHost : a\r\n\r\n", status: 400),
        Case(name: "tab before colon", input: "GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", status: 400),
        Case(name: "obs-fold", input: "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", status: 400),
        Case(name: "obs-fold tab", input: "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n\tb\r\n\r\n", status: 400),
        Case(name: "first field indented", input: "GET / HTTP/1.1\r\n Host: a\r\n\r\n", status: 400),
        Case(name: "empty name", input: "GET / HTTP/1.1\r\nHost: a\r\n: x\r\n\r\n", status: 400),
        Case(name: "no colon", input: "GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", status: 400),
        Case(name: "name not a token", input: "GET / HTTP/1.1\r\nHost: a\r\nX(y): 1\r\n\r\n", status: 400),
        Case(name: "CTL in value", input: "GET / HTTP/1.1\r\nHost: a\r\nX: a\u{1}b\r\n\r\n", status: 400),
        Case(name: "DEL in value", input: "GET / HTTP/1.1\r\nHost: a\r\nX: a\u{7F}\r\n\r\n", status: 400),
        Case(name: "ESC in value", input: "GET / HTTP/1.1\r\nHost: a\r\nX: \u{1B}[0m\r\n\r\n", status: 400),
        // Host
        Case(name: "missing Host on 1.1", input: "GET / HTTP/1.1\r\n\r\n", status: 400),
        Case(name: "two Host fields", input: "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", status: 400),
        Case(name: "two Host fields on 1.0", input: "GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n", status: 400),
        Case(name: "Host with space", input: "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", status: 400),
        Case(name: "Host with slash", input: "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", status: 400),
        Case(name: "Host with userinfo", input: "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", status: 400),
        Case(name: "Host with tab", input: "GET / HTTP/1.1\r\nHost: a\tb\r\n\r\n", status: 400),
        // Content-Length
        Case(name: "CL plus sign", input: "POST / HTTP/1.1\r\n\(h)Content-Length: +5\r\n\r\nhello", status: 400),
        Case(name: "CL minus zero", input: "POST / HTTP/1.1\r\n\(h)Content-Length: -0\r\n\r\n", status: 400),
        Case(name: "CL hex", input: "POST / HTTP/1.1\r\n\(h)Content-Length: 0x5\r\n\r\nhello", status: 400),
        Case(name: "CL inner space", input: "POST / HTTP/1.1\r\n\(h)Content-Length: 5 5\r\n\r\nhello", status: 400),
        Case(name: "CL empty", input: "POST / HTTP/1.1\r\n\(h)Content-Length: \r\n\r\n", status: 400),
        Case(name: "CL list", input: "POST / HTTP/1.1\r\n\(h)Content-Length: 5,5\r\n\r\nhello", status: 400),
        Case(name: "CL list with space", input: "POST / HTTP/1.1\r\n\(h)Content-Length: 5, 5\r\n\r\nhello", status: 400),
        Case(name: "CL decimal point", input: "POST / HTTP/1.1\r\n\(h)Content-Length: 5.0\r\n\r\nhello", status: 400),
        Case(name: "two equal CL", input: "POST / HTTP/1.1\r\n\(h)Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello", status: 400),
        Case(name: "two different CL", input: "POST / HTTP/1.1\r\n\(h)Content-Length: 5\r\ncontent-length: 6\r\n\r\nhello!", status: 400),
        Case(name: "CL over maxBody", input: "POST / HTTP/1.1\r\n\(h)Content-Length: 1048577\r\n\r\n", status: 413),
        Case(name: "CL overflowing Int", input: "POST / HTTP/1.1\r\n\(h)Content-Length: 99999999999999999999999\r\n\r\n", status: 413),
        // Transfer-Encoding
        Case(name: "CL and TE", input: "POST / HTTP/1.1\r\n\(h)Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", status: 400),
        Case(name: "TE and CL", input: "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", status: 400),
        Case(name: "TE gzip only", input: "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: gzip\r\n\r\n", status: 400),
        Case(name: "TE chunked not final", input: "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: chunked, gzip\r\n\r\n", status: 400),
        Case(name: "TE chunked twice", input: "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: chunked, chunked\r\n\r\n", status: 400),
        Case(name: "TE chunked twice in two fields", input: "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", status: 400),
        Case(name: "TE gzip then chunked", input: "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: gzip, chunked\r\n\r\n", status: 501),
        Case(name: "TE in two fields gzip+chunked", input: "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n", status: 501),
        Case(name: "TE empty", input: "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: \r\n\r\n", status: 400),
        Case(name: "TE garbage", input: "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: ch(unked\r\n\r\n", status: 400),
        Case(name: "TE on HTTP/1.0", input: "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", status: 400),
        // Chunked body
        Case(name: "chunk size not hex", input: "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: chunked\r\n\r\nzz\r\n", status: 400),
        Case(name: "chunk size empty", input: "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: chunked\r\n\r\n\r\n", status: 400),
        Case(name: "chunk size 17 digits", input: "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: chunked\r\n\r\n00000000000000001\r\nx\r\n0\r\n\r\n", status: 400),
        Case(name: "chunk size negative", input: "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: chunked\r\n\r\n-1\r\n", status: 400),
        Case(name: "chunk size 0x prefix", input: "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n", status: 400),
        Case(name: "chunk size huge", input: "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n", status: 413),
        Case(name: "chunk size over body limit", input: "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: chunked\r\n\r\n100001\r\n", status: 413),
        Case(name: "trailing whitespace after size", input: "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n", status: 400),
        Case(name: "CTL in chunk extension", input: "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: chunked\r\n\r\n5;a=\u{1}\r\nhello\r\n0\r\n\r\n", status: 400),
        Case(name: "missing CRLF after chunk", input: "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: chunked\r\n\r\n5\r\nhelloX\r\n0\r\n\r\n", status: 400),
        Case(name: "LF only after chunk", input: "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: chunked\r\n\r\n5\r\nhello\n0\r\n\r\n", status: 400),
        Case(name: "CR then junk after chunk", input: "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: chunked\r\n\r\n5\r\nhello\rX0\r\n\r\n", status: 400),
        Case(name: "bare LF chunk-size line", input: "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n", status: 400),
        Case(name: "chunk-size line too long", input: "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: chunked\r\n\r\n5;" + String(repeating: "a", count: 1100) + "\r\nhello\r\n0\r\n\r\n", status: 400),
        Case(name: "obs-fold in trailer", input: "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: chunked\r\n\r\n0\r\nX: a\r\n b\r\n\r\n", status: 400),
        Case(name: "bad trailer name", input: "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: chunked\r\n\r\n0\r\nX Y: a\r\n\r\n", status: 400),
        Case(name: "trailer section too large", input: "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: chunked\r\n\r\n0\r\nX: " + String(repeating: "a", count: 9000) + "\r\n\r\n", status: 431),
    ]

    @Test(arguments: cases)
    func rejected(_ c: Case) {
        #expect(errorStatus(c.input) == c.status, "\(c.name)")
    }

    @Test func tooManyChunkExtensionsInTotal() {
        var s = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        let ext = ";" + String(repeating: "e", count: 900)
        for _ in 0..<20 { s += "1\(ext)\r\nx\r\n" }  // 20 * 901 bytes of extensions > 16 KiB
        s += "0\r\n\r\n"
        #expect(errorStatus(s) == 400)
        // The same extensions on fewer chunks fit.
        var ok = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        for _ in 0..<10 { ok += "1\(ext)\r\nx\r\n" }
        ok += "0\r\n\r\n"
        #expect(errorStatus(ok) == nil)
    }

    @Test func errorIsTerminal() {
        var p = HTTPParser()
        let first = p.feed(Array("GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n".utf8))
        #expect(first.count == 1)
        #expect(first.first == .error(HTTPParseError.invalidFieldName))
        #expect(p.error?.status == 400)
        // A valid request afterwards is never parsed: no resynchronisation.
        #expect(p.feed(Array("GET / HTTP/1.1\r\nHost: a\r\n\r\n".utf8)).isEmpty)
        #expect(p.error?.status == 400)
    }

    @Test func errorAfterValidPipelinedRequest() {
        let evs = events("GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/9.9\r\nHost: a\r\n\r\nGET /c HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(heads(evs).map(\.path) == ["/a"])
        #expect(evs.last == .error(HTTPParseError.httpVersionNotSupported))
    }
}
