import Foundation
import Synchronization
import Testing
import SpoolCore
import SpoolSystem
import SpoolTestSupport
@testable import SpoolConsumer

/// A pipelining processor (the JetStream bridge's shape) in-process: batches never put more than `--concurrency`
/// items in flight, and each item of a batch is settled by its own outcome.
@Suite struct PipelineTests {
    /// Answers by key: `r…` retry, `f…` failed, else done; records what it was handed and the peak in flight.
    final class Recorder: ItemProcessor {
        struct State { var inFlight = 0, peak = 0, batches: [Int] = [], seen: [String: Int] = [:] }
        let state = Mutex(State())
        var pipelines: Bool { true }

        func process(_ item: ClaimedItem, cancellation: CancellationFlag) -> ProcessOutcome {
            process(batch: [item], cancellation: cancellation)[0]
        }

        func process(batch: [ClaimedItem], cancellation: CancellationFlag) -> [ProcessOutcome] {
            state.withLock { st in
                st.inFlight += batch.count
                st.peak = max(st.peak, st.inFlight)
                st.batches.append(batch.count)
                for i in batch { st.seen[i.key.value, default: 0] += 1 }
            }
            usleep(2_000)  // an acknowledgement's round trip
            state.withLock { $0.inFlight -= batch.count }
            return batch.map { i -> ProcessOutcome in
                if i.key.value.hasPrefix("r") { return .retry(error: "later", status: "503", retryAfterNanos: nil) }
                if i.key.value.hasPrefix("f") { return .failed(error: "poison", status: "400") }
                return .done(status: "seq")
            }
        }
    }

    @Test(arguments: [1, 5, 16, 64])
    func batchesStayWithinTheConcurrencyAndEachItemGetsItsOutcome(concurrency: Int) throws {
        let dir = makeTempDir("pipe") + "/s"
        let spool = try Spool(path: dir)
        let keys = (0..<300).map { "d\($0)" } + (0..<10).map { "r\($0)" } + (0..<10).map { "f\($0)" }
        for r in spool.enqueueBatch(try keys.map { EnqueueRequest(key: try SpoolKey($0), payload: [1]) }) { _ = try r.get() }
        let recorder = Recorder()
        var cfg = ConsumerConfiguration()
        cfg.concurrency = concurrency
        cfg.mode = .drain
        cfg.policy = RetryPolicy(maxAttempts: 2, baseNanos: 1_000_000, maxNanos: 1_000_000)
        // `--drain` ends when nothing is due: a retry 1 ms away may still wait in new/, so drain until it is empty.
        var result = ConsumerResult()
        for _ in 0..<50 where !entries(dir + "/new").isEmpty {
            let r = try Consumer(spool: spool, processor: recorder, configuration: cfg, log: { _ in }).run()
            result.done += r.done; result.failed += r.failed
            usleep(5_000)
        }
        let st = recorder.state.withLock { $0 }
        #expect(st.peak <= concurrency, "peak \(st.peak) in flight")
        #expect(st.batches.allSatisfy { $0 <= Consumer.pipelineBatch(concurrency: concurrency) })
        if concurrency >= 16 { #expect(st.batches.contains { $0 > 1 }, "items were handed over together") }
        #expect(result.done == 300 && result.failed == 20, "\(result)")
        #expect(entries(dir + "/done").count == 300 && entries(dir + "/failed").count == 20 && entries(dir + "/new").isEmpty)
        #expect(keys.allSatisfy { st.seen[$0] == ($0.hasPrefix("r") ? 2 : 1) }, "each handed over once per attempt")
    }

    @Test func pipelineBatchesSplitTheConcurrencyOverTwoToFourThreads() {
        #expect(Consumer.pipelineBatch(concurrency: 1) == 1)
        #expect(Consumer.pipelineBatch(concurrency: 3) == 2)
        #expect(Consumer.pipelineBatch(concurrency: 16) == 8)
        #expect(Consumer.pipelineBatch(concurrency: 64) == 16)
        #expect(Consumer.pipelineBatch(concurrency: 1000) == 250)
    }
}
