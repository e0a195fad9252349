/// Escapes text for the inside of a JSON string literal: quote, backslash, control characters, DEL and the
/// two JavaScript line terminators. Shared by the spool's metadata writer and the HTTP server's error bodies.
public func jsonEscaped(_ s: String) -> String {
    var out: [UInt8] = []
    out.reserveCapacity(s.utf8.count + 2)
    appendJSONString(s, to: &out)
    return String(decoding: out[1..<(out.count - 1)], as: UTF8.self)
}

/// Appends `s` as a JSON string literal: quote, backslash, `\n \r \t`, `\u00XX` for other C0 characters and DEL,
/// `\u2028`/`\u2029` (JavaScript's line terminators), and with `escapingC1` also U+0080-U+009F (which some
/// terminals take as escape sequences: log lines). Text with nothing to escape is copied as it is. The one JSON
/// string writer of the project (item headers, state files, API bodies, JSON log lines).
public func appendJSONString(_ s: String, to out: inout [UInt8], escapingC1: Bool = false) {
    out.append(0x22)
    // C1 characters are encoded C2 80 to C2 9F, the line terminators E2 80 A8/A9.
    if !s.utf8.contains(where: { $0 < 0x20 || $0 == 0x22 || $0 == 0x5C || $0 == 0x7F || $0 == 0xE2 || (escapingC1 && $0 == 0xC2) }) {
        out.append(contentsOf: s.utf8)
    } else {
        let hex: [UInt8] = Array("0123456789abcdef".utf8)
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += [0x5C, 0x22]
            case "\\": out += [0x5C, 0x5C]
            case "\n": out += [0x5C, 0x6E]
            case "\r": out += [0x5C, 0x72]
            case "\t": out += [0x5C, 0x74]
            default:
                let v = u.value
                if v < 0x20 || v == 0x7F || v == 0x2028 || v == 0x2029 || (escapingC1 && v >= 0x80 && v <= 0x9F) {
                    out += [0x5C, 0x75, hex[Int(v >> 12 & 15)], hex[Int(v >> 8 & 15)], hex[Int(v >> 4 & 15)], hex[Int(v & 15)]]
                } else {
                    out.append(contentsOf: String(u).utf8)
                }
            }
        }
    }
    out.append(0x22)
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
