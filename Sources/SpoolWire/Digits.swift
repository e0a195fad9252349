/// Overflow-checked number parsing for wire formats and the command line: no signs, no spaces, no leading `+`,
/// every byte a digit. Sizes from the network go through here so that `99999999999999999999` is an error, not a
/// wrap-around.
public enum Digits {
    /// Why a digit string was refused (callers that must tell "too large" apart, e.g. 413 against 400).
    public enum Failure: Error, Sendable, Equatable {
        case empty, notADigit, tooLarge
    }

    /// Decimal digits to a value no larger than `max`, or why not.
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
    public static func decimal<C: Collection>(_ bytes: C, max: Int = Int.max) -> Int? where C.Element == UInt8 {
        try? parseDecimal(bytes, max: max).get()
    }

    /// Hexadecimal digits (either case) to a value no larger than `max`; nil otherwise.
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
}
