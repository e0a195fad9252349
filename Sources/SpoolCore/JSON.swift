import SpoolSystem
import SpoolWire

/// A JSON value as parsed by `JSONParser`. Objects keep member order and duplicates, so that callers
/// can refuse ambiguous documents instead of silently picking one of two values.
public enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    /// The number's exact source text (RFC 8259 grammar), never rounded through a Double.
    case number(String)
    case string(String)
    case array([JSONValue])
    case object([(String, JSONValue)])

    public static func == (a: JSONValue, b: JSONValue) -> Bool {
        switch (a, b) {
        case (.null, .null): return true
        case let (.bool(x), .bool(y)): return x == y
        case let (.number(x), .number(y)): return x == y
        case let (.string(x), .string(y)): return x == y
        case let (.array(x), .array(y)): return x == y
        case let (.object(x), .object(y)):
            return x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: return false
        }
    }

    /// Members named `name`; more than one means the document is ambiguous. Names compare byte for byte (by Unicode
    /// scalars): `"\u212Aey"` (KELVIN SIGN) is not `Key`, although Swift's `==` says the two strings are equal.
    public func members(named name: String) -> [JSONValue] {
        guard case .object(let m) = self else { return [] }
        return m.filter { $0.0.unicodeScalars.elementsEqual(name.unicodeScalars) }.map { $0.1 }
    }

    /// The single member named `name`, or nil when absent or repeated.
    public subscript(name: String) -> JSONValue? {
        let m = members(named: name)
        return m.count == 1 ? m[0] : nil
    }

    public var stringValue: String? { if case .string(let s) = self { return s }; return nil }
    public var intValue: Int64? {
        guard case .number(let t) = self else { return nil }
        return JSONParser.strictInteger(t)
    }
    public var boolValue: Bool? { if case .bool(let b) = self { return b }; return nil }
}

public struct JSONError: Error, Equatable, Sendable, CustomStringConvertible {
    public let message: String
    public let offset: Int
    public var description: String { "\(message) at byte \(offset)" }
}

/// A strict RFC 8259 parser with a nesting limit. Rejects trailing commas, comments, NaN, leading zeros,
/// lone surrogates, invalid UTF-8 and trailing garbage.
public struct JSONParser {
    public static let defaultMaxDepth = 64

    public static func parse(_ bytes: [UInt8], maxDepth: Int = defaultMaxDepth) throws(JSONError) -> JSONValue {
        var p = JSONParser(bytes: bytes, maxDepth: maxDepth)
        p.skipWS()
        let v = try p.value(depth: 0)
        p.skipWS()
        if p.i != bytes.count { throw JSONError(message: "trailing data after JSON value", offset: p.i) }
        return v
    }

    public static func parse(_ text: String) throws(JSONError) -> JSONValue { try parse(Array(text.utf8)) }

    /// Reads a document whose top level should be an object member by member, without building it (a listing
    /// reads 100,000 metadata objects). `member` gets each name and must read its value with exactly one of
    /// `memberValue`, `memberInteger`, `memberString`. The same code as `parse` checks every byte, so this accepts
    /// exactly the documents `parse` accepts. Returns false for a valid document that is not an object.
    public static func visitObject(_ bytes: [UInt8], maxDepth: Int = defaultMaxDepth,
                                   _ member: (String, inout JSONParser) throws(JSONError) -> Void) throws(JSONError) -> Bool {
        var p = JSONParser(bytes: bytes, maxDepth: maxDepth)
        p.skipWS()
        guard p.i < bytes.count, bytes[p.i] == UInt8(ascii: "{") else {
            _ = try p.value(depth: 0)
            p.skipWS()
            if p.i != bytes.count { throw JSONError(message: "trailing data after JSON value", offset: p.i) }
            return false
        }
        // The members at depth 1, as `parse` would read them, handed out instead of collected.
        try p.forEachMember(depth: 1, member)
        p.skipWS()
        if p.i != bytes.count { throw JSONError(message: "trailing data after JSON value", offset: p.i) }
        return true
    }

    /// The current member's value (inside `visitObject`).
    public mutating func memberValue() throws(JSONError) -> JSONValue { try value(depth: 1) }

    /// The current member's value as `JSONValue.intValue` would give it, without building a string for a number.
    public mutating func memberInteger() throws(JSONError) -> Int64? {
        guard i < b.count, b[i] == UInt8(ascii: "-") || isDigit(b[i]) else { return try value(depth: 1).intValue }
        let start = i
        try scanNumber()
        return JSONParser.strictInteger(utf8: b[start..<i])
    }

    /// The current member's value as `JSONValue.stringValue` would give it.
    public mutating func memberString() throws(JSONError) -> String? {
        guard i < b.count, b[i] == UInt8(ascii: "\"") else { return try value(depth: 1).stringValue }
        return try string()
    }

