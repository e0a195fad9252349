import Testing
@testable import SpoolWire

struct HTTPParserAcceptanceTests {
    @Test func simpleGet() throws {
        let evs = events("GET /hooks/github?x=1&y=%20 HTTP/1.1\r\nHost: example.com:8080\r\nX-Request-Id:  abc \t\r\nAccept: */*\r\n\r\n")
        #expect(evs.count == 2)
        let h = try #require(heads(evs).first)
        #expect(h.method == "GET")
        #expect(h.target == "/hooks/github?x=1&y=%20")
        #expect(h.path == "/hooks/github")
        #expect(h.query == "x=1&y=%20")
        #expect(h.version == .http1_1)
        #expect(h.headers.fields.map(\.name) == ["Host", "X-Request-Id", "Accept"])
        #expect(h.headers["x-request-id"] == "abc")  // OWS trimmed, lookup case-insensitive
        #expect(h.headers["HOST"] == "example.com:8080")
        #expect(h.requestID == "abc")
        #expect(h.framing == .none)
        #expect(h.keepAlive)
        #expect(h.expectation == .none)
        #expect(ends(evs) == [HTTPHeaders()])
    }

    @Test func queryAbsentVersusEmpty() {
        #expect(heads(events("GET /a HTTP/1.1\r\nHost: a\r\n\r\n")).first?.query == nil)
        #expect(heads(events("GET /a? HTTP/1.1\r\nHost: a\r\n\r\n")).first?.query == "")
        #expect(heads(events("GET /a?b?c HTTP/1.1\r\nHost: a\r\n\r\n")).first?.query == "b?c")
    }

    @Test func optionsAsterisk() {
        let h = heads(events("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n")).first
        #expect(h?.path == "*")
        #expect(h?.target == "*")
    }

    @Test func anyTokenMethod() {
        #expect(heads(events("M-SEARCH /x HTTP/1.1\r\nHost: a\r\n\r\n")).first?.method == "M-SEARCH")
    }

    @Test func contentLengthBody() {
        let evs = events("POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello")
        #expect(heads(evs).first?.framing == .length(5))
        #expect(bodies(evs) == Array("hello".utf8))
        #expect(ends(evs).count == 1)
    }

    @Test func contentLengthLeadingZeros() {
        let evs = events("POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 005\r\n\r\nhello")
        #expect(heads(evs).first?.framing == .length(5))
        #expect(isComplete(evs))
    }

    @Test func contentLengthZero() {
        let evs = events("POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n")
        #expect(heads(evs).first?.framing == .length(0))
        #expect(heads(evs).first?.hasBody == false)
        #expect(isComplete(evs))
    }

    @Test func bodyWaitsForAllBytes() {
        var p = HTTPParser()
        let a = p.feed(Array("POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nhello".utf8))
        #expect(heads(a).count == 1 && ends(a).isEmpty && bodies(a) == Array("hello".utf8))
        let b = p.feed(Array("world".utf8))
        #expect(bodies(b) == Array("world".utf8) && ends(b).count == 1)
    }

    @Test func chunkedWithExtensionsAndTrailers() throws {
        let s = "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
            + "5;name=value;flag\r\nhello\r\n"
            + "6 ; q=\"quoted str\"\r\n world\r\n"
            + "A\r\n0123456789\r\n"
            + "0\r\nX-Checksum: abc\r\nX-Other:  two \r\n\r\n"
        let evs = events(s)
        let h = try #require(heads(evs).first)
        #expect(h.framing == .chunked)
        #expect(bodies(evs) == Array("hello world0123456789".utf8))
        let t = try #require(ends(evs).first)
        #expect(t.fields == [HTTPField(name: "X-Checksum", value: "abc"), HTTPField(name: "X-Other", value: "two")])
        // Trailers are never merged into the head's fields.
        #expect(h.headers["x-checksum"] == nil)
    }

    @Test func chunkedCaseInsensitiveAndParams() {
        #expect(heads(events("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ChUnKeD\r\n\r\n0\r\n\r\n")).first?.framing == .chunked)
        #expect(isComplete(events("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: , chunked\r\n\r\n0\r\n\r\n")))
    }

    @Test func chunkSizeSixteenDigitsAccepted() {
        let evs = events("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0000000000000005\r\nhello\r\n0\r\n\r\n")
        #expect(isComplete(evs))
        #expect(bodies(evs) == Array("hello".utf8))
    }

