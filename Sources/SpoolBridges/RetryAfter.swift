import SpoolSystem
import SpoolWire

/// `Retry-After` (RFC 9110 §10.2.3): delay-seconds or an IMF-fixdate; how long the server asks us to wait.
public enum RetryAfter {
    /// Longest delay we accept from a server (a day); larger values are clamped, not trusted blindly.
    public static let maxNanos: Int64 = 86_400_000_000_000

    /// The delay in nanoseconds, or nil when the value is neither form (then only our own backoff applies).
    public static func parse(_ value: String, nowNanos: Int64) -> Int64? {
        let v = Array(value.utf8)
        if let secs = Digits.decimal(v, max: Int(maxNanos / 1_000_000_000)) { return Int64(secs) * 1_000_000_000 }
        if v.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) && !v.isEmpty { return maxNanos }
        guard let at = imfFixdate(v) else { return nil }
        // A date centuries away (from a hostile server) must not overflow the subtraction.
        let (delay, overflow) = at.subtractingReportingOverflow(nowNanos)
        if overflow { return at < nowNanos ? 0 : maxNanos }
        return min(max(0, delay), maxNanos)
    }

    /// `Sun, 06 Nov 1994 08:49:37 GMT` to nanoseconds since the epoch.
    static func imfFixdate(_ v: [UInt8]) -> Int64? {
        guard let secs = HTTPDate.parse(v) else { return nil }
        let (n, o) = secs.multipliedReportingOverflow(by: 1_000_000_000)
        return o ? nil : n
    }
}
