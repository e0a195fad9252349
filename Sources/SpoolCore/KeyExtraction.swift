/// Finds the idempotency key in a webhook body: the first of several dotted paths (which ones is the ingress's
/// configuration: JSON2Video's are `movie.project`, then `project`). Form-encoded bodies are searched for the
/// field named by the last component of each path.
public struct KeyExtractor: Sendable {
    public enum Failure: Error, Equatable, Sendable, CustomStringConvertible {
        /// The body is not valid JSON (or form data); the ingress answers 400.
        case malformedBody(String)
        /// No path held a usable key; the ingress answers 422 naming the paths tried.
        case noKey(tried: [String])
        /// A path held something other than a string or an integer (or an unusable key).
        case badKey(path: String, reason: String)

        public var description: String {
            switch self {
            case .malformedBody(let m): return m
            case .noKey(let t): return "no key found; tried " + t.joined(separator: ", ")
            case let .badKey(p, r): return "\(p): \(r)"
            }
        }
    }

    public let paths: [[String]]
    public let pathNames: [String]

    public init(paths: [String]) {
        pathNames = paths
        self.paths = paths.map { $0.split(separator: ".", omittingEmptySubsequences: false).map(String.init) }
    }

    /// True for `application/x-www-form-urlencoded` (parameters ignored, case-insensitive).
    public static func isFormContentType(_ contentType: String?) -> Bool {
        guard let ct = contentType else { return false }
        let base = ct.split(separator: ";", maxSplits: 1).first.map { $0.trimmingSpaces } ?? ""
        return base.lowercased() == "application/x-www-form-urlencoded"
    }

    /// JSON whatever the Content-Type says, except form data under the form Content-Type. A body that starts
    /// with `{` or `[` is JSON even then: `curl -d @file.json` labels JSON as form data, and form data never
    /// starts with a brace.
    public func extract(body: [UInt8], contentType: String?) throws(Failure) -> SpoolKey {
        if KeyExtractor.isFormContentType(contentType) {
            let first = body.first { $0 != 0x20 && $0 != 0x09 && $0 != 0x0A && $0 != 0x0D }
            if first != UInt8(ascii: "{") && first != UInt8(ascii: "[") { return try extractForm(body) }
        }
        return try extractJSON(body)
    }

    public func extractJSON(_ body: [UInt8]) throws(Failure) -> SpoolKey {
        let doc: JSONValue
        do { doc = try JSONParser.parse(body) } catch { throw .malformedBody("invalid JSON: \(error)") }
        for (i, path) in paths.enumerated() {
            var cur: JSONValue? = doc
            for component in path {
                guard let c = cur else { break }
                let m = c.members(named: component)
                if m.count > 1 { throw .malformedBody("ambiguous JSON: member \"\(component)\" appears \(m.count) times") }
                cur = m.first
            }
            guard let v = cur else { continue }
            let text: String
            switch v {
            case .string(let s): text = s
            case .number(let t):
                guard let n = JSONParser.strictInteger(t) else { throw .badKey(path: pathNames[i], reason: "key is a number but not an integer") }
                text = String(n)
            case .null: continue
            default: throw .badKey(path: pathNames[i], reason: "key must be a string or an integer")
            }
            do { return try SpoolKey(text) } catch { throw .badKey(path: pathNames[i], reason: "\(error)") }
        }
        throw .noKey(tried: pathNames)
    }

    public func extractForm(_ body: [UInt8]) throws(Failure) -> SpoolKey {
        let fields = KeyExtractor.parseForm(body)
        for (i, path) in paths.enumerated() {
            guard let name = path.last else { continue }
            // Names compare byte for byte (by Unicode scalars), never by canonical equivalence.
            let values = fields.filter { $0.0.unicodeScalars.elementsEqual(name.unicodeScalars) }.map { $0.1 }
            if values.count > 1 { throw .malformedBody("ambiguous form: field \"\(name)\" appears \(values.count) times") }
            guard let v = values.first else { continue }
            do { return try SpoolKey(bytes: v) } catch { throw .badKey(path: pathNames[i], reason: "\(error)") }
        }
        throw .noKey(tried: pathNames)
    }

    /// Parses `application/x-www-form-urlencoded` as the WHATWG URL standard does: `+` is a space, `%XX` with two hex
    /// digits is that byte, and a `%` not followed by two hex digits stays a literal `%` (a sender cannot fix a stray
    /// `%` in a field nobody reads, so it must not refuse the whole webhook).
    public static func parseForm(_ body: [UInt8]) -> [(String, [UInt8])] {
        var out: [(String, [UInt8])] = []
        for pair in body.split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: true) {
            let kv = pair.split(separator: UInt8(ascii: "="), maxSplits: 1, omittingEmptySubsequences: false)
            let name = decode(kv[0])
            let value = kv.count > 1 ? decode(kv[1]) : []
            out.append((String(decoding: name, as: UTF8.self), value))
        }
        return out
    }

    /// Decodes one `application/x-www-form-urlencoded` component (also used for query parameters).
    public static func decodeFormComponent(_ s: [UInt8]) -> [UInt8] { decode(s[...]) }

    static func decode(_ s: ArraySlice<UInt8>) -> [UInt8] {
        var out: [UInt8] = []
        var i = s.startIndex
        while i < s.endIndex {
            let c = s[i]
            if c == UInt8(ascii: "+") { out.append(0x20); i += 1; continue }
            if c == UInt8(ascii: "%"), i + 2 < s.endIndex, let h = hexValue(s[i + 1]), let l = hexValue(s[i + 2]) {
                out.append(h << 4 | l)
                i += 3
                continue
            }
            out.append(c)
            i += 1
        }
        return out
    }

    static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: return c - 0x30
        case 0x41...0x46: return c - 0x41 + 10
        case 0x61...0x66: return c - 0x61 + 10
        default: return nil
        }
    }
}

extension Substring {
    var trimmingSpaces: String {
        var s = self[...]
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return String(s)
    }
}
