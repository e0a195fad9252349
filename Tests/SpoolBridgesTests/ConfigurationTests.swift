import Testing
import SpoolWire
import SpoolConsumer
import SpoolCore
import SpoolSystem
@testable import SpoolBridges

/// URLs, headers, Retry-After and the status mapping: the pure parts of the sinks.
@Suite struct ConfigurationTests {
    @Test func natsURLs() throws {
        #expect(try Endpoint.nats("nats://127.0.0.1:4333") == Endpoint(host: "127.0.0.1", port: 4333, defaultPort: 4222))
        #expect(try Endpoint.nats("nats://broker.internal") == Endpoint(host: "broker.internal", port: 4222, defaultPort: 4222))
        #expect(try Endpoint.nats("nats://[::1]:5000") == Endpoint(host: "::1", port: 5000, defaultPort: 4222))
        let tls = try Endpoint.nats("TLS://broker.internal:4443")
        #expect(tls == Endpoint(host: "broker.internal", port: 4443, secure: true, defaultPort: 4222))
        #expect(tls.natsURL == "tls://broker.internal:4443")
        #expect(try Endpoint.nats("nats://[::1]:5000").natsURL == "nats://[::1]:5000")
        for bad in ["http://x", "nats://", "nats://h:0", "nats://h:65536", "nats://h:x", "nats://u:p@h:1", "nats://h h:1", "tls://", "tls://u:p@h"] {
            #expect(throws: BridgeError.self, "\(bad)") { try Endpoint.nats(bad) }
        }
    }

    @Test func httpURLs() throws {
        #expect(try Endpoint.http("http://127.0.0.1:8080/hooks/in?x=1") == Endpoint(host: "127.0.0.1", port: 8080, target: "/hooks/in?x=1", defaultPort: 80))
        #expect(try Endpoint.http("http://example.com") == Endpoint(host: "example.com", port: 80, target: "/", defaultPort: 80))
        #expect(try Endpoint.http("http://example.com?q") == Endpoint(host: "example.com", port: 80, target: "/?q", defaultPort: 80))
        #expect(try Endpoint.http("http://h/p#frag").target == "/p")
        #expect(try Endpoint.http("http://[::1]:81/").authority == "[::1]:81")
        let https = try Endpoint.http("https://example.com/hook")
        #expect(https == Endpoint(host: "example.com", port: 443, target: "/hook", secure: true, defaultPort: 443))
        #expect(https.authority == "example.com")
        #expect(try Endpoint.http("https://example.com:8443/").authority == "example.com:8443")
        #expect(try Endpoint.http("https://example.com:80/").authority == "example.com:80")
        for bad in ["ftp://x", "http://", "https://", "http://h/a b", "http://h/\r\nX: y", "http://h:99999/", "http://u@h/", "https://u:p@h/"] {
            #expect(throws: BridgeError.self, "\(bad)") { try Endpoint.http(bad) }
        }
    }

    @Test func extraHeaders() throws {
        let c = try HTTPForwardConfiguration(url: "http://h/", headers: ["Authorization: Bearer abc", "X-Env:prod"])
        #expect(c.extraHeaders.map { "\($0.0)=\($0.1)" } == ["Authorization=Bearer abc", "X-Env=prod"])
        for bad in ["NoColon", "Bad Name: v", "X: a\r\nInjected: 1", "Content-Length: 5", "host: other", "Transfer-Encoding: chunked", "X-Spool-Key: forged"] {
            #expect(throws: BridgeError.self, "\(bad)") { try HTTPForwardConfiguration(url: "http://h/", headers: [bad]) }
        }
    }

    @Test func retryAfter() {
        let now = RFC3339.parse("2026-11-29T04:00:00Z")!
        #expect(RetryAfter.parse("120", nowNanos: now) == 120_000_000_000)
        #expect(RetryAfter.parse("0", nowNanos: now) == 0)
        #expect(RetryAfter.parse("Sun, 29 Nov 2026 04:05:00 GMT", nowNanos: now) == 300_000_000_000)
        #expect(RetryAfter.parse("Sun, 29 Nov 2026 03:00:00 GMT", nowNanos: now) == 0, "a date in the past: no extra wait")
        #expect(RetryAfter.parse("99999999999999999999", nowNanos: now) == RetryAfter.maxNanos, "clamped, not wrapped")
        // Dates a hostile server may send that Int64 nanoseconds cannot hold, or whose distance from now overflows:
        // (these trapped before; the fuzzer found the calendar half through a metadata file).
        #expect(RetryAfter.parse("Mon, 01 Jan 1000 00:00:00 GMT", nowNanos: now) == nil)
        #expect(RetryAfter.parse("Fri, 31 Dec 9999 23:59:59 GMT", nowNanos: now) == nil)
        #expect(RetryAfter.parse("Sat, 01 Jan 1678 00:00:00 GMT", nowNanos: now) == 0)
        #expect(RetryAfter.parse("Thu, 01 Jan 2262 00:00:00 GMT", nowNanos: -now) == RetryAfter.maxNanos)
        for bad in ["", "-1", "1.5", " 12", "soon", "Sun, 29 Nov 2026 04:05:00 UTC", "Xyz, 29 Nov 2026 04:05:00 GMT", "Sun, 29 Foo 2026 04:05:00 GMT"] {
            #expect(RetryAfter.parse(bad, nowNanos: now) == nil, "\(bad)")
        }
    }

    func head(_ status: Int, _ headers: [(String, String)] = []) -> HTTPResponseHead {
        HTTPResponseHead(minorVersion: 1, status: HTTPStatus(status), reason: "R", headers: HTTPHeaders(headers))
    }

    @Test func statusMapping() {
        for s in [200, 201, 202, 204, 299] {
            #expect(HTTPForwarder.outcome(head: head(s), body: [], nowNanos: 0) == .done(status: "http \(s)"))
        }
        for s in [408, 429, 500, 502, 503, 504, 599] {
            guard case .retry(_, let status, nil) = HTTPForwarder.outcome(head: head(s), body: [], nowNanos: 0) else { Issue.record("\(s)"); continue }
            #expect(status == "http \(s)")
        }
        for s in [400, 401, 403, 404, 409, 410, 413, 422, 301, 302, 307, 308] {
            guard case .failed(_, "http \(s)") = HTTPForwarder.outcome(head: head(s), body: [], nowNanos: 0) else { Issue.record("\(s)"); continue }
        }
        guard case .retry(let text, _, 7_000_000_000) = HTTPForwarder.outcome(head: head(429, [("retry-after", "7")]), body: Array("slow down".utf8), nowNanos: 0) else {
            Issue.record("Retry-After ignored"); return
        }
        #expect(text.contains("slow down"))
        guard case .failed(let redirect, _) = HTTPForwarder.outcome(head: head(301, [("location", "http://elsewhere/")]), body: [], nowNanos: 0) else { return }
        #expect(redirect.contains("http://elsewhere/") && redirect.contains("not followed"))
    }

    @Test func errorsMapToOutcomesAtTheEdge() {
        #expect(BridgeError(.rejected, "too big").outcome == .failed(error: "too big", status: "rejected"))
        #expect(BridgeError(.timeout, "slow").outcome == .retry(error: "slow", status: "timeout", retryAfterNanos: nil))
        #expect(BridgeError(.connectionLost, "x").isRetryable && BridgeError(.protocolViolation, "x").isRetryable)
    }
}