    @Test func hugeChunkIsStreamedNotBuffered() {
        var limits = HTTPParserLimits()
        limits.maxBody = 1 << 30
        var p = HTTPParser(limits: limits)
        let head = p.feed(Array("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n20000000\r\n".utf8))
        #expect(heads(head).count == 1)
        let slice = [UInt8](repeating: 0x61, count: 4096)
        for _ in 0..<64 {
            let evs = p.feed(slice)
            #expect(evs == [.body(slice)])  // every byte handed out at once
        }
        #expect(p.line.capacity < 4096)  // nothing accumulated
    }

    @Test func pipelinedInOneBuffer() {
        let s = "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
            + "POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
            + "\r\nPOST /3 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nz\r\n0\r\n\r\n"
            + "GET /4 HTTP/1.0\r\n\r\n"
        let evs = events(s)
        #expect(heads(evs).map(\.path) == ["/1", "/2", "/3", "/4"])
        #expect(ends(evs).count == 4)
        #expect(evs.count == 10)
        #expect(bodies(evs) == Array("abcz".utf8))
    }

    @Test func leadingEmptyLinesTolerated() {
        let s = String(repeating: "\r\n", count: 8) + "GET / HTTP/1.1\r\nHost: a\r\n\r\n"
        #expect(isComplete(events(s)))
    }

    @Test func keepAliveRules() {
        func ka(_ s: String) -> Bool? { heads(events(s)).first?.keepAlive }
        #expect(ka("GET / HTTP/1.1\r\nHost: a\r\n\r\n") == true)
        #expect(ka("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n") == false)
        #expect(ka("GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, CLOSE\r\n\r\n") == false)
        #expect(ka("GET / HTTP/1.0\r\n\r\n") == false)
        #expect(ka("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n") == true)
        #expect(ka("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n") == true)
        #expect(ka("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n") == false)
    }

    @Test func expectations() {
        func ex(_ s: String) -> HTTPExpectation? { heads(events(s)).first?.expectation }
        let post = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n"
        #expect(ex(post + "Expect: 100-continue\r\n\r\n") == .continue100)
        #expect(ex(post + "Expect: 100-Continue\r\n\r\n") == .continue100)
        #expect(ex(post + "Expect: 200-ok\r\n\r\n") == .unsupported)
        #expect(ex(post + "Expect: 100-continue, foo\r\n\r\n") == .unsupported)
        #expect(ex(post + "\r\n") == HTTPExpectation.none)
        #expect(ex("POST / HTTP/1.0\r\nContent-Length: 1\r\nExpect: 100-continue\r\n\r\n") == HTTPExpectation.none)
        #expect(heads(events(post + "Expect: 100-continue\r\n\r\n")).first?.expectContinue == true)
    }

    @Test func http10WithoutHost() {
        let h = heads(events("GET / HTTP/1.0\r\n\r\n")).first
        #expect(h?.version == .http1_0)
    }

    @Test func valuesKeepTabsAndObsText() {
        let bytes = Array("GET / HTTP/1.1\r\nHost: a\r\nX: a\tb\r\nY: ".utf8) + [0xC3, 0xA9] + Array("\r\nZ:\r\n\r\n".utf8)
        var p = HTTPParser()
        let evs = p.feed(bytes)
        let h = heads(evs).first
        #expect(h?.headers["x"] == "a\tb")
        #expect(h?.headers["y"] == "é")
        #expect(h?.headers["z"] == "")
        #expect(h?.headers.values(for: "z") == [""])
    }

    @Test func emptyHostAndPortHostAccepted() {
        #expect(isComplete(events("GET / HTTP/1.1\r\nHost:\r\n\r\n")))
        #expect(isComplete(events("GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n")))
    }

    @Test func stepAPIPausesAfterEachEvent() {
        var p = HTTPParser()
        let bytes = Array("GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n".utf8)
        bytes.withUnsafeBytes { buf in
            let (used1, s1) = p.next(buf)
            guard case .head(let h) = s1 else { Issue.record("expected head"); return }
            #expect(h.path == "/a")
            #expect(used1 == 28)
            let (used2, s2) = p.next(UnsafeRawBufferPointer(rebasing: buf[used1...]))
            #expect(used2 == 0)
            #expect(s2 == .end(trailers: HTTPHeaders()))
            #expect(p.isAtMessageStart)
        }
    }
}

