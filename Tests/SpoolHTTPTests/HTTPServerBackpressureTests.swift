import Foundation
import Testing
import SpoolWire
import Synchronization
import SpoolSystem
import SpoolTestSupport
@testable import SpoolHTTP

/// A handler that holds `/hold` until released, so a test can see what the server does meanwhile.
final class HoldingHandler: HTTPHandler {
    let held = Mutex<[@Sendable (HTTPResponse) -> Void]>([])
    let requests = Atomic<Int>(0)

    func handle(_ request: HTTPRequest, remote: String, respond: @escaping @Sendable (HTTPResponse) -> Void) {
        requests.add(1, ordering: .relaxed)
        if request.head.path == "/hold" {
            held.withLock { $0.append(respond) }
        } else {
            respond(HTTPResponse(status: 200, body: Array(request.head.path.utf8)))
        }
    }

    func release() {
        for r in held.withLock({ h -> [@Sendable (HTTPResponse) -> Void] in defer { h = [] }; return h }) {
            r(HTTPResponse(status: 200, body: Array("held".utf8)))
            r(HTTPResponse(status: 500))  // a second call must be ignored
        }
    }
}

struct HTTPServerBackpressureTests {
    @Test func noReadingWhileARequestIsHandled() throws {
        let handler = HoldingHandler()
        try withServer(handler: handler) { s in
            let c = try RawHTTPClient(port: s.port, timeoutMs: 1000)
            try c.send("GET /hold HTTP/1.1\r\nHost: a\r\n\r\n")
            // Pipeline far more than the socket buffers hold: once they are full the send must stall.
            let one = Array("GET /next HTTP/1.1\r\nHost: a\r\n\r\n".utf8)
            let block = Array([[UInt8]](repeating: one, count: 32768).joined())  // ~1 MiB
            var sent = 0
            for _ in 0..<64 {
                do { try c.send(block) } catch { break }
                sent += block.count
            }
            #expect(sent < 48 << 20)  // stalled well before 64 MiB: the server stopped reading
            #expect(handler.requests.load(ordering: .relaxed) == 1)
            handler.release()
            let first = try #require(c.readResponse())
            #expect(first.text == "held")
            // Then the pipelined ones are answered in order (the duplicate 500 never appears).
            let second = try #require(c.readResponse())
            #expect(second.status == 200 && second.text == "/next")
        }
    }
}
