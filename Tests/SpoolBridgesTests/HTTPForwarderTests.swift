import Foundation
import Synchronization
import Testing
import SpoolWire
import SpoolConsumer
import SpoolCore
import SpoolHTTP
import SpoolSystem
@testable import SpoolBridges
import SpoolTestSupport

/// A thread-safe boolean that closures can capture (Mutex itself cannot be copied into them).
final class Flag: Sendable {
    private let m = Mutex(false)
    var isSet: Bool { m.withLock { $0 } }
    func set() { m.withLock { $0 = true } }
}

/// What the scripted server saw.
struct SeenRequest: Sendable {
    var path: String
    var key: String
    var attempt: String
    var contentType: String?
    var extra: String?
    var body: [UInt8]
    var at: Date
}

/// An HTTP endpoint whose answer depends on the item key (`ok200`, `r503`, `f404`, `never`, `flaky`, ...).
final class ScriptedEndpoint: HTTPHandler, Sendable {
    let seen = Mutex<[SeenRequest]>([])
    let retryAfterDate = Mutex<String>("")

    func handle(_ request: HTTPRequest, remote: String, respond: @escaping @Sendable (HTTPResponse) -> Void) {
        let h = request.head.headers
        let key = h["x-spool-key"] ?? ""
        let attempt = h["x-spool-attempt"] ?? ""
        seen.withLock { $0.append(SeenRequest(path: request.head.path, key: key, attempt: attempt, contentType: h["content-type"],
                                               extra: h["x-env"], body: request.body, at: Date())) }
        if key == "never" { return } // never answers
        if key == "flaky" {
            respond(attempt == "1" ? HTTPResponse(status: 503, headers: [("Retry-After", "1")], body: Array("warming up".utf8))
                                   : HTTPResponse(status: 200))
            return
        }
        if key == "r429" { respond(HTTPResponse(status: 429, headers: [("Retry-After", "120")], body: Array("slow down".utf8))); return }
        if key == "r503date" { respond(HTTPResponse(status: 503, headers: [("Retry-After", retryAfterDate.withLock { $0 })])); return }
        if key == "f301" { respond(HTTPResponse(status: 301, headers: [("Location", "/moved")])); return }
        let status = Int(key.dropFirst(key.hasPrefix("ok") ? 2 : 1).prefix(3)) ?? 500
        respond(HTTPResponse(status: HTTPStatus(status), body: Array("answer \(status)".utf8)))
    }

    func requests(for key: String) -> [SeenRequest] { seen.withLock { $0.filter { $0.key == key } } }
}

/// Runs an HTTPServer on 127.0.0.1:0 on its own thread.
final class LocalHTTPServer: Sendable {
    let server: HTTPServer
    let port: UInt16
    let finished = Flag()

    init(handler: any HTTPHandler) throws {
        server = HTTPServer(handler: handler)
        port = try server.bind(host: "127.0.0.1", port: 0)
        let server = self.server, finished = self.finished
        startThread {
            try? server.run()
            finished.set()
        }
    }

    var url: String { "http://127.0.0.1:\(port)" }

    func stop() {
        server.shutdown(grace: .milliseconds(200))
        _ = waitUntil(timeout: 5) { finished.isSet }
    }
}

/// A TCP server that answers every connection with scripted raw bytes after reading the request head, then
/// closes (or stalls), to drive the forwarder's response parsing and timeouts with bytes HTTPServer would never send.
final class RawHTTPServer: Sendable {
    let listener: FileDescriptor
    let port: UInt16
    let stopped = Flag()

    init(response: [UInt8], thenStall: Bool = false) throws {
        listener = try Socket.listen(Socket.Address(host: "127.0.0.1", port: 0)!, backlog: 16)
        port = try listener.localPort()
        let listener = self.listener, stopped = self.stopped
        startThread {
            while !stopped.isSet {
                guard (try? pollReadable([listener], timeoutMillis: 50))?.first == true, let c = try? Socket.accept(listener) else { continue }
                startThread {
                    var got: [UInt8] = []
                    var buf = [UInt8](repeating: 0, count: 4096)
                    while !got.contains(0x0A) || !String(decoding: got, as: UTF8.self).contains("\r\n\r\n") {
                        guard (try? pollReadable([c], timeoutMillis: 2000))?.first == true else { break }
                        let n = (try? buf.withUnsafeMutableBytes { try c.recv(into: $0) }) ?? 0
                        if n <= 0 { break }
                        got += buf[0..<n]
                    }
                    _ = try? c.sendAll(response)
                    if thenStall { _ = waitUntil(timeout: 5) { stopped.isSet } }
                    try? c.close()
                }
            }
            try? listener.close()
        }
    }