/// Limits exactly at the boundary pass; one byte or field more fails with the documented status.
struct HTTPParserLimitTests {
    @Test func requestLineLimit() {
        let base = "GET / HTTP/1.1"
        let pad = { (n: Int) in "GET /" + String(repeating: "a", count: n - base.utf8.count) + " HTTP/1.1" }
        #expect(pad(8192).utf8.count == 8192)
        #expect(errorStatus(pad(8192) + "\r\nHost: a\r\n\r\n") == nil)
        #expect(errorStatus(pad(8193) + "\r\nHost: a\r\n\r\n") == 414)
        // 414 is decided as soon as the line is too long, without waiting for its end.
        var p = HTTPParser()
        let evs = p.feed(Array(("GET /" + String(repeating: "a", count: 9000)).utf8))
        #expect(evs.first == .error(HTTPParseError.requestLineTooLong))
    }

    /// Builds a head whose field lines (with CRLFs) total exactly `bytes`.
    static func head(fieldBytes bytes: Int) -> String {
        let host = "Host: a\r\n"  // 9 bytes
        let rest = bytes - host.utf8.count - "X: \r\n".utf8.count
        return "GET / HTTP/1.1\r\n" + host + "X: " + String(repeating: "v", count: rest) + "\r\n\r\n"
    }

    @Test func headerBytesLimit() {
        #expect(errorStatus(Self.head(fieldBytes: 32768)) == nil)
        #expect(errorStatus(Self.head(fieldBytes: 32769)) == 431)
        var small = HTTPParserLimits()
        small.maxHeaderBytes = 100
        #expect(errorStatus(Self.head(fieldBytes: 100), limits: small) == nil)
        #expect(errorStatus(Self.head(fieldBytes: 101), limits: small) == 431)
    }

    @Test func headerCountLimit() {
        func head(_ n: Int) -> String {
            "GET / HTTP/1.1\r\nHost: a\r\n" + (1..<n).map { "X-\($0): v\r\n" }.joined() + "\r\n"
        }
        #expect(errorStatus(head(100)) == nil)
        #expect(errorStatus(head(101)) == 431)
    }

    @Test func bodyLimitContentLength() {
        var l = HTTPParserLimits()
        l.maxBody = 10
        #expect(errorStatus("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789", limits: l) == nil)
        #expect(errorStatus("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n0123456789x", limits: l) == 413)
    }

    @Test func bodyLimitChunkedCumulative() {
        var l = HTTPParserLimits()
        l.maxBody = 10
        let head = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        #expect(errorStatus(head + "5\r\n01234\r\n5\r\n56789\r\n0\r\n\r\n", limits: l) == nil)
        #expect(errorStatus(head + "5\r\n01234\r\n5\r\n56789\r\n1\r\nx\r\n0\r\n\r\n", limits: l) == 413)
        // The 413 comes at the chunk-size line, before any byte of the oversized chunk.
        var p = HTTPParser(limits: l)
        let evs = p.feed(Array((head + "5\r\n01234\r\n6\r\n").utf8))
        #expect(bodies(evs) == Array("01234".utf8))
        #expect(evs.last == .error(HTTPParseError.chunkedBodyOverLimit))
    }

    @Test func chunkLineLimit() {
        let head = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        let at = "1;" + String(repeating: "e", count: 1022)  // 1024 bytes
        let over = at + "e"
        #expect(at.utf8.count == 1024)
        #expect(errorStatus(head + at + "\r\nx\r\n0\r\n\r\n") == nil)
        #expect(errorStatus(head + over + "\r\nx\r\n0\r\n\r\n") == 400)
    }

    @Test func trailerLimit() {
        let head = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n"
        let at = "T: " + String(repeating: "t", count: 8192 - 5) + "\r\n"
        #expect(at.utf8.count == 8192)
        #expect(errorStatus(head + at + "\r\n") == nil)
        let over = "T: " + String(repeating: "t", count: 8192 - 4) + "\r\n"
        #expect(errorStatus(head + over + "\r\n") == 431)
        let many = (0...100).map { "T\($0): v\r\n" }.joined()
        #expect(errorStatus(head + many + "\r\n") == 431)
    }

    @Test func leadingEmptyLinesLimit() {
        #expect(errorStatus(String(repeating: "\r\n", count: 8) + "GET / HTTP/1.1\r\nHost: a\r\n\r\n") == nil)
        #expect(errorStatus(String(repeating: "\r\n", count: 9) + "GET / HTTP/1.1\r\nHost: a\r\n\r\n") == 400)
    }
}
