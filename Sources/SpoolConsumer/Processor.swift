import SpoolCore
import SpoolWire

/// What became of one attempt.
public enum ProcessOutcome: Sendable, Equatable {
    /// Success: the item goes to `done/`.
    case done(status: String?)
    /// A transient failure: back to `new/` after backoff (or `failed/` once attempts are used up).
    /// `retryAfterNanos` asks for at least that delay (an HTTP `Retry-After`).
    case retry(error: String, status: String?, retryAfterNanos: Int64?)
    /// A permanent failure (a poison payload): straight to `failed/`.
    case failed(error: String, status: String?)
    /// Not processed (shutdown): back to `new/` without using up an attempt.
    case released
}

/// Lets a long-running attempt notice that the consumer is shutting down (and must stop).
public final class CancellationFlag: Sendable {
    private let flag = AtomicFlag()
    public init() {}
    public var isCancelled: Bool { flag.value }
    public func cancel() { flag.set() }
}

/// Processes claimed items in-process. Called on a dedicated thread per attempt; may block.
/// Implementations must be idempotent: delivery is at-least-once, and `item.key` is the idempotency key.
public protocol ItemProcessor: Sendable {
    func process(_ item: ClaimedItem, cancellation: CancellationFlag) -> ProcessOutcome
}

import Synchronization
final class AtomicFlag: Sendable {
    private let a = Atomic<Bool>(false)
    var value: Bool { a.load(ordering: .acquiring) }
    func set() { a.store(true, ordering: .releasing) }
}
