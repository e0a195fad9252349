import Foundation
import Testing
import SpoolWire
import SpoolCore
import SpoolHTTP
import SpoolIngress
import SpoolSystem
import SpoolTestSupport

/// The ingress in-process, on a spool whose system calls fail on demand: nothing is acknowledged unless it
/// is durable, storage failures answer 503 with Retry-After, and the server serves again once the fault stops.
@Suite struct IngressFaultTests {
    final class Fault: @unchecked Sendable {
        private let lock = NSLock()
        private var points: Set<FaultPoint> = []
        private var errno = Errno.noSpace
        func set(_ p: Set<FaultPoint>, _ e: Errno = .noSpace) { lock.lock(); points = p; errno = e; lock.unlock() }
        func check(_ p: FaultPoint) -> Errno? { lock.lock(); defer { lock.unlock() }; return points.contains(p) ? errno : nil }
    }

    func start(_ fault: Fault) throws -> (HTTPServer, UInt16, String) {
        let dir = makeTempDir("ingress") + "/s"
        let spool = try Spool(path: dir, faults: FaultHooks { fault.check($0) })
        let handler = try IngressHandler(spool: spool, configuration: IngressConfiguration())
        let server = HTTPServer(handler: handler, accessLog: { handler.record($0) })
        let port = try server.bind(host: "127.0.0.1", port: 0)
        Thread.detachNewThread { try? server.run() }
        return (server, port, dir)
    }

    @Test(arguments: [(FaultPoint.fsync, Errno.ioError), (.write, .noSpace), (.link, .noSpace), (.queueLink, .ioError), (.write, .diskQuotaExceeded), (.open, .readOnlyFS)])
    func storageFailureNeverAcknowledges(point: FaultPoint, errno: Errno) throws {
        let fault = Fault()
        let (server, port, dir) = try start(fault)
        defer { server.shutdown(grace: .seconds(1)) }
        fault.set([point], errno)
        // Concurrent clients, so failures hit whole group-commit batches.
        let results = Results()
        DispatchQueue.concurrentPerform(iterations: 16) { c in
            guard let client = try? RawHTTPClient(port: port, timeoutMs: 30_000) else { return }
            for i in 0..<5 {
                if let r = try? client.post(body: Array("{\"project\":\"f\(c)x\(i)\"}".utf8)) {
                    results.add(status: r.status, body: r.text + "|" + (r.header("retry-after") ?? "none"))
                }
            }
        }
        #expect(results.statuses.count == 80)
        #expect(results.statuses.allSatisfy { $0 == 503 }, "\(point): \(Set(results.statuses))")
        #expect(results.bodies.allSatisfy { $0.hasSuffix("|5") }, "Retry-After on every 503")
        // Nothing visible to consumers.
        #expect(entries(dir + "/new").isEmpty, "\(point) made an item visible")
        if point == .queueLink {
            // The marker was linked before the queue's link failed: the write is kept for recover (a racing request may
            // have been told "duplicate"), and recover finishes it intact once the disk works again.
            #expect(entries(dir + "/keys").count == 80 && entries(dir + "/tmp").isEmpty)
            fault.set([])
            let r = try Spool(path: dir).recover(tmpGraceNanos: 0)  // as a restarted server does
            #expect(r.completedWrites.count == entries(dir + "/keys").count)
            for name in entries(dir + "/new") {
                #expect(Data(try #require(storedPayload(atPath: dir + "/new/" + name))) == Data("{\"project\":\"\(name)\"}".utf8))
            }
            fault.set([point], errno)
        } else {
            // Otherwise no marker is left behind and nothing leaks in tmp/.
            for d in ["keys", "tmp"] { #expect(entries(dir + "/" + d).isEmpty, "\(point) left \(d): \(entries(dir + "/" + d).prefix(3))") }
        }
        let health = try RawHTTPClient(port: port, timeoutMs: 30_000)
        try health.send(Array("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
        if point == .open || point == .write { #expect(health.readResponse()?.status == 503) }
        // The fault stops: the same server accepts again.
        fault.set([])
        let c = try RawHTTPClient(port: port, timeoutMs: 30_000)
        let r = try c.post(body: Array(#"{"project":"after"}"#.utf8))
        #expect(r.status == 200 && r.text.contains("accepted"))
        try c.send(Array("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
        #expect(c.readResponse()?.status == 200)
    }
}

