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

struct RawResponse {
    var status: Int
    var headers: [(String, String)]
    var body: [UInt8]
    func header(_ name: String) -> String? { headers.first { $0.0.lowercased() == name.lowercased() }?.1 }
    var text: String { String(decoding: body, as: UTF8.self) }
}

/// A small blocking client that speaks raw bytes, with a receive timeout so a broken server fails tests instead of hanging.
final class RawClient {
    let fd: FileDescriptor
    var buffer: [UInt8] = []

    init(port: UInt16, timeoutMs: Int = 5000) throws {
        fd = try Socket.connect(Socket.Address(host: "127.0.0.1", port: port)!)
        try fd.setTimeouts(milliseconds: timeoutMs)
    }

    deinit { try? fd.close() }

    func send(_ s: String) throws { try fd.sendAll(Array(s.utf8)) }
    func send(_ b: [UInt8]) throws { try fd.sendAll(b) }

    /// Reads more bytes; returns false on EOF, reset or timeout.
    func fill() -> Bool {
        var tmp = [UInt8](repeating: 0, count: 65536)
        let n = (try? tmp.withUnsafeMutableBytes { try fd.recv(into: $0) }) ?? -1
        if n <= 0 { return false }
        buffer += tmp[0..<n]
        return true
    }

    /// Reads one response (status line, fields, Content-Length body); nil if the connection ends first.
    func readResponse() -> RawResponse? {
        while true {
            if let end = findHeadEnd() {
                let headText = String(decoding: buffer[..<end], as: UTF8.self)
                var lines = headText.components(separatedBy: "\r\n")
                let statusLine = lines.removeFirst().split(separator: " ")
                guard statusLine.count >= 2, let status = Int(statusLine[1]) else { return nil }
                let headers = lines.compactMap { l -> (String, String)? in
                    guard let c = l.firstIndex(of: ":") else { return nil }
                    return (String(l[..<c]), l[l.index(after: c)...].trimmingCharacters(in: .whitespaces))
                }
                let length = Int(headers.first { $0.0.lowercased() == "content-length" }?.1 ?? "0") ?? 0
                while buffer.count < end + 4 + length { if !fill() { return nil } }
                let body = Array(buffer[(end + 4)..<(end + 4 + length)])
                buffer.removeSubrange(0..<(end + 4 + length))
                return RawResponse(status: status, headers: headers, body: body)
            }
            if !fill() { return nil }
        }
    }

    private func findHeadEnd() -> Int? {
        guard buffer.count >= 4 else { return nil }
        for i in 0...(buffer.count - 4) where buffer[i] == 13 && buffer[i + 1] == 10 && buffer[i + 2] == 13 && buffer[i + 3] == 10 {
            return i
        }
        return nil
    }

    /// True when the server closed the connection (EOF or reset) with no further bytes.
    func isClosedByPeer() -> Bool {
        var tmp = [UInt8](repeating: 0, count: 1024)
        do {
            let n = try tmp.withUnsafeMutableBytes { try fd.recv(into: $0) }
            return n == 0
        } catch let e as Errno {
            return e == .connectionReset
        } catch { return false }
    }
}


func elapsed(_ body: () throws -> Void) rethrows -> Double {
    let start = monotonicNanos()
    try body()
    return Double(monotonicNanos() - start) / 1e9
}
