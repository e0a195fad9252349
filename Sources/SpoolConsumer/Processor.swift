import Synchronization
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
    /// The handler could not be run at all (exit 126: not executable, 127: not found): a configuration error, not
    /// the item's. Back to `new/` without using up an attempt; the consumer backs off, or stops if nothing ran yet.
    case cannotRun(error: String)
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
    /// Asked before each claim: nil when an item may be handed over now; while the downstream is known to be
    /// unreachable, the monotonic instant to ask again. The consumer claims nothing before then, so an outage
    /// costs neither CPU nor attempts. A nil may make the caller the one probe of a gate (`DownstreamGate`).
    func unavailableUntil(now: Int64) -> Int64?
    /// Asked (without side effects) just before an attempt starts: true when the downstream was found unreachable
    /// after the item was claimed, so a long-running consumer puts it back unattempted (`Consumer.attempt`).
    func isBackingOff(now: Int64) -> Bool
    /// True when the processor pipelines: `process(batch:)` sends several items together and waits for all of
    /// their answers (JetStream publishes). The consumer then runs two to four attempt threads that share
    /// `--concurrency` items in flight between them, instead of one thread per item.
    var pipelines: Bool { get }
    /// Several claimed items at once (only called when `pipelines`); one outcome per item, in order.
    func process(batch: [ClaimedItem], cancellation: CancellationFlag) -> [ProcessOutcome]
}

final class AtomicFlag: Sendable {
    private let a = Atomic<Bool>(false)
    var value: Bool { a.load(ordering: .acquiring) }
    func set() { a.store(true, ordering: .releasing) }
}

extension ItemProcessor {
    /// Ready unless a processor says otherwise.
    public func unavailableUntil(now: Int64) -> Int64? { nil }
    public func isBackingOff(now: Int64) -> Bool { false }
    /// One item at a time unless a processor says otherwise.
    public var pipelines: Bool { false }
    public func process(batch: [ClaimedItem], cancellation: CancellationFlag) -> [ProcessOutcome] {
        batch.map { process($0, cancellation: cancellation) }
    }
}

/// A circuit breaker for one downstream (the bridges' broker or endpoint): after it could not be reached,
/// nothing is tried until a backoff has passed, then one probe; a probe that reaches it opens the way for all.
/// This is what keeps an outage cheap: the consumer sleeps instead of claiming items only to fail them.
public final class DownstreamGate: Sendable {
    struct State {
        var failures = 0
        var closedUntil: Int64 = 0
        /// A probe is out until then (its attempt's time limit); nobody else goes before it returns.
        var probeUntil: Int64 = 0
    }
    private let state = Mutex(State())
    let minBackoffNanos: Int64
    let maxBackoffNanos: Int64
    let probeTimeoutNanos: Int64

    public init(minBackoffNanos: Int64 = 500_000_000, maxBackoffNanos: Int64 = 30_000_000_000, probeTimeoutNanos: Int64) {
        self.minBackoffNanos = minBackoffNanos
        self.maxBackoffNanos = max(minBackoffNanos, maxBackoffNanos)
        self.probeTimeoutNanos = max(1, probeTimeoutNanos)
    }

    /// nil: go (possibly as the probe); otherwise when to ask again.
    public func unavailableUntil(now: Int64) -> Int64? {
        state.withLock { st -> Int64? in
            if st.failures == 0 { return nil }
            if now < st.closedUntil { return st.closedUntil }
            if now < st.probeUntil { return st.probeUntil }
            st.probeUntil = now &+ probeTimeoutNanos
            return nil
        }
    }

    /// The downstream answered (whatever it said): everyone may go.
    public func reached() {
        state.withLock { $0 = State() }
    }

    /// The downstream could not be reached: close for a backoff that doubles per failure in a row (with jitter).
    public func unreachable(now: Int64) {
        state.withLock { st in
            st.failures += 1
            let shift = min(st.failures - 1, 20)
            let (scaled, overflow) = minBackoffNanos.multipliedReportingOverflow(by: Int64(1) << shift)
            let delay = overflow ? maxBackoffNanos : min(scaled, maxBackoffNanos)
            st.closedUntil = now &+ delay / 2 &+ Int64.random(in: 0...max(1, delay / 2))
            st.probeUntil = 0
        }
    }

    public var isClosed: Bool { state.withLock { $0.failures > 0 } }

    /// Closed and its backoff still running (a probe, which goes after the backoff, is not held back).
    public func isBackingOff(now: Int64) -> Bool { state.withLock { $0.failures > 0 && now < $0.closedUntil } }
}
