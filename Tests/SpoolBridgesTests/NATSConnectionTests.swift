import Foundation
import Synchronization
import Testing
import SpoolWire
import SpoolSystem
import SpoolTestSupport
@testable import SpoolBridges

/// A scripted fake NATS server: each accepted connection runs `script` with a line reader, so tests can
/// send what a real server never would (no header support, garbage) and check the client's reaction.
final class FakeNATSServer: Sendable {
    let listener: FileDescriptor
    let port: UInt16
    let stopped = Flag()
    let connections = Mutex(0)

    struct Peer {
        let fd: FileDescriptor
        var pending: [UInt8] = []
        func send(_ s: String) { _ = try? fd.sendAll(Array(s.utf8)) }
        /// The next line the client sent (without CRLF), or nil after 3 s / EOF.
        mutating func line() -> String? {
            var buf = [UInt8](repeating: 0, count: 4096)
            while true {
                if let i = pending.firstIndex(of: 0x0A) {
                    let l = String(decoding: pending[0..<i].filter { $0 != 0x0D }, as: UTF8.self)
                    pending.removeFirst(i + 1)
                    return l
                }
                guard (try? pollReadable([fd], timeoutMillis: 3000))?.first == true else { return nil }
                let n = (try? buf.withUnsafeMutableBytes { try fd.recv(into: $0) }) ?? 0
                if n <= 0 { return nil }
                pending += buf[0..<n]
            }
        }
    }

    init(script: @escaping @Sendable (inout Peer, Int) -> Void) throws {
        listener = try Socket.listen(Socket.Address(host: "127.0.0.1", port: 0)!, backlog: 8)
        port = try listener.localPort()
        let listener = self.listener
        startThread { [self] in
            while !stopped.isSet {
                guard (try? pollReadable([listener], timeoutMillis: 50))?.first == true, let c = try? Socket.accept(listener) else { continue }
                let flags = fcntl(c.rawValue, F_GETFL)
                _ = fcntl(c.rawValue, F_SETFL, flags & ~O_NONBLOCK)
                let n = connections.withLock { $0 += 1; return $0 }
                startThread {
                    var peer = Peer(fd: c)
                    script(&peer, n)
                    try? c.close()
                }
            }
            try? listener.close()
        }
    }

    func stop() { stopped.set() }
}

let goodInfo = #"INFO {"server_id":"FAKE","version":"9.9.9","headers":true,"max_payload":1024} "# + "\r\n"

@Suite(.serialized) struct NATSConnectionTests {
    func client(_ port: UInt16, log: LogLines) throws -> NATSConnection {
        var o = NATSConnectionOptions(endpoint: Endpoint(host: "127.0.0.1", port: port, defaultPort: 4222))
        o.connectTimeoutNanos = 500_000_000
        o.reconnectMinNanos = 20_000_000
        o.reconnectMaxNanos = 100_000_000
        let c = try NATSConnection(options: o, log: log.log)
        c.start()
        return c
    }

