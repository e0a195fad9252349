import SpoolSystem
import SpoolWire

extension ItemInfo {
    /// The object of one `spool ls --json` line (and of the UI's `/api/items`), built byte by byte: listings
    /// can hold 100,000 items.
    public func appendJSON(now: Int64, to o: inout [UInt8]) {
        func key(_ k: StaticString) {
            if o.last != 0x7B { o.append(0x2C) }
            o.append(0x22); k.withUTF8Buffer { o.append(contentsOf: $0) }; o.append(0x22); o.append(0x3A)
        }
        func str(_ s: String) { JSONWriter.appendQuoted(s, to: &o) }
        func time(_ n: Int64) { o.append(0x22); RFC3339.append(nanos: n, to: &o); o.append(0x22) }
        o.append(0x7B)
        key("queue"); str(queue)
        key("state"); str(state.rawValue)
        key("key"); str(self.key)
        key("size"); o.append(contentsOf: String(size).utf8)
        key("received_at"); time(receivedAtNanos)
        key("attempts"); o.append(contentsOf: String(meta?.attempts ?? 0).utf8)
        key("path"); str(path)
        if state == .new, dueAtNanos > now { key("next_attempt_at"); time(dueAtNanos) }
        if let e = meta?.lastError { key("last_error"); str(e) }
        if let s = meta?.lastStatus { key("last_status"); str(s) }
        if state == .claimed, let c = meta?.claimedBy { key("claimed_by"); str(c) }
        if let f = finishedAtNanos { key("finished_at"); time(f) }
        if let ct = meta?.header("content-type") { key("content_type"); str(ct) }
        if let src = meta?.source { key("source"); str(src) }
        if meta == nil { key("meta_error"); str("metadata unreadable") }
        o.append(0x7D)
    }
}

extension SpoolStats {
    /// The age of the oldest item waiting in `new/`, in whole seconds.
    public func oldestWaitingAgeSeconds(now: Int64) -> Int64? { oldestWaitingReceivedAtNanos.map { max(0, (now - $0) / 1_000_000_000) } }

    /// The object `spool stats --json` prints (and the UI's `/api/stats`).
    public func json(now: Int64) -> String {
        let c = ItemState.allCases.map { "\"\($0.rawValue)\":\(counts[$0] ?? 0)" }.joined(separator: ",")
        let b = ItemState.allCases.map { "\"\($0.rawValue)\":\(bytes[$0] ?? 0)" }.joined(separator: ",")
        let age = oldestWaitingAgeSeconds(now: now)
        return "{\(c),\"bytes\":{\(b)},\"oldest_waiting_age_seconds\":\(age.map(String.init) ?? "null"),\"tmp\":\(tmpEntries),\"keys\":\(keyMarkers)}"
    }
}

extension Spool {
    /// The items of one state, oldest first, reading metadata only of items that are new or changed since
    /// `previous` (by file name: same size, mtime and ctime, and every metadata write changes the ctime). For a
    /// view that rescans a large spool every few seconds: the steady cost is one directory listing and one stat
    /// per item.
    public func list(state: ItemState, reusing previous: [String: ItemInfo]) throws(SpoolError) -> [ItemInfo] {
        let d = dir(state)
        let names = try sys("list \(state)") { () throws(Errno) in try FS.listNames(in: d) }
        let withState = Set((try? FS.listNames(in: q.state)) ?? [])
        var infos = parallelMap(names) { name in
            SpoolKey(fileName: name).flatMap { self.itemInfo(name: name, key: $0, state: state, withMeta: false, hasState: withState.contains(name)) }
        }.compactMap { $0 }
        var missing: [Int] = []
        for i in infos.indices {
            if let p = previous[infos[i].fileName], p.state == state, p.size == infos[i].size,
               p.dueAtNanos == infos[i].dueAtNanos, p.changedAtNanos == infos[i].changedAtNanos, p.meta != nil {
                infos[i].meta = p.meta
            } else {
                missing.append(i)
            }
        }
        let metas = parallelMap(missing.map { infos[$0].fileName }) { try? self.readMeta(name: $0, state: state, hasState: withState.contains($0)) }
        for (j, i) in missing.enumerated() { infos[i].meta = metas[j] }
        infos.sort { $0.dueAtNanos < $1.dueAtNanos }
        return infos
    }
}

extension Spool {
    /// Entries in `tmp/` and key markers in `keys/` (as `stats` counts them).
    public func directoryEntryCounts() -> (tmp: Int, keys: Int) {
        ((try? FS.listNames(in: tmp).count) ?? 0, (try? FS.listNames(in: keys).count) ?? 0)
    }
}
