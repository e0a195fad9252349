/// Escapes text for the inside of a JSON string literal: quote, backslash, control characters, DEL and the
/// two JavaScript line terminators. Shared by the spool's metadata writer and the HTTP server's error bodies.
public func jsonEscaped(_ s: String) -> String {
    var out = ""
    out.reserveCapacity(s.utf8.count)
    for u in s.unicodeScalars {
        switch u {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if u.value < 0x20 || u.value == 0x7F || u.value == 0x2028 || u.value == 0x2029 {
                let h = String(u.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - h.count) + h
            } else {
                out.unicodeScalars.append(u)
            }
        }
    }
    return out
}

/// Escapes CR, LF and other control characters so one log line stays one line, and so that text from the
/// network, a handler or the disk cannot drive the terminal of whoever reads it (`spool ls`, `show`, logs).
/// Text from a peer (a server's error message, a response body) is also cut to `maxScalars`.
public func logSafe(_ s: String, maxScalars: Int = Int.max) -> String {
    // Most text has nothing to escape (C1 characters are encoded as C2 80 to C2 9F).
    if s.utf8.count <= maxScalars, !s.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F || $0 == 0xC2 }) { return s }
    var out = ""
    for u in s.unicodeScalars.prefix(maxScalars) {
        switch u {
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            // C0, DEL and C1 (U+0080-U+009F, which some terminals take as escape sequences, e.g. U+009B as CSI).
            if u.value < 0x20 || (0x7F...0x9F).contains(u.value) { out += "\\x" + String(u.value, radix: 16) } else { out.unicodeScalars.append(u) }
        }
    }
    return out
}

/// A path or word as one shell word (single-quoted unless it is plainly safe), for hints an operator pastes
/// (`run: chmod go-w PATH`).
public func shellQuoted(_ s: String) -> String {
    let safe: (UInt8) -> Bool = { b in
        (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || "/._-+,:@%=".utf8.contains(b)
    }
    if !s.isEmpty && s.utf8.allSatisfy(safe) { return s }
    var out = "'"
    for ch in s { out += ch == "'" ? "'\\''" : String(ch) }
    return out + "'"
}
