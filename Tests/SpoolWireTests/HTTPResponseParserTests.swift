import Testing
@testable import SpoolWire

/// The response parser fed bytes: framing by Content-Length, chunked coding and close, byte by byte and in
/// every split; strict refusals; bounded body.
@Suite struct HTTPResponseParserTests {
    struct Parsed: Equatable { var head: HTTPResponseHead?; var body: [UInt8]; var complete: Bool }

    func whole(_ s: String, eof: Bool = false, limits: HTTPResponseParser.Limits = .init()) throws -> Parsed {
        var p = HTTPResponseParser(limits: limits)
        try p.feed(Array(s.utf8))
        if eof { try p.finish() }
        return Parsed(head: p.head, body: p.body, complete: p.isComplete)
    }

    func byteByByte(_ s: String, eof: Bool = false) throws -> Parsed {
        var p = HTTPResponseParser()
        for b in s.utf8 { try p.feed([b]) }
        if eof { try p.finish() }
        return Parsed(head: p.head, body: p.body, complete: p.isComplete)
    }

    func rejects(_ s: String, _ fragment: String, eof: Bool = false, limits: HTTPResponseParser.Limits = .init()) {
        var p = HTTPResponseParser(limits: limits)
        do {
            try p.feed(Array(s.utf8))
            if eof { try p.finish() }
            Issue.record("accepted: \(s.debugDescription)")
        } catch {
            #expect(error.message.contains(fragment), "\(error.message) should mention \(fragment)")
        }
    }

    @Test func contentLength() throws {
        let s = "HTTP/1.1 201 Created\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nX-A:  spaced value \t\r\n\r\nhello"
        let r = try whole(s)
        #expect(r.complete && r.body == Array("hello".utf8))
        #expect(r.head?.status == 201 && r.head?.reason == "Created" && r.head?.minorVersion == 1)
        #expect(r.head?.value("X-A") == "spaced value" && r.head?.value("content-type") == "text/plain")
        #expect(try byteByByte(s) == r)
        // Not complete before the last body byte.
        var p = HTTPResponseParser()
        try p.feed(Array(s.utf8.dropLast()))
        #expect(p.head?.status == 201 && !p.isComplete)
        #expect(throws: HTTPResponseError.self) { try p.finish() }
    }

    @Test func chunkedWithExtensionsAndTrailers() throws {
        let s = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n5;name=val\r\nhello\r\n1A \r\n" + String(repeating: "z", count: 26) + "\r\n0\r\nX-Trailer: t\r\n\r\n"
        let r = try whole(s)
        #expect(r.complete && r.body == Array(("hello" + String(repeating: "z", count: 26)).utf8))
        #expect(try byteByByte(s) == r)
    }

    @Test func closeDelimitedAndNoBodyStatuses() throws {
        let s = "HTTP/1.0 200 OK\r\nServer: x\r\n\r\nuntil close"
        let open = try whole(s)
        #expect(!open.complete && open.body == Array("until close".utf8))
        #expect(try whole(s, eof: true).complete)
        #expect(try byteByByte(s, eof: true) == whole(s, eof: true))
        #expect(try whole("HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n").complete, "204 has no body whatever it says")
        #expect(try whole("HTTP/1.1 304 Not Modified\r\n\r\n").complete)
        #expect(try whole("HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n").complete)
        #expect(try whole("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nabc").complete == false, "non-chunked coding: until close")
    }

    @Test func interimResponsesAreSkipped() throws {
        let s = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\nok"
        let r = try whole(s)
        #expect(r.head?.status == 202 && r.head?.headers.count == 1 && r.complete && r.body == Array("ok".utf8))
        #expect(try byteByByte(s) == r)
        rejects("HTTP/1.1 101 Switching Protocols\r\n\r\n", "switched protocols")
        var l = HTTPResponseParser.Limits()
        l.maxInterimResponses = 2
        rejects(String(repeating: "HTTP/1.1 100 Continue\r\n\r\n", count: 3), "interim", limits: l)
    }

