import Foundation
import Synchronization
import Testing
import SpoolWire
import SpoolConsumer
import SpoolCore
import SpoolSystem
@testable import SpoolBridges
import SpoolTestSupport

/// The JetStream publisher against a real `nats-server -js`: counts in the stream are read back with our
/// own client. Skipped (and said loudly) when nats-server is not installed.
@Suite(.serialized, .enabled(if: natsAvailable, "nats-server is not installed (apt-get install nats-server): JetStream tests SKIPPED"))
struct JetStreamLiveTests {
    func publisher(_ server: NATSServerProcess, subject: String, stream: String, log: LogLines, timeout: Int64 = 5_000_000_000) throws -> (NATSConnection, JetStreamPublisher) {
        try startedPublisher(endpoint: server.endpoint, tls: server.clientTLS, subject: subject, stream: stream, log: log, timeout: timeout)
    }

    func consumer(_ spool: Spool, _ p: JetStreamPublisher, mode: ConsumerMode, concurrency: Int, log: LogLines) throws -> Consumer {
        var cfg = ConsumerConfiguration()
        cfg.concurrency = concurrency
        cfg.mode = mode
        cfg.policy = RetryPolicy(maxAttempts: 10_000, baseNanos: 50_000_000, maxNanos: 300_000_000)
        cfg.claimCheckIntervalNanos = 200_000_000
        return try Consumer(spool: spool, processor: p, configuration: cfg, log: log.log)
    }

    @Test func thousandItemsBecomeExactlyThousandMessagesWithExactBytesAndHeaders() throws {
        let server = try NATSServerProcess()
        let log = LogLines()
        let spool = try filledSpool("k", prefix: "k", count: 1000)
        let (conn, pub) = try publisher(server, subject: "hooks.k", stream: "K", log: log)
        defer { conn.close() }
        let result = try consumer(spool, pub, mode: .drain, concurrency: 16, log: log).run()
        #expect(result.done == 1000, "\(result) \(log.all.suffix(5))")
        #expect(entries(spool.path + "/done").count == 1000)
        #expect(try streamCount(server, "K") == 1000)
        // Every stored message: the exact payload of its key and the documented headers.
        var seen = Set<String>()
        for seq in 1...1000 {
            let m = try storedMessage(conn, stream: "K", seq: seq)
            let id = try #require(m.headers?.value("Nats-Msg-Id"))
            seen.insert(id)
            #expect(m.subject == "hooks.k")
            #expect(m.headers?.value("Spool-Key") == id)
            #expect(m.payload == payload(for: id), "payload of \(id)")
            let at = try #require(m.headers?.value("Spool-Received-At"))
            #expect(RFC3339.parse(at) != nil)
            #expect(m.headers?.value("Content-Type") == "application/json")
        }
        #expect(seen.count == 1000)
    }

    @Test func anItemPublishedTwiceIsStoredOnce() throws {
        let server = try NATSServerProcess()
        let log = LogLines()
        let spool = try filledSpool("dup", prefix: "dup", count: 1)
        let (conn, pub) = try publisher(server, subject: "hooks.dup", stream: "DUP", log: log)
        defer { conn.close() }
        // Publish, then "crash" before done/: the claim is dropped and the item claimed again.
        let first = try #require(try spool.claimSoon())
        guard case .done(let s1) = pub.process(first, cancellation: CancellationFlag()) else { Issue.record("first publish failed: \(log.all)"); return }
        #expect(s1?.hasPrefix("seq ") == true)
        try spool.release(first)
        let again = try #require(try spool.claimSoon())
        #expect(again.key == first.key)
        guard case .done(let s2) = pub.process(again, cancellation: CancellationFlag()) else { Issue.record("second publish failed"); return }
        #expect(s2 == "duplicate of " + s1!, "the server recognised the Nats-Msg-Id")
        try spool.complete(again)
        #expect(try streamCount(server, "DUP") == 1)
        // Other keys are unaffected.
        for k in ["other1", "other2"] { _ = try spool.enqueue(key: try SpoolKey(k), payload: payload(for: k)) }
        _ = try consumer(spool, pub, mode: .drain, concurrency: 2, log: log).run()
        #expect(try streamCount(server, "DUP") == 3)
    }

    @Test func serverStoppedWhileItemsWaitThenBack() throws {
        let server = try NATSServerProcess()
        let log = LogLines()
        let spool = try filledSpool("down", prefix: "down", count: 300)
        let (conn, pub) = try publisher(server, subject: "hooks.down", stream: "DOWN", log: log, timeout: 500_000_000)
        defer { conn.close() }
        try pub.ensureStream()
        server.stop()
        let c = try consumer(spool, pub, mode: .forever, concurrency: 8, log: log)
        let finished = Mutex(false)
        startThread { _ = c.run(); finished.withLock { $0 = true } }
        defer { c.stop(); _ = waitUntil(timeout: 10) { finished.withLock { $0 } } }
        // While the server is down the consumer waits for the connection instead of claiming items only to fail
        // them: at most the attempts that raced the loss of the connection are used, and nothing reaches done/.
        #expect(waitUntil(timeout: 10) { log.count("cannot connect") >= 1 }, "\(log.all.suffix(5))")
        Thread.sleep(forTimeInterval: 2)
        #expect(log.count("outcome=retry") <= 8, "\(log.all.suffix(5))")
        #expect(entries(spool.path + "/done").isEmpty)
        #expect(entries(spool.path + "/new").count >= 292)
        try server.start()
        #expect(waitUntil(timeout: 20) { entries(spool.path + "/done").count == 300 }, "done: \(entries(spool.path + "/done").count) \(log.all.suffix(5))")
        #expect(try streamCount(server, "DOWN") == 300)
        #expect(log.count("connected to") >= 2, "the shared connection reconnected by itself")
    }

    @Test func serverKilledMidRunLosesNothing() throws {
        let server = try NATSServerProcess()
        let log = LogLines()
        let n = 3000
        let spool = try filledSpool("kill", prefix: "kill", count: n)
        let (conn, pub) = try publisher(server, subject: "hooks.kill", stream: "KILL", log: log, timeout: 1_000_000_000)
        defer { conn.close() }
        let c = try consumer(spool, pub, mode: .forever, concurrency: 8, log: log)
        let finished = Mutex(false)
        startThread { _ = c.run(); finished.withLock { $0 = true } }
        defer { c.stop(); _ = waitUntil(timeout: 10) { finished.withLock { $0 } } }
        #expect(waitUntil(timeout: 20) { entries(spool.path + "/done").count >= 300 })
        server.stop(signal: SIGKILL)
        let doneAtKill = entries(spool.path + "/done").count
        #expect(doneAtKill < n, "the kill happened mid-run")
        usleep(300_000)
        try server.start()
        #expect(waitUntil(timeout: 30) { entries(spool.path + "/done").count == n }, "done: \(entries(spool.path + "/done").count) \(log.all.suffix(5))")
        // Every item acknowledged before the kill survived it, and the ones in flight were stored once.
        #expect(try streamCount(server, "KILL") == Int64(n))
    }
}
