/// A strict parser of the TOML subset spool's configuration uses (TOML 1.0: tables, arrays of tables, dotted and
/// quoted keys, basic and literal strings, decimal integers, booleans, arrays, inline tables, comments). What is
/// TOML but not in the subset (floats, dates, hexadecimal integers, multi-line strings) is refused by name, never
/// misread. Every error carries the line and column (1-based, columns in bytes) where it was found.
///
/// Pure: bytes in, a tree out; bounded input size and nesting depth (a configuration file is hostile until checked).
public enum TOML {
    public static let maxBytes = 1 << 20
    public static let maxDepth = 32

    public static func parse(_ text: String) throws(TOMLError) -> TOMLTable { try parse(Array(text.utf8)) }

    public static func parse(_ bytes: [UInt8]) throws(TOMLError) -> TOMLTable {
        guard bytes.count <= maxBytes else { throw TOMLError(line: 1, column: 1, message: "file larger than \(maxBytes) bytes") }
        var p = TOMLParser(bytes)
        return try p.document()
    }
}

public struct TOMLPosition: Sendable, Equatable, CustomStringConvertible {
    public var line: Int, column: Int
    public var description: String { "\(line):\(column)" }
}

public struct TOMLError: Error, Sendable, Equatable, CustomStringConvertible {
    /// TOML 1.0 that is outside the subset: the file may be valid TOML, spool refuses it by name.
    public enum Unsupported: Sendable, Equatable {
        case multilineString, float, dateTime, nonDecimalInteger
    }
    public var line: Int, column: Int
    public var message: String
    /// Set when the input uses a TOML feature spool does not read (else the input is not valid TOML 1.0).
    public var unsupported: Unsupported? = nil
    public var description: String { "\(line):\(column): \(message)" }
}

/// A value with the position where it starts (and, for a table's member, where its key starts).
public struct TOMLNode: Sendable, Equatable {
    public var value: TOMLValue
    public var position: TOMLPosition
    public var keyPosition: TOMLPosition?
    public init(value: TOMLValue, position: TOMLPosition, keyPosition: TOMLPosition? = nil) {
        self.value = value; self.position = position; self.keyPosition = keyPosition
    }
}

public indirect enum TOMLValue: Sendable, Equatable {
    case string(String)
    case integer(Int64)
    case bool(Bool)
    case array([TOMLNode])
    case table(TOMLTable)

    /// The TOML type's name, for "must be a string, not an integer".
    public var typeName: String {
        switch self {
        case .string: "a string"
        case .integer: "an integer"
        case .bool: "a boolean"
        case .array: "an array"
        case .table: "a table"
        }
    }
}

/// A table: its members in the order they were defined.
public struct TOMLTable: Sendable, Equatable {
    public var entries: [(key: String, node: TOMLNode)] = []
    public var position: TOMLPosition
    public init(position: TOMLPosition) { self.position = position }

    public subscript(key: String) -> TOMLNode? {
        // Keys compare byte for byte (Unicode scalars), never by canonical equivalence.
        entries.first { $0.key.unicodeScalars.elementsEqual(key.unicodeScalars) }?.node
    }

    public static func == (a: TOMLTable, b: TOMLTable) -> Bool {
        a.entries.count == b.entries.count && zip(a.entries, b.entries).allSatisfy { $0.key == $1.key && $0.node == $1.node }
    }
}

/// The tree while it is built: tables stay open for later `[headers]` and dotted keys, with what TOML allows
/// to be extended recorded per table.
final class Builder {
    enum Entry { case value(TOMLNode), table(Builder), tables([Builder], TOMLPosition) }
    var entries: [(String, Entry)] = []
    let position: TOMLPosition
    /// Defined by a `[header]` (a second header for it is an error).
    var defined = false
    /// Created by a dotted key inside a table body or by `[a.b]` for `a`: a header may still define it later,
    /// but only if no dotted key made it.
    var madeByDottedKey = false
    /// An inline table or a value's table: closed for good.
    var sealed = false
    init(_ position: TOMLPosition) { self.position = position }

    func index(_ key: String) -> Int? { entries.firstIndex { $0.0.unicodeScalars.elementsEqual(key.unicodeScalars) } }

