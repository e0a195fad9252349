import SpoolSystem
import SpoolWire

/// What `recover` did, one line per action, for the operator.
public struct RecoveryReport: Sendable, Equatable {
    public var requeuedClaims: [String] = []
    public var completedWrites: [String] = []
    public var removedTmp: [String] = []
    public var removedOrphanMarkers: [String] = []
    public var relinkedMarkers: [String] = []
    public var problems: [String] = []

    public var lines: [String] {
        requeuedClaims.map { "requeued \($0) (its claimant is gone)" }
            + completedWrites.map { "completed interrupted enqueue of \($0)" }
            + removedTmp.map { "removed stale tmp/\($0)" }
            + removedOrphanMarkers.map { "removed orphan key marker \($0)" }
            + relinkedMarkers.map { "restored missing key marker of \($0)" }
            + problems.map { "problem: \($0)" }
    }
    public var isEmpty: Bool { lines.isEmpty }
}

extension Spool {
    /// Repairs what crashed processes left behind. Safe to run at any time, alongside everything else:
    /// it only acts on entries whose lock nobody holds.
    /// - `claimed/` items whose claimant died go back to `new/` (due now; the attempt stays counted);
    /// - `tmp/` writes of dead processes are finished (if their marker was linked) or removed;
    ///   purge trash is removed;
    /// - markers that no item links to are removed; items whose marker is missing get it back.
    /// Metadata files without a marker are left alone (harmless: the next enqueue of the key replaces them).
    /// `tmpGraceNanos` protects a write whose directory exists but whose payload is not yet created and locked.
    public func recover(tmpGraceNanos: Int64 = 2_000_000_000) -> RecoveryReport {
        var report = RecoveryReport()
        let now = self.now()
        recoverTmp(now: now, grace: tmpGraceNanos, into: &report)
        recoverClaims(now: now, into: &report)
        recoverMarkers(into: &report)
        invalidateScan()
        return report
    }

    /// The `tmp/` part of `recover`: finishes enqueues whose writer died after linking the marker, removes
    /// abandoned writes. Cheap (tmp/ is small); the ingress and consumers run it periodically.
    public func recoverInterruptedWrites(tmpGraceNanos: Int64 = 2_000_000_000) -> RecoveryReport {
        var r = RecoveryReport()
        recoverTmp(now: now(), grace: tmpGraceNanos, into: &r)
        if !r.completedWrites.isEmpty { invalidateScan() }
        return r
    }

    /// Only the cheap part of `recover`: returns items of dead claimants (free kernel lock) to `new/`.
    /// Consumers run it every second, so a killed consumer's items are picked up within seconds.
    public func recoverDeadClaims() -> [String] {
        var r = RecoveryReport()
        recoverClaims(now: now(), into: &r)
        if !r.requeuedClaims.isEmpty { invalidateScan() }
        return r.requeuedClaims
    }

    /// Whether the process that wrote a tmp/ entry is gone: its name carries `<pid>-<start ticks>-<random>-<n>`
    /// (format 1 names; older `<pid>-<random>-<n>` names cannot tell and get the grace period). A pid that
    /// exists with another start time was reused: its writer is gone too.
    static func writerIsDead(_ unique: Substring, alive: (Int32) -> UInt64?) -> Bool {
        let f = unique.split(separator: "-", omittingEmptySubsequences: false)
        guard f.count == 4, let pid = Int32(f[0]), pid > 0, let start = UInt64(f[1]), start > 0 else { return false }
        return alive(pid) != start
    }

