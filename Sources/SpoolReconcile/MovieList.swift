import SpoolSystem
import SpoolCore

/// One movie of a `GET /v2/movies` list response: what reconcile decides on, and the object's exact bytes.
public struct Movie: Sendable {
    /// The 16-character project id, the spool key (as the webhook's `movie.project`).
    public var project: String
    public var status: String
    /// `ended_at` when present and in the API's ISO-8601 form (`2026-05-12T07:44:57.108Z`).
    public var endedAtNanos: Int64?
    /// The movie object byte for byte as the API sent it.
    public var raw: [UInt8]
    /// The same object parsed, for the filters.
    public var value: JSONValue

    /// `done`, `error` and `timeout` are final; `pending` and `running` (and a status we do not know) are not.
    public var isFinal: Bool { Movie.finalStatuses.contains(status) }
    public static let finalStatuses: Set<String> = ["done", "error", "timeout"]

    /// The item as a webhook would have delivered it: `{"success":true,"movie":<raw>}`.
    public var webhookPayload: [UInt8] { Array("{\"success\":true,\"movie\":".utf8) + raw + [0x7D] }
}

/// One page of the list mode: `{"success":true,"movies":[...],"has_next":bool,"next_token":...}`.
public struct MovieListPage: Sendable {
    public static let maxMoviesPerPage = 1000
    public static let maxTokenBytes = 1024

    public var movies: [Movie]
    public var hasNext: Bool
    /// The cursor for the next page (a non-empty string whenever `hasNext`).
    public var nextToken: String?

    /// Parses a response body strictly: a JSON object (the strict parser: no duplicates of the members read, no
    /// trailing data) with `success: true`, `movies` an array of objects each with a string `project` that is a
    /// valid spool key and a string `status`, `has_next` a boolean if present, and `next_token` a string or null
    /// (a non-empty string when `has_next`). Anything else is `.malformed`.
    public static func parse(_ body: [UInt8]) throws(ReconcileError) -> MovieListPage {
        var success = ItemMetaOnce<Bool>(), movies = ItemMetaOnce<[(value: JSONValue, range: Range<Int>)]>()
        var hasNext = ItemMetaOnce<Bool>(), token = ItemMetaOnce<JSONValue>()
        var notArray = false
        let isObject: Bool
        do {
            isObject = try JSONParser.visitObject(body) { (name, p) throws(JSONError) in
                switch name {
                case "success": success.set(try p.memberValue().boolValue)
                case "movies":
                    let m = try p.memberArrayWithRanges()
                    if m == nil { notArray = true }
                    movies.set(m)
                case "has_next": hasNext.set(try p.memberValue().boolValue)
                case "next_token": token.set(try p.memberValue())
                default: _ = try p.memberValue()
                }
            }
        } catch {
            throw ReconcileError(.malformed, "the movie list is not JSON: \(error)")
        }
        guard isObject else { throw ReconcileError(.malformed, "the movie list is not a JSON object") }
        guard success.get == true else { throw ReconcileError(.malformed, "the movie list does not say \"success\":true") }
        guard !notArray, let list = movies.get else { throw ReconcileError(.malformed, "the movie list has no \"movies\" array (or more than one)") }
        guard list.count <= maxMoviesPerPage else { throw ReconcileError(.malformed, "more than \(maxMoviesPerPage) movies on one page") }
        if hasNext.seen > 0 && hasNext.get == nil { throw ReconcileError(.malformed, "\"has_next\" is not one boolean") }
        let more = hasNext.get ?? false
        var next: String? = nil
        if token.seen > 0 {
            switch token.get {
            case .null?: next = nil
            case .string(let s)?: next = s
            default: throw ReconcileError(.malformed, "\"next_token\" is neither one string nor null")
            }
        }
        if more {
            guard let t = next, !t.isEmpty, t.utf8.count <= maxTokenBytes else {
                throw ReconcileError(.malformed, "\"has_next\" is true without a usable \"next_token\"")
            }
        }
        var out: [Movie] = []
        out.reserveCapacity(list.count)
        for (index, (value, range)) in list.enumerated() {
            guard case .object = value else { throw ReconcileError(.malformed, "movie \(index) is not an object") }
            guard let project = value["project"]?.stringValue, (try? SpoolKey(project)) != nil else {
                throw ReconcileError(.malformed, "movie \(index) has no usable \"project\" (one string, a valid key)")
            }
            guard let status = value["status"]?.stringValue else {
                throw ReconcileError(.malformed, "movie \(index) (\(logSafeKey(project))) has no \"status\" string")
            }
            let ended = value["ended_at"]?.stringValue.flatMap { RFC3339.parse($0) }
            out.append(Movie(project: project, status: status, endedAtNanos: ended, raw: Array(body[range]), value: value))
        }
        return MovieListPage(movies: out, hasNext: more, nextToken: more ? next : nil)
    }