    var url: String { "http://127.0.0.1:\(port)/raw" }
    func stop() { stopped.set() }
}

@Suite(.serialized) struct HTTPForwarderTests {
    func forwarder(_ url: String, timeout: Int64 = 5_000_000_000, headers: [String] = []) throws -> HTTPForwarder {
        var c = try HTTPForwardConfiguration(url: url, headers: headers)
        c.timeoutNanos = timeout
        return HTTPForwarder(configuration: c)
    }

    func spool(_ tag: String, keys: [String]) throws -> Spool {
        let s = try Spool(path: makeTempDir(tag) + "/spool")
        for k in keys { _ = try s.enqueue(key: try SpoolKey(k), payload: payload(for: k), headers: [("content-type", "application/vnd.test+json")]) }
        return s
    }

    func run(_ s: Spool, _ p: any ItemProcessor, mode: ConsumerMode = .drain, policy: RetryPolicy, log: LogLines = LogLines()) throws -> ConsumerResult {
        var cfg = ConsumerConfiguration()
        cfg.concurrency = 4
        cfg.mode = mode
        cfg.policy = policy
        return try Consumer(spool: s, processor: p, configuration: cfg, log: log.log).run()
    }

    func info(_ s: Spool, _ key: String) throws -> ItemInfo { try s.find(key: try SpoolKey(key)) }

