import Foundation
import Synchronization
import Testing
import SpoolCore
import SpoolHTTP
import SpoolSystem
import SpoolTestSupport
import SpoolWire
@testable import SpoolIngress

/// The ingress driven in-process through its `HTTPHandler`, with no socket: requests are parsed from raw bytes by
/// the real parser, then go through `checkHead` and `handle` as the server would call them.
@Suite struct IngressHandlerTests {
    struct Harness {
        let dir: String
        let spool: Spool
        let handler: IngressHandler

        init(_ configure: (inout IngressConfiguration) -> Void = { _ in }) throws {
            dir = makeTempDir("ingress") + "/s"
            spool = try Spool(path: dir)
            var config = IngressConfiguration()
            configure(&config)
            handler = try IngressHandler(spool: spool, configuration: config)
        }

        /// Parses `raw` (one whole request) and answers it as the server does: an early response from
        /// `checkHead`, else the handler's.
        func send(_ raw: String) throws -> HTTPResponse {
            var parser = HTTPParser()
            var head: HTTPRequestHead?
            var body: [UInt8] = []
            for e in parser.feed(Array(raw.utf8)) {
                switch e {
                case .head(let h): head = h
                case .body(let b): body += b
                case .end: break
                case .error(let err): Issue.record("parse error \(err)")
                }
            }
            let h = try #require(head)
            if let early = handler.checkHead(h, remote: "test") { return early }
            let answer = Mutex<HTTPResponse?>(nil)
            let done = DispatchSemaphore(value: 0)
            handler.handle(HTTPRequest(head: h, body: body), remote: "test") { r in
                answer.withLock { $0 = $0 ?? r }
                done.signal()
            }
            #expect(done.wait(timeout: .now() + 10) == .success)
            return try #require(answer.withLock { $0 })
        }

        func post(_ body: String, path: String = "/json2video/done", headers: [String] = []) throws -> HTTPResponse {
            let extra = headers.map { $0 + "\r\n" }.joined()
            return try send("POST \(path) HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\(extra)Content-Length: \(body.utf8.count)\r\n\r\n\(body)")
        }
    }

    static func text(_ r: HTTPResponse) -> String { String(decoding: r.body, as: UTF8.self) }

    @Test func acceptedThenDuplicateStoresTheExactBytesOnce() throws {
        let h = try Harness()
        defer { h.handler.stop() }
        let body = #"{"movie":{"project":"P1","status":"done"}}"#
        let first = try h.post(body)
        #expect(first.status == .ok && Self.text(first) == #"{"status":"accepted","key":"P1"}"#)
        let second = try h.post(body)
        #expect(second.status == .ok && Self.text(second) == #"{"status":"duplicate","key":"P1"}"#)
        #expect(entries(h.dir + "/new") == ["P1"])
        #expect(Data(try #require(storedPayload(atPath: h.dir + "/new/P1"))) == Data(body.utf8))
    }

    @Test func refusalsStoreNothing() throws {
        let h = try Harness { $0.token = "s3cret" }
        defer { h.handler.stop() }
        #expect(try h.post(#"{"project":"A"}"#).status == .unauthorized)
        #expect(try h.post(#"{"project":"A"}"#, headers: ["Authorization: Bearer wrong"]).status == .unauthorized)
        let auth = ["Authorization: Bearer s3cret"]
        #expect(try h.post("{not json", headers: auth).status == .badRequest)
        let noKey = try h.post(#"{"x":1}"#, headers: auth)
        #expect(noKey.status == .unprocessableContent && Self.text(noKey).contains("no key found"))
        #expect(try h.post(#"{"project":"A"}"#, path: "/elsewhere", headers: auth).status == .notFound)
        let get = try h.send("GET /json2video/done HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(get.status == .methodNotAllowed && get.headers["allow"] == "POST")
        #expect(entries(h.dir + "/new").isEmpty && entries(h.dir + "/keys").isEmpty)
        #expect(try h.post(#"{"project":"A"}"#, path: "/json2video/done?token=s3cret").status == .ok)
        #expect(entries(h.dir + "/new") == ["A"])
    }

    @Test func keyFromAHeader() throws {
        let h = try Harness { $0.keyHeader = "webhook-id" }
        defer { h.handler.stop() }
        let missing = try h.post("{}")
        #expect(missing.status == .unprocessableContent && Self.text(missing).contains("header webhook-id is missing"))
        #expect(try h.post("{}", headers: ["webhook-id: a", "webhook-id: b"]).status == .badRequest)
        #expect(try h.post("{}", headers: ["webhook-id: msg_1"]).status == .ok)
        #expect(entries(h.dir + "/new") == ["msg_1"])
    }

    @Test func healthAndMetricsAnswerWithoutTheSocket() throws {
        let h = try Harness()
        defer { h.handler.stop() }
        _ = try h.post(#"{"project":"M"}"#)
        #expect(Self.text(try h.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")) == "ok\n")
        let metrics = Self.text(try h.send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"))
        #expect(metrics.contains("spool_webhooks_accepted_total 1"))
        #expect(metrics.contains("spool_items{queue=\"default\",state=\"new\"} 1"))
    }
}
