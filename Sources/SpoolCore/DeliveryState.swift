import SpoolSystem
import SpoolWire

/// One attempt at delivering an item in one queue, as `spool show` and the UI list it.
public struct AttemptRecord: Sendable, Equatable {
    public enum Outcome: String, Sendable, CaseIterable {
        /// The handler succeeded (recorded only for an item that had failed before: a first success writes nothing).
        case done
        /// Failed; the item waits for another attempt.
        case retry
        /// Failed for good (permanent, or attempts used up): the item is in `failed/`.
        case failed
        /// The claimant died during the attempt (`recover` found its lock free).
        case abandoned
    }
    public var startedAtNanos: Int64
    public var durationNanos: Int64
    public var outcome: Outcome
    /// How it ended: `exit 1`, `signal 9`, `timeout`, `http 503`, ...
    public var status: String?
    /// The first `DeliveryState.maxRecordErrorBytes` of the error.
    public var error: String?

    public init(startedAtNanos: Int64, durationNanos: Int64, outcome: Outcome, status: String? = nil, error: String? = nil) {
        self.startedAtNanos = startedAtNanos; self.durationNanos = durationNanos; self.outcome = outcome
        self.status = status; self.error = error.map { DeliveryState.head($0, bytes: DeliveryState.maxRecordErrorBytes) }
    }
}

/// An item's delivery state in one queue (format 2): `state/<name>` under the queue's directory, written only when
/// an attempt fails, is abandoned, is retried by hand, or succeeds after a failure. An item with no state file has
/// never failed in that queue: the path of a webhook that goes well writes nothing but the item and its renames.
/// The file's mtime is the not-before time of a waiting retry, so a claim scan needs only a stat.
public struct DeliveryState: Sendable, Equatable {
    public static let version = 2
    public static let maxBytes = 64 * 1024
    public static let maxHistory = 10
    public static let maxRecordErrorBytes = 1024

    /// The arrival of the item this state belongs to (its header's `received_at_ns`): a state file left behind by
    /// an earlier item of the same key (deleted by hand) never describes a new one.
    public var itemReceivedAtNanos: Int64?
    /// Attempts that ended (a claim in progress is not counted here: see `ClaimedItem.attempt`).
    public var attempts: Int = 0
    public var nextAttemptAtNanos: Int64?
    public var lastStatus: String?
    /// The last failure's text (the last 4 KiB: for `--exec`, the end of the handler's stderr).
    public var lastError: String?
    public var lastAttemptAtNanos: Int64?
    public var finishedAtNanos: Int64?
    /// The last `maxHistory` attempts, oldest first.
    public var history: [AttemptRecord] = []

    public init(itemReceivedAtNanos: Int64? = nil) { self.itemReceivedAtNanos = itemReceivedAtNanos }

    /// Whether this state belongs to the item that arrived at `receivedAt` (a state without the member is trusted).
    public func belongs(toItemReceivedAt receivedAt: Int64) -> Bool { itemReceivedAtNanos.map { $0 == receivedAt } ?? true }

    /// Appends an attempt, keeping the last `maxHistory`.
    public mutating func record(_ a: AttemptRecord) {
        history.append(a)
        if history.count > DeliveryState.maxHistory { history.removeFirst(history.count - DeliveryState.maxHistory) }
        lastAttemptAtNanos = a.startedAtNanos
    }

