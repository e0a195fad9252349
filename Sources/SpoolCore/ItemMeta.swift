import SpoolSystem
import SpoolWire

/// What is known of an item in one queue: its header (format 2) and its delivery state there, as one value for
/// listings, `show` and handlers. Its JSON form is format 1's metadata (the `user.spool.meta` attribute or
/// `meta/<name>`), which `parse` reads for `spool migrate`.
public struct ItemMeta: Sendable, Equatable {
    public static let formatVersion = 1
    /// Metadata files larger than this are refused as corrupt (hostile-disk bound).
    public static let maxBytes = 256 * 1024
    /// Error texts kept with an item are cut to their last this-many bytes.
    public static let maxErrorBytes = 4096

    public var key: String
    public var receivedAtNanos: Int64
    public var size: Int64
    public var attempts: Int
    /// Selected request headers, names lowercased (content-type, x-request-id, ...).
    public var headers: [(String, String)]
    public var nextAttemptAtNanos: Int64?
    public var lastError: String?
    /// How the last attempt ended: `exit 1`, `signal 9`, `timeout`, `http 503`, ...
    public var lastStatus: String?
    public var lastAttemptAtNanos: Int64?
    public var claimedBy: String?
    public var finishedAtNanos: Int64?
    /// Where the item came from when not from a request to the ingress: `reconcile` (docs/reconcile.md).
    /// Absent for ingress items; an additive member, older readers ignore it.
    public var source: String?
    /// Format 2: the queues the item was enqueued into (from its header).
    public var queues: [String] = []
    /// Format 2: the last attempts in the queue this view is of, oldest first.
    public var history: [AttemptRecord] = []

    public init(key: String, receivedAtNanos: Int64, size: Int64, headers: [(String, String)] = []) {
        self.key = key
        self.receivedAtNanos = receivedAtNanos
        self.size = size
        self.attempts = 0
        self.headers = headers
    }

    public static func == (a: ItemMeta, b: ItemMeta) -> Bool { a.jsonBytes == b.jsonBytes }

    /// The attribute value that says "the metadata is in meta/<name>" (it was too large for an attribute).
    public static let spilledStub = Array("{\"v\":1,\"spilled\":true}".utf8)
    public static func isSpilledStub(_ bytes: [UInt8]) -> Bool { bytes == spilledStub }

    public func header(_ name: String) -> String? {
        let n = name.lowercased()
        return headers.first { $0.0 == n }?.1
    }

    public var json: String { String(decoding: jsonBytes, as: UTF8.self) }

    /// The serialised metadata (built byte by byte: it is written at every claim and completion).
    public var jsonBytes: [UInt8] {
        var o: [UInt8] = []
        o.reserveCapacity(384 + (lastError?.utf8.count ?? 0))
        func key(_ k: StaticString) {
            if o.count > 1 { o.append(0x2C) }
            o.append(0x22); k.withUTF8Buffer { o.append(contentsOf: $0) }; o.append(0x22); o.append(0x3A)
        }
        func int(_ v: Int64) { Digits.append(v, to: &o) }
        func str(_ s: String) { JSONWriter.appendQuoted(s, to: &o) }
        func time(_ n: Int64) { o.append(0x22); RFC3339.append(nanos: n, to: &o); o.append(0x22) }
        o.append(0x7B)
        key("v"); int(Int64(ItemMeta.formatVersion))
        key("key"); str(self.key)
        key("received_at"); time(receivedAtNanos)
        key("received_at_ns"); int(receivedAtNanos)
        key("size"); int(size)
        key("attempts"); int(Int64(attempts))
        key("headers"); o.append(0x7B)
        for (i, (n, v)) in headers.enumerated() {
            if i > 0 { o.append(0x2C) }
            str(n); o.append(0x3A); str(v)
        }
        o.append(0x7D)
        if let n = nextAttemptAtNanos { key("next_attempt_at"); time(n); key("next_attempt_at_ns"); int(n) }
        if let e = lastError { key("last_error"); str(e) }
        if let s = lastStatus { key("last_status"); str(s) }
        if let t = lastAttemptAtNanos { key("last_attempt_at"); time(t) }
        if let c = claimedBy { key("claimed_by"); str(c) }
        if let f = finishedAtNanos { key("finished_at"); time(f); key("finished_at_ns"); int(f) }
        if let s = source { key("source"); str(s) }
        o.append(0x7D); o.append(0x0A)
        return o
    }

    /// Parses a metadata file strictly; unknown members are ignored so later versions can add fields, and a
    /// repeated member counts as absent. Reads the members as they come (`JSONParser.visitObject`): a listing
    /// parses 100,000 of these. `_parseReference` is the same over a whole parsed tree; the fuzzer checks they agree.
    public static func parse(_ bytes: [UInt8]) throws(SpoolError) -> ItemMeta {
        guard bytes.count <= maxBytes else { throw .corrupt("metadata larger than \(maxBytes) bytes") }
        var f = Fields()
        let isObject: Bool
        do {
            isObject = try JSONParser.visitObject(bytes) { (name, p) throws(JSONError) in
                switch name {
                case "v": f.v.set(try p.memberInteger())
                case "key": f.key.set(try p.memberString())
                case "received_at_ns": f.receivedAt.set(try p.memberInteger())
                case "size": f.size.set(try p.memberInteger())
                case "attempts": f.attempts.set(try p.memberInteger())
                case "headers": f.headers.set(try p.memberValue())
                case "next_attempt_at_ns": f.nextAttemptAt.set(try p.memberInteger())
                case "last_error": f.lastError.set(try p.memberString())
                case "last_status": f.lastStatus.set(try p.memberString())
                case "last_attempt_at": f.lastAttemptAt.set(try p.memberString())
                case "claimed_by": f.claimedBy.set(try p.memberString())
                case "finished_at_ns": f.finishedAt.set(try p.memberInteger())
                case "source": f.source.set(try p.memberString())
                default: _ = try p.memberValue()
                }
            }
        } catch { throw .corrupt("metadata is not JSON: \(error)") }
        guard isObject else { throw .corrupt("metadata is not a JSON object") }
        return try f.build()
    }