    func build() -> TOMLTable {
        var t = TOMLTable(position: position)
        for (k, e) in entries {
            switch e {
            case .value(let n): t.entries.append((k, n))
            case .table(let b): t.entries.append((k, TOMLNode(value: .table(b.build()), position: b.position)))
            case .tables(let bs, let pos):
                t.entries.append((k, TOMLNode(value: .array(bs.map { TOMLNode(value: .table($0.build()), position: $0.position) }), position: pos)))
            }
        }
        return t
    }
}

struct TOMLParser {
    let b: [UInt8]
    var i = 0
    var line = 1
    var lineStart = 0

    init(_ bytes: [UInt8]) { b = bytes }

    var position: TOMLPosition { TOMLPosition(line: line, column: i - lineStart + 1) }
    func fail(_ message: String, at p: TOMLPosition? = nil, unsupported: TOMLError.Unsupported? = nil) -> TOMLError {
        let at = p ?? position
        return TOMLError(line: at.line, column: at.column, message: message, unsupported: unsupported)
    }
    var peek: UInt8? { i < b.count ? b[i] : nil }
    func peek(_ k: Int) -> UInt8? { i + k < b.count ? b[i + k] : nil }

    mutating func document() throws(TOMLError) -> TOMLTable {
        if b.starts(with: [0xEF, 0xBB, 0xBF]) { i = 3; lineStart = 3 }
        let root = Builder(TOMLPosition(line: 1, column: 1))
        var current = root
        while i < b.count {
            skipSpaces()
            guard let c = peek else { break }
            switch c {
            case 0x0A, 0x0D, 0x23: try endOfLine()
            case 0x5B:
                let at = position
                if peek(1) == 0x5B {
                    i += 2
                    let path = try keyPath(closing: true)
                    guard peek == 0x5D, peek(1) == 0x5D else { throw fail("expected ']]' to close the array of tables header") }
                    i += 2
                    current = try arrayTable(root, path, at)
                } else {
                    i += 1
                    let path = try keyPath(closing: true)
                    guard peek == 0x5D else { throw fail("expected ']' to close the table header") }
                    i += 1
                    current = try table(root, path, at)
                }
                try endOfLine()
            default:
                try keyValue(into: current, depth: 1)
                try endOfLine()
            }
        }
        return root.build()
    }

    // MARK: lines, whitespace, comments

    mutating func skipSpaces() { while let c = peek, c == 0x20 || c == 0x09 { i += 1 } }

    /// Optional spaces, an optional comment, then a newline or the end of the file.
    mutating func endOfLine() throws(TOMLError) {
        skipSpaces()
        if peek == 0x23 { try comment() }
        guard let c = peek else { return }
        if c == 0x0A { newline(1); return }
        if c == 0x0D, peek(1) == 0x0A { newline(2); return }
        throw fail(c == 0x0D ? "a carriage return must be followed by a line feed" : "expected the end of the line, found \(describe(c))")
    }

    mutating func newline(_ n: Int) { i += n; line += 1; lineStart = i }

    mutating func comment() throws(TOMLError) {
        let at = position
        i += 1
        let start = i
        while let c = peek, c != 0x0A {
            if c == 0x0D, peek(1) == 0x0A { break }
            if (c < 0x20 && c != 0x09) || c == 0x7F { throw fail("control character \(describe(c)) in a comment") }
            i += 1
        }
        // A comment is text too: bytes that are not UTF-8 (or encode a surrogate) are refused (found by toml-test).
        if b[start..<i].contains(where: { $0 >= 0x80 }), String(validating: b[start..<i], as: UTF8.self) == nil {
            throw fail("a comment that is not valid UTF-8", at: at)
        }
    }

    /// Spaces, newlines and comments (inside arrays).
    mutating func skipBlank() throws(TOMLError) {
        while true {
            skipSpaces()
            guard let c = peek else { return }
            if c == 0x23 { try comment(); continue }
            if c == 0x0A { newline(1); continue }
            if c == 0x0D, peek(1) == 0x0A { newline(2); continue }
            return
        }
    }

    func describe(_ c: UInt8) -> String {
        c >= 0x21 && c < 0x7F ? "'\(Character(UnicodeScalar(c)))'" : "byte 0x\(String(c, radix: 16, uppercase: true))"
    }

    // MARK: keys

    /// `a.b."c d".'e'`, with spaces around the dots.
    mutating func keyPath(closing: Bool) throws(TOMLError) -> [(String, TOMLPosition)] {
        var path: [(String, TOMLPosition)] = []
        while true {
            skipSpaces()
            let at = position
            path.append((try simpleKey(), at))
            guard path.count <= TOML.maxDepth else { throw fail("keys nested deeper than \(TOML.maxDepth)") }
            skipSpaces()
            if peek == 0x2E { i += 1; continue }
            return path
        }
    }

