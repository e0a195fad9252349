import Foundation
import Synchronization
import Testing
import SpoolCore
import SpoolSystem
import SpoolTestSupport
@testable import SpoolConsumer

/// Items claimed just before the downstream was found unreachable (another attempt's failure closed the gate in
/// between) go back to new/ unattempted in a long-running consumer; `--drain` still attempts them.
@Suite struct OutageOnsetTests {
    /// Lets the first claim through and closes its gate right after, as a concurrent failing attempt would.
    final class ClosesAfterFirstClaim: ItemProcessor {
        let gate = DownstreamGate(minBackoffNanos: 60_000_000_000, maxBackoffNanos: 60_000_000_000, probeTimeoutNanos: 1_000_000_000)
        let processed = Atomic<Int>(0)
        let firstLetThrough = Atomic<Bool>(false)

        func unavailableUntil(now: Int64) -> Int64? {
            if let until = gate.unavailableUntil(now: now) { return until }
            if !firstLetThrough.exchange(true, ordering: .relaxed) { gate.unreachable(now: now) }
            return nil
        }
        func isBackingOff(now: Int64) -> Bool { gate.isBackingOff(now: now) }
        func process(_ item: ClaimedItem, cancellation: CancellationFlag) -> ProcessOutcome {
            processed.add(1, ordering: .relaxed)
            return .retry(error: "connection refused", status: nil, retryAfterNanos: nil)
        }
    }

    func spoolWithItems(_ n: Int) throws -> (Spool, String) {
        let dir = makeTempDir("onset") + "/s"
        let spool = try Spool(path: dir)
        for r in spool.enqueueBatch(try (0..<n).map { EnqueueRequest(key: try SpoolKey("o\($0)"), payload: [1]) }) { _ = try r.get() }
        return (spool, dir)
    }

    @Test func aLongRunningConsumerPutsThemBackWithoutUsingAnAttempt() throws {
        let (spool, dir) = try spoolWithItems(20)
        let p = ClosesAfterFirstClaim()
        var cfg = ConsumerConfiguration()
        cfg.concurrency = 16
        let lines = Mutex<[String]>([])
        let consumer = try Consumer(spool: spool, processor: p, configuration: cfg, log: { l in lines.withLock { $0.append(l) } })
        let result = Mutex(ConsumerResult())
        let t = Thread { let r = consumer.run(); result.withLock { $0 = r } }
        t.start()
        #expect(waitUntil(timeout: 10) { lines.withLock { $0.contains { $0.contains("outcome=released") } } }, "the claimed item was released")
        usleep(300_000)  // the consumer now sleeps on the gate: nothing more is claimed
        consumer.stop()
        #expect(waitUntil(timeout: 10) { result.withLock { $0.processed } > 0 })
        let r = result.withLock { $0 }
        #expect(p.processed.load(ordering: .relaxed) == 0, "nothing was attempted against a closed gate")
        #expect(r.released == 1 && r.retried == 0 && r.failed == 0, "\(r)")
        #expect(entries(dir + "/new").count == 20)
        #expect(try spool.list(states: [.new]).allSatisfy { $0.meta?.attempts == 0 }, "no attempt used up")
    }

    @Test func drainAttemptsThemAnyway() throws {
        let (spool, dir) = try spoolWithItems(5)
        let p = ClosesAfterFirstClaim()
        var cfg = ConsumerConfiguration()
        cfg.concurrency = 4
        cfg.mode = .drain
        cfg.policy = RetryPolicy(maxAttempts: 1)
        let r = try Consumer(spool: spool, processor: p, configuration: cfg, log: { _ in }).run()
        #expect(p.processed.load(ordering: .relaxed) == 5 && r.failed == 5 && r.released == 0, "\(r)")
        #expect(entries(dir + "/failed").count == 5)
    }
}