    private func recoverTmp(now: Int64, grace: Int64, into report: inout RecoveryReport) {
        guard let entries = try? FS.listNames(in: tmp) else { report.problems.append("cannot list tmp/"); return }
        let present = Set(entries)
        var starts: [Int32: UInt64?] = [:]
        let alive: (Int32) -> UInt64? = { pid in
            if let known = starts[pid] { return known }
            let s = FS.processStartTicks(pid)
            starts[pid] = s
            return s
        }
        for entry in entries.sorted(by: { $0.hasSuffix(".w") && !$1.hasSuffix(".w") }) {
            let parts = entry.split(separator: ".", omittingEmptySubsequences: false)
            let kind = parts.count == 3 ? parts[2] : ""
            let itemName = String(parts.first ?? "")
            // The grace period exists for writers that may still be between creating a file and locking it (or
            // finishing its metadata); a writer known to be dead gets none.
            let entryGrace = parts.count == 3 && Spool.writerIsDead(parts[1], alive: alive) ? 0 : grace
            guard let st = try? FS.stat(entry, in: tmp) else { continue } // taken care of already
            switch kind {
            case "w", "p":
                // A payload being written (w) or purged (p): its writer holds the lock while alive.
                guard let fd = try? FileDescriptor.open(entry, in: tmp, [.readOnly, .noFollow, .nonBlocking]) else { continue }
                defer { try? fd.close() }
                guard (try? fd.tryLockExclusive()) == .acquired, let held = try? fd.stat(), held.isRegular,
                      let cur = try? FS.stat(entry, in: tmp), cur.sameFile(as: held) else { continue }
                if now - st.mtimeNanos < entryGrace && held.linkCount < 2 && kind == "w" { continue } // may be unlocked for a moment at creation
                let markerIsThis = (try? FS.stat(itemName, in: keys))?.sameFile(as: held) ?? false
                if kind == "w" && markerIsThis {
                    // The marker was linked, so a racing request may have been told "duplicate": finish the enqueue
                    // instead of dropping a durable payload.
                    let metaEntry = String(entry.dropLast(2)) + ".m"
                    if present.contains(metaEntry) { try? FS.rename(metaEntry, in: tmp, to: itemName, in: metas) }
                    if (try? FS.renameNoReplace(entry, in: tmp, to: itemName, in: dir(.new))) != nil {
                        _ = try? metas.fsync(); _ = try? dir(.new).fsync()
                        report.completedWrites.append(SpoolKey(fileName: itemName)?.value ?? itemName)
                    } else {
                        report.problems.append("tmp/\(entry) is linked as key \(itemName) but new/\(itemName) exists")
                    }
                    continue
                }
                if kind == "p" && markerIsThis {
                    // An interrupted purge: finish it.
                    try? FS.unlink(itemName, in: metas)
                    try? FS.unlink(itemName, in: keys)
                }
                try? FS.unlink(entry, in: tmp)
                report.removedTmp.append(entry)
            default:
                // Metadata being written (m), a health probe (h), or anything else: no lock; spare young ones.
                guard now - st.mtimeNanos >= entryGrace else { continue }
                if kind == "m", present.contains(String(entry.dropLast(2)) + ".w"), (try? FS.stat(String(entry.dropLast(2)) + ".w", in: tmp)) != nil {
                    continue // its payload is still there (in progress): decided with the payload
                }
                if st.isDirectory { try? FS.removeFlatDirectory(entry, in: tmp) } else { try? FS.unlink(entry, in: tmp) }
                report.removedTmp.append(entry)
            }
        }
    }

    private func recoverClaims(now: Int64, into report: inout RecoveryReport) {
        let claimedDir = dir(.claimed)
        guard let names = try? FS.listNames(in: claimedDir) else { report.problems.append("cannot list claimed/"); return }
        for name in names {
            guard let key = SpoolKey(fileName: name) else { report.problems.append("foreign entry claimed/\(name)"); continue }
            guard let fd = try? FileDescriptor.open(name, in: claimedDir, [.readOnly, .noFollow, .nonBlocking]) else { continue }
            defer { try? fd.close() }
            guard (try? fd.tryLockExclusive()) == .acquired else { continue } // claimant alive
            guard let held = try? fd.stat(), held.isRegular, let cur = try? FS.stat(name, in: claimedDir), cur.sameFile(as: held) else { continue }
            if var meta = try? readMeta(name: name, payload: fd) {
                let who = meta.claimedBy ?? "unknown"
                meta.claimedBy = nil
                meta.lastError = "claimant \(who) died during attempt \(meta.attempts)"
                meta.lastStatus = "abandoned"
                try? writeMeta(meta, payload: fd, name: name)
            }
            try? fd.setModificationTime(nanos: now)
            do {
                try FS.renameNoReplace(name, in: claimedDir, to: name, in: dir(.new))
                report.requeuedClaims.append(key.value)
            } catch {
                report.problems.append("cannot requeue claimed/\(name): \(error)")
            }
        }
    }