    /// `parse` by way of a whole `JSONValue` tree: the reference the fuzzer compares `parse` with.
    public static func _parseReference(_ bytes: [UInt8]) throws(SpoolError) -> ItemMeta {
        guard bytes.count <= maxBytes else { throw .corrupt("metadata larger than \(maxBytes) bytes") }
        let v: JSONValue
        do { v = try JSONParser.parse(bytes) } catch { throw .corrupt("metadata is not JSON: \(error)") }
        guard case .object(let members) = v else { throw .corrupt("metadata is not a JSON object") }
        var fields: [String: JSONValue] = [:]
        var repeated: [String] = []
        for (k, value) in members where fields.updateValue(value, forKey: k) != nil { repeated.append(k) }
        for k in repeated { fields[k] = nil }
        var f = Fields()
        f.v.set(fields["v"]?.intValue)
        f.key.set(fields["key"]?.stringValue)
        f.receivedAt.set(fields["received_at_ns"]?.intValue)
        f.size.set(fields["size"]?.intValue)
        f.attempts.set(fields["attempts"]?.intValue)
        f.headers.set(fields["headers"])
        f.nextAttemptAt.set(fields["next_attempt_at_ns"]?.intValue)
        f.lastError.set(fields["last_error"]?.stringValue)
        f.lastStatus.set(fields["last_status"]?.stringValue)
        f.lastAttemptAt.set(fields["last_attempt_at"]?.stringValue)
        f.claimedBy.set(fields["claimed_by"]?.stringValue)
        f.finishedAt.set(fields["finished_at_ns"]?.intValue)
        f.source.set(fields["source"]?.stringValue)
        return try f.build()
    }

    /// A member seen once keeps its value; seen again, it is absent (an ambiguous document decides nothing).
    struct Once<T> {
        private var value: T?
        private var seen = 0
        mutating func set(_ v: T?) { seen += 1; value = seen == 1 ? v : nil }
        var get: T? { value }
    }

    /// The members `ItemMeta` reads, and the checks that turn them into one.
    struct Fields {
        var v = Once<Int64>(), key = Once<String>(), receivedAt = Once<Int64>(), size = Once<Int64>()
        var attempts = Once<Int64>(), headers = Once<JSONValue>(), nextAttemptAt = Once<Int64>()
        var lastError = Once<String>(), lastStatus = Once<String>(), lastAttemptAt = Once<String>()
        var claimedBy = Once<String>(), finishedAt = Once<Int64>(), source = Once<String>()

        func build() throws(SpoolError) -> ItemMeta {
            guard v.get == Int64(formatVersion) else { throw .corrupt("unknown metadata version") }
            guard let key = key.get, let rec = receivedAt.get, let size = size.get, let att = attempts.get, att >= 0, att < 1_000_000 else {
                throw .corrupt("metadata lacks key, received_at_ns, size or attempts")
            }
            // Times within about ±142 years of 1970 and sane sizes: anything else is corrupt (and rebuilt by a claim),
            // so that later arithmetic on them cannot overflow.
            let timeLimit: Int64 = 4_500_000_000_000_000_000
            func saneTime(_ t: Int64?) -> Bool { t.map { abs($0) < timeLimit } ?? true }
            guard saneTime(rec), saneTime(nextAttemptAt.get), saneTime(finishedAt.get), size >= 0, size < 1 << 50 else {
                throw .corrupt("metadata time or size out of range")
            }
            var m = ItemMeta(key: key, receivedAtNanos: rec, size: size)
            m.attempts = Int(att)
            if case .object(let hs)? = headers.get {
                for (n, hv) in hs { if let s = hv.stringValue { m.headers.append((n, s)) } }
            }
            m.nextAttemptAtNanos = nextAttemptAt.get
            m.lastError = lastError.get
            m.lastStatus = lastStatus.get
            if let t = lastAttemptAt.get { m.lastAttemptAtNanos = RFC3339.parse(t) }
            m.claimedBy = claimedBy.get
            m.finishedAtNanos = finishedAt.get
            m.source = source.get
            return m
        }
    }

    /// Keeps the last `maxErrorBytes` of an error text, on a UTF-8 boundary.
    public static func clipError(_ s: String) -> String {
        let u = Array(s.utf8)
        guard u.count > maxErrorBytes else { return s }
        var start = u.count - maxErrorBytes
        while start < u.count, (u[start] & 0xC0) == 0x80 { start += 1 }
        return "…" + String(decoding: u[start...], as: UTF8.self)
    }
}
