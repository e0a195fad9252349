import SpoolSystem

/// Per-item metadata: a small JSON object in the payload's `user.spool.meta` attribute (so it moves with the
/// payload), or in `meta/<name>` when too large for an attribute or on file systems without them.
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
        func int(_ v: Int64) { o.append(contentsOf: String(v).utf8) }
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
        o.append(0x7D); o.append(0x0A)
        return o
    }

    /// Parses a metadata file strictly; unknown members are ignored so later versions can add fields.
    public static func parse(_ bytes: [UInt8]) throws(SpoolError) -> ItemMeta {
        guard bytes.count <= maxBytes else { throw .corrupt("metadata larger than \(maxBytes) bytes") }
        let v: JSONValue
        do { v = try JSONParser.parse(bytes) } catch { throw .corrupt("metadata is not JSON: \(error)") }
        guard case .object(let members) = v else { throw .corrupt("metadata is not a JSON object") }
        // One pass into a dictionary (a listing parses 100,000 of these); a repeated member counts as absent.
        var fields: [String: JSONValue] = Dictionary(minimumCapacity: members.count)
        var repeated: [String] = []
        for (k, value) in members where fields.updateValue(value, forKey: k) != nil { repeated.append(k) }
        for k in repeated { fields[k] = nil }
        guard fields["v"]?.intValue == Int64(formatVersion) else { throw .corrupt("unknown metadata version") }
        guard let key = fields["key"]?.stringValue, let rec = fields["received_at_ns"]?.intValue,
              let size = fields["size"]?.intValue, let att = fields["attempts"]?.intValue, att >= 0, att < 1_000_000 else {
            throw .corrupt("metadata lacks key, received_at_ns, size or attempts")
        }
        // Times within about ±142 years of 1970 and sane sizes: anything else is corrupt (and rebuilt by a claim),
        // so that later arithmetic on them cannot overflow.
        let timeLimit: Int64 = 4_500_000_000_000_000_000
        func saneTime(_ t: Int64?) -> Bool { t.map { abs($0) < timeLimit } ?? true }
        guard saneTime(rec), saneTime(fields["next_attempt_at_ns"]?.intValue), saneTime(fields["finished_at_ns"]?.intValue),
              size >= 0, size < 1 << 50 else { throw .corrupt("metadata time or size out of range") }
        var m = ItemMeta(key: key, receivedAtNanos: rec, size: size)
        m.attempts = Int(att)
        if case .object(let hs)? = fields["headers"] {
            for (n, hv) in hs { if let s = hv.stringValue { m.headers.append((n, s)) } }
        }
        m.nextAttemptAtNanos = fields["next_attempt_at_ns"]?.intValue
        m.lastError = fields["last_error"]?.stringValue
        m.lastStatus = fields["last_status"]?.stringValue
        if let t = fields["last_attempt_at"]?.stringValue { m.lastAttemptAtNanos = RFC3339.parse(t) }
        m.claimedBy = fields["claimed_by"]?.stringValue
        m.finishedAtNanos = fields["finished_at_ns"]?.intValue
        return m
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
