import Foundation
import Testing
import SpoolWire
import SpoolSystem
import SpoolTestSupport
@testable import SpoolHTTP

/// Live tests over a real socket with raw bytes.
struct HTTPServerTests {
    @Test func keepAliveTwoRequestsOneConnection() throws {
        try withServer { s in
            let c = try RawHTTPClient(port: s.port)
            try c.send("GET /one?q=1 HTTP/1.1\r\nHost: a\r\n\r\n")
            let r1 = try #require(c.readResponse())
            #expect(r1.status == 200)
            #expect(r1.text == "GET /one q=1 ")
            #expect(r1.header("connection") == nil)
            #expect(r1.header("content-length") == "13")
            #expect(r1.header("date")?.hasSuffix(" GMT") == true)
            #expect(r1.header("server") == nil)
            try c.send("POST /two HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nbody")
            let r2 = try #require(c.readResponse())
            #expect(r2.text == "POST /two - body")
            #expect(r1.header("x-remote") == r2.header("x-remote"))
            #expect(s.server.openConnections == 1)
        }
    }

    @Test func pipelinedAnsweredInOrder() throws {
        try withServer { s in
            let c = try RawHTTPClient(port: s.port)
            // The first is answered late from another thread: the others must wait behind it.
            try c.send("GET /delay HTTP/1.1\r\nHost: a\r\n\r\nPOST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhiGET /c HTTP/1.1\r\nHost: a\r\n\r\n")
            let texts = (0..<3).compactMap { _ in c.readResponse()?.text }
            #expect(texts == ["GET /delay - ", "POST /b - hi", "GET /c - "])
        }
    }

