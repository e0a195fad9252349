import SpoolBridges
import SpoolCore

/// The one error type of reconcile. `CLI` maps it to a log line or an exit code; nothing else looks inside.
public struct ReconcileError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable, Equatable {
        /// 401 or 403: the API key is wrong or revoked. Not retried within a round.
        case rejectedKey
        /// 429 or 5xx: the API asks us to wait (`retryAfterNanos` when it said how long). Retried with backoff.
        case unavailable
        /// The connection could not be made or broke, or timed out. Retried with backoff.
        case network
        /// A response that is not the documented shape (or another status): the round fails, nothing is enqueued.
        case malformed
        /// The spool refused an enqueue.
        case spool
    }

    public let kind: Kind
    public let message: String
    public let retryAfterNanos: Int64?

    public init(_ kind: Kind, _ message: String, retryAfterNanos: Int64? = nil) {
        self.kind = kind
        self.message = message
        self.retryAfterNanos = retryAfterNanos
    }

    public var description: String { message }

    /// Worth the same request again after a pause.
    public var isRetryable: Bool { kind == .unavailable || kind == .network }

    /// A transport failure in reconcile's terms (never carries the API key: requests are not part of messages).
    static func from(_ e: BridgeError) -> ReconcileError {
        switch e.kind {
        case .protocolViolation: return ReconcileError(.malformed, e.message)
        default: return ReconcileError(.network, e.message)
        }
    }
}