    /// The current member's value (inside `visitObject`) when it is an array: each element parsed as `parse` would,
    /// with the byte range of its exact source text (no surrounding white space), so a caller can pass an element on
    /// byte for byte. Nil, with the value read and checked all the same, when the value is not an array.
    public mutating func memberArrayWithRanges() throws(JSONError) -> [(value: JSONValue, range: Range<Int>)]? {
        guard i < b.count, b[i] == UInt8(ascii: "[") else { _ = try value(depth: 1); return nil }
        // The same steps as `array(depth: 2)`, remembering where each element starts and ends.
        guard 2 <= maxDepth else { throw fail("nesting deeper than \(maxDepth)") }
        i += 1
        var items: [(value: JSONValue, range: Range<Int>)] = []
        skipWS()
        if i < b.count, b[i] == UInt8(ascii: "]") { i += 1; return items }
        while true {
            skipWS()
            let start = i
            let v = try value(depth: 2)
            items.append((v, start..<i))
            skipWS()
            guard i < b.count else { throw fail("unterminated array") }
            if b[i] == UInt8(ascii: ",") { i += 1; continue }
            if b[i] == UInt8(ascii: "]") { i += 1; return items }
            throw fail("expected ',' or ']'")
        }
    }

    /// An integer in plain decimal form (`-?[0-9]+`, no fraction or exponent) that fits in Int64.
    public static func strictInteger(_ t: String) -> Int64? { strictInteger(utf8: Substring(t).utf8[...]) }

    static func strictInteger<C: Collection<UInt8>>(utf8 digits: C) -> Int64? where C.SubSequence == C {
        var u = digits
        var neg = false
        if u.first == 0x2D { neg = true; u = u.dropFirst() }
        guard !u.isEmpty else { return nil }
        var v: Int64 = 0
        for c in u {
            guard c >= 0x30 && c <= 0x39 else { return nil }
            let (m, o1) = v.multipliedReportingOverflow(by: 10)
            let (a, o2) = neg ? m.subtractingReportingOverflow(Int64(c - 0x30)) : m.addingReportingOverflow(Int64(c - 0x30))
            if o1 || o2 { return nil }
            v = a
        }
        return v
    }

    private let b: [UInt8]
    private var i = 0
    private let maxDepth: Int
    private init(bytes: [UInt8], maxDepth: Int) { b = bytes; self.maxDepth = maxDepth }

    private func fail(_ m: String) -> JSONError { JSONError(message: m, offset: i) }

    private mutating func skipWS() {
        while i < b.count, b[i] == 0x20 || b[i] == 0x09 || b[i] == 0x0A || b[i] == 0x0D { i += 1 }
    }

