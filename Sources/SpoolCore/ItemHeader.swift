import SpoolSystem
import SpoolWire

/// The immutable part of an item, written ahead of the payload in the item file (format 2,
/// docs/spool-format.md "The item file"):
///
///     spool/2 <N>\n        the first line: the format and the byte length N of the header object
///     {...}                N bytes: one JSON object (key, arrival, size, headers, source, queues)
///     \n
///     <payload>            exactly the bytes received
///
/// Length-delimited so that a reader never scans the payload, versioned by the first line, and JSON so that
/// `head -2` shows it. Readers ignore members they do not know (additive changes stay within format 2).
public struct ItemHeader: Sendable, Equatable {
    /// The first line's fixed start.
    public static let magic: [UInt8] = Array("spool/2 ".utf8)
    /// A header object larger than this is refused as corrupt (hostile-disk bound).
    public static let maxBytes = 256 * 1024
    /// What a reader reads first: nearly every header fits, so one `pread` finds the payload.
    public static let probeBytes = 1024

    /// Where an item came from: a request to the ingress, `spool reconcile`, `spool pull`, `spool enqueue`.
    public enum Source: String, Sendable, CaseIterable { case webhook, reconcile, pull, enqueue }

    public var key: String
    public var receivedAtNanos: Int64
    /// The payload's size in bytes.
    public var size: Int64
    /// Recorded request headers, names lowercased.
    public var headers: [(String, String)]
    public var source: Source
    /// The queues the item was enqueued into (what `recover` finishes an interrupted enqueue into).
    public var queues: [String]
    /// Set only in a kept key (docs/spool-format.md "Kept keys"): the header of a purged item, alone in its file as
    /// `keys/<name>`, with no queues and no payload; until this moment its key is still answered as a duplicate.
    public var forgetAtNanos: Int64?

    /// A kept key's header: the item's key, arrival and source; no headers, queues or payload.
    public static func keptKey(of item: ItemHeader, until forgetAt: Int64) -> ItemHeader {
        var h = ItemHeader(key: item.key, receivedAtNanos: item.receivedAtNanos, size: 0, source: item.source, queues: [])
        h.forgetAtNanos = forgetAt
        return h
    }

    public init(key: String, receivedAtNanos: Int64, size: Int64, headers: [(String, String)] = [], source: Source = .webhook,
                queues: [String] = [QueueName.defaultName]) {
        self.key = key; self.receivedAtNanos = receivedAtNanos; self.size = size; self.headers = headers
        self.source = source; self.queues = queues
    }

    public static func == (a: ItemHeader, b: ItemHeader) -> Bool { a.encoded() == b.encoded() }

    public func header(_ name: String) -> String? {
        let n = name.lowercased()
        return headers.first { $0.0 == n }?.1
    }

    /// The bytes ahead of the payload: first line, object, newline.
    public func encoded() -> [UInt8] {
        var o: [UInt8] = []
        o.reserveCapacity(256)
        func key(_ k: StaticString) {
            if o.count > 1 { o.append(0x2C) }
            o.append(0x22); k.withUTF8Buffer { o.append(contentsOf: $0) }; o.append(0x22); o.append(0x3A)
        }
        func str(_ s: String) { JSONWriter.appendQuoted(s, to: &o) }
        o.append(0x7B)
        key("key"); str(self.key)
        key("received_at"); o.append(0x22); RFC3339.append(nanos: receivedAtNanos, to: &o); o.append(0x22)
        key("received_at_ns"); Digits.append(receivedAtNanos, to: &o)
        key("size"); Digits.append(size, to: &o)
        key("headers"); o.append(0x7B)
        for (i, (n, v)) in headers.enumerated() {
            if i > 0 { o.append(0x2C) }
            str(n); o.append(0x3A); str(v)
        }
        o.append(0x7D)
        key("source"); str(source.rawValue)
        key("queues"); o.append(0x5B)
        for (i, q) in queues.enumerated() {
            if i > 0 { o.append(0x2C) }
            str(q)
        }
        o.append(0x5D)
        if let forgetAtNanos {
            key("forget_at"); o.append(0x22); RFC3339.append(nanos: forgetAtNanos, to: &o); o.append(0x22)
            key("forget_at_ns"); Digits.append(forgetAtNanos, to: &o)
        }
        o.append(0x7D)
        var out = ItemHeader.magic
        out.reserveCapacity(o.count + 16)
        Digits.append(o.count, to: &out)
        out.append(0x0A)
        out += o
        out.append(0x0A)
        return out
    }

    /// The header's end in a prefix of an item file: `.complete(offset of the payload)`, or `.needs(total bytes)`
    /// when the prefix is too short to hold the whole header. Throws for anything that is not a format 2 item.
    public enum Extent: Equatable, Sendable { case complete(payloadOffset: Int), needs(Int) }

