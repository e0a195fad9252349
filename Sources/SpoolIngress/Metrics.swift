import Synchronization
import SpoolCore
import SpoolSignatures
import SpoolWire

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

    func render(stats: SpoolStats?, queue: String = "default", paused: Bool = false, nowNanos: Int64, openConnections: Int,
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
        out += QueueGauges.render(queue: queue, stats: stats, paused: paused, nowNanos: nowNanos)
        out += "# HELP spool_open_connections Open HTTP connections.\n# TYPE spool_open_connections gauge\nspool_open_connections \(openConnections)\n"
        return out
    }
}
