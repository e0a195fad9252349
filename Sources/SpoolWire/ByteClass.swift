/// Byte classes from RFC 9110/9112, shared by every parser of this program (HTTP requests and responses, NATS
/// control lines and headers). Switch-based predicates, no lookup tables, so no lazy globals on the hot path.
public enum ByteClass {
    public static let cr: UInt8 = 0x0D
    public static let lf: UInt8 = 0x0A
    public static let sp: UInt8 = 0x20
    public static let htab: UInt8 = 0x09
    public static let colon: UInt8 = 0x3A

    /// tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA
    @inline(__always)
    public static func isTChar(_ b: UInt8) -> Bool {
        switch b {
        case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: return true
        case 0x21, 0x23, 0x24, 0x25, 0x26, 0x27, 0x2A, 0x2B, 0x2D, 0x2E, 0x5E, 0x5F, 0x60, 0x7C, 0x7E: return true
        default: return false
        }
    }

    /// VCHAR: visible ASCII (request-target characters).
    @inline(__always)
    public static func isVisible(_ b: UInt8) -> Bool { b >= 0x21 && b <= 0x7E }

    /// field-vchar / SP / HTAB / obs-text: anything but CTLs (other than HTAB) and DEL.
    @inline(__always)
    public static func isFieldValueByte(_ b: UInt8) -> Bool { b == htab || (b >= 0x20 && b != 0x7F) }

    @inline(__always)
    public static func isWhitespace(_ b: UInt8) -> Bool { b == sp || b == htab }

    @inline(__always)
    public static func isDigit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }

    /// The value of a hex digit, or nil.
    @inline(__always)
    public static func hexValue(_ b: UInt8) -> UInt64? {
        switch b {
        case 0x30...0x39: return UInt64(b - 0x30)
        case 0x41...0x46: return UInt64(b - 0x41 + 10)
        case 0x61...0x66: return UInt64(b - 0x61 + 10)
        default: return nil
        }
    }

    @inline(__always)
    public static func lower(_ b: UInt8) -> UInt8 { (b >= 0x41 && b <= 0x5A) ? b | 0x20 : b }

    /// ASCII case-insensitive equality of a byte sequence with a lowercase ASCII literal. Inlinable, as are the
    /// other generic helpers here: other modules call them per message, and unspecialised generics cost more there
    /// than the comparison itself.
    @inlinable
    public static func equalsLowercase<C: Collection>(_ bytes: C, _ lowercase: StaticString) -> Bool where C.Element == UInt8 {
        guard bytes.count == lowercase.utf8CodeUnitCount else { return false }
        var i = 0
        let p = lowercase.utf8Start
        for b in bytes {
            if lower(b) != p[i] { return false }
            i += 1
        }
        return true
    }

    /// ASCII case-insensitive equality of a byte sequence with any string (names of fields chosen at run time).
    @inlinable
    public static func equalsIgnoringCase<C: Collection>(_ bytes: C, _ s: String) -> Bool where C.Element == UInt8 {
        guard bytes.count == s.utf8.count else { return false }
        return zip(bytes, s.utf8).allSatisfy { lower($0) == lower($1) }
    }

    /// Trims SP/HTAB from both ends (OWS).
    public static func trimOWS(_ s: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        var lo = s.startIndex, hi = s.endIndex
        while lo < hi, isWhitespace(s[lo]) { lo += 1 }
        while hi > lo, isWhitespace(s[hi - 1]) { hi -= 1 }
        return s[lo..<hi]
    }

    /// Splits a `#element` list on commas, trimming OWS and dropping empty elements (RFC 9110 5.6.1).
    public static func listElements(_ s: ArraySlice<UInt8>) -> [ArraySlice<UInt8>] {
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
