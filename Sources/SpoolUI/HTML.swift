/// Text for HTML element content and double- or single-quoted attribute values. Every key, error text, header
/// and payload the UI shows comes from the network or the disk: `& < > " '` become character references, and
/// C0 controls (except tab and line feed), DEL and C1 controls become the visible text `\xNN`, as in `logSafe`,
/// so that nothing in them can open a tag, leave an attribute, or hide as an invisible character.
public func htmlEscaped(_ s: String) -> String {
    var out = ""
    out.reserveCapacity(s.utf8.count)
    for u in s.unicodeScalars {
        switch u {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        case "'": out += "&#39;"
        case "\n", "\t": out.unicodeScalars.append(u)
        default:
            if u.value < 0x20 || (0x7F...0x9F).contains(u.value) {
                let h = String(u.value, radix: 16)
                out += "\\x" + (h.count == 1 ? "0" : "") + h
            } else {
                out.unicodeScalars.append(u)
            }
        }
    }
    return out
}

/// A path segment or query value: every byte but `A-Z a-z 0-9 - . _ ~` as `%XX` (so the result needs no HTML
/// escaping either).
public func percentEncoded(_ s: String) -> String { percentEncoded(Array(s.utf8)) }

public func percentEncoded(_ bytes: [UInt8]) -> String {
    let hex = Array("0123456789ABCDEF".utf8)
    var out: [UInt8] = []
    out.reserveCapacity(bytes.count)
    for b in bytes {
        if (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x2D || b == 0x2E || b == 0x5F || b == 0x7E {
            out.append(b)
        } else {
            out += [0x25, hex[Int(b >> 4)], hex[Int(b & 15)]]
        }
    }
    return String(decoding: out, as: UTF8.self)
}

/// `%XX` decoded (a `+` stays a `+`); nil for a `%` without two hex digits.
public func percentDecoded(_ s: Substring) -> [UInt8]? {
    let u = Array(s.utf8)
    var out: [UInt8] = []
    out.reserveCapacity(u.count)
    var i = 0
    func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: return c - 0x30
        case 0x41...0x46: return c - 0x41 + 10
        case 0x61...0x66: return c - 0x61 + 10
        default: return nil
        }
    }
    while i < u.count {
        if u[i] == 0x25 {
            guard i + 2 < u.count, let a = hexValue(u[i + 1]), let b = hexValue(u[i + 2]) else { return nil }
            out.append(a << 4 | b)
            i += 3
        } else {
            out.append(u[i])
            i += 1
        }
    }
    return out
}
