import Synchronization
import SpoolCore
import SpoolSystem
import SpoolWire

/// Batches durable enqueues (group commit). Requests that arrive while a batch is being flushed wait and go
/// into the next one, so one set of flushes covers every request waiting at that moment; at low load a
/// request is committed alone, immediately. A result is delivered only after `Spool.enqueueBatch` returned
/// it, that is, after the item's data, marker and name are durable.
public final class GroupCommitter: Sendable {
    public typealias Completion = @Sendable (Result<EnqueueOutcome, SpoolError>) -> Void

    struct Pending {
        var request: EnqueueRequest
        var completion: Completion
    }

    struct State {
        var queue: [Pending] = []
        var stopped = false
    }

    let spool: Spool
    let maxBatch: Int
    let state = Mutex(State())
    let wake: Wakeup
    /// Called with (batch size, seconds spent in the durable write) after each batch.
    let onBatch: @Sendable (Int, Double) -> Void

    public init(spool: Spool, committers: Int = 2, maxBatch: Int = 256, onBatch: @escaping @Sendable (Int, Double) -> Void = { _, _ in }) throws {
        self.spool = spool
        self.maxBatch = maxBatch
        self.onBatch = onBatch
        self.wake = try Wakeup()
        for _ in 0..<max(1, committers) { startThread { [self] in self.loop() } }
    }

    /// Queues one enqueue; `completion` runs on a committer thread once the result is durable (or failed).
    public func submit(_ request: EnqueueRequest, completion: @escaping Completion) {
        // Only a request that finds the queue empty wakes a committer: the others join the batch being gathered.
        let (accepted, wasEmpty) = state.withLock { st -> (Bool, Bool) in
            if st.stopped { return (false, false) }
            st.queue.append(Pending(request: request, completion: completion))
            return (true, st.queue.count == 1)
        }
        if accepted { if wasEmpty { wake.signal() } } else {
            completion(.failure(.system(operation: "shutting down", errno: .ioError)))
        }
    }

    /// Stops the committer threads once the queue is empty.
    public func stop() {
        state.withLock { $0.stopped = true }
        wake.signal(); wake.signal()
    }

    private func loop() {
        while true {
            let (batch, more) = state.withLock { st -> ([Pending]?, Bool) in
                if st.queue.isEmpty { return (st.stopped ? nil : [], false) }
                let n = min(maxBatch, st.queue.count)
                let b = Array(st.queue.prefix(n))
                st.queue.removeFirst(n)
                return (b, !st.queue.isEmpty)
            }
            guard let batch else { wake.signal(); return }
            // Requests left over (more than one batch holds): let the other committer start on them.
            if more { wake.signal() }
            if batch.isEmpty {
                _ = try? pollReadable([wake.fd], timeoutMillis: 1000)
                wake.drain()
                continue
            }
            let t0 = monotonicNanos()
            let results = spool.enqueueBatch(batch.map(\.request))
            onBatch(batch.count, Double(monotonicNanos() - t0) / 1e9)
            for (p, r) in zip(batch, results) { p.completion(r) }
        }
    }
}