    @Test func eachStatusClassLeadsToTheRightState() throws {
        let endpoint = ScriptedEndpoint()
        let server = try LocalHTTPServer(handler: endpoint)
        defer { server.stop() }
        let done = ["ok200", "ok201", "ok204"], retried = ["r408", "r429", "r500", "r502", "r503"], failed = ["f400", "f404", "f422", "f301"]
        let s = try spool("status", keys: done + retried + failed)
        let log = LogLines()
        let result = try run(s, try forwarder(server.url + "/hooks/in?src=spool", headers: ["X-Env: test"]),
                             policy: RetryPolicy(maxAttempts: 5, baseNanos: 3_600_000_000_000), log: log)
        #expect(result.processed == 12 && result.done == 3 && result.retried == 5 && result.failed == 4, "\(result) \(log.all)")
        for k in done { #expect(try info(s, k).state == .done, "\(k)") }
        for k in retried {
            let i = try info(s, k)
            #expect(i.state == .new && i.meta?.lastStatus == "http \(k.dropFirst())", "\(k) waits for a retry")
        }
        for k in failed {
            let i = try info(s, k)
            #expect(i.state == .failed && i.meta?.attempts == 1 && i.meta?.lastStatus == "http \(k.dropFirst())", "\(k) failed at once")
        }
        #expect(try info(s, "r500").meta?.lastError == "HTTP 500 Internal Server Error: answer 500")
        #expect(try info(s, "f301").meta?.lastError?.contains("/moved") == true)
        // The requests: exact bytes, the original content type, the spool headers, the extra header; one each.
        for k in done + retried + failed {
            let seen = endpoint.requests(for: k)
            #expect(seen.count == 1, "\(k)")
            guard let r = seen.first else { continue }
            #expect(r.path == "/hooks/in" && r.body == payload(for: k) && r.attempt == "1")
            #expect(r.contentType == "application/vnd.test+json" && r.extra == "test")
        }
        #expect(endpoint.seen.withLock { $0.allSatisfy { $0.path != "/moved" } }, "the redirect was not followed")
    }

    @Test func retryAfterIsHonoured() throws {
        let endpoint = ScriptedEndpoint()
        let server = try LocalHTTPServer(handler: endpoint)
        defer { server.stop() }
        let fmt = DateFormatter()
        fmt.locale = Locale(identifier: "en_US_POSIX")
        fmt.timeZone = TimeZone(identifier: "GMT")
        fmt.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
        endpoint.retryAfterDate.withLock { $0 = fmt.string(from: Date().addingTimeInterval(300)) }
        let s = try spool("ra", keys: ["flaky", "r429", "r503date"])
        let fast = RetryPolicy(maxAttempts: 5, baseNanos: 10_000_000, maxNanos: 3_600_000_000_000)
        let before = s.now()
        // Our own backoff would retry after 5-10 ms; the server's Retry-After says otherwise.
        _ = try run(s, try forwarder(server.url + "/"), policy: fast)
        let r429 = try info(s, "r429"), r503 = try info(s, "r503date")
        #expect(r429.state == .new && (r429.meta?.nextAttemptAtNanos ?? 0) - before >= 119_000_000_000, "Retry-After: 120")
        let dateDelay = (r503.meta?.nextAttemptAtNanos ?? 0) - before
        #expect(r503.state == .new && dateDelay >= 295_000_000_000 && dateDelay <= 305_000_000_000, "Retry-After as an HTTP date")
        // The flaky one: answered 503 + Retry-After: 1, then 200; the second attempt came at least 1 s later.
        let c = try Consumer(spool: s, processor: try forwarder(server.url + "/"), configuration: {
            var cfg = ConsumerConfiguration(); cfg.policy = fast; return cfg }(), log: { _ in })
        startThread { _ = c.run() }
        defer { c.stop() }
        #expect(waitUntil(timeout: 5) { (try? info(s, "flaky").state) == .done })
        let times = endpoint.requests(for: "flaky").map(\.at)
        #expect(times.count == 2)
        if times.count == 2 { #expect(times[1].timeIntervalSince(times[0]) >= 0.99, "waited \(times[1].timeIntervalSince(times[0]))s") }
        #expect(endpoint.requests(for: "flaky").map(\.attempt) == ["1", "2"])
    }

    func processOne(_ p: HTTPForwarder, key: String = "k1") throws -> (ProcessOutcome, Double) {
        let s = try spool("one", keys: [key])
        let item = try #require(try s.claimSoon())
        let t0 = Date()
        let outcome = p.process(item, cancellation: CancellationFlag())
        try s.release(item)
        return (outcome, Date().timeIntervalSince(t0))
    }

    @Test func aServerThatNeverAnswersIsTimedOut() throws {
        let endpoint = ScriptedEndpoint()
        let server = try LocalHTTPServer(handler: endpoint)
        defer { server.stop() }
        let (outcome, secs) = try processOne(try forwarder(server.url + "/", timeout: 500_000_000), key: "never")
        guard case .retry(let e, "timeout", nil) = outcome else { Issue.record("\(outcome)"); return }
        #expect(e.contains("within 500ms"))
        #expect(secs >= 0.45 && secs < 3, "\(secs)")
        #expect(endpoint.requests(for: "never").count == 1)
        // A listener that never even accepts (the kernel completes the handshake from its backlog).
        let silent = try Socket.listen(Socket.Address(host: "127.0.0.1", port: 0)!, backlog: 4)
        defer { try? silent.close() }
        let (o2, s2) = try processOne(try forwarder("http://127.0.0.1:\(try silent.localPort())/", timeout: 400_000_000))
        guard case .retry(_, "timeout", _) = o2 else { Issue.record("\(o2)"); return }
        #expect(s2 >= 0.35 && s2 < 3)
        // A head, then a body that never comes.
        let stall = try RawHTTPServer(response: Array("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc".utf8), thenStall: true)
        defer { stall.stop() }
        let (o3, _) = try processOne(try forwarder(stall.url, timeout: 400_000_000))
        guard case .retry(let e3, "timeout", _) = o3 else { Issue.record("\(o3)"); return }
        #expect(e3.contains("complete response"))
    }

    @Test func connectionRefusedIsRetried() throws {
        let port = try freePort()
        let (outcome, secs) = try processOne(try forwarder("http://127.0.0.1:\(port)/"))
        guard case .retry(let e, "connect error", nil) = outcome else { Issue.record("\(outcome)"); return }
        #expect(e.contains("refused") && secs < 2)
    }

    @Test func rawResponses() throws {
        func outcome(_ raw: String, thenStall: Bool = false) throws -> ProcessOutcome {
            let srv = try RawHTTPServer(response: Array(raw.utf8), thenStall: thenStall)
            defer { srv.stop() }
            return try processOne(try forwarder(srv.url, timeout: 2_000_000_000)).0
        }
        #expect(try outcome("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n") == .done(status: "http 200"))
        #expect(try outcome("HTTP/1.0 202 Accepted\r\n\r\nclose-delimited body") == .done(status: "http 202"))
        #expect(try outcome("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n") == .done(status: "http 204"))
        for bad in ["HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", "garbage\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", ""] {
            guard case .retry(_, let status, _) = try outcome(bad) else { Issue.record("accepted \(bad.debugDescription)"); continue }
            #expect(status == "bad response", "\(bad.debugDescription)")
        }
        // A 200 with an endless body: decided by the status after a bounded read, not after reading it all.
        let t0 = Date()
        #expect(try outcome("HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n" + String(repeating: "x", count: 70_000), thenStall: true) == .done(status: "http 200"))
        #expect(Date().timeIntervalSince(t0) < 1.5)
    }
}