    private mutating func value(depth: Int) throws(JSONError) -> JSONValue {
        guard i < b.count else { throw fail("unexpected end of JSON") }
        switch b[i] {
        case UInt8(ascii: "{"): return try object(depth: depth + 1)
        case UInt8(ascii: "["): return try array(depth: depth + 1)
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try number())
        default: throw fail("unexpected character")
        }
    }

    private mutating func literal(_ s: StaticString) throws(JSONError) {
        let n = s.utf8CodeUnitCount
        guard i + n <= b.count else { throw fail("invalid literal") }
        let ok = s.withUTF8Buffer { lit in (0..<n).allSatisfy { b[i + $0] == lit[$0] } }
        guard ok else { throw fail("invalid literal") }
        i += n
    }

    private mutating func object(depth: Int) throws(JSONError) -> JSONValue {
        var members: [(String, JSONValue)] = []
        try forEachMember(depth: depth) { (name, p) throws(JSONError) in members.append((name, try p.value(depth: depth))) }
        return .object(members)
    }

    /// Reads the object whose `{` is at `i`, handing each member's name to `member` with `i` at its value, which
    /// `member` must read. `object` and `visitObject` both go through here, so they accept the same documents.
    private mutating func forEachMember(depth: Int, _ member: (String, inout JSONParser) throws(JSONError) -> Void) throws(JSONError) {
        guard depth <= maxDepth else { throw fail("nesting deeper than \(maxDepth)") }
        i += 1
        skipWS()
        if i < b.count, b[i] == UInt8(ascii: "}") { i += 1; return }
        while true {
            skipWS()
            guard i < b.count, b[i] == UInt8(ascii: "\"") else { throw fail("expected member name") }
            let name = try string()
            skipWS()
            guard i < b.count, b[i] == UInt8(ascii: ":") else { throw fail("expected ':'") }
            i += 1
            skipWS()
            let start = i
            try member(name, &self)
            precondition(i > start, "a member's value was not read")
            skipWS()
            guard i < b.count else { throw fail("unterminated object") }
            if b[i] == UInt8(ascii: ",") { i += 1; continue }
            if b[i] == UInt8(ascii: "}") { i += 1; return }
            throw fail("expected ',' or '}'")
        }
    }

    private mutating func array(depth: Int) throws(JSONError) -> JSONValue {
        guard depth <= maxDepth else { throw fail("nesting deeper than \(maxDepth)") }
        i += 1
        var items: [JSONValue] = []
        skipWS()
        if i < b.count, b[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
        while true {
            skipWS()
            items.append(try value(depth: depth))
            skipWS()
            guard i < b.count else { throw fail("unterminated array") }
            if b[i] == UInt8(ascii: ",") { i += 1; continue }
            if b[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
            throw fail("expected ',' or ']'")
        }
    }

    private mutating func number() throws(JSONError) -> String {
        let start = i
        try scanNumber()
        return String(decoding: b[start..<i], as: UTF8.self)
    }

    /// Checks the RFC 8259 number grammar from `i` and moves past the number.
    private mutating func scanNumber() throws(JSONError) {
        if b[i] == UInt8(ascii: "-") { i += 1 }
        guard i < b.count, isDigit(b[i]) else { throw fail("invalid number") }
        if b[i] == UInt8(ascii: "0") { i += 1 } else { while i < b.count, isDigit(b[i]) { i += 1 } }
        if i < b.count, b[i] == UInt8(ascii: ".") {
            i += 1
            guard i < b.count, isDigit(b[i]) else { throw fail("invalid number fraction") }
            while i < b.count, isDigit(b[i]) { i += 1 }
        }
        if i < b.count, b[i] == UInt8(ascii: "e") || b[i] == UInt8(ascii: "E") {
            i += 1
            if i < b.count, b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") { i += 1 }
            guard i < b.count, isDigit(b[i]) else { throw fail("invalid number exponent") }
            while i < b.count, isDigit(b[i]) { i += 1 }
        }
    }

    private func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }

    private mutating func hex4() throws(JSONError) -> UInt32 {
        guard i + 4 <= b.count else { throw fail("short \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = b[i]
            let d: UInt32
            switch c {
            case 0x30...0x39: d = UInt32(c - 0x30)
            case 0x41...0x46: d = UInt32(c - 0x41 + 10)
            case 0x61...0x66: d = UInt32(c - 0x61 + 10)
            default: throw fail("invalid \\u escape")
            }
            v = v << 4 | d
            i += 1
        }
        return v
    }

    private mutating func string() throws(JSONError) -> String {
        i += 1
        // Fast path: no escapes (most strings). Scan to the closing quote and validate the run once.
        let start = i
        var j = i
        var ascii = true
        while j < b.count {
            let c = b[j]
            if c == UInt8(ascii: "\"") {
                // ASCII is valid UTF-8 as it stands: the validating initialiser (generic, slower) only for the rest.
                let s = ascii ? String(decoding: b[start..<j], as: UTF8.self) : String(validating: b[start..<j], as: UTF8.self)
                guard let s else { throw fail("invalid UTF-8 in string") }
                i = j + 1
                return s
            }
            if c == UInt8(ascii: "\\") || c < 0x20 { break }
            if c >= 0x80 { ascii = false }
            j += 1
        }
        var out: [UInt8] = Array(b[start..<j])
        i = j
        while true {
            guard i < b.count else { throw fail("unterminated string") }
            let c = b[i]
            if c == UInt8(ascii: "\"") { i += 1; break }
            if c < 0x20 { throw fail("control character in string") }
            if c == UInt8(ascii: "\\") {
                i += 1
                guard i < b.count else { throw fail("unterminated escape") }
                let e = b[i]; i += 1
                switch e {
                case UInt8(ascii: "\""): out.append(0x22)
                case UInt8(ascii: "\\"): out.append(0x5C)
                case UInt8(ascii: "/"): out.append(0x2F)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var cp = try hex4()
                    if cp >= 0xD800 && cp <= 0xDBFF {
                        guard i + 2 <= b.count, b[i] == 0x5C, b[i + 1] == UInt8(ascii: "u") else { throw fail("lone surrogate") }
                        i += 2
                        let lo = try hex4()
                        guard lo >= 0xDC00 && lo <= 0xDFFF else { throw fail("invalid surrogate pair") }
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00)
                    } else if cp >= 0xDC00 && cp <= 0xDFFF {
                        throw fail("lone surrogate")
                    }
                    out.append(contentsOf: Array(String(Unicode.Scalar(cp)!).utf8))
                default: throw fail("invalid escape")
                }
                continue
            }
            out.append(c)
            i += 1
        }
        guard let s = String(validating: out, as: UTF8.self) else { throw fail("invalid UTF-8 in string") }
        return s
    }
}

/// Writes JSON text. Output is ASCII-safe for control characters and always valid UTF-8.
public enum JSONWriter {
    public static func quote(_ s: String) -> String { "\"" + jsonEscaped(s) + "\"" }

    /// Appends `s` as a JSON string literal (the same escaping as `quote`), without intermediate strings.
    public static func appendQuoted(_ s: String, to out: inout [UInt8]) { appendJSONString(s, to: &out) }

    public static func write(_ v: JSONValue) -> String {
        switch v {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .number(let t): return t
        case .string(let s): return quote(s)
        case .array(let a): return "[" + a.map(write).joined(separator: ",") + "]"
        case .object(let m): return "{" + m.map { quote($0.0) + ":" + write($0.1) }.joined(separator: ",") + "}"
        }
    }
}