    private func recoverMarkers(into report: inout RecoveryReport) {
        guard let markers = try? FS.listEntries(in: keys) else { report.problems.append("cannot list keys/"); return }
        // A name listed in keys/ and in a state directory with the same inode number is one file with two links:
        // a healthy item, known without a stat. Only the rest are looked at one by one (this made the start of
        // every consumer three stats per item of backlog). Entries moving during the listings land in the rest.
        var markerInodes: [String: UInt64] = [:]
        markerInodes.reserveCapacity(markers.count)
        for m in markers where m.isRegular != false { markerInodes[m.name] = m.inode }
        var listings: [(ItemState, [FS.DirectoryEntry])] = []
        var healthy = Set<String>()
        for state in ItemState.allCases {
            guard let entries = try? FS.listEntries(in: dir(state)) else { continue }
            listings.append((state, entries))
            for e in entries where e.isRegular == true && markerInodes[e.name] == e.inode { healthy.insert(e.name) }
        }
        for m in markers where !healthy.contains(m.name) {
            guard let st = try? FS.stat(m.name, in: keys), st.linkCount < 2 else { continue }
            guard let key = SpoolKey(fileName: m.name) else { report.problems.append("foreign entry keys/\(m.name)"); continue }
            if (try? resolveExistingMarker(key)) == false { report.removedOrphanMarkers.append(key.value) }
        }
        for (state, entries) in listings {
            for e in entries {
                guard let key = SpoolKey(fileName: e.name) else { report.problems.append("foreign entry \(state)/\(e.name)"); continue }
                if e.isRegular == true && markerInodes[e.name] == e.inode { continue }  // healthy, as above
                guard let st = try? FS.stat(e.name, in: dir(state)) else { continue }
                guard st.isRegular else { report.problems.append("\(state)/\(e.name) is not a regular file"); continue }
                if st.linkCount >= 2 { continue }
                do {
                    try FS.link(e.name, in: dir(state), to: e.name, in: keys)
                    report.relinkedMarkers.append(key.value)
                } catch {
                    report.problems.append("\(state)/\(e.name) has no key marker and it cannot be restored: \(error)")
                }
            }
        }
    }

    /// Removes items in `states` that finished before `olderThanNanos` ago, with their key markers, so their keys
    /// can be enqueued again. Each item goes to `tmp/` first (one rename), so a crash never leaves half an item.
    public func purge(states: [ItemState], olderThanNanos: Int64) throws(SpoolError) -> [String] {
        let cutoff = now() - olderThanNanos
        var removed: [String] = []
        for state in states {
            precondition(state == .done || state == .failed, "purge only takes done or failed")
            let d = dir(state)
            let names = try sys("list \(state)") { () throws(Errno) in try FS.listNames(in: d) }
            for name in names {
                guard let key = SpoolKey(fileName: name) else { continue }
                if try purgeItem(name: name, key: key, state: state, cutoff: cutoff) { removed.append(key.value) }
            }
        }
        if !removed.isEmpty { _ = try? keys.fsync() }
        return removed
    }

