import Dispatch
import Synchronization
import SpoolSystem
import SpoolWire

/// Slots filled by concurrent workers, each writing its own range.
final class Slots<T: Sendable>: Sendable {
    private let slots: Mutex<[T?]>
    init(count: Int) { slots = Mutex([T?](repeating: nil, count: count)) }
    func store(_ values: [T?], at offset: Int) {
        slots.withLock { s in for (i, v) in values.enumerated() { s[offset + i] = v } }
    }
    var values: [T?] { slots.withLock { $0 } }
}

/// `transform` over `inputs` on every core when there are enough of them (stat and attribute reads of a
/// 100,000-item listing are system calls that parallelise well); results keep the input order.
func parallelMap<T: Sendable, R: Sendable>(_ inputs: [T], minimumForThreads: Int = 2048,
                                          _ transform: @Sendable (T) -> R?) -> [R?] {
    let chunks = inputs.count < minimumForThreads ? 1 : min(8, ProcessInfoLite.activeProcessors * 2)
    if chunks == 1 { return inputs.map(transform) }
    let results = Slots<R>(count: inputs.count)
    let per = (inputs.count + chunks - 1) / chunks
    DispatchQueue.concurrentPerform(iterations: chunks) { c in
        let lo = c * per, hi = min(inputs.count, lo + per)
        guard lo < hi else { return }
        var local: [R?] = []
        local.reserveCapacity(hi - lo)
        for x in inputs[lo..<hi] { local.append(transform(x)) }
        results.store(local, at: lo)
    }
    return results.values
}

/// Online processor count without Foundation.
enum ProcessInfoLite {
    static var activeProcessors: Int { FS.onlineProcessors }
}

/// One item as the operator sees it.
public struct ItemInfo: Sendable {
    public var state: ItemState
    public var key: String
    public var fileName: String
    public var size: Int64
    /// Not-before time for items in `new/` (the payload's mtime).
    public var dueAtNanos: Int64
    /// The payload's ctime: for a finished item, when it reached `done/` or `failed/` (unless metadata says).
    public var changedAtNanos: Int64
    /// Nil when the metadata could not be read (the item is still listed).
    public var meta: ItemMeta?
    public var path: String
    /// The queue it was listed in.
    public var queue: String = QueueName.defaultName

    public var receivedAtNanos: Int64 { meta?.receivedAtNanos ?? dueAtNanos }
    /// When a finished item finished.
    public var finishedAtNanos: Int64? {
        guard state == .done || state == .failed else { return nil }
        return meta?.finishedAtNanos ?? changedAtNanos
    }
}

public struct SpoolStats: Sendable {
    public var counts: [ItemState: Int] = [:]
    public var bytes: [ItemState: Int64] = [:]
    public var oldestWaitingReceivedAtNanos: Int64?
    public var tmpEntries = 0
    public var keyMarkers = 0

    public init() {}
}

extension Spool {
    /// Lists items; tolerates items moving or vanishing while it reads (they are skipped or seen once).
    public func list(states: [ItemState] = ItemState.allCases, limit: Int? = nil, withMeta: Bool = true) throws(SpoolError) -> [ItemInfo] {
        var out: [ItemInfo] = []
        // Which items have a delivery state in this queue: listed once, so that only those are opened.
        let withState = Set((try? FS.listNames(in: q.state)) ?? [])
        for state in states {
            let d = dir(state)
            let names = try sys("list \(state)") { () throws(Errno) in try FS.listNames(in: d) }
            var infos: [ItemInfo]
            if limit == nil && withMeta {
                // Everything is read anyway: each item opened once (fstat, the header's pread), on all cores.
                infos = parallelMap(names) { name in
                    SpoolKey(fileName: name).flatMap { self.itemInfo(name: name, key: $0, state: state, withMeta: true, hasState: withState.contains(name)) }
                }.compactMap { $0 }
                infos.sort { $0.dueAtNanos < $1.dueAtNanos }
            } else {
                // Oldest first (arrival, or the not-before time of a waiting retry), then only the headers of the
                // items that are shown.
                infos = parallelMap(names) { name in
                    SpoolKey(fileName: name).flatMap { self.itemInfo(name: name, key: $0, state: state, withMeta: false, hasState: withState.contains(name)) }
                }.compactMap { $0 }
                infos.sort { $0.dueAtNanos < $1.dueAtNanos }
                if let limit { infos = Array(infos.prefix(max(0, limit - out.count))) }
                if withMeta {
                    let metas = parallelMap(infos.map(\.fileName)) { try? self.readMeta(name: $0, state: state, hasState: withState.contains($0)) }
                    for i in infos.indices {
                        infos[i].meta = metas[i]
                        if state == .new, let n = metas[i]?.nextAttemptAtNanos { infos[i].dueAtNanos = n }
                    }
                }
            }
            out += infos
            if let limit, out.count >= limit { return out }
        }
        return out
    }

