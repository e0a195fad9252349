import Synchronization
import SpoolCore

/// A consumer's counters for `consume --metrics-listen` (Prometheus text): attempts by outcome, how long the
/// handler (or the publish, or the POST) took, attempts in flight; the queue's gauges come from the spool.
/// Written by attempt threads, read by the metrics server's thread: atomics and one mutex, no other lock.
public final class ConsumerMetrics: Sendable {
    /// The outcomes an attempt is counted under, in the order they are rendered.
    public static let outcomes = ["done", "retry", "failed", "released", "error"]
    let attempts = Mutex<[String: UInt64]>([:])
    /// Up to the exec handler's default timeout of 5 minutes.
    let duration = Histogram(buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300])
    let inFlight = Atomic<Int>(0)

    public init() {}


    /// The text of `/metrics`, with the queue's gauges (`stats` nil when the spool could not be listed).
    public func render(queue: String, sink: String, stats: SpoolStats?, paused: Bool, nowNanos: Int64) -> String {
        var out = "# HELP spool_consumer_attempts_total Attempts finished by this consumer, by outcome.\n# TYPE spool_consumer_attempts_total counter\n"
        let counts = attempts.withLock { $0 }
        for o in ConsumerMetrics.outcomes { out += "spool_consumer_attempts_total{queue=\"\(queue)\",outcome=\"\(o)\"} \(counts[o, default: 0])\n" }
        out += duration.render(name: "spool_consumer_attempt_duration_seconds",
                               help: "How long the \(sink) took per attempt (a pipelined batch counts its time for each item).")
        out += "# HELP spool_consumer_attempts_in_flight Attempts running now.\n# TYPE spool_consumer_attempts_in_flight gauge\n"
        out += "spool_consumer_attempts_in_flight{queue=\"\(queue)\"} \(inFlight.load(ordering: .relaxed))\n"
        out += QueueGauges.render(queue: queue, stats: stats, paused: paused, nowNanos: nowNanos)
        return out
    }
}
