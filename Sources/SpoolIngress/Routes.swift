import SpoolConfig
import SpoolCore
import SpoolSignatures
import SpoolWire

/// One sender's way in (`[[route]]` of the configuration file): its path, where its key is, how it authenticates, and
/// the queues it feeds. Without routes, `IngressConfiguration`'s own fields make the one route into the spool's queue.
public struct IngressRoute: Sendable {
    public var path: String
    public var keyPaths = IngressConfiguration.json2videoKeyPaths
    public var keyHeader: String?
    public var keyHeaderAlias: String?
    public var token: String?
    public var signature: SignatureVerifier?
    /// The queues the route feeds, each with the conditions a webhook must meet to enter it. Empty: the queue of the
    /// `Spool` the ingress writes to, unconditionally (a spool without configuration).
    public var queues: [RouteQueue] = []

    public init(path: String) { self.path = path }
}

/// A queue of a route and its `match` conditions (all must hold; none: every webhook of the route).
public struct RouteQueue: Sendable, Equatable {
    public var name: String
    public var match: [MatchCondition]
    public init(name: String, match: [MatchCondition] = []) { self.name = name; self.match = match }
}

/// The queue a webhook goes to when its route has queues and none of them takes it: stored, counted, never dropped.
public let unroutedQueue = "unrouted"

/// What the `match` conditions look at, read once per request: the body as JSON (or form data) and the headers.
/// `spool replay --match` evaluates stored items with the same rules.
public struct MatchSubject {
    let json: JSONValue?
    let form: [(String, [UInt8])]?
    let headers: HTTPHeaders

    public init(body: [UInt8], contentType: String?, headers: HTTPHeaders) {
        self.headers = headers
        let first = body.first { $0 != 0x20 && $0 != 0x09 && $0 != 0x0A && $0 != 0x0D }
        if KeyExtractor.isFormContentType(contentType) && first != 0x7B && first != 0x5B {
            json = nil; form = KeyExtractor.parseForm(body)
        } else {
            json = try? JSONParser.parse(body); form = nil
        }
    }

    /// The value at a condition's subject as text, nil when absent (or ambiguous: a member given twice decides nothing).
    func value(_ subject: MatchCondition.Subject) -> String? {
        switch subject {
        case .header(let name):
            let v = headers.values(for: name)
            return v.count == 1 ? v[0] : nil
        case .json(let path):
            if let form {
                guard let last = path.last else { return nil }
                let values = form.filter { $0.0.unicodeScalars.elementsEqual(last.unicodeScalars) }
                return values.count == 1 ? String(decoding: values[0].1, as: UTF8.self) : nil
            }
            var v = json
            for component in path { v = v?[component] }
            guard let v else { return nil }
            switch v {
            case .string(let s): return s
            case .number(let n): return n
            case .bool(let b): return b ? "true" : "false"
            case .null: return "null"
            case .array, .object: return ""  // present, but equal to no value
            }
        }
    }

    public func holds(_ c: MatchCondition) -> Bool {
        let v = value(c.subject)
        switch c.test {
        case .present: return v != nil
        case .absent: return v == nil
        case .equals(let options):
            guard let v else { return false }
            // Byte for byte (Unicode scalars), as names are.
            return options.contains { $0.unicodeScalars.elementsEqual(v.unicodeScalars) }
        }
    }
}

extension IngressRoute {
    /// The queues this webhook enters: every queue of the route whose conditions all hold; `unrouted` when the route
    /// has queues and none takes it; empty (the spool's own queue) for a route without queues.
    func queues(for body: [UInt8], contentType: String?, headers: HTTPHeaders) -> [String] {
        guard !queues.isEmpty else { return [] }
        let needsBody = queues.contains { $0.match.contains { if case .json = $0.subject { true } else { false } } }
        let subject = MatchSubject(body: needsBody ? body : [], contentType: contentType, headers: headers)
        let taken = queues.filter { q in q.match.allSatisfy(subject.holds) }.map(\.name)
        return taken.isEmpty ? [unroutedQueue] : taken
    }
}