    /// Purges one finished item (done or failed), whenever it finished; the same steps and lock as `purge`.
    public func purge(key: SpoolKey) throws(SpoolError) {
        for state in [ItemState.done, .failed] where (try? FS.stat(key.fileName, in: dir(state))) != nil {
            if try purgeItem(name: key.fileName, key: key, state: state, cutoff: Int64.max) {
                _ = try? keys.fsync()
                return
            }
            throw .busy(key: key.value)
        }
        if (try? FS.stat(key.fileName, in: keys)) != nil { throw .conflict("\(key) is not finished (it is waiting or claimed)") }
        throw .notFound(key: key.value)
    }

    /// One item of `purge`: false when it is not there any more, finished after `cutoff`, or locked.
    func purgeItem(name: String, key: SpoolKey, state: ItemState, cutoff: Int64) throws(SpoolError) -> Bool {
        let d = dir(state)
        // Finished at: the metadata's time if it recorded one, else the ctime the move into this state set.
        guard let st = try? FS.stat(name, in: d) else { return false }
        let finished = (try? readMeta(name: name, state: state))?.finishedAtNanos ?? st.ctimeNanos
        guard finished <= cutoff else { return false }
        guard let fd = try? FileDescriptor.open(name, in: d, [.readOnly, .noFollow, .nonBlocking]) else { return false }
        defer { try? fd.close() }
        guard (try? fd.tryLockExclusive()) == .acquired, let held = try? fd.stat() else { return false }
        guard let cur = try? FS.stat(name, in: d), cur.sameFile(as: held) else { return false }
        let trash = tmpName(for: name, kind: "p")
        do { try FS.renameNoReplace(name, in: d, to: trash, in: tmp) } catch { return false }
        // Metadata before the marker: while the marker exists no new item of this key can be accepted,
        // so the metadata file removed here is certainly this item's.
        if let m = try? FS.stat(name, in: keys), m.sameFile(as: held) {
            try? FS.unlink(name, in: metas)
            try sys("remove key marker of \(key)") { () throws(Errno) in try FS.unlink(name, in: keys) }
        }
        try? FS.unlink(trash, in: tmp)
        return true
    }

    /// Puts items back into `new/`, due now, with their attempt count reset. Takes items from `failed/`,
    /// and from `new/` (making a waiting retry due at once).
    public func retry(key: SpoolKey) throws(SpoolError) {
        let name = key.fileName
        for state in [ItemState.failed, .new] {
            guard let fd = try? FileDescriptor.open(name, in: dir(state), [.readOnly, .noFollow, .nonBlocking]) else { continue }
            defer { try? fd.close() }
            guard try sys("lock \(key)", { () throws(Errno) in try fd.tryLockExclusive() }) == .acquired else { throw .busy(key: key.value) }
            guard let held = try? fd.stat(), let cur = try? FS.stat(name, in: dir(state)), cur.sameFile(as: held) else { continue }
            var meta = (try? readMeta(name: name, payload: fd)) ?? ItemMeta(key: key.value, receivedAtNanos: held.mtimeNanos, size: held.size)
            meta.attempts = 0
            meta.nextAttemptAtNanos = nil
            meta.finishedAtNanos = nil
            try writeMeta(meta, payload: fd, name: name)
            try sys("make \(key) due") { () throws(Errno) in try fd.setModificationTime(nanos: now()) }
            if state == .failed {
                try sys("move \(key) to new") { () throws(Errno) in try FS.renameNoReplace(name, in: dir(.failed), to: name, in: dir(.new)) }
            }
            invalidateScan()
            return
        }
        if (try? FS.stat(name, in: keys)) != nil { throw .conflict("\(key) is not in failed/ or new/ (it is claimed or done)") }
        throw .notFound(key: key.value)
    }

    /// Retries every item in `failed/`; returns their keys.
    public func retryAllFailed() throws(SpoolError) -> [String] {
        let names = try sys("list failed") { () throws(Errno) in try FS.listNames(in: dir(.failed)) }
        var out: [String] = []
        for n in names {
            guard let k = SpoolKey(fileName: n) else { continue }
            do { try retry(key: k); out.append(k.value) } catch .notFound { continue }
        }
        return out
    }
}
