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

    /// The fewest attempts whose retries span at least `nanos` even when the jitter picks every shortest delay
    /// (half of each), so that an outage of that length does not dead-letter an item (the default: 24 hours). At
    /// most `limit`.
    public func attempts(spanning nanos: Int64, limit: Int = 1_000_000) -> Int {
        var shortest = self
        shortest.random = { _ in 0 }
        var span: Int64 = 0
        var attempts = 1
        var previous: Int64 = -1
        while span < nanos && attempts < limit {
            let d = max(shortest.delay(afterAttempt: attempts), 0)
            if d == previous {
                // The backoff has reached its cap: the rest is arithmetic.
                guard d > 0 else { return limit }
                let more = (nanos - span + d - 1) / d
                return min(limit, attempts + Int(min(more, Int64(limit))))
            }
            previous = d
            span += d
            attempts += 1
        }
        return min(attempts, limit)
    }

    /// 24 hours: what the default number of attempts must outlast.
    public static let defaultSpanNanos: Int64 = 86_400_000_000_000
}