    @Test func refusesAServerWithoutHeaders() throws {
        let server = try FakeNATSServer { peer, _ in
            peer.send(#"INFO {"server_id":"OLD","headers":false} "# + "\r\n")
            _ = peer.line()
        }
        defer { server.stop() }
        let log = LogLines()
        let c = try client(server.port, log: log)
        defer { c.close() }
        do {
            _ = try c.request(subject: "a", headers: nil, payload: [], timeoutNanos: 300_000_000)
            Issue.record("request succeeded")
        } catch {
            #expect(error.kind == .connect && error.message.contains("headers"), "\(error)")
        }
        #expect(!c.isConnected)
    }

    /// During a failover a server sends its changed cluster (INFO) at any moment, also in the same read as the
    /// handshake's PONG; that is ordinary traffic, not a reason to drop the connection.
    @Test func anInfoOrPingRightAfterThePongIsOrdinaryTraffic() throws {
        let seen = Mutex<[String]>([])
        let server = try FakeNATSServer { peer, _ in
            peer.send(goodInfo)
            guard let connect = peer.line(), connect.hasPrefix("CONNECT {"), peer.line() == "PING" else { return }
            peer.send("PONG\r\n" + #"INFO {"server_id":"FAKE","version":"9.9.9","headers":true,"max_payload":1024,"connect_urls":["127.0.0.1:1"]} "# + "\r\nPING\r\n")
            while let l = peer.line() { seen.withLock { $0.append(l) } }
        }
        defer { server.stop() }
        let log = LogLines()
        let c = try client(server.port, log: log)
        defer { c.close() }
        #expect(waitUntil(timeout: 5) { seen.withLock { $0.contains { $0.hasPrefix("SUB _INBOX.") } } }, "\(log.all)")
        #expect(seen.withLock { $0.first } == "PONG", "the PING after the PONG answered first: \(seen.withLock { $0 })")
        #expect(c.connectCount == 1 && c.isConnected, "\(log.all)")
        #expect(c.knownServers.contains("nats://127.0.0.1:1"), "the INFO was taken in: \(c.knownServers)")
        #expect(log.count("cannot connect") == 0, "\(log.all)")
    }

    @Test func answersPingsAndDropsTheConnectionOnGarbage() throws {
        let seen = Mutex<[String]>([])
        let server = try FakeNATSServer { peer, n in
            peer.send(goodInfo)
            guard let connect = peer.line(), connect.hasPrefix("CONNECT {"), peer.line() == "PING" else { return }
            peer.send("PONG\r\n")
            guard let sub = peer.line() else { return }
            seen.withLock { $0.append(sub) }
            if n == 1 {
                peer.send("PING\r\n")
                let pong = peer.line() ?? "nothing"
                seen.withLock { $0.append("reply to PING: " + pong) }
                peer.send("MSG x 1 99999999999999999999999\r\n") // hostile size: the client must hang up
                _ = peer.line()
            } else {
                // Second connection: answer one request on the inbox the client subscribed to.
                guard let pub = peer.line(), pub.hasPrefix("HPUB hooks ") else { return }
                let reply = String(pub.split(separator: " ")[2])
                let ack = #"{"stream":"S","seq":42}"#
                peer.send("MSG \(reply) 1 \(ack.utf8.count)\r\n\(ack)\r\n")
                while peer.line() != nil {}
            }
        }
        defer { server.stop() }
        let log = LogLines()
        let c = try client(server.port, log: log)
        defer { c.close() }
        #expect(waitUntil(timeout: 5) { c.connectCount >= 2 }, "reconnected after the protocol violation: \(log.all)")
        #expect(seen.withLock { $0.contains("reply to PING: PONG") })
        #expect(seen.withLock { $0.first?.hasPrefix("SUB _INBOX.") == true && $0.first?.hasSuffix(".* 1") == true })
        #expect(log.count("protocol error: message size") == 1, "\(log.all)")
        let r = try c.request(subject: "hooks", headers: NATSHeaders(fields: HTTPHeaders([("Nats-Msg-Id", "k")])), payload: Array("x".utf8), timeoutNanos: 2_000_000_000)
        #expect(try JetStreamAPI.ack(r) == JetStreamAck(stream: "S", sequence: 42, duplicate: false))
        // Larger than the server's max_payload (1024): refused before sending, for good.
        do {
            _ = try c.request(subject: "hooks", headers: nil, payload: [UInt8](repeating: 0, count: 2000), timeoutNanos: 500_000_000)
            Issue.record("oversized publish accepted")
        } catch {
            #expect(error.kind == .rejected && !error.isRetryable)
        }
    }

    @Test func aServerThatNeverAcknowledgesTimesOut() throws {
        let server = try FakeNATSServer { peer, _ in
            peer.send(goodInfo)
            _ = peer.line(); _ = peer.line()
            peer.send("PONG\r\n")
            while peer.line() != nil {}
        }
        defer { server.stop() }
        let c = try client(server.port, log: LogLines())
        defer { c.close() }
        #expect(c.waitUntilConnected(timeoutNanos: 2_000_000_000))
        let t0 = Date()
        do {
            _ = try c.request(subject: "hooks", headers: nil, payload: [1], timeoutNanos: 300_000_000)
            Issue.record("no timeout")
        } catch {
            #expect(error.kind == .timeout)
        }
        #expect(Date().timeIntervalSince(t0) >= 0.29 && Date().timeIntervalSince(t0) < 2)
        #expect(c.isConnected, "a late ack is not a broken connection")
    }
}
