import SpoolSystem

/// Which finished items `spool replay` sends back: arrival in `[since, until)`, the keys given (if any), the states.
public struct ReplaySelection: Sendable {
    public var states: [ItemState] = [.done, .failed]
    /// Arrival (the header's `received_at`) at or after this time.
    public var sinceNanos: Int64?
    /// Arrival before this time.
    public var untilNanos: Int64?
    /// Only these keys (nil: any).
    public var keys: Set<String>?
    public init() {}

    public func admits(_ info: ItemInfo) -> Bool {
        let at = info.receivedAtNanos
        if let s = sinceNanos, at < s { return false }
        if let u = untilNanos, at >= u { return false }
        if let keys, !keys.contains(info.key) { return false }
        return true
    }
}

public struct ReplayReport: Sendable {
    /// The items that moved (or, on a dry run, would move), oldest arrival first.
    public var items: [ItemInfo] = []
    /// Keys that could not move now (a claimant or another command held them), with why.
    public var skipped: [(key: String, reason: String)] = []
    public init(items: [ItemInfo] = []) { self.items = items }
}

extension Spool {
    /// Finished items of this queue that `selection` and `accept` (the CLI's `--match`, which may read the payload)
    /// take, oldest arrival first.
    public func replayCandidates(_ selection: ReplaySelection, accept: (ItemInfo) -> Bool = { _ in true }) throws(SpoolError) -> [ItemInfo] {
        precondition(selection.states.allSatisfy { $0 == .done || $0 == .failed }, "replay takes done or failed")
        let all = try list(states: selection.states, withMeta: true)
        return all.filter { selection.admits($0) && accept($0) }.sorted { ($0.receivedAtNanos, $0.key) < ($1.receivedAtNanos, $1.key) }
    }

    /// Moves `items` (from `replayCandidates`) back to `new/`, due now, attempts reset, history kept: each one as
    /// `retry` does, under the queue's lock byte. `new/` is flushed once at the end, so what is reported has moved.
    public func replay(_ items: [ItemInfo]) throws(SpoolError) -> ReplayReport {
        var report = ReplayReport()
        for info in items {
            guard let key = SpoolKey(fileName: info.fileName) else { continue }
            do throws(SpoolError) {
                if try requeue(name: info.fileName, key: key, from: info.state) { report.items.append(info) }
                else { report.skipped.append((info.key, "no longer in \(info.state)/")) }
            } catch .busy {
                report.skipped.append((info.key, "busy (held by another process)"))
            }
        }
        if !report.items.isEmpty {
            try sys("flush new/") { () throws(Errno) in try dir(.new).fsync() }
            invalidateScan()
        }
        return report
    }
}
