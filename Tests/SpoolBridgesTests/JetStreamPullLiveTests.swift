import Foundation
import Synchronization
import Testing
@testable import SpoolBridges
import SpoolConsumer
import SpoolCore
import SpoolSystem
import SpoolTestSupport

/// `spool pull`'s open requests against a real `nats-server -js`: messages arrive while a request waits, a
/// server that falls silent is asked again, a deleted consumer is created again.
@Suite(.serialized, .enabled(if: natsAvailable, "nats-server is not installed (apt-get install nats-server): pull tests SKIPPED"))
struct JetStreamPullLiveTests {
    /// Publishes `count` items named `prefix<i>` into `stream` through the bridge (the way they get there in production).
    func publish(_ server: NATSServerProcess, stream: String, prefix: String, count: Int) throws {
        let log = LogLines()
        let (conn, pub) = try startedPublisher(endpoint: server.endpoint, tls: nil, subject: "pull.\(stream.lowercased())", stream: stream, log: log)
        defer { conn.close() }
        var cfg = ConsumerConfiguration()
        cfg.concurrency = 4
        cfg.mode = .drain
        let r = try Consumer(spool: try filledSpool(prefix, prefix: prefix, count: count), processor: pub, configuration: cfg, log: log.log).run()
        #expect(r.done == count, "\(r) \(log.all.suffix(3))")
    }

    /// A puller stepping on its own thread until stopped.
    final class Running: @unchecked Sendable {
        let puller: JetStreamPuller
        let connection: NATSConnection
        let spool: Spool
        let log = LogLines()
        let stop: Wakeup
        private let finished = Mutex(false)

        init(_ server: NATSServerProcess, stream: String, faults: FaultHooks = .none, configure: (inout JetStreamPullConfiguration) -> Void) throws {
            var o = NATSConnectionOptions(endpoint: server.endpoint)
            o.reconnectMinNanos = 20_000_000
            o.reconnectMaxNanos = 200_000_000
            connection = try NATSConnection(options: o, log: log.log)
            connection.start()
            var c = JetStreamPullConfiguration(stream: stream, durable: "W")
            c.createConsumer = true
            configure(&c)
            spool = try Spool(path: makeTempDir("pull") + "/spool", faults: faults)
            puller = JetStreamPuller(connection: connection, spool: spool, configuration: c, log: log.log)
            stop = try Wakeup()
            startThread { [self] in
                while (try? pollReadable([stop.fd], timeoutMillis: 0))?.first != true {
                    do throws(BridgeError) { _ = try puller.step(stop: stop.fd) } catch {
                        log.log("step: \(error.message)")
                        usleep(50_000)
                    }
                }
                _ = puller.finish()
                finished.withLock { $0 = true }
            }
        }

        var stored: Int { entries(spool.path + "/new").count }

        func shutDown() {
            stop.signal()
            _ = waitUntil(timeout: 10) { finished.withLock { $0 } }
            connection.close()
        }
    }

    @Test func aMessageArrivesWhileItsRequestWaits() throws {
        let server = try NATSServerProcess()
        try publish(server, stream: "OPEN", prefix: "a", count: 3)
        let r = try Running(server, stream: "OPEN") { $0.expiresNanos = 20_000_000_000; $0.heartbeatNanos = 5_000_000_000 }
        defer { r.shutDown() }
        #expect(waitUntil(timeout: 10) { r.stored == 3 })
        // The requests now wait on the server (20 s); a new message is delivered to one of them as it comes, not
        // when the request ends.
        let t0 = Date()
        try publish(server, stream: "OPEN", prefix: "b", count: 1)
        #expect(waitUntil(timeout: 15) { r.stored == 4 })
        #expect(Date().timeIntervalSince(t0) < 10, "held until the request expired: \(Date().timeIntervalSince(t0)) s")
        // Stored before acked: the totals follow the ack.
        #expect(waitUntil(timeout: 5) { r.puller.total.acked == 4 && r.puller.total.fetched == 4 }, "\(r.puller.total)")
    }

    @Test func aSilentServerIsAskedAgain() throws {
        let server = try NATSServerProcess()
        try publish(server, stream: "QUIET", prefix: "q", count: 20)
        let r = try Running(server, stream: "QUIET") { $0.expiresNanos = 30_000_000_000; $0.heartbeatNanos = 200_000_000 }
        defer { r.shutDown() }
        #expect(waitUntil(timeout: 10) { r.stored == 20 })
        usleep(1_000_000)
        #expect(r.log.count("asking again") == 0, "heartbeats came while the requests waited: \(r.log.all.suffix(5))")
        // Frozen, the server sends no heartbeats: two missed ones and the requests are sent again.
        kill(server.pid, SIGSTOP)
        usleep(1_000_000)
        kill(server.pid, SIGCONT)
        #expect(waitUntil(timeout: 10) { r.log.count("asking again") >= 1 }, "\(r.log.all.suffix(5))")
        // Asked again once per two silent heartbeats, not in a loop (each request left open heartbeats on its own).
        #expect(r.log.count("asking again") <= 4, "\(r.log.count("asking again")) times")
        try publish(server, stream: "QUIET", prefix: "p", count: 20)
        #expect(waitUntil(timeout: 10) { r.stored == 40 }, "\(r.log.all.suffix(5))")
        #expect(r.log.count("dropped") == 0, "\(r.log.all.suffix(5))")
    }