    @Test func http10ClosesUnlessKeepAlive() throws {
        try withServer { s in
            let c = try RawHTTPClient(port: s.port)
            try c.send("GET /x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            let r = try #require(c.readResponse())
            #expect(r.header("connection") == "keep-alive")
            try c.send("GET /y HTTP/1.0\r\n\r\n")
            let r2 = try #require(c.readResponse())
            #expect(r2.header("connection") == "close")
            #expect(c.isClosedByPeer())
        }
    }

    @Test func chunkedPostWithTrailers() throws {
        try withServer { s in
            let c = try RawHTTPClient(port: s.port)
            try c.send("POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n")
            Thread.sleep(forTimeInterval: 0.05)
            try c.send("6\r\n world\r\n0\r\nX-Sum: 42\r\n\r\n")
            let r = try #require(c.readResponse())
            #expect(r.text == "POST /c - hello world")
            #expect(r.header("x-trailers") == "X-Sum=42")
        }
    }

    @Test func expectContinueThenFinal() throws {
        try withServer { s in
            let c = try RawHTTPClient(port: s.port)
            try c.send("POST /e HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
            let interim = try #require(c.readResponse())
            #expect(interim.status == 100)
            try c.send("abc")
            let final = try #require(c.readResponse())
            #expect(final.status == 200)
            #expect(final.text == "POST /e - abc")
        }
    }

    @Test func expectContinueEarlyRejectionHasNo100() throws {
        try withServer { s in
            let c = try RawHTTPClient(port: s.port)
            try c.send("POST /reject HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
            let r = try #require(c.readResponse())
            #expect(r.status == 401)
            #expect(r.text == "{\"error\":\"unauthorized\"}")
            #expect(r.header("connection") == "close")
            #expect(c.isClosedByPeer())
        }
    }

    @Test func earlyRejectionWithoutBodyKeepsConnection() throws {
        try withServer { s in
            let c = try RawHTTPClient(port: s.port)
            try c.send("GET /reject HTTP/1.1\r\nHost: a\r\n\r\nGET /ok HTTP/1.1\r\nHost: a\r\n\r\n")
            #expect(c.readResponse()?.status == 401)
            let r = try #require(c.readResponse())
            #expect(r.status == 200 && r.text == "GET /ok - ")
        }
    }

    struct ErrorCase: Sendable, CustomTestStringConvertible {
        let request: String
        let status: Int
        var testDescription: String { "\(status)" }
    }

    static let errorCases: [ErrorCase] = [
        ErrorCase(request: "GET / HTTP/1.1\r\nHost: a\r\nBad Name: 1\r\n\r\n", status: 400),
        ErrorCase(request: "POST /p HTTP/1.1\r\nHost: a\r\n\r\n", status: 411),
        ErrorCase(request: "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 2000000\r\n\r\n" + String(repeating: "x", count: 100_000), status: 413),
        ErrorCase(request: "GET /" + String(repeating: "a", count: 9000) + " HTTP/1.1\r\nHost: a\r\n\r\n", status: 414),
        ErrorCase(request: "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nExpect: something-else\r\n\r\nx", status: 417),
        ErrorCase(request: "GET / HTTP/1.1\r\nHost: a\r\nX: " + String(repeating: "v", count: 40000) + "\r\n\r\n", status: 431),
        ErrorCase(request: "POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", status: 501),
        ErrorCase(request: "GET / HTTP/2.0\r\nHost: a\r\n\r\n", status: 505),
    ]

    @Test(arguments: errorCases)
    func errorStatusAnsweredAndClosed(_ e: ErrorCase) throws {
        try withServer { s in
            let c = try RawHTTPClient(port: s.port)
            try c.send(e.request)
            let r = try #require(c.readResponse())
            #expect(r.status == e.status)
            #expect(r.header("connection") == "close" || e.status == 411)
            #expect(r.header("content-type") == "application/json")
            #expect(r.text.hasPrefix("{\"error\":\""))
            if e.status != 411 {
                #expect(c.isClosedByPeer())
            }
            let entry = s.logs.withLock { $0.last }
            #expect(entry?.status.code == e.status)
        }
    }

    @Test func errorIsNeverResynchronised() throws {
        try withServer { s in
            let c = try RawHTTPClient(port: s.port)
            try c.send("GET / HTTP/1.1\r\nHost: a\r\nX: a\u{1}\r\n\r\nGET /next HTTP/1.1\r\nHost: a\r\n\r\n")
            let r = try #require(c.readResponse())
            #expect(r.status == 400)
            #expect(c.readResponse() == nil)
            #expect(s.logs.withLock { $0.count } == 1)
        }
    }

    @Test func respondFromAnotherThreadAfterDelay() throws {
        try withServer { s in
            let c = try RawHTTPClient(port: s.port)
            let t = try elapsed {
                try c.send("GET /delay HTTP/1.1\r\nHost: a\r\nX-Request-Id: rid-7\r\n\r\n")
                #expect(c.readResponse()?.status == 200)
            }
            #expect(t >= 0.19)
            let entry = try #require(s.logs.withLock { $0.last })
            #expect(entry.path == "/delay" && entry.method == "GET" && entry.requestID == "rid-7" && entry.logKey == "k/delay")
            #expect(entry.durationMilliseconds >= 190)
            #expect(entry.remote.hasPrefix("127.0.0.1:"))
        }
    }

    @Test func handlerCloseFlag() throws {
        try withServer { s in
            let c = try RawHTTPClient(port: s.port)
            try c.send("GET /close HTTP/1.1\r\nHost: a\r\n\r\n")
            #expect(c.readResponse()?.header("connection") == "close")
            #expect(c.isClosedByPeer())
        }
    }

    @Test func manyIdleConnectionsDoNotSlowOthers() throws {
        try withServer { s in
            var idle: [RawHTTPClient] = []
            for i in 0..<1000 {
                let c = try RawHTTPClient(port: s.port)
                if i % 2 == 0 { try c.send("GET /slow HTTP/1.1\r\n") }  // half hold a partial head open
                idle.append(c)
            }
            // Wait until the server has accepted them all.
            let deadline = monotonicNanos() + 5_000_000_000
            while s.server.openConnections < 1000 && monotonicNanos() < deadline { Thread.sleep(forTimeInterval: 0.01) }
            #expect(s.server.openConnections == 1000)
            let c = try RawHTTPClient(port: s.port)
            let t = try elapsed {
                try c.send("GET /fast HTTP/1.1\r\nHost: a\r\n\r\n")
                #expect(c.readResponse()?.status == 200)
            }
            #expect(t < 0.5)
            #expect(idle.count == 1000)
        }
    }

    @Test func connectionLimitClosesExtraConnections() throws {
        var config = HTTPServerConfiguration()
        config.maxConnections = 2
        try withServer(config) { s in
            let a = try RawHTTPClient(port: s.port), b = try RawHTTPClient(port: s.port)
            try a.send("GET /a HTTP/1.1\r\nHost: a\r\n\r\n")
            try b.send("GET /b HTTP/1.1\r\nHost: a\r\n\r\n")
            #expect(a.readResponse()?.status == 200)
            #expect(b.readResponse()?.status == 200)
            let extra = try RawHTTPClient(port: s.port)
            #expect(extra.isClosedByPeer())
            #expect(s.server.openConnections == 2)
        }
    }

    @Test func shutdownStopsRunAndClosesIdle() throws {
        let s = try TestServer()
        let c = try RawHTTPClient(port: s.port)
        try c.send("GET /a HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(c.readResponse()?.status == 200)
        let t = elapsed { s.stop() }
        #expect(t < 1)
        #expect(c.isClosedByPeer())
        #expect(s.server.openConnections == 0)
        #expect(throws: Errno.self) { _ = try RawHTTPClient(port: s.port) }
    }

    @Test func shutdownFinishesRequestInFlight() throws {
        let s = try TestServer()
        let c = try RawHTTPClient(port: s.port)
        try c.send("GET /delay HTTP/1.1\r\nHost: a\r\n\r\n")
        Thread.sleep(forTimeInterval: 0.05)
        s.server.shutdown(grace: .seconds(5))
        let r = try #require(c.readResponse())
        #expect(r.status == 200)
        #expect(r.header("connection") == "close")
        s.finished.wait()
    }

    @Test func responseHeadersCannotSplit() throws {
        struct Evil: HTTPHandler {
            func handle(_ request: HTTPRequest, remote: String, respond: @escaping @Sendable (HTTPResponse) -> Void) {
                respond(HTTPResponse(status: 200, headers: [("X-Ok", "1"), ("X-Bad", "a\r\nSet-Cookie: x"), ("Content-Length", "99")], body: Array("hi".utf8)))
            }
        }
        try withServer(handler: Evil()) { s in
            let c = try RawHTTPClient(port: s.port)
            try c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            let r = try #require(c.readResponse())
            #expect(r.header("x-ok") == "1")
            #expect(r.header("x-bad") == nil && r.header("set-cookie") == nil)
            #expect(r.header("content-length") == "2" && r.text == "hi")
        }
    }
}

/// Deadlines: each test uses short timeouts on its own server.
struct HTTPServerTimeoutTests {
    static func config() -> HTTPServerConfiguration {
        var c = HTTPServerConfiguration()
        c.headerTimeout = .milliseconds(400)
        c.bodyTimeout = .milliseconds(400)
        c.idleTimeout = .milliseconds(300)
        c.sweepInterval = .milliseconds(50)
        return c
    }

    @Test func idleKeepAliveClosedSilently() throws {
        try withServer(Self.config()) { s in
            let c = try RawHTTPClient(port: s.port)
            try c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            #expect(c.readResponse()?.status == 200)
            let t = elapsed { #expect(c.isClosedByPeer()) }
            #expect(t > 0.2 && t < 1.5)
            #expect(c.buffer.isEmpty)
        }
    }

    @Test func slowHeadCutAtHeaderTimeoutWith408() throws {
        try withServer(Self.config()) { s in
            let c = try RawHTTPClient(port: s.port)
            let start = monotonicNanos()
            try c.send("GET / HTTP/1.1\r\nHost: a\r\n")
            // Trickle a field every 100 ms: an absolute deadline must not be extended by progress.
            var sent = 0
            while monotonicNanos() - start < 1_500_000_000 {
                Thread.sleep(forTimeInterval: 0.1)
                do { try c.send("X-\(sent): 1\r\n") } catch { break }
                sent += 1
                if monotonicNanos() - start > 600_000_000 { break }
            }
            let r = try #require(c.readResponse())
            let t = Double(monotonicNanos() - start) / 1e9
            #expect(r.status == 408)
            #expect(r.header("connection") == "close")
            #expect(t < 1.5)
            #expect(c.isClosedByPeer())
        }
    }

    @Test func silentConnectionClosedWithoutResponse() throws {
        try withServer(Self.config()) { s in
            let c = try RawHTTPClient(port: s.port)
            let t = elapsed { #expect(c.isClosedByPeer()) }
            #expect(t > 0.3 && t < 1.5)
            #expect(c.buffer.isEmpty)
        }
    }

    @Test func slowBodyGets408() throws {
        try withServer(Self.config()) { s in
            let c = try RawHTTPClient(port: s.port)
            try c.send("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc")
            let r = try #require(c.readResponse())
            #expect(r.status == 408)
            #expect(c.isClosedByPeer())
        }
    }
}
