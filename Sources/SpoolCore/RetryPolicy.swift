/// Exponential backoff with jitter: attempt n waits between half and all of `base * 2^(n-1)`, capped at `max`.
/// Jitter spreads retries of items that failed together (for example while a downstream was down).
public struct RetryPolicy: Sendable {
    public var maxAttempts: Int
    public var baseNanos: Int64
    public var maxNanos: Int64
    /// Returns a number in `0...upper`; injected so tests can pin the jitter.
    public var random: @Sendable (Int64) -> Int64

    public init(maxAttempts: Int = 5, baseNanos: Int64 = 1_000_000_000, maxNanos: Int64 = 3_600_000_000_000,
                random: @escaping @Sendable (Int64) -> Int64 = { $0 <= 0 ? 0 : Int64.random(in: 0...$0) }) {
        self.maxAttempts = maxAttempts
        self.baseNanos = baseNanos
        self.maxNanos = maxNanos
        self.random = random
    }

    /// The delay before the attempt after `attempt` (1-based) failed.
    public func delay(afterAttempt attempt: Int) -> Int64 {
        var d = max(baseNanos, 0)
        var n = 1
        while n < attempt && d < maxNanos {
            let (x, o) = d.multipliedReportingOverflow(by: 2)
            d = o ? maxNanos : x
            n += 1
        }
        d = min(d, maxNanos)
        let half = d / 2
        return half + random(d - half)
    }
}
