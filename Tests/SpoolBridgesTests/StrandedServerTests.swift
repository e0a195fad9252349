import Foundation
import Testing
import SpoolConsumer
import SpoolCore
import SpoolSystem
@testable import SpoolBridges
import SpoolTestSupport

/// Leaving a server that is up but reaches no stream (the minority side of a partition; Reliability/partition.py
/// runs the real thing on a 3-node cluster).
@Suite struct StrandedServerTests {
    static let s: Int64 = 1_000_000_000

    @Test func leavesAfterThresholdRoundsAtMostOncePerIntervalDoublingUntilAnswered() {
        var d = StrandedServer()
        /// The rounds' answers, in order: true where the detector says leave.
        func rounds(_ times: [Int64]) -> [Bool] { times.map { d.unanswered(now: $0) } }
        #expect(rounds([0, 1, 2]) == [false, false, true], "the third unanswered round in a row")
        // More at once: the interval (5 s) has not passed.
        #expect(rounds([3, 4, 5, 2 + 5 * Self.s - 1]) == [false, false, false, false])
        #expect(rounds([2 + 5 * Self.s]) == [true], "5 s after the first move")
        // Moving did not help: the next move waits 10 s, then 20, 40, and never more than 60.
        var t = 2 + 5 * Self.s
        for wait in [10, 20, 40, 60, 60] as [Int64] {
            let next = t + wait * Self.s
            #expect(rounds([next - 3, next - 2, next - 1, next]) == [false, false, false, true], "after \(wait) s")
            t = next
        }
        // An answer resets everything: three rounds again, then the short interval.
        d.answered()
        #expect(rounds([t + 1, t + 2, t + 3]) == [false, false, true])
        // An answer between failures restarts the count.
        var e = StrandedServer()
        var left = 0
        for i in 0..<10 {
            if e.unanswered(now: Int64(i)) { left += 1 }
            if e.unanswered(now: Int64(i)) { left += 1 }
            e.answered()
        }
        #expect(left == 0)
    }

    @Test(.enabled(if: natsAvailable, "nats-server is not installed: SKIPPED"))
    func aBridgeLeavesAServerWithoutTheStreamForOneWithIt() throws {
        let stranded = try NATSServerProcess(jetstream: false)
        let good = try NATSServerProcess()
        let log = LogLines()
        let spool = try filledSpool("strand", prefix: "st", count: 40)
        var o = NATSConnectionOptions(servers: [stranded.endpoint, good.endpoint])
        o.servers = [stranded.endpoint, good.endpoint]  // in this order: the stranded one first
        o.discover = false
        o.reconnectMinNanos = 20_000_000
        o.reconnectMaxNanos = 200_000_000
        let c = try NATSConnection(options: o, log: log.log)
        var js = JetStreamConfiguration(subject: "hooks.st")
        js.stream = "ST"
        js.createStream = true
        js.timeoutNanos = 1_000_000_000
        let pub = try JetStreamPublisher(connection: c, configuration: js)
        c.start()
        defer { c.close() }
        var cfg = ConsumerConfiguration()
        cfg.concurrency = 8
        cfg.mode = .drain
        cfg.policy = RetryPolicy(maxAttempts: 1000, baseNanos: 20_000_000, maxNanos: 100_000_000)
        // A drain ends when what is left waits for its retry: drain again until new/ is empty.
        var done = 0
        for _ in 0..<100 where !entries(spool.path + "/new").isEmpty {
            done += try Consumer(spool: spool, processor: pub, configuration: cfg, log: log.log).run().done
            usleep(50_000)
        }
        #expect(done == 40 && entries(spool.path + "/done").count == 40, "\(done) \(log.all.suffix(8))")
        #expect(log.count("nats: leaving \(stranded.url)") == 1, "\(log.all.filter { $0.contains("nats:") })")
        #expect(log.count("connected to \(good.url)") == 1)
        #expect(try streamCount(good, "ST") == 40)
    }

    @Test(.enabled(if: natsAvailable, "nats-server is not installed: SKIPPED"))
    func withOneServerThereIsNowhereToGo() throws {
        let stranded = try NATSServerProcess(jetstream: false)
        let log = LogLines()
        var o = NATSConnectionOptions(endpoint: stranded.endpoint)
        o.discover = false
        let c = try NATSConnection(options: o, log: log.log)
        c.start()
        defer { c.close() }
        #expect(c.waitUntilConnected(timeoutNanos: 5_000_000_000))
        #expect(!c.leaveServer(reason: "test"))
        #expect(c.isConnected && c.connectCount == 1 && log.count("leaving") == 0)
    }
}
