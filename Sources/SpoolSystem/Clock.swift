#if canImport(Glibc)
import Glibc
#endif

/// Wall-clock time source, injected wherever retries, backoff or timeouts must be tested.
public protocol WallClock: Sendable {
    /// Nanoseconds since the Unix epoch.
    func nowNanos() -> Int64
}

public struct SystemClock: WallClock {
    public init() {}
    public func nowNanos() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }
}

/// Monotonic nanoseconds, for measuring durations and deadlines (never jumps with the wall clock).
public func monotonicNanos() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
}

/// RFC 3339 timestamps in UTC with millisecond precision (`2026-11-29T04:00:00.123Z`).
public enum RFC3339 {
    public static func format(nanos: Int64) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(24)
        append(nanos: nanos, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends the timestamp's bytes (hot path of metadata serialisation: no intermediate strings).
    public static func append(nanos rawNanos: Int64, to out: inout [UInt8]) {
        // Clamped away from Int64's ends (years 1685 to 2255): hostile metadata must not trap the arithmetic.
        let nanos = min(max(rawNanos, -9_000_000_000_000_000_000), 9_000_000_000_000_000_000)
        let ms = nanos >= 0 ? nanos / 1_000_000 : (nanos - 999_999) / 1_000_000
        var secs = ms >= 0 ? ms / 1000 : (ms - 999) / 1000
        let milli = Int(ms - secs * 1000)
        var days = secs >= 0 ? secs / 86400 : (secs - 86399) / 86400
        secs -= days * 86400
        let hh = Int(secs / 3600), mm = Int(secs % 3600 / 60), ss = Int(secs % 60)
        // Civil-from-days (Howard Hinnant's algorithm).
        days += 719_468
        let era = (days >= 0 ? days : days - 146_096) / 146_097
        let doe = days - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        var y = yoe + era * 400
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = Int(doy - (153 * mp + 2) / 5 + 1)
        let m = Int(mp < 10 ? mp + 3 : mp - 9)
        if m <= 2 { y += 1 }
        digits(Int(y), 4, &out); out.append(0x2D); digits(m, 2, &out); out.append(0x2D); digits(d, 2, &out)
        out.append(0x54); digits(hh, 2, &out); out.append(0x3A); digits(mm, 2, &out); out.append(0x3A); digits(ss, 2, &out)
        out.append(0x2E); digits(milli, 3, &out); out.append(0x5A)
    }

    private static func digits(_ v: Int, _ width: Int, _ out: inout [UInt8]) {
        var buf: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0, 0, 0, 0, 0)
        var n = max(0, v), count = 0
        withUnsafeMutableBytes(of: &buf) { b in
            repeat { b[count] = UInt8(0x30 + n % 10); n /= 10; count += 1 } while n > 0 && count < 8
            while count < width { b[count] = 0x30; count += 1 }
            for i in stride(from: count - 1, through: 0, by: -1) { out.append(b[i]) }
        }
    }

    /// Parses exactly the form `format` writes (and the same without fraction); nil for anything else.
    public static func parse(_ s: String) -> Int64? {
        let b = Array(s.utf8)
        guard b.count == 20 || b.count == 24, b[4] == 0x2D, b[7] == 0x2D, b[10] == 0x54, b[13] == 0x3A, b[16] == 0x3A,
              b[b.count - 1] == 0x5A else { return nil }
        func num(_ r: Range<Int>) -> Int64? {
            var v: Int64 = 0
            for i in r { guard b[i] >= 0x30 && b[i] <= 0x39 else { return nil }; v = v * 10 + Int64(b[i] - 0x30) }
            return v
        }
        guard let y = num(0..<4), let mo = num(5..<7), let d = num(8..<10), let h = num(11..<13), let mi = num(14..<16),
              let se = num(17..<19), (1...12).contains(mo), (1...31).contains(d), h < 24, mi < 60, se < 61 else { return nil }
        var milli: Int64 = 0
        if b.count == 24 { guard b[19] == 0x2E, let f = num(20..<23) else { return nil }; milli = f }
        let yy = mo <= 2 ? y - 1 : y
        let era = (yy >= 0 ? yy : yy - 399) / 400
        let yoe = yy - era * 400
        let mp = mo > 2 ? mo - 3 : mo + 9
        let doy = (153 * mp + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146_097 + doe - 719_468
        let millis = (days * 86400 + h * 3600 + mi * 60 + se) * 1000 + milli
        // Int64 nanoseconds reach from 1677 to 2262: a year outside that (a hostile metadata file) is nil, not a trap.
        let (nanos, overflow) = millis.multipliedReportingOverflow(by: 1_000_000)
        return overflow ? nil : nanos
    }

}
