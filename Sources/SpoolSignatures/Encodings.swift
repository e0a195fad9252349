/// Base64 with the standard alphabet and padding (RFC 4648 4), decoded strictly: the length is a multiple of
/// four, `=` only as the last one or two characters, no whitespace, no URL-safe characters, and the unused low
/// bits of the last character zero (so every byte string has exactly one accepted spelling).
public enum Base64 {
    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    /// 0...63 for an alphabet byte, 0xFF for anything else.
    static let values: [UInt8] = {
        var t = [UInt8](repeating: 0xFF, count: 256)
        for (i, c) in alphabet.enumerated() { t[Int(c)] = UInt8(i) }
        return t
    }()

    public static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var i = 0
        while i < bytes.count {
            let n = min(3, bytes.count - i)
            let b0 = bytes[i], b1 = n > 1 ? bytes[i + 1] : 0, b2 = n > 2 ? bytes[i + 2] : 0
            out.append(alphabet[Int(b0 >> 2)])
            out.append(alphabet[Int((b0 & 0x03) << 4 | b1 >> 4)])
            out.append(n > 1 ? alphabet[Int((b1 & 0x0F) << 2 | b2 >> 6)] : UInt8(ascii: "="))
            out.append(n > 2 ? alphabet[Int(b2 & 0x3F)] : UInt8(ascii: "="))
            i += 3
        }
        return String(decoding: out, as: UTF8.self)
    }

    public static func decode(_ text: String) -> [UInt8]? { decode(Array(text.utf8)[...]) }

    /// The bytes, or nil for anything that is not canonical padded base64. `canonical: false` ignores the unused low
    /// bits of the last character instead of refusing them (what the reference webhook libraries accept in secrets).
    public static func decode(_ input: ArraySlice<UInt8>, canonical: Bool = true) -> [UInt8]? {
        guard input.count % 4 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(input.count / 4 * 3)
        var i = input.startIndex
        while i < input.endIndex {
            let last = i + 4 == input.endIndex
            let c0 = values[Int(input[i])], c1 = values[Int(input[i + 1])]
            guard c0 != 0xFF, c1 != 0xFF else { return nil }
            let p2 = input[i + 2] == UInt8(ascii: "="), p3 = input[i + 3] == UInt8(ascii: "=")
            if p2 || p3 {
                // Padding: only in the last quantum, "x=" after a third character or "==" after two.
                guard last, p3 else { return nil }
                if p2 {
                    guard c1 & 0x0F == 0 || !canonical else { return nil }
                    out.append(c0 << 2 | c1 >> 4)
                } else {
                    let c2 = values[Int(input[i + 2])]
                    guard c2 != 0xFF, c2 & 0x03 == 0 || !canonical else { return nil }
                    out.append(c0 << 2 | c1 >> 4)
                    out.append((c1 & 0x0F) << 4 | c2 >> 2)
                }
            } else {
                let c2 = values[Int(input[i + 2])], c3 = values[Int(input[i + 3])]
                guard c2 != 0xFF, c3 != 0xFF else { return nil }
                out.append(c0 << 2 | c1 >> 4)
                out.append((c1 & 0x0F) << 4 | c2 >> 2)
                out.append((c2 & 0x03) << 6 | c3)
            }
            i += 4
        }
        return out
    }
}

/// Hexadecimal digits, as GitHub and Stripe write signatures.
public enum Hex {
    static let digits = Array("0123456789abcdef".utf8)

    public static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Lower- or upper-case digits, an even count; nil for anything else.
    public static func decode(_ input: ArraySlice<UInt8>) -> [UInt8]? {
        guard input.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(input.count / 2)
        var i = input.startIndex
        while i < input.endIndex {
            guard let hi = value(input[i]), let lo = value(input[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
            i += 2
        }
        return out
    }

    static func value(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}

/// True when `a` and `b` are equal, in time that depends only on their lengths, never on where they differ.
public func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    var diff: UInt8 = a.count == b.count ? 0 : 1
    let n = max(a.count, b.count)
    for i in 0..<n {
        diff |= (i < a.count ? a[i] : 0) ^ (i < b.count ? b[i] : 0)
    }
    return diff == 0
}
