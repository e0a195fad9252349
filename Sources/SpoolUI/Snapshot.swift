import Dispatch
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

/// The directory scan behind every page, shared by all requests. A scan older than `maxAgeNanos` is still
/// served while a new one runs on another thread (so no page waits for a scan of 100,000 items); only the first
/// request, and the first after an action (`invalidate`), waits for a fresh scan. A rescan reads metadata only
/// of items that changed since the last one.
public final class ScanCache: Sendable {
    public let spool: Spool
    public let maxAgeNanos: Int64
    private struct State: Sendable {
        var snapshot: Snapshot?
        var stale = false
        var refreshing = false
    }
    private let state = Mutex(State())
    /// Held for the whole scan so that concurrent callers wait for one scan instead of starting their own.
    private let scanning = Mutex(())

    public init(spool: Spool, maxAgeNanos: Int64 = 2_000_000_000) {
        self.spool = spool
        self.maxAgeNanos = maxAgeNanos
    }

    /// The next request waits for a new scan (after an action, so that its redirect shows the result).
    public func invalidate() { state.withLock { $0.stale = true } }

    /// After an action on one item: the cached scan is corrected in place (the item leaves whatever state it was
    /// in, and `moved` joins its new state), so the page after a retry or purge does not wait for a rescan of
    /// the whole spool. Without a cached scan nothing is done.
    public func update(fileName: String, moved: ItemInfo?) {
        state.withLock { s in
            guard let old = s.snapshot else { return }
            var items = old.items
            for st in ItemState.allCases { items[st]?.removeAll { $0.fileName == fileName } }
            if let moved {
                var list = items[moved.state] ?? []
                let at = list.firstIndex { $0.dueAtNanos > moved.dueAtNanos } ?? list.endIndex
                list.insert(moved, at: at)
                items[moved.state] = list
            }
            s.snapshot = Snapshot(takenAtNanos: old.takenAtNanos, items: items, tmpEntries: old.stats.tmpEntries,
                                  keyMarkers: old.stats.keyMarkers - (moved == nil ? 1 : 0), scanNanos: old.scanNanos)
        }
    }

    public func snapshot() throws(UIError) -> Snapshot {
        let now = spool.now()
        let (cached, refresh) = state.withLock { s -> (Snapshot?, Bool) in
            guard !s.stale, let snap = s.snapshot else { return (nil, false) }
            guard now - snap.takenAtNanos >= maxAgeNanos, !s.refreshing else { return (snap, false) }
            s.refreshing = true
            return (snap, true)
        }
        if refresh {
            DispatchQueue.global().async {
                _ = try? self.scan(since: now)
                self.state.withLock { $0.refreshing = false }
            }
        }
        if let cached { return cached }
        return try scan(since: now)
    }

    /// A new scan, unless one that started after `since` finished while this caller waited for the lock.
    private func scan(since: Int64) throws(UIError) -> Snapshot {
        try scanning.withLock { _ throws(UIError) -> Snapshot in
            let previous = state.withLock { $0.snapshot }
            if let previous, previous.takenAtNanos >= since, !state.withLock({ $0.stale }) { return previous }
            let started = spool.now()
            state.withLock { $0.stale = false }
            var items: [ItemState: [ItemInfo]] = [:]
            for st in ItemState.allCases {
                var byName: [String: ItemInfo] = [:]
                // Metadata of items still in the same state, unchanged, is reused (a move to another state changes the ctime).
                if let previous {
                    byName.reserveCapacity(previous.count(st))
                    for i in previous.items[st] ?? [] { byName[i.fileName] = i }
                }
                do throws(SpoolError) { items[st] = try spool.list(state: st, reusing: byName) } catch {
                    state.withLock { $0.stale = true }
                    throw .spool(error)
                }
            }
            let counts = spool.directoryEntryCounts()
            let now = spool.now()
            let snap = Snapshot(takenAtNanos: now, items: items, tmpEntries: counts.tmp, keyMarkers: counts.keys, scanNanos: now - started)
            state.withLock { $0.snapshot = snap }
            return snap
        }
    }
}
