import SpoolConsumer
import SpoolWire

/// The one error type of the bridges. Each case says whether trying the same item again can help; the
/// processors map it to a `ProcessOutcome` at their edge and nowhere else.
public struct BridgeError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable, Equatable {
        /// Bad configuration (URL, subject, header): found before anything is sent.
        case configuration
        /// The host name did not resolve, or the connection was refused or could not be made in time.
        case connect
        /// The server refused our credentials (NATS `-ERR` authorization violation, authentication timeout or expiry;
        /// a server with no nonce for NKEY or JWT): asking the same server again at once cannot help.
        case unauthorized
        /// No answer within the time limit (connect, write, acknowledgement, response).
        case timeout
        /// The connection broke (reset, EOF, a write failure) before the answer arrived.
        case connectionLost
        /// The peer sent bytes we refuse to interpret (strict parsing, limits).
        case protocolViolation
        /// The peer answered with an error that may clear up (5xx, JetStream API error, -ERR).
        case serverError
        /// Nothing behind the connected server could serve the request: NATS "no responders", or a JetStream API
        /// error 503 (no meta or stream leader: the server is on the minority side of a partition). Retryable,
        /// and what `StrandedServer` counts against the server, like a timeout.
        case unavailable
        /// The peer rejected this item for good (4xx, payload over the server's limit): retrying cannot help.
        case rejected
        /// What the request names does not exist (a JetStream consumer: 404). Someone may create it: retryable.
        case notFound
    }

    public let kind: Kind
    public let message: String
    /// A short `last_status` for the item (`timeout`, `http 503`, `no responders`, ...).
    public let status: String
    /// A delay the peer asked for (HTTP `Retry-After`).
    public let retryAfterNanos: Int64?

    public init(_ kind: Kind, _ message: String, status: String? = nil, retryAfterNanos: Int64? = nil) {
        self.kind = kind
        self.message = message
        self.status = status ?? kind.defaultStatus
        self.retryAfterNanos = retryAfterNanos
    }

    public var description: String { message }

    /// Everything but a rejection (and a configuration error, which no retry fixes either) is worth retrying.
    public var isRetryable: Bool { kind != .rejected && kind != .configuration }

    /// The edge mapping: retryable errors wait for the consumer's backoff, the rest go to `failed/`.
    public var outcome: ProcessOutcome {
        isRetryable ? .retry(error: message, status: status, retryAfterNanos: retryAfterNanos)
                    : .failed(error: message, status: status)
    }
}

extension BridgeError.Kind {
    var defaultStatus: String {
        switch self {
        case .configuration: return "configuration"
        case .connect: return "connect error"
        case .unauthorized: return "unauthorized"
        case .timeout: return "timeout"
        case .connectionLost: return "connection lost"
        case .protocolViolation: return "protocol error"
        case .serverError: return "server error"
        case .unavailable: return "unavailable"
        case .rejected: return "rejected"
        case .notFound: return "not found"
        }
    }
}

extension BridgeError {
    /// The server refused our credentials (NATS `-ERR 'Authorization Violation'`, or an authentication timeout):
    /// trying that server again at once cannot help.
    var isAuthorizationFailure: Bool { kind == .unauthorized }
}

extension BridgeError {
    /// Nothing in JetStream answered the request: nobody serves the subject from this server ("no responders"),
    /// JetStream said it has no leader (503), or no reply came in time. What `StrandedServer` counts against a server.
    var isNoAnswerFromJetStream: Bool { kind == .timeout || kind == .unavailable }
}