    @Test func everySplitGivesTheSameResult() throws {
        let s = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nA: b\r\n\r\n3\r\nabc\r\n2;x\r\nde\r\n0\r\n\r\n"
        let expected = try whole(s)
        #expect(expected.complete && expected.body == Array("abcde".utf8))
        let bytes = Array(s.utf8)
        for cut in 0...bytes.count {
            var p = HTTPResponseParser()
            try p.feed(bytes[0..<cut])
            try p.feed(bytes[cut...])
            #expect(Parsed(head: p.head, body: p.body, complete: p.isComplete) == expected, "split at \(cut)")
        }
    }

    @Test func bodyKeptUpToTheBound() throws {
        var l = HTTPResponseParser.Limits()
        l.maxBodyKept = 10
        var p = HTTPResponseParser(limits: l)
        try p.feed(Array("HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n".utf8))
        try p.feed([UInt8](repeating: 0x61, count: 4000))
        #expect(p.body.count == 10 && p.bodyBytes == 4000 && p.bodyTruncated && !p.isComplete)
    }

    @Test func refusesMalformedStatusLines() {
        rejects("HTTP/2 200 OK\r\n\r\n", "status line")
        rejects("HTTP/1.2 200 OK\r\n\r\n", "version")
        rejects("HTTP/1.1 20 OK\r\n\r\n", "status")
        rejects("HTTP/1.1 2000 OK\r\n\r\n", "status line")
        rejects("HTTP/1.1 099 OK\r\n\r\n", "status code")
        rejects("HTTP/1.1 abc OK\r\n\r\n", "status code")
        rejects("HTTP/1.1 200 O\u{1}K\r\n\r\n", "reason")
        rejects("HTTP/1.1 200 OK\n\r\n", "bare LF")
        rejects("<html>\r\n", "status line")
    }

    @Test func refusesMalformedHeaders() {
        rejects("HTTP/1.1 200 OK\r\nNo colon\r\n\r\n", "colon")
        rejects("HTTP/1.1 200 OK\r\nBad Name: v\r\n\r\n", "header name")
        rejects("HTTP/1.1 200 OK\r\nName : v\r\n\r\n", "header name")
        rejects("HTTP/1.1 200 OK\r\nA: b\r\n folded\r\n\r\n", "folding")
        rejects("HTTP/1.1 200 OK\r\nA: b\u{0}c\r\n\r\n", "control")
        rejects("HTTP/1.1 200 OK\r\nA: b\nB: c\r\n\r\n", "bare LF")
    }

    @Test func refusesAmbiguousFraming() {
        rejects("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", "both")
        rejects("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", "conflicting")
        rejects("HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n", "conflicting")
        rejects("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "not a number")
        rejects("HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n", "not a number")
        rejects("HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\n", "not a number")
        #expect((try? whole("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc"))?.complete == true, "equal repeats are fine")
    }

    @Test func refusesBadChunks() {
        let h = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        rejects(h + "zz\r\n", "hexadecimal")
        rejects(h + "FFFFFFFFFFFFFFFFFFFFFFFF\r\n", "hexadecimal")
        rejects(h + "-1\r\n", "hexadecimal")
        rejects(h + "3\r\nabcX\r\n", "not followed by CRLF")
        rejects(h + "3\r\nabc\rX", "not followed by CRLF")
        rejects(h + "3;\u{1}\r\n", "chunk extension")
        rejects(h + String(repeating: "0", count: 2000), "chunk size line")
        rejects(h + "0\r\nBad Trailer\r\n\r\n", "colon")
        var l = HTTPResponseParser.Limits()
        l.maxTrailerBytes = 20
        rejects(h + "0\r\nX: " + String(repeating: "a", count: 30) + "\r\n\r\n", "trailers", limits: l)
        rejects(h + "3\r\nab", "middle of the response body", eof: true)
    }

    @Test func boundsTheHead() {
        var l = HTTPResponseParser.Limits()
        l.maxHeadBytes = 100
        rejects("HTTP/1.1 200 OK\r\nA: " + String(repeating: "a", count: 200), "larger than 100", limits: l)
        l = HTTPResponseParser.Limits()
        l.maxHeaderCount = 3
        rejects("HTTP/1.1 200 OK\r\n" + String(repeating: "A: b\r\n", count: 4) + "\r\n", "more than 3", limits: l)
        rejects("", "before a complete response head", eof: true)
    }
}