    public static func extent(of prefix: [UInt8]) throws(SpoolError) -> Extent {
        let m = magic.count
        // The first line: the magic, 1 to 6 digits without a leading zero, LF.
        guard prefix.count > m else {
            if prefix.elementsEqual(magic.prefix(prefix.count)) { return .needs(m + 8) }
            throw .corrupt("not a spool item (no format 2 header)")
        }
        guard prefix[0..<m].elementsEqual(magic) else { throw .corrupt("not a spool item (no format 2 header)") }
        var i = m
        while i < prefix.count, i - m <= 6, ByteClass.isDigit(prefix[i]) { i += 1 }
        guard i < prefix.count else {
            if i - m <= 6 { return .needs(m + 8) }
            throw .corrupt("item header length has too many digits")
        }
        guard prefix[i] == 0x0A, i > m, prefix[m] != 0x30 else { throw .corrupt("item header's first line is malformed") }
        guard let n = Digits.decimal(prefix[m..<i], max: maxBytes), n >= 2 else { throw .corrupt("item header length out of range") }
        let end = i + 1 + n + 1
        guard prefix.count >= end else { return .needs(end) }
        guard prefix[end - 1] == 0x0A else { throw .corrupt("item header is not followed by a newline") }
        return .complete(payloadOffset: end)
    }

    /// Parses the header at the start of `prefix` (which must hold all of it: see `extent`). Strict: the first
    /// line exactly, a JSON object of exactly the stated length, the required members with sane values.
    public static func parse(_ prefix: [UInt8]) throws(SpoolError) -> (header: ItemHeader, payloadOffset: Int) {
        guard case .complete(let offset) = try extent(of: prefix) else { throw .corrupt("item header is truncated") }
        let lineEnd = prefix.firstIndex(of: 0x0A)!
        let object = Array(prefix[(lineEnd + 1)..<(offset - 1)])
        var key = ItemMeta.Once<String>(), rec = ItemMeta.Once<Int64>(), size = ItemMeta.Once<Int64>()
        var headers = ItemMeta.Once<JSONValue>(), source = ItemMeta.Once<String>(), queues = ItemMeta.Once<JSONValue>()
        var forget = ItemMeta.Once<Int64>()
        let isObject: Bool
        do {
            isObject = try JSONParser.visitObject(object) { (name, p) throws(JSONError) in
                switch name {
                case "key": key.set(try p.memberString())
                case "received_at_ns": rec.set(try p.memberInteger())
                case "size": size.set(try p.memberInteger())
                case "headers": headers.set(try p.memberValue())
                case "source": source.set(try p.memberString())
                case "queues": queues.set(try p.memberValue())
                case "forget_at_ns": forget.set(try p.memberInteger())
                default: _ = try p.memberValue()
                }
            }
        } catch { throw .corrupt("item header is not JSON: \(error)") }
        guard isObject else { throw .corrupt("item header is not a JSON object") }
        guard let k = key.get, let r = rec.get, let s = size.get, let srcText = source.get else {
            throw .corrupt("item header lacks key, received_at_ns, size or source")
        }
        guard abs(r) < 4_500_000_000_000_000_000, s >= 0, s < 1 << 50 else { throw .corrupt("item header time or size out of range") }
        guard let src = Source(rawValue: srcText) else { throw .corrupt("item header has an unknown source") }
        var h = ItemHeader(key: k, receivedAtNanos: r, size: s, source: src, queues: [])
        if case .object(let hs)? = headers.get {
            for (n, hv) in hs { if let v = hv.stringValue { h.headers.append((n, v)) } }
        }
        // An item names 1 to 64 queues; a kept key names none, has no payload, and says when it is forgotten.
        if let f = forget.get {
            guard case .array(let qs)? = queues.get, qs.isEmpty, s == 0, abs(f) < 4_500_000_000_000_000_000 else {
                throw .corrupt("kept key header has queues, a payload or a time out of range")
            }
            h.forgetAtNanos = f
            return (h, offset)
        }
        guard case .array(let qs)? = queues.get, !qs.isEmpty, qs.count <= 64 else { throw .corrupt("item header lacks its queues") }
        for q in qs {
            guard let name = q.stringValue, QueueName.isValid(name) else { throw .corrupt("item header names an invalid queue") }
            h.queues.append(name)
        }
        return (h, offset)
    }
}

/// Queue names: what `--queue` takes and what a directory under `queues/` is called.
public enum QueueName {
    /// The queue of a spool without configuration; its directories are the root's `new/`, `claimed/`, ...
    public static let defaultName = "default"
    /// 1 to 64 bytes of `[a-z0-9_-]`, starting with a letter or digit: safe as a directory name and in metrics.
    public static func isValid(_ s: String) -> Bool {
        let u = s.utf8
        guard (1...64).contains(u.count), let f = u.first, ByteClass.isDigit(f) || (f >= 0x61 && f <= 0x7A) else { return false }
        return u.allSatisfy { ByteClass.isDigit($0) || ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x5F || $0 == 0x2D }
    }
}
