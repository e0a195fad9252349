/// Overflow-checked number parsing for wire formats and the command line: no signs, no spaces, no leading `+`,
/// every byte a digit. Sizes from the network go through here so that `99999999999999999999` is an error, not a
/// wrap-around.
public enum Digits {
    /// Why a digit string was refused (callers that must tell "too large" apart, e.g. 413 against 400).
    public enum Failure: Error, Sendable, Equatable {
        case empty, notADigit, tooLarge
    }

    /// Decimal digits to a value no larger than `max`, or why not.
    @inlinable
    public static func parseDecimal<C: Collection>(_ bytes: C, max: Int = Int.max) -> Result<Int, Failure> where C.Element == UInt8 {
        guard !bytes.isEmpty else { return .failure(.empty) }
        var v = 0
        var overflow = false
        for b in bytes {
            guard ByteClass.isDigit(b) else { return .failure(.notADigit) }
            if overflow { continue }
            let (m, o1) = v.multipliedReportingOverflow(by: 10)
            let (a, o2) = m.addingReportingOverflow(Int(b - 0x30))
            if o1 || o2 || a > max { overflow = true } else { v = a }
        }
        return overflow ? .failure(.tooLarge) : .success(v)
    }

    /// Decimal digits to a value no larger than `max`; nil for anything else (empty, a non-digit, too large).
    @inlinable
    public static func decimal<C: Collection>(_ bytes: C, max: Int = Int.max) -> Int? where C.Element == UInt8 {
        try? parseDecimal(bytes, max: max).get()
    }

    /// Hexadecimal digits (either case) to a value no larger than `max`; nil otherwise.
    @inlinable
    public static func hex<C: Collection>(_ bytes: C, max: Int = Int.max) -> Int? where C.Element == UInt8 {
        guard !bytes.isEmpty else { return nil }
        var v = 0
        for b in bytes {
            guard let d = ByteClass.hexValue(b) else { return nil }
            let (m, o1) = v.multipliedReportingOverflow(by: 16)
            let (a, o2) = m.addingReportingOverflow(Int(d))
            guard !o1, !o2, a <= max else { return nil }
            v = a
        }
        return v
    }

    /// Appends `v` in decimal (a `-` first when negative): how sizes and numbers go into the frames and JSON we
    /// write, without a String in between.
    public static func append(_ v: Int64, to out: inout [UInt8]) {
        var n = v.magnitude
        if v < 0 { out.append(0x2D) }
        var buf: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes: room for the 20 digits of UInt64.max
        withUnsafeMutableBytes(of: &buf) { b in
            var i = b.count
            repeat { i -= 1; b[i] = UInt8(truncatingIfNeeded: 0x30 + n % 10); n /= 10 } while n > 0
            out.append(contentsOf: UnsafeRawBufferPointer(rebasing: b[i...]))
        }
    }

    public static func append(_ v: Int, to out: inout [UInt8]) { append(Int64(v), to: &out) }
}
