/// A NATS header block (`NATS/1.0[ status[ description]]` CRLF, `Name: value` CRLF lines, CRLF): encoded for
/// HPUB and parsed strictly from HMSG, where the status line carries "no responders" (503).
public struct NATSHeaders: Sendable, Equatable {
    /// The inline status (503 for no responders); nil when the status line is just `NATS/1.0`.
    public var status: Int?
    public var statusDescription: String
    public var fields: [(String, String)]

    public init(status: Int? = nil, statusDescription: String = "", fields: [(String, String)] = []) {
        self.status = status
        self.statusDescription = statusDescription
        self.fields = fields
    }

    public static func == (a: NATSHeaders, b: NATSHeaders) -> Bool {
        a.status == b.status && a.statusDescription == b.statusDescription
            && a.fields.count == b.fields.count && zip(a.fields, b.fields).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
    }

    /// The first value of `name` (case-insensitive).
    public func value(_ name: String) -> String? {
        let n = name.lowercased()
        return fields.first { $0.0.lowercased() == n }?.1
    }

    /// True when `name` is a token and `value` has no CR, LF or other control bytes (checked before encoding:
    /// a key must never be able to inject a header line).
    public static func isValidField(name: String, value: String) -> Bool {
        !name.isEmpty && name.utf8.allSatisfy(Bytes.isToken) && value.utf8.allSatisfy(Bytes.isFieldValue)
    }

    /// The wire form. Callers validate fields first (`isValidField`); invalid ones are a programming error.
    public func encoded() -> [UInt8] {
        var out = Array("NATS/1.0".utf8)
        if let status { out += Array(" \(status)".utf8); if !statusDescription.isEmpty { out += Array(" \(statusDescription)".utf8) } }
        out += [Bytes.cr, Bytes.lf]
        for (n, v) in fields {
            precondition(NATSHeaders.isValidField(name: n, value: v), "invalid NATS header field")
            out += Array(n.utf8) + [Bytes.colon, Bytes.sp] + Array(v.utf8) + [Bytes.cr, Bytes.lf]
        }
        out += [Bytes.cr, Bytes.lf]
        return out
    }

    /// Parses exactly one header block that must fill `bytes` completely.
    public static func parse(_ bytes: ArraySlice<UInt8>) throws(NATSProtocolError) -> NATSHeaders {
        var lines: [ArraySlice<UInt8>] = []
        var start = bytes.startIndex
        var i = bytes.startIndex
        while i < bytes.endIndex {
            if bytes[i] == Bytes.lf {
                guard i > start, bytes[i - 1] == Bytes.cr else { throw NATSProtocolError("header line without CRLF") }
                lines.append(bytes[start..<(i - 1)])
                start = i + 1
            }
            i += 1
        }
        guard start == bytes.endIndex else { throw NATSProtocolError("header block does not end in CRLF") }
        guard lines.count >= 2, lines.last!.isEmpty else { throw NATSProtocolError("header block does not end with an empty line") }
        let statusLine = lines[0]
        let version = Array("NATS/1.0".utf8)
        guard statusLine.starts(with: version) else { throw NATSProtocolError("header block does not start with NATS/1.0") }
        var h = NATSHeaders()
        let rest = statusLine.dropFirst(version.count)
        if !rest.isEmpty {
            guard rest.first == Bytes.sp else { throw NATSProtocolError("bad header status line") }
            let afterSpace = rest.dropFirst()
            let code = afterSpace.prefix(3)
            guard code.count == 3, let c = Digits.decimal(code), c >= 100 else { throw NATSProtocolError("bad header status code") }
            h.status = c
            let tail = afterSpace.dropFirst(3)
            if !tail.isEmpty {
                guard tail.first == Bytes.sp, tail.allSatisfy(Bytes.isFieldValue) else { throw NATSProtocolError("bad header status description") }
                h.statusDescription = String(decoding: Bytes.trimmed(tail.dropFirst()), as: UTF8.self)
            }
        }
        for line in lines[1..<(lines.count - 1)] {
            guard let colon = line.firstIndex(of: Bytes.colon) else { throw NATSProtocolError("header line without a colon") }
            let name = line[line.startIndex..<colon]
            let value = Bytes.trimmed(line[(colon + 1)...])
            guard !name.isEmpty, name.allSatisfy(Bytes.isToken) else { throw NATSProtocolError("bad header name") }
            guard value.allSatisfy(Bytes.isFieldValue) else { throw NATSProtocolError("bad header value") }
            h.fields.append((String(decoding: name, as: UTF8.self), String(decoding: value, as: UTF8.self)))
        }
        return h
    }
}
