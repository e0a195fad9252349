/// Overflow-checked number parsing for wire formats: no signs, no spaces, no leading `+`, every byte a digit.
/// Sizes from the network go through here so that `99999999999999999999` is an error, not a wrap-around.
enum Digits {
    /// Decimal digits to a value no larger than `max`; nil for anything else (empty, a non-digit, too large).
    static func decimal<C: Collection>(_ bytes: C, max: Int = Int.max) -> Int? where C.Element == UInt8 {
        guard !bytes.isEmpty else { return nil }
        var v = 0
        for b in bytes {
            guard b >= 0x30 && b <= 0x39 else { return nil }
            let (m, o1) = v.multipliedReportingOverflow(by: 10)
            let (a, o2) = m.addingReportingOverflow(Int(b - 0x30))
            guard !o1, !o2, a <= max else { return nil }
            v = a
        }
        return v
    }

    /// Hexadecimal digits (either case) to a value no larger than `max`; nil otherwise.
    static func hex<C: Collection>(_ bytes: C, max: Int = Int.max) -> Int? where C.Element == UInt8 {
        guard !bytes.isEmpty else { return nil }
        var v = 0
        for b in bytes {
            let d: Int
            switch b {
            case 0x30...0x39: d = Int(b - 0x30)
            case 0x41...0x46: d = Int(b - 0x41 + 10)
            case 0x61...0x66: d = Int(b - 0x61 + 10)
            default: return nil
            }
            let (m, o1) = v.multipliedReportingOverflow(by: 16)
            let (a, o2) = m.addingReportingOverflow(d)
            guard !o1, !o2, a <= max else { return nil }
            v = a
        }
        return v
    }
}

/// Byte classes shared by the parsers.
enum Bytes {
    static let cr: UInt8 = 0x0D, lf: UInt8 = 0x0A, sp: UInt8 = 0x20, tab: UInt8 = 0x09, colon: UInt8 = 0x3A

    /// RFC 9110 `tchar`: the characters of a header name (HTTP and NATS headers).
    static func isToken(_ b: UInt8) -> Bool {
        switch b {
        case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: return true
        case 0x21, 0x23, 0x24, 0x25, 0x26, 0x27, 0x2A, 0x2B, 0x2D, 0x2E, 0x5E, 0x5F, 0x60, 0x7C, 0x7E: return true
        default: return false
        }
    }

    /// A header value byte: visible characters, space, tab and obs-text; never CR, LF, NUL or other controls.
    static func isFieldValue(_ b: UInt8) -> Bool { b == tab || (b >= 0x20 && b != 0x7F) }

    /// Drops spaces and tabs at both ends.
    static func trimmed(_ s: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        var s = s
        while let f = s.first, f == sp || f == tab { s = s.dropFirst() }
        while let l = s.last, l == sp || l == tab { s = s.dropLast() }
        return s
    }

    static func lowercased(_ b: UInt8) -> UInt8 { (b >= 0x41 && b <= 0x5A) ? b + 0x20 : b }

    static func equalsIgnoringCase<C: Collection>(_ a: C, _ s: String) -> Bool where C.Element == UInt8 {
        let u = Array(s.utf8)
        guard a.count == u.count else { return false }
        return zip(a, u).allSatisfy { lowercased($0) == lowercased($1) }
    }
}
