import SpoolSystem

/// Per-item metadata, stored as a small JSON object in the item directory's `meta` file.
/// It moves with the payload (both live in one directory that is renamed as a whole).
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

    public static func == (a: ItemMeta, b: ItemMeta) -> Bool { a.json == b.json }

    public func header(_ name: String) -> String? {
        let n = name.lowercased()
        return headers.first { $0.0 == n }?.1
    }

    public var json: String {
        var parts: [String] = []
        parts.append("\"v\":\(ItemMeta.formatVersion)")
        parts.append("\"key\":" + JSONWriter.quote(key))
        parts.append("\"received_at\":" + JSONWriter.quote(RFC3339.format(nanos: receivedAtNanos)))
        parts.append("\"received_at_ns\":\(receivedAtNanos)")
        parts.append("\"size\":\(size)")
        parts.append("\"attempts\":\(attempts)")
        parts.append("\"headers\":{" + headers.map { JSONWriter.quote($0.0) + ":" + JSONWriter.quote($0.1) }.joined(separator: ",") + "}")
        if let n = nextAttemptAtNanos { parts.append("\"next_attempt_at\":" + JSONWriter.quote(RFC3339.format(nanos: n))); parts.append("\"next_attempt_at_ns\":\(n)") }
        if let e = lastError { parts.append("\"last_error\":" + JSONWriter.quote(e)) }
        if let s = lastStatus { parts.append("\"last_status\":" + JSONWriter.quote(s)) }
        if let t = lastAttemptAtNanos { parts.append("\"last_attempt_at\":" + JSONWriter.quote(RFC3339.format(nanos: t))) }
        if let c = claimedBy { parts.append("\"claimed_by\":" + JSONWriter.quote(c)) }
        if let f = finishedAtNanos { parts.append("\"finished_at\":" + JSONWriter.quote(RFC3339.format(nanos: f))); parts.append("\"finished_at_ns\":\(f)") }
        return "{" + parts.joined(separator: ",") + "}\n"
    }

    /// Parses a metadata file strictly; unknown members are ignored so later versions can add fields.
    public static func parse(_ bytes: [UInt8]) throws(SpoolError) -> ItemMeta {
        guard bytes.count <= maxBytes else { throw .corrupt("metadata larger than \(maxBytes) bytes") }
        let v: JSONValue
        do { v = try JSONParser.parse(bytes) } catch { throw .corrupt("metadata is not JSON: \(error)") }
        guard case .object = v else { throw .corrupt("metadata is not a JSON object") }
        guard v["v"]?.intValue == Int64(formatVersion) else { throw .corrupt("unknown metadata version") }
        guard let key = v["key"]?.stringValue, let rec = v["received_at_ns"]?.intValue,
              let size = v["size"]?.intValue, let att = v["attempts"]?.intValue, att >= 0, att < 1_000_000 else {
            throw .corrupt("metadata lacks key, received_at_ns, size or attempts")
        }
        var m = ItemMeta(key: key, receivedAtNanos: rec, size: size)
        m.attempts = Int(att)
        if case .object(let hs)? = v["headers"] {
            for (n, hv) in hs { if let s = hv.stringValue { m.headers.append((n, s)) } }
        }
        m.nextAttemptAtNanos = v["next_attempt_at_ns"]?.intValue
        m.lastError = v["last_error"]?.stringValue
        m.lastStatus = v["last_status"]?.stringValue
        if let t = v["last_attempt_at"]?.stringValue { m.lastAttemptAtNanos = RFC3339.parse(t) }
        m.claimedBy = v["claimed_by"]?.stringValue
        m.finishedAtNanos = v["finished_at_ns"]?.intValue
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
