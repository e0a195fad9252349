/// Byte classes from RFC 9110/9112, as switch-based predicates (no lookup tables, so no lazy globals on the hot path).
@usableFromInline
enum ByteClass {
    static let cr: UInt8 = 0x0D
    static let lf: UInt8 = 0x0A
    static let sp: UInt8 = 0x20
    static let htab: UInt8 = 0x09

    /// tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA
    @inline(__always)
    static func isTChar(_ b: UInt8) -> Bool {
        switch b {
        case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: return true
        case 0x21, 0x23, 0x24, 0x25, 0x26, 0x27, 0x2A, 0x2B, 0x2D, 0x2E, 0x5E, 0x5F, 0x60, 0x7C, 0x7E: return true
        default: return false
        }
    }

    /// VCHAR: visible ASCII (request-target characters).
    @inline(__always)
    static func isVisible(_ b: UInt8) -> Bool { b >= 0x21 && b <= 0x7E }

    /// field-vchar / SP / HTAB / obs-text: anything but CTLs (other than HTAB) and DEL.
    @inline(__always)
    static func isFieldValueByte(_ b: UInt8) -> Bool { b == htab || (b >= 0x20 && b != 0x7F) }

    @inline(__always)
    static func isWhitespace(_ b: UInt8) -> Bool { b == sp || b == htab }

    @inline(__always)
    static func isDigit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }

    /// The value of a hex digit, or nil.
    @inline(__always)
    static func hexValue(_ b: UInt8) -> UInt64? {
        switch b {
        case 0x30...0x39: return UInt64(b - 0x30)
        case 0x41...0x46: return UInt64(b - 0x41 + 10)
        case 0x61...0x66: return UInt64(b - 0x61 + 10)
        default: return nil
        }
    }

    @inline(__always)
    static func lower(_ b: UInt8) -> UInt8 { (b >= 0x41 && b <= 0x5A) ? b | 0x20 : b }

    /// ASCII case-insensitive equality of a byte sequence with a lowercase ASCII literal.
    static func equalsLowercase<C: Collection>(_ bytes: C, _ lowercase: StaticString) -> Bool where C.Element == UInt8 {
        guard bytes.count == lowercase.utf8CodeUnitCount else { return false }
        var i = 0
        let p = lowercase.utf8Start
        for b in bytes {
            if lower(b) != p[i] { return false }
            i += 1
        }
        return true
    }

    /// Trims SP/HTAB from both ends (OWS).
    static func trimOWS(_ s: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        var lo = s.startIndex, hi = s.endIndex
        while lo < hi, isWhitespace(s[lo]) { lo += 1 }
        while hi > lo, isWhitespace(s[hi - 1]) { hi -= 1 }
        return s[lo..<hi]
    }

    /// Splits a `#element` list on commas, trimming OWS and dropping empty elements (RFC 9110 5.6.1).
    static func listElements(_ s: ArraySlice<UInt8>) -> [ArraySlice<UInt8>] {
        var out: [ArraySlice<UInt8>] = []
        var start = s.startIndex
        var i = s.startIndex
        while i <= s.endIndex {
            if i == s.endIndex || s[i] == 0x2C {
                let el = trimOWS(s[start..<i])
                if !el.isEmpty { out.append(el) }
                start = i + 1
            }
            i += 1
        }
        return out
    }
}
