import Synchronization
import SpoolCore

/// What the pages show, from one scan of the spool directory.
public struct Snapshot: Sendable {
    public static let chartMinutes = 60

    public let takenAtNanos: Int64
    /// Per state, oldest first (payload mtime: arrival, or the not-before time of a waiting retry).
    public let items: [ItemState: [ItemInfo]]
    public let stats: SpoolStats
    /// Per minute of the last hour, oldest first (the last bucket is the current minute).
    public let arrivals: [Int]
    public let completions: [Int]
    public let failures: [Int]
    /// How long the scan took.
    public let scanNanos: Int64

    init(takenAtNanos now: Int64, items: [ItemState: [ItemInfo]], tmpEntries: Int, keyMarkers: Int, scanNanos: Int64) {
        takenAtNanos = now
        self.items = items
        self.scanNanos = scanNanos
        var s = SpoolStats()
        for state in ItemState.allCases {
            let list = items[state] ?? []
            s.counts[state] = list.count
            s.bytes[state] = list.reduce(0) { $0 + $1.size }
        }
        s.oldestWaitingReceivedAtNanos = items[.new]?.first?.dueAtNanos
        s.tmpEntries = tmpEntries
        s.keyMarkers = keyMarkers
        stats = s
        var a = [Int](repeating: 0, count: Self.chartMinutes)
        var c = a, f = a
        func bucket(_ t: Int64) -> Int? {
            guard t <= now else { return nil }
            let ago = (now - t) / 60_000_000_000
            return ago < Int64(Self.chartMinutes) ? Self.chartMinutes - 1 - Int(ago) : nil
        }
        for list in items.values {
            for i in list {
                if let b = bucket(i.receivedAtNanos) { a[b] += 1 }
                if let t = i.finishedAtNanos, let b = bucket(t) {
                    if i.state == .done { c[b] += 1 } else { f[b] += 1 }
                }
            }
        }
        arrivals = a
        completions = c
        failures = f
    }

    public func count(_ state: ItemState) -> Int { items[state]?.count ?? 0 }
}

/// The directory scan behind every page, shared by all requests and taken again at most every `maxAgeNanos`
/// (an action forces the next one). A rescan reads metadata only of items that changed since the last one.
public final class ScanCache: Sendable {
    public let spool: Spool
    public let maxAgeNanos: Int64
    private struct State: Sendable {
        var snapshot: Snapshot?
        var stale = false
    }
    private let state = Mutex(State())
    /// Held for the whole scan so that concurrent requests wait for one scan instead of starting their own.
    private let scanning = Mutex(())

    public init(spool: Spool, maxAgeNanos: Int64 = 2_000_000_000) {
        self.spool = spool
        self.maxAgeNanos = maxAgeNanos
    }

    /// The next request scans again.
    public func invalidate() { state.withLock { $0.stale = true } }

    public func snapshot() throws(UIError) -> Snapshot {
        if let s = fresh() { return s }
        return try scanning.withLock { _ throws(UIError) -> Snapshot in
            if let s = fresh() { return s }
            let previous = state.withLock { $0.snapshot }
            let started = spool.now()
            var items: [ItemState: [ItemInfo]] = [:]
            for st in ItemState.allCases {
                var byName: [String: ItemInfo] = [:]
                // Metadata of items still in the same state, unchanged, is reused (a move to another state changes the ctime).
                if let previous {
                    byName.reserveCapacity(previous.count(st))
                    for i in previous.items[st] ?? [] { byName[i.fileName] = i }
                }
                do throws(SpoolError) { items[st] = try spool.list(state: st, reusing: byName) } catch { throw .spool(error) }
            }
            let counts = spool.directoryEntryCounts()
            let now = spool.now()
            let snap = Snapshot(takenAtNanos: now, items: items, tmpEntries: counts.tmp, keyMarkers: counts.keys, scanNanos: now - started)
            state.withLock { $0 = State(snapshot: snap, stale: false) }
            return snap
        }
    }

    private func fresh() -> Snapshot? {
        state.withLock { s in
            guard !s.stale, let snap = s.snapshot, spool.now() - snap.takenAtNanos < maxAgeNanos else { return nil }
            return snap
        }
    }
}
