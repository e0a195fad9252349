import SpoolWire

/// A NATS header block (`NATS/1.0[ status[ description]]` CRLF, `Name: value` CRLF lines, CRLF): encoded for
/// HPUB and parsed strictly from HMSG, where the status line carries "no responders" (503).
public struct NATSHeaders: Sendable, Hashable {
    /// The inline status (503 for no responders); nil when the status line is just `NATS/1.0`.
    public var status: Int?
    public var statusDescription: String
    public var fields: HTTPHeaders

    public init(status: Int? = nil, statusDescription: String = "", fields: HTTPHeaders = HTTPHeaders()) {
        self.status = status
        self.statusDescription = statusDescription
        self.fields = fields
    }

    /// The first value of `name` (case-insensitive).
    public func value(_ name: String) -> String? { fields[name] }

    /// The wire form. Callers validate fields first (`HTTPField.isValid`); invalid ones are a programming error.
    public func encoded() -> [UInt8] {
        var out: [UInt8] = []
        encode(into: &out)
        return out
    }

    /// Appends the wire form to `out` (the bridge writes a whole batch of publishes into one buffer).
    public func encode(into out: inout [UInt8]) {
        out.append(contentsOf: "NATS/1.0".utf8)
        if let status {
            out.append(ByteClass.sp); Digits.append(status, to: &out)
            if !statusDescription.isEmpty { out.append(ByteClass.sp); out.append(contentsOf: statusDescription.utf8) }
        }
        out.append(ByteClass.cr); out.append(ByteClass.lf)
        for f in fields {
            precondition(HTTPField.isValid(name: f.name, value: f.value), "invalid NATS header field")
            out.append(contentsOf: f.name.utf8); out.append(ByteClass.colon); out.append(ByteClass.sp)
            out.append(contentsOf: f.value.utf8); out.append(ByteClass.cr); out.append(ByteClass.lf)
        }
        out.append(ByteClass.cr); out.append(ByteClass.lf)
    }

    /// Parses exactly one header block that must fill `bytes` completely.
    public static func parse(_ bytes: ArraySlice<UInt8>) throws(NATSProtocolError) -> NATSHeaders {
        var lines: [ArraySlice<UInt8>] = []
        var start = bytes.startIndex
        var i = bytes.startIndex
        while i < bytes.endIndex {
            if bytes[i] == ByteClass.lf {
                guard i > start, bytes[i - 1] == ByteClass.cr else { throw NATSProtocolError("header line without CRLF") }
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
            guard rest.first == ByteClass.sp else { throw NATSProtocolError("bad header status line") }
            let afterSpace = rest.dropFirst()
            let code = afterSpace.prefix(3)
            guard code.count == 3, let c = Digits.decimal(code), c >= 100 else { throw NATSProtocolError("bad header status code") }
            h.status = c
            let tail = afterSpace.dropFirst(3)
            if !tail.isEmpty {
                guard tail.first == ByteClass.sp, tail.allSatisfy(ByteClass.isFieldValueByte) else { throw NATSProtocolError("bad header status description") }
                h.statusDescription = String(decoding: ByteClass.trimOWS(tail.dropFirst()), as: UTF8.self)
            }
        }
        for line in lines[1..<(lines.count - 1)] {
            switch HTTPField.parse(line) {
            case .success(let f): h.fields.add(name: f.name, value: f.value)
            case .failure(.noColon): throw NATSProtocolError("header line without a colon")
            case .failure(.controlCharacterInValue): throw NATSProtocolError("bad header value")
            case .failure: throw NATSProtocolError("bad header name")
            }
        }
        return h
    }
}
