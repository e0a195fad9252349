import Synchronization
import SpoolSignatures
import SpoolWire

/// A Prometheus histogram with fixed buckets (seconds).
final class Histogram: Sendable {
    static let defaultBuckets: [Double] = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]
    let buckets: [Double]
    private let state: Mutex<(counts: [UInt64], sum: Double, count: UInt64)>

    init(buckets: [Double] = Histogram.defaultBuckets) {
        self.buckets = buckets
        state = Mutex((counts: [UInt64](repeating: 0, count: buckets.count), sum: 0, count: 0))
    }

    func observe(_ v: Double) {
        state.withLock { s in
            for (i, b) in buckets.enumerated() where v <= b { s.counts[i] += 1 }
            s.sum += v
            s.count += 1
        }
    }

    func render(name: String, help: String) -> String {
        let s = state.withLock { $0 }
        var out = "# HELP \(name) \(help)\n# TYPE \(name) histogram\n"
        for (i, b) in buckets.enumerated() { out += "\(name)_bucket{le=\"\(b)\"} \(s.counts[i])\n" }
        out += "\(name)_bucket{le=\"+Inf\"} \(s.count)\n\(name)_sum \(s.sum)\n\(name)_count \(s.count)\n"
        return out
    }
}

/// The ingress's counters, rendered in the Prometheus text format by `/metrics`.
final class IngressMetrics: Sendable {
    let requestsByStatus = Mutex<[Int: UInt64]>([:])
    let accepted = Atomic<UInt64>(0)
    let duplicates = Atomic<UInt64>(0)
    /// Accepted webhooks that no queue of their route took (stored in the queue `unrouted`).
    let unrouted = Atomic<UInt64>(0)
    let rejected = Atomic<UInt64>(0)
    /// Signature refusals by `SignatureFailure.reason` (each also counted in `rejected`, as every 4xx is).
    let signatureRejections = Mutex<[String: UInt64]>([:])
    let bytesReceived = Atomic<UInt64>(0)
    let ackLatency = Histogram()
    let durableWriteLatency = Histogram()
    let batchSize = Histogram(buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256])

    func countResponse(status: Int) {
        requestsByStatus.withLock { $0[status, default: 0] += 1 }
    }

    func countSignatureRejection(_ failure: SignatureFailure) {
        signatureRejections.withLock { $0[failure.reason, default: 0] += 1 }
    }

    func render(itemsPerState: [(String, Int)], queue: String = "default", paused: Bool = false, openConnections: Int,
                flushedBatches: (fsync: Int, syncfs: Int) = (0, 0)) -> String {
        var out = ""
        out += "# HELP spool_http_requests_total HTTP requests answered, by status.\n# TYPE spool_http_requests_total counter\n"
        for (status, n) in requestsByStatus.withLock({ $0 }).sorted(by: { $0.key < $1.key }) {
            out += "spool_http_requests_total{status=\"\(status)\"} \(n)\n"
        }
        func counter(_ name: String, _ help: String, _ v: UInt64) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) counter\n\(name) \(v)\n"
        }
        counter("spool_webhooks_accepted_total", "Webhooks stored as new items.", accepted.load(ordering: .relaxed))
        counter("spool_webhooks_duplicate_total", "Webhooks whose key was already stored.", duplicates.load(ordering: .relaxed))
        counter("spool_webhooks_unrouted_total", "Accepted webhooks no queue of their route took (queue unrouted).", unrouted.load(ordering: .relaxed))
        counter("spool_webhooks_rejected_total", "Requests refused with 4xx or 5xx (all paths but /healthz and /metrics).", rejected.load(ordering: .relaxed))
        out += "# HELP spool_signature_rejected_total Webhooks refused by --verify, by reason (missing, malformed, invalid, timestamp).\n"
        out += "# TYPE spool_signature_rejected_total counter\n"
        let bySignature = signatureRejections.withLock { $0 }
        for reason in SignatureFailure.reasons {
            out += "spool_signature_rejected_total{reason=\"\(reason)\"} \(bySignature[reason, default: 0])\n"
        }
        counter("spool_webhook_bytes_received_total", "Webhook body bytes received.", bytesReceived.load(ordering: .relaxed))
        out += ackLatency.render(name: "spool_ack_latency_seconds", help: "From the complete request to its acknowledgement.")
        out += durableWriteLatency.render(name: "spool_durable_write_seconds", help: "Duration of one durable group-commit batch.")
        out += batchSize.render(name: "spool_commit_batch_size", help: "Requests per durable group-commit batch.")
        out += "# HELP spool_flush_batches_total Durable batches by how they were flushed (what --flush auto chose).\n"
        out += "# TYPE spool_flush_batches_total counter\n"
        out += "spool_flush_batches_total{method=\"fsync\"} \(flushedBatches.fsync)\nspool_flush_batches_total{method=\"syncfs\"} \(flushedBatches.syncfs)\n"
        out += "# HELP spool_items Items in the spool, by queue and state.\n# TYPE spool_items gauge\n"
        for (state, n) in itemsPerState { out += "spool_items{queue=\"\(queue)\",state=\"\(state)\"} \(n)\n" }
        out += "# HELP spool_queue_paused 1 while the queue is paused (spool pause).\n# TYPE spool_queue_paused gauge\n"
        out += "spool_queue_paused{queue=\"\(queue)\"} \(paused ? 1 : 0)\n"
        out += "# HELP spool_open_connections Open HTTP connections.\n# TYPE spool_open_connections gauge\nspool_open_connections \(openConnections)\n"
        return out
    }
}
