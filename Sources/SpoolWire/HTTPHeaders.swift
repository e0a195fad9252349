/// One header or trailer field, as received (name case preserved, value OWS-trimmed).
public struct HTTPField: Sendable, Hashable {
    public var name: String
    public var value: String
    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }
}

/// An ordered list of fields with ASCII case-insensitive lookup; order and duplicates are kept
/// because framing decisions (and signature checks upstream) depend on exactly what was sent.
public struct HTTPHeaders: Sendable, Hashable, Sequence, ExpressibleByDictionaryLiteral {
    public private(set) var fields: [HTTPField]

    public init() { fields = [] }
    public init(_ fields: [HTTPField]) { self.fields = fields }
    public init(_ pairs: [(String, String)]) { fields = pairs.map { HTTPField(name: $0.0, value: $0.1) } }
    public init(dictionaryLiteral elements: (String, String)...) { self.init(elements) }

    public var count: Int { fields.count }
    public var isEmpty: Bool { fields.isEmpty }
    public func makeIterator() -> IndexingIterator<[HTTPField]> { fields.makeIterator() }

    public mutating func add(name: String, value: String) { fields.append(HTTPField(name: name, value: value)) }

    /// Replaces every field with this name by a single one.
    public mutating func replaceOrAdd(name: String, value: String) {
        remove(name: name)
        add(name: name, value: value)
    }

    public mutating func remove(name: String) { fields.removeAll { Self.sameName($0.name, name) } }

    /// The first value for `name` (case-insensitive), or nil.
    public subscript(_ name: String) -> String? { fields.first { Self.sameName($0.name, name) }?.value }

    /// Every value for `name`, in order.
    public func values(for name: String) -> [String] { fields.filter { Self.sameName($0.name, name) }.map(\.value) }

    public func contains(_ name: String) -> Bool { fields.contains { Self.sameName($0.name, name) } }

    /// ASCII case-insensitive comparison (field names are ASCII tokens).
    public static func sameName(_ a: String, _ b: String) -> Bool {
        let x = a.utf8, y = b.utf8
        guard x.count == y.count else { return false }
        for (p, q) in zip(x, y) where ByteClass.lower(p) != ByteClass.lower(q) { return false }
        return true
    }
}

extension HTTPField {
    /// Why a field line was refused.
    public enum LineError: Error, Sendable, Hashable {
        case obsoleteLineFolding, noColon, emptyName, invalidName, controlCharacterInValue
    }

    /// field-line = field-name ":" OWS field-value OWS (RFC 9112 5): a token name with nothing before the colon,
    /// no obs-fold, no control bytes in the value. The one reading of a field line for HTTP requests, HTTP
    /// responses and NATS headers.
    public static func parse(_ line: ArraySlice<UInt8>) -> Result<HTTPField, LineError> {
        if let first = line.first, ByteClass.isWhitespace(first) { return .failure(.obsoleteLineFolding) }
        guard let colon = line.firstIndex(of: ByteClass.colon) else { return .failure(.noColon) }
        let name = line[..<colon]
        guard !name.isEmpty else { return .failure(.emptyName) }
        guard name.allSatisfy(ByteClass.isTChar) else { return .failure(.invalidName) }
        let value = ByteClass.trimOWS(line[(colon + 1)...])
        guard value.allSatisfy(ByteClass.isFieldValueByte) else { return .failure(.controlCharacterInValue) }
        return .success(HTTPField(name: String(decoding: name, as: UTF8.self), value: String(decoding: value, as: UTF8.self)))
    }

    /// True when `name` is a token and `value` has no CR, LF, NUL or other control byte: checked before any field
    /// from elsewhere (a key, a handler, the command line) is written into a head, so none can add a line.
    public static func isValid(name: String, value: String) -> Bool {
        !name.isEmpty && name.utf8.allSatisfy(ByteClass.isTChar) && value.utf8.allSatisfy(ByteClass.isFieldValueByte)
    }
}
