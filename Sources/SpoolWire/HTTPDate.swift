/// IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`, RFC 9110 5.6.7): the `Date` we send and the `Retry-After` date we
/// read. Pure arithmetic on the civil calendar (Howard Hinnant's algorithms), no C library time functions.
public enum HTTPDate {
    static let days = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"]  // 1970-01-01 was a Thursday
    static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// The date for whole seconds since the Unix epoch (years 1970 to 9999).
    public static func format(secondsSinceEpoch t: Int64) -> String {
        let secs = min(max(t, 0), 253_402_300_799)
        let dayNumber = secs / 86400, rest = secs % 86400
        let (y, m, d) = civil(fromDays: dayNumber)
        func two(_ v: Int64) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return "\(days[Int(dayNumber % 7)]), \(two(d)) \(months[Int(m - 1)]) \(y) \(two(rest / 3600)):\(two(rest % 3600 / 60)):\(two(rest % 60)) GMT"
    }

    /// Seconds since the epoch for a well-formed IMF-fixdate, or nil (the obsolete RFC 850 and asctime forms too).
    public static func parse<C: Collection>(_ text: C) -> Int64? where C.Element == UInt8 {
        let v = Array(text)
        guard v.count == 29, v[3] == 0x2C, v[4] == ByteClass.sp, v[7] == ByteClass.sp, v[11] == ByteClass.sp,
              v[16] == ByteClass.sp, v[19] == ByteClass.colon, v[22] == ByteClass.colon, v[25] == ByteClass.sp,
              v[26...].elementsEqual("GMT".utf8),
              days.contains(where: { v[0..<3].elementsEqual($0.utf8) }),
              let month = months.firstIndex(where: { v[8..<11].elementsEqual($0.utf8) }),
              let d = Digits.decimal(v[5..<7]), let y = Digits.decimal(v[12..<16]), let hh = Digits.decimal(v[17..<19]),
              let mm = Digits.decimal(v[20..<22]), let ss = Digits.decimal(v[23..<25]),
              (1...31).contains(d), hh < 24, mm < 60, ss < 61 else { return nil }
        let days = daysFromCivil(Int64(y), Int64(month + 1), Int64(d))
        return days * 86400 + Int64(hh * 3600 + mm * 60 + ss)
    }

    static func civil(fromDays z0: Int64) -> (Int64, Int64, Int64) {
        let z = z0 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }

    static func daysFromCivil(_ y0: Int64, _ m: Int64, _ d: Int64) -> Int64 {
        let y = m <= 2 ? y0 - 1 : y0
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }
}