    mutating func simpleKey() throws(TOMLError) -> String {
        guard let c = peek else { throw fail("expected a key, found the end of the file") }
        if c == 0x22 {
            if peek(1) == 0x22, peek(2) == 0x22 { throw fail("a multi-line string cannot be a key") }
            return try basicString()
        }
        if c == 0x27 {
            if peek(1) == 0x27, peek(2) == 0x27 { throw fail("a multi-line string cannot be a key") }
            return try literalString()
        }
        let start = i
        while let c = peek, Self.isBare(c) { i += 1 }
        guard i > start else { throw fail("expected a key, found \(describe(c))") }
        return String(decoding: b[start..<i], as: UTF8.self)
    }

    static func isBare(_ c: UInt8) -> Bool {
        (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || (c >= 0x30 && c <= 0x39) || c == 0x5F || c == 0x2D
    }

    // MARK: tables

    /// Walks (creating) the tables of `path` below `root` for a header: every step but the last may be an implicit
    /// table or the last element of an array of tables.
    func descend(_ root: Builder, _ path: ArraySlice<(String, TOMLPosition)>) throws(TOMLError) -> Builder {
        var t = root
        for (k, at) in path {
            if let idx = t.index(k) {
                switch t.entries[idx].1 {
                case .table(let sub):
                    if sub.sealed { throw fail("'\(k)' is an inline table and cannot be extended", at: at) }
                    t = sub
                case .tables(let subs, _): t = subs.last!
                case .value: throw fail("'\(k)' is already a value, not a table", at: at)
                }
            } else {
                let sub = Builder(at)
                t.entries.append((k, .table(sub)))
                t = sub
            }
        }
        return t
    }

    func table(_ root: Builder, _ path: [(String, TOMLPosition)], _ at: TOMLPosition) throws(TOMLError) -> Builder {
        let parent = try descend(root, path.dropLast())
        let (k, kat) = path.last!
        if let idx = parent.index(k) {
            guard case .table(let existing) = parent.entries[idx].1 else {
                throw fail("'\(path.map(\.0).joined(separator: "."))' is defined twice", at: kat)
            }
            if existing.defined || existing.madeByDottedKey || existing.sealed {
                throw fail("table [\(path.map(\.0).joined(separator: "."))] is defined twice", at: at)
            }
            existing.defined = true
            return existing
        }
        let t = Builder(at)
        t.defined = true
        parent.entries.append((k, .table(t)))
        return t
    }

    func arrayTable(_ root: Builder, _ path: [(String, TOMLPosition)], _ at: TOMLPosition) throws(TOMLError) -> Builder {
        let parent = try descend(root, path.dropLast())
        let (k, kat) = path.last!
        let t = Builder(at)
        t.defined = true
        if let idx = parent.index(k) {
            guard case .tables(var list, let pos) = parent.entries[idx].1 else {
                throw fail("'\(path.map(\.0).joined(separator: "."))' is already defined and is not an array of tables", at: kat)
            }
            list.append(t)
            parent.entries[idx].1 = .tables(list, pos)
        } else {
            parent.entries.append((k, .tables([t], at)))
        }
        return t
    }

    /// `key = value` into `table` (dotted keys create tables below it).
    mutating func keyValue(into table: Builder, depth: Int) throws(TOMLError) {
        let path = try keyPath(closing: false)
        guard peek == 0x3D else { throw fail(peek == nil ? "expected '=' after the key" : "expected '=' after the key, found \(describe(peek!))") }
        i += 1
        skipSpaces()
        var t = table
        for (k, at) in path.dropLast() {
            if let idx = t.index(k) {
                guard case .table(let sub) = t.entries[idx].1, sub.madeByDottedKey, !sub.sealed else {
                    throw fail("'\(k)' is already defined and cannot be extended by a dotted key", at: at)
                }
                t = sub
            } else {
                let sub = Builder(at)
                sub.madeByDottedKey = true
                t.entries.append((k, .table(sub)))
                t = sub
            }
        }
        let (k, kat) = path.last!
        if t.index(k) != nil { throw fail("key '\(path.map(\.0).joined(separator: "."))' is defined twice", at: kat) }
        var node = try value(depth: depth)
        node.keyPosition = path.first!.1
        if case .table(let inline) = node.value {
            // An inline table is complete: nothing may add to it later.
            let sealed = Builder(node.position)
            sealed.sealed = true
            sealed.entries = inline.entries.map { ($0.key, Builder.Entry.value($0.node)) }
            t.entries.append((k, .table(sealed)))
        } else {
            t.entries.append((k, .value(node)))
        }
    }

    // MARK: values

    mutating func value(depth: Int) throws(TOMLError) -> TOMLNode {
        guard depth <= TOML.maxDepth else { throw fail("values nested deeper than \(TOML.maxDepth)") }
        let at = position
        guard let c = peek else { throw fail("expected a value, found the end of the file") }
        switch c {
        case 0x22:
            if peek(1) == 0x22, peek(2) == 0x22 { throw fail("multi-line strings are not supported here: write the string on one line", unsupported: .multilineString) }
            return TOMLNode(value: .string(try basicString()), position: at)
        case 0x27:
            if peek(1) == 0x27, peek(2) == 0x27 { throw fail("multi-line strings are not supported here: write the string on one line", unsupported: .multilineString) }
            return TOMLNode(value: .string(try literalString()), position: at)
        case 0x5B: return TOMLNode(value: .array(try array(depth: depth)), position: at)
        case 0x7B: return TOMLNode(value: .table(try inlineTable(depth: depth)), position: at)
        case 0x74, 0x66:
            if b[i...].starts(with: Array("true".utf8)), !(peek(4).map(Self.isBare) ?? false) { i += 4; return TOMLNode(value: .bool(true), position: at) }
            if b[i...].starts(with: Array("false".utf8)), !(peek(5).map(Self.isBare) ?? false) { i += 5; return TOMLNode(value: .bool(false), position: at) }
            throw fail("expected a value (a string must be quoted)")
        default:
            return TOMLNode(value: .integer(try integer()), position: at)
        }
    }

    mutating func integer() throws(TOMLError) -> Int64 {
        let start = i
        var negative = false
        if peek == 0x2B || peek == 0x2D { negative = peek == 0x2D; i += 1 }
        guard let first = peek, first >= 0x30 && first <= 0x39 else {
            if let c = peek, c == 0x69 || c == 0x6E { throw fail("inf and nan are floats: not supported here", unsupported: .float) }
            throw fail(peek == nil ? "expected a value" : "expected a value, found \(describe(peek!)) (a string must be quoted)")
        }
        if first == 0x30, let n = peek(1), n == 0x78 || n == 0x6F || n == 0x62 {
            throw fail("hexadecimal, octal and binary integers are not supported here: write it in decimal", unsupported: .nonDecimalInteger)
        }
        var v: Int64 = 0
        var digits = 0
        var lastUnderscore = false
        while let c = peek {
            if c == 0x5F {
                guard digits > 0, !lastUnderscore, let n = peek(1), n >= 0x30 && n <= 0x39 else { throw fail("an underscore must be between two digits") }
                lastUnderscore = true; i += 1; continue
            }
            guard c >= 0x30 && c <= 0x39 else { break }
            lastUnderscore = false
            if digits == 1 && v == 0 {
                // `07:32:00` and `0001-01-01` are times and dates, not integers with a leading zero.
                var j = i
                while j < b.count, b[j] >= 0x30 && b[j] <= 0x39 { j += 1 }
                if !negative, j < b.count, b[j] == 0x3A || b[j] == 0x2D { throw fail("dates and times are not supported here", unsupported: .dateTime) }
                throw fail("an integer must not have a leading zero", at: TOMLPosition(line: line, column: start - lineStart + 1))
            }
            let d = Int64(c - 0x30)
            let (m, o1) = v.multipliedReportingOverflow(by: 10)
            let (s, o2) = negative ? m.subtractingReportingOverflow(d) : m.addingReportingOverflow(d)
            if o1 || o2 { throw fail("integer out of range", at: TOMLPosition(line: line, column: start - lineStart + 1)) }
            v = s; digits += 1; i += 1
        }
        if let c = peek, c == 0x2E || c == 0x65 || c == 0x45 { throw fail("floats are not supported here", unsupported: .float) }
        if let c = peek, c == 0x2D || c == 0x3A || c == 0x54 { throw fail("dates and times are not supported here", unsupported: .dateTime) }
        if let c = peek, Self.isBare(c) { throw fail("expected a value, found \(describe(c)) after a number (a string must be quoted)") }
        return v
    }

    mutating func array(depth: Int) throws(TOMLError) -> [TOMLNode] {
        i += 1
        var out: [TOMLNode] = []
        while true {
            try skipBlank()
            guard let c = peek else { throw fail("unterminated array: expected ']'") }
            if c == 0x5D { i += 1; return out }
            out.append(try value(depth: depth + 1))
            try skipBlank()
            guard let d = peek else { throw fail("unterminated array: expected ']'") }
            if d == 0x2C { i += 1; continue }
            if d == 0x5D { i += 1; return out }
            throw fail("expected ',' or ']' in an array, found \(describe(d))")
        }
    }

    mutating func inlineTable(depth: Int) throws(TOMLError) -> TOMLTable {
        let at = position
        i += 1
        let t = Builder(at)
        skipSpaces()
        if peek == 0x7D { i += 1; return t.build() }
        while true {
            skipSpaces()
            if peek == 0x0A || peek == 0x0D { throw fail("an inline table must be on one line") }
            try keyValue(into: t, depth: depth + 1)
            skipSpaces()
            guard let c = peek else { throw fail("unterminated inline table: expected '}'") }
            if c == 0x2C {
                i += 1
                skipSpaces()
                if peek == 0x7D { throw fail("no trailing comma in an inline table") }
                continue
            }
            if c == 0x7D { i += 1; return t.build() }
            throw fail(c == 0x0A || c == 0x0D ? "an inline table must be on one line" : "expected ',' or '}' in an inline table, found \(describe(c))")
        }
    }

    // MARK: strings

    /// A basic string ("..."), escapes decoded, validated as UTF-8, no raw control characters.
    mutating func basicString() throws(TOMLError) -> String {
        i += 1
        var out: [UInt8] = []
        while true {
            guard let c = peek else { throw fail("unterminated string") }
            if c == 0x22 { i += 1; break }
            if c == 0x0A || c == 0x0D { throw fail("unterminated string: a basic string ends on its line") }
            if c == 0x5C {
                let escAt = position
                i += 1
                guard let e = peek else { throw fail("unterminated string") }
                i += 1
                switch e {
                case 0x62: out.append(0x08)
                case 0x74: out.append(0x09)
                case 0x6E: out.append(0x0A)
                case 0x66: out.append(0x0C)
                case 0x72: out.append(0x0D)
                case 0x22: out.append(0x22)
                case 0x5C: out.append(0x5C)
                case 0x75, 0x55:
                    let n = e == 0x75 ? 4 : 8
                    guard i + n <= b.count else { throw fail("truncated \\\(e == 0x75 ? "u" : "U") escape", at: escAt) }
                    var v: UInt32 = 0
                    for k in 0..<n {
                        guard let h = Self.hex(b[i + k]) else { throw fail("invalid hexadecimal digit in a \\u escape", at: escAt) }
                        v = v << 4 | UInt32(h)
                    }
                    i += n
                    guard let scalar = Unicode.Scalar(v) else { throw fail("\\u escape is not a Unicode scalar value", at: escAt) }
                    out += Array(String(Character(scalar)).utf8)
                default: throw fail("invalid escape sequence \\\(Character(UnicodeScalar(e)))", at: escAt)
                }
                continue
            }
            if (c < 0x20 && c != 0x09) || c == 0x7F { throw fail("control character \(describe(c)) in a string: escape it") }
            out.append(c); i += 1
        }
        guard let s = String(validating: out, as: UTF8.self) else { throw fail("string is not valid UTF-8") }
        return s
    }

    /// A literal string ('...'): no escapes.
    mutating func literalString() throws(TOMLError) -> String {
        i += 1
        let start = i
        while true {
            guard let c = peek else { throw fail("unterminated string") }
            if c == 0x27 { break }
            if c == 0x0A || c == 0x0D { throw fail("unterminated string: a literal string ends on its line") }
            if (c < 0x20 && c != 0x09) || c == 0x7F { throw fail("control character \(describe(c)) in a string") }
            i += 1
        }
        let bytes = Array(b[start..<i])
        i += 1
        guard let s = String(validating: bytes, as: UTF8.self) else { throw fail("string is not valid UTF-8") }
        return s
    }

    static func hex(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: c - 0x30
        case 0x41...0x46: c - 0x41 + 10
        case 0x61...0x66: c - 0x61 + 10
        default: nil
        }
    }
}