    /// One item of a listing. With `withMeta`, the item file is opened once (fstat, then one `pread` of its header);
    /// without, it is only `stat`ed. `hasState` (from a listing of `state/`) saves looking for a state file that is
    /// not there; nil looks.
    func itemInfo(name: String, key: SpoolKey, state: ItemState, withMeta: Bool, hasState: Bool? = nil) -> ItemInfo? {
        let d = dir(state)
        let st: FileStat
        var meta: ItemMeta? = nil
        if withMeta {
            guard let fd = try? FileDescriptor.open(name, in: d, [.readOnly, .noFollow, .nonBlocking]) else { return nil }
            defer { try? fd.close() }
            guard let s = try? fd.stat(), s.isRegular else { return nil }
            st = s
            meta = try? readMeta(name: name, state: state, fd: fd, fileSize: s.size, hasState: hasState)
        } else {
            guard let s = try? FS.stat(name, in: d), s.isRegular else { return nil }
            st = s
        }
        var due = st.mtimeNanos
        if state == .new {
            if let n = meta?.nextAttemptAtNanos {
                due = n  // the state file says it to the nanosecond (a copy may keep mtimes to the second only)
            } else if !withMeta, hasState ?? true, let ss = try? FS.stat(name, in: q.state) {
                due = ss.mtimeNanos  // a waiting retry's not-before time is its state file's mtime
            }
        }
        return ItemInfo(state: state, key: key.value, fileName: name, size: meta?.size ?? st.size, dueAtNanos: due, changedAtNanos: st.ctimeNanos,
                        meta: meta, path: "\(path)/\(q.prefix)\(state.rawValue)/\(name)", queue: queue)
    }

    /// Whether the key has an item: its marker (`keys/<name>`) with a second link (the item in a queue, or staged in
    /// `tmp/`). The cheap check before building an item that enqueue would answer "duplicate" anyway. A marker
    /// alone (an enqueue in flight, or one whose writer died before its queues) answers false: the enqueue then
    /// decides, and finishes a dead writer's item instead of leaving it in no queue.
    public func hasMarker(key: SpoolKey) -> Bool {
        ((try? FS.stat(key.fileName, in: keys))?.linkCount ?? 0) >= 2
    }

    /// Finds one item by key, looking in every state (twice, in case it moved while we looked).
    public func find(key: SpoolKey) throws(SpoolError) -> ItemInfo {
        for _ in 0..<2 {
            for state in ItemState.allCases {
                if let info = itemInfo(name: key.fileName, key: key, state: state, withMeta: true) { return info }
            }
        }
        throw .notFound(key: key.value)
    }

    /// The exact stored bytes of an item (its payload, without the header).
    public func payload(of info: ItemInfo, limit: Int = 1 << 30) throws(SpoolError) -> [UInt8] {
        try withItemFile(name: info.fileName, in: dir(info.state)) { (fd, st) throws(SpoolError) in
            let (h, offset) = try Spool.readHeader(fd, fileSize: st.size)
            guard h.size <= Int64(limit) else { throw SpoolError.system(operation: "read payload of \(info.key)", errno: .fileTooLarge) }
            return try sys("read payload of \(info.key)") { () throws(Errno) in try fd.readToEnd(from: offset, size: Int(h.size)) }
        }
    }

    /// The first `limit` bytes of an item's payload, and whether there is more (for pages that show a large payload).
    public func payloadHead(of info: ItemInfo, limit: Int) throws(SpoolError) -> ([UInt8], Bool) {
        try withItemFile(name: info.fileName, in: dir(info.state)) { (fd, st) throws(SpoolError) in
            let (h, offset) = try Spool.readHeader(fd, fileSize: st.size)
            let n = Int(min(h.size, Int64(limit)))
            let bytes = try sys("read payload of \(info.key)") { () throws(Errno) in try fd.read(at: offset, upTo: n) }
            return (bytes, h.size > Int64(limit))
        }
    }

    /// Counts and sizes per state. Reads only directory entries and item stats, never headers: `bytes` are the item
    /// files' sizes (payloads and their headers).
    public func stats() throws(SpoolError) -> SpoolStats {
        var s = SpoolStats()
        for state in ItemState.allCases {
            let d = dir(state)
            let names = try sys("list \(state)") { () throws(Errno) in try FS.listNames(in: d) }
            var count = 0
            var bytes: Int64 = 0
            for n in names {
                guard let st = try? FS.stat(n, in: d), st.isRegular else { continue }
                count += 1
                bytes += st.size
                if state == .new { s.oldestWaitingReceivedAtNanos = min(s.oldestWaitingReceivedAtNanos ?? st.mtimeNanos, st.mtimeNanos) }
            }
            s.counts[state] = count
            s.bytes[state] = bytes
        }
        s.tmpEntries = (try? FS.listNames(in: tmp).count) ?? 0
        s.keyMarkers = (try? FS.listNames(in: keys).count) ?? 0
        return s
    }

    /// Checks that the spool can take a write right now (for `/healthz`): creates, flushes and removes a file.
    public func probeWritable() -> Bool {
        let name = tmpName(for: "healthz", kind: "h")
        do {
            try faults.check(.open)
            let fd = try FileDescriptor.open(name, in: tmp, [.writeOnly, .create, .exclusive, .noFollow])
            defer { try? fd.close(); try? FS.unlink(name, in: tmp) }
            try faults.check(.write)
            try fd.writeAll([0x31])
            try faults.check(.fsync)
            try fd.fsync()
            return true
        } catch { return false }
    }
}
