import Foundation
import Synchronization
import SpoolSystem
import SpoolWire
import SpoolTestSupport
@testable import SpoolHTTP

/// A test handler: echoes the request, with a few special paths.
///   /reject   -> checkHead answers 401
///   /delay    -> responds 200 from another thread after 200 ms
///   /close    -> responds with close = true
/// Other paths answer 200 with body "<method> <path> <query> <body>" and X-Trailers / X-Remote fields.
struct EchoHandler: HTTPHandler {
    func checkHead(_ head: HTTPRequestHead, remote: String) -> HTTPResponse? {
        if head.path == "/reject" { return .error(status: 401, "unauthorized") }
        return nil
    }

    func handle(_ request: HTTPRequest, remote: String, respond: @escaping @Sendable (HTTPResponse) -> Void) {
        let h = request.head
        let text = "\(h.method) \(h.path) \(h.query ?? "-") " + String(decoding: request.body, as: UTF8.self)
        var headers: HTTPHeaders = ["X-Remote": remote, "X-Trailers": request.trailers.fields.map { "\($0.name)=\($0.value)" }.joined(separator: ",")]
        headers.add(name: "X-Header-Count", value: String(h.headers.count))
        let response = HTTPResponse(status: 200, headers: headers, body: Array(text.utf8), close: h.path == "/close", logKey: "k" + h.path)
        if h.path.hasPrefix("/delay") {
            DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(200)) { respond(response) }
        } else {
            respond(response)
        }
    }
}

final class LogSink: Sendable {
    let entries = Mutex<[AccessLogEntry]>([])
    func withLock<R>(_ body: (inout [AccessLogEntry]) -> R) -> R { entries.withLock { body(&$0) } }
}

/// Runs a server on 127.0.0.1:0 on its own thread for one test.
final class TestServer: Sendable {
    let server: HTTPServer
    let port: UInt16
    let finished = DispatchSemaphore(value: 0)
    let logs = LogSink()

    init(configuration: HTTPServerConfiguration = HTTPServerConfiguration(), handler: any HTTPHandler = EchoHandler()) throws {
        let logs = self.logs
        server = HTTPServer(configuration: configuration, handler: handler, accessLog: { e in logs.entries.withLock { $0.append(e) } })
        port = try server.bind(host: "127.0.0.1", port: 0)
        let server = self.server, finished = self.finished
        let t = Thread {
            do { try server.run() } catch { print("server.run failed: \(error)") }
            finished.signal()
        }
        t.stackSize = 1 << 20
        t.start()
    }

    func stop() {
        server.shutdown(grace: .seconds(2))
        finished.wait()
    }

    var url: String { "http://127.0.0.1:\(port)" }
}

func withServer<R>(_ configuration: HTTPServerConfiguration = HTTPServerConfiguration(), handler: any HTTPHandler = EchoHandler(),
                   _ body: (TestServer) throws -> R) throws -> R {
    let s = try TestServer(configuration: configuration, handler: handler)
    defer { s.stop() }
    return try body(s)
}

func elapsed(_ body: () throws -> Void) rethrows -> Double {
    let start = monotonicNanos()
    try body()
    return Double(monotonicNanos() - start) / 1e9
}