    @Test func aDeletedConsumerIsCreatedAgain() throws {
        let server = try NATSServerProcess()
        try publish(server, stream: "GONE", prefix: "g", count: 5)
        let r = try Running(server, stream: "GONE") { $0.heartbeatNanos = 1_000_000_000 }
        defer { r.shutDown() }
        #expect(waitUntil(timeout: 10) { r.stored == 5 })
        let admin = try connectedClient(server)
        defer { admin.close() }
        _ = try admin.request(subject: "$JS.API.CONSUMER.DELETE.GONE.W", headers: nil, payload: [], timeoutNanos: 5_000_000_000)
        #expect(waitUntil(timeout: 10) { r.log.count("created durable consumer W") >= 2 }, "\(r.log.all.suffix(5))")
        // The new consumer delivers all again: the first five are duplicates, the next ones new.
        try publish(server, stream: "GONE", prefix: "h", count: 5)
        #expect(waitUntil(timeout: 10) { r.stored == 10 && r.puller.total.duplicates == 5 }, "\(r.puller.total) \(r.log.all.suffix(5))")
    }

    /// Without --create-consumer, a consumer that does not exist is a typed `.notFound` (what `spool pull` exits 1 on,
    /// deciding on the kind, not on the message's words), retryable for a long-running puller.
    @Test func aMissingConsumerIsNotFound() throws {
        let server = try NATSServerProcess()
        try publish(server, stream: "NONE", prefix: "m", count: 1)
        let conn = try connectedClient(server)
        defer { conn.close() }
        var c = JetStreamPullConfiguration(stream: "NONE", durable: "ABSENT")
        c.createConsumer = false
        let puller = JetStreamPuller(connection: conn, spool: try Spool(path: makeTempDir("pull") + "/spool"), configuration: c, log: { _ in })
        do throws(BridgeError) {
            try puller.ensureConsumer()
            Issue.record("a missing consumer was accepted")
        } catch {
            #expect(error.kind == .notFound && error.isRetryable && error.message.contains("--create-consumer"), "\(error)")
        }
    }

    /// A full disk: what cannot be stored is answered -NAK (with a delay), never acked, and comes again once the
    /// disk takes writes.
    @Test func aFullDiskIsANakNeverAnAck() throws {
        let server = try NATSServerProcess()
        try publish(server, stream: "FULL", prefix: "n", count: 5)
        let full = Mutex(true)
        let faults = FaultHooks { p in full.withLock { $0 } && p == .write ? .noSpace : nil }
        let r = try Running(server, stream: "FULL", faults: faults) { $0.heartbeatNanos = 1_000_000_000 }
        defer { r.shutDown() }
        #expect(waitUntil(timeout: 10) { r.puller.total.naked >= 5 }, "\(r.puller.total) \(r.log.all.suffix(5))")
        #expect(r.puller.total.acked == 0 && r.stored == 0)
        #expect(r.log.count("asking for redelivery in 5s") >= 5)
        full.withLock { $0 = false }
        // Redelivered after the NAK's 5 s delay, then stored and acked.
        #expect(waitUntil(timeout: 20) { r.stored == 5 && r.puller.total.acked == 5 }, "\(r.puller.total) \(r.log.all.suffix(5))")
        #expect(waitUntil(timeout: 10) { (try? consumerState(server, stream: "FULL", durable: "W")) == 0 }, "nothing left unacknowledged")
    }
}

/// Messages the consumer still has to deliver plus those delivered and not yet acknowledged, from
/// `$JS.API.CONSUMER.INFO` (read with our own client).
func consumerState(_ server: NATSServerProcess, stream: String, durable: String) throws -> Int {
    let c = try connectedClient(server)
    defer { c.close() }
    let m = try c.request(subject: "$JS.API.CONSUMER.INFO.\(stream).\(durable)", headers: nil, payload: [], timeoutNanos: 5_000_000_000)
    let obj = try JSONSerialization.jsonObject(with: Data(m.payload)) as? [String: Any]
    return ((obj?["num_pending"] as? Int) ?? -1) + ((obj?["num_ack_pending"] as? Int) ?? -1)
}