    public var jsonBytes: [UInt8] {
        var o: [UInt8] = []
        o.reserveCapacity(256 + history.count * 96 + (lastError?.utf8.count ?? 0))
        func key(_ k: StaticString) {
            if let l = o.last, l != 0x7B { o.append(0x2C) }
            o.append(0x22); k.withUTF8Buffer { o.append(contentsOf: $0) }; o.append(0x22); o.append(0x3A)
        }
        func str(_ s: String) { JSONWriter.appendQuoted(s, to: &o) }
        func time(_ n: Int64) { o.append(0x22); RFC3339.append(nanos: n, to: &o); o.append(0x22) }
        o.append(0x7B)
        key("v"); Digits.append(DeliveryState.version, to: &o)
        if let r = itemReceivedAtNanos { key("item_received_at_ns"); Digits.append(r, to: &o) }
        key("attempts"); Digits.append(attempts, to: &o)
        if let n = nextAttemptAtNanos { key("next_attempt_at"); time(n); key("next_attempt_at_ns"); Digits.append(n, to: &o) }
        if let s = lastStatus { key("last_status"); str(s) }
        if let e = lastError { key("last_error"); str(e) }
        if let t = lastAttemptAtNanos { key("last_attempt_at_ns"); Digits.append(t, to: &o) }
        if let f = finishedAtNanos { key("finished_at"); time(f); key("finished_at_ns"); Digits.append(f, to: &o) }
        key("history"); o.append(0x5B)
        for (i, a) in history.enumerated() {
            if i > 0 { o.append(0x2C) }
            o.append(0x7B)
            key("started_at_ns"); Digits.append(a.startedAtNanos, to: &o)
            key("duration_ns"); Digits.append(a.durationNanos, to: &o)
            key("outcome"); str(a.outcome.rawValue)
            if let s = a.status { key("status"); str(s) }
            if let e = a.error { key("error"); str(e) }
            o.append(0x7D)
        }
        o.append(0x5D)
        o.append(0x7D); o.append(0x0A)
        return o
    }

    /// Parses a state file strictly (unknown members ignored, a repeated member counts as absent).
    public static func parse(_ bytes: [UInt8]) throws(SpoolError) -> DeliveryState {
        guard bytes.count <= maxBytes else { throw .corrupt("delivery state larger than \(maxBytes) bytes") }
        var v = ItemMeta.Once<Int64>(), att = ItemMeta.Once<Int64>(), next = ItemMeta.Once<Int64>()
        var st = ItemMeta.Once<String>(), err = ItemMeta.Once<String>(), last = ItemMeta.Once<Int64>()
        var fin = ItemMeta.Once<Int64>(), hist = ItemMeta.Once<JSONValue>(), item = ItemMeta.Once<Int64>()
        let isObject: Bool
        do {
            isObject = try JSONParser.visitObject(bytes) { (name, p) throws(JSONError) in
                switch name {
                case "v": v.set(try p.memberInteger())
                case "attempts": att.set(try p.memberInteger())
                case "item_received_at_ns": item.set(try p.memberInteger())
                case "next_attempt_at_ns": next.set(try p.memberInteger())
                case "last_status": st.set(try p.memberString())
                case "last_error": err.set(try p.memberString())
                case "last_attempt_at_ns": last.set(try p.memberInteger())
                case "finished_at_ns": fin.set(try p.memberInteger())
                case "history": hist.set(try p.memberValue())
                default: _ = try p.memberValue()
                }
            }
        } catch { throw .corrupt("delivery state is not JSON: \(error)") }
        guard isObject, v.get == Int64(version) else { throw .corrupt("delivery state is not a version 2 object") }
        guard let a = att.get, a >= 0, a < 1_000_000 else { throw .corrupt("delivery state lacks attempts") }
        func sane(_ t: Int64?) -> Bool { t.map { abs($0) < 4_500_000_000_000_000_000 } ?? true }
        guard sane(next.get), sane(last.get), sane(fin.get) else { throw .corrupt("delivery state time out of range") }
        var s = DeliveryState()
        s.attempts = Int(a)
        s.itemReceivedAtNanos = item.get
        s.nextAttemptAtNanos = next.get
        s.lastStatus = st.get
        s.lastError = err.get
        s.lastAttemptAtNanos = last.get
        s.finishedAtNanos = fin.get
        if case .array(let items)? = hist.get {
            for item in items.suffix(maxHistory) {
                guard let start = item["started_at_ns"]?.intValue, sane(start), let d = item["duration_ns"]?.intValue, d >= 0,
                      let o = item["outcome"]?.stringValue.flatMap(AttemptRecord.Outcome.init(rawValue:)) else {
                    throw .corrupt("delivery state has a malformed history entry")
                }
                s.history.append(AttemptRecord(startedAtNanos: start, durationNanos: d, outcome: o,
                                               status: item["status"]?.stringValue, error: item["error"]?.stringValue))
            }
        }
        return s
    }

    /// The first `bytes` bytes of `s`, cut on a UTF-8 boundary.
    static func head(_ s: String, bytes: Int) -> String {
        let u = Array(s.utf8)
        guard u.count > bytes else { return s }
        var end = bytes
        while end > 0, (u[end] & 0xC0) == 0x80 { end -= 1 }
        return String(decoding: u[..<end], as: UTF8.self) + "…"
    }
}
