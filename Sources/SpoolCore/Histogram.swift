import Synchronization

/// A Prometheus histogram with fixed buckets (seconds), shared by serve's and the consumers' /metrics.
public final class Histogram: Sendable {
    public static let defaultBuckets: [Double] = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]
    public let buckets: [Double]
    private let state: Mutex<(counts: [UInt64], sum: Double, count: UInt64)>

    public init(buckets: [Double] = Histogram.defaultBuckets) {
        self.buckets = buckets
        state = Mutex((counts: [UInt64](repeating: 0, count: buckets.count), sum: 0, count: 0))
    }

    public func observe(_ v: Double) {
        state.withLock { s in
            for (i, b) in buckets.enumerated() where v <= b { s.counts[i] += 1 }
            s.sum += v
            s.count += 1
        }
    }

    public func render(name: String, help: String) -> String {
        let s = state.withLock { $0 }
        var out = "# HELP \(name) \(help)\n# TYPE \(name) histogram\n"
        for (i, b) in buckets.enumerated() { out += "\(name)_bucket{le=\"\(b)\"} \(s.counts[i])\n" }
        out += "\(name)_bucket{le=\"+Inf\"} \(s.count)\n\(name)_sum \(s.sum)\n\(name)_count \(s.count)\n"
        return out
    }
}


/// The gauges of one queue that every /metrics endpoint shows (serve, consume, pull): items per state, whether it
/// is paused, and the age of its oldest waiting item, the number an alert on a stuck queue watches.
public enum QueueGauges {
    public static func render(queue: String, stats: SpoolStats?, paused: Bool, nowNanos: Int64) -> String {
        var out = "# HELP spool_items Items in the spool, by queue and state.\n# TYPE spool_items gauge\n"
        for state in ItemState.allCases { out += "spool_items{queue=\"\(queue)\",state=\"\(state.rawValue)\"} \(stats?.counts[state] ?? 0)\n" }
        out += "# HELP spool_queue_paused 1 while the queue is paused (spool pause).\n# TYPE spool_queue_paused gauge\n"
        out += "spool_queue_paused{queue=\"\(queue)\"} \(paused ? 1 : 0)\n"
        out += "# HELP spool_oldest_waiting_seconds Age of the oldest item in new/ (0 when none waits).\n# TYPE spool_oldest_waiting_seconds gauge\n"
        let age = stats?.oldestWaitingReceivedAtNanos.map { max(0, nowNanos - $0) } ?? 0
        out += "spool_oldest_waiting_seconds{queue=\"\(queue)\"} \(Double(age) / 1e9)\n"
        return out
    }
}