    static func logSafeKey(_ s: String) -> String { String(s.unicodeScalars.prefix(64).filter { $0.value >= 0x20 && $0.value < 0x7F }.map(Character.init)) }
}

/// A member read once keeps its value; read again, it is absent (as `ItemMeta` treats repeated members).
struct ItemMetaOnce<T> {
    private(set) var value: T?
    private(set) var seen = 0
    mutating func set(_ v: T?) { seen += 1; value = seen == 1 ? v : nil }
    var get: T? { value }
}

/// Which movies reconcile may touch: `--match-webhook` and `--match-client-data`.
public struct MovieFilter: Sendable {
    /// A webhook destination URL that must appear in the movie's original JSON.
    public var webhook: String?
    /// `client-data` members (a dotted path) and the text their value must have.
    public var clientData: [(path: [String], value: String)] = []

    public init(webhook: String? = nil, clientData: [(path: [String], value: String)] = []) {
        self.webhook = webhook
        self.clientData = clientData
    }

    /// `PATH=VALUE` as given to `--match-client-data` (`orderId=A-1`, `customer.tier=gold`).
    public static func clientDataTerm(_ s: String) -> (path: [String], value: String)? {
        guard let eq = s.firstIndex(of: "=") else { return nil }
        let path = s[..<eq].split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard !path.isEmpty, path.allSatisfy({ !$0.isEmpty }) else { return nil }
        return (path, String(s[s.index(after: eq)...]))
    }

    public var isEmpty: Bool { webhook == nil && clientData.isEmpty }

    public func matches(_ movie: Movie) -> Bool {
        if let url = webhook {
            // The original movie JSON: an object, or (as some API versions send it) a string holding one.
            var original = movie.value["json"]
            if case .string(let text)? = original { original = try? JSONParser.parse(text) }
            guard let original, MovieFilter.hasWebhook(original, url: url, depth: 0) else { return false }
        }
        for (path, want) in clientData {
            var v = movie.value["client-data"]
            for p in path { v = v?[p] }
            guard let v, MovieFilter.text(v) == want else { return false }
        }
        return true
    }

    /// A destination `{"type":"webhook","endpoint":URL}` anywhere in the movie JSON (`exports[].destinations[]`).
    static func hasWebhook(_ v: JSONValue, url: String, depth: Int) -> Bool {
        guard depth < 64 else { return false }
        switch v {
        case .object(let members):
            if v["type"]?.stringValue == "webhook" && v["endpoint"]?.stringValue == url { return true }
            return members.contains { hasWebhook($0.1, url: url, depth: depth + 1) }
        case .array(let items):
            return items.contains { hasWebhook($0, url: url, depth: depth + 1) }
        default:
            return false
        }
    }

    /// A scalar as text: strings as they are, numbers as sent, `true`/`false`/`null`.
    static func text(_ v: JSONValue) -> String? {
        switch v {
        case .string(let s): return s
        case .number(let n): return n
        case .bool(let b): return b ? "true" : "false"
        case .null: return "null"
        default: return nil
        }
    }
}
