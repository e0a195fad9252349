import SpoolSystem

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

    /// `Sun, 06 Nov 1994 08:49:37 GMT` to nanoseconds since the epoch (through RFC3339.parse, one calendar).
    static func imfFixdate(_ v: [UInt8]) -> Int64? {
        guard v.count == 29, v[3] == 0x2C, v[4] == Bytes.sp, v[7] == Bytes.sp, v[11] == Bytes.sp, v[16] == Bytes.sp,
              v[25] == Bytes.sp, String(decoding: v[26...], as: UTF8.self) == "GMT" else { return nil }
        let days = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
        guard days.contains(String(decoding: v[0..<3], as: UTF8.self)) else { return nil }
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        guard let m = months.firstIndex(of: String(decoding: v[8..<11], as: UTF8.self)) else { return nil }
        let mm = m + 1 < 10 ? "0\(m + 1)" : "\(m + 1)"
        let text = "\(String(decoding: v[12..<16], as: UTF8.self))-\(mm)-\(String(decoding: v[5..<7], as: UTF8.self))T\(String(decoding: v[17..<25], as: UTF8.self))Z"
        return RFC3339.parse(text)
    }
}
