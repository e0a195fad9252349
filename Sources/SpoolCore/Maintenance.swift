import SpoolSystem
import SpoolWire

/// What `recover` did, one line per action, for the operator.
public struct RecoveryReport: Sendable, Equatable {
    public var requeuedClaims: [String] = []
    public var completedWrites: [String] = []
    public var removedTmp: [String] = []
    public var removedOrphanMarkers: [String] = []
    public var relinkedMarkers: [String] = []
    /// Queue entries that were separate copies of their marker's file (a backup without hard links), linked again.
    public var relinkedCopies: [String] = []
    /// Purges that stopped after the kept key replaced the marker, finished (the queue entry removed).
    public var finishedPurges: [String] = []
    /// Kept keys whose time was over, removed (their keys may be enqueued again).
    public var forgottenKeys = 0
    public var problems: [String] = []

    public var lines: [String] {
        requeuedClaims.map { "requeued \($0) (its claimant is gone)" }
            + completedWrites.map { "completed interrupted enqueue of \($0)" }
            + removedTmp.map { "removed stale tmp/\($0)" }
            + removedOrphanMarkers.map { "removed orphan key marker \($0)" }
            + relinkedMarkers.map { "restored missing key marker of \($0)" }
            + relinkedCopies.map { "linked the copy of \($0) to its key marker again" }
            + finishedPurges.map { "finished the interrupted purge of \($0)" }
            + (forgottenKeys > 0 ? ["forgot \(forgottenKeys) kept key\(forgottenKeys == 1 ? "" : "s") (their time was over)"] : [])
            + problems.map { "problem: \($0)" }
    }
    public var isEmpty: Bool { lines.isEmpty }
}

extension Spool {
    /// Repairs what crashed processes left behind, in every queue. Safe to run at any time, alongside everything
    /// else: it only acts on entries whose lock nobody holds.
    /// - `claimed/` items whose claimant died go back to `new/` (due now), the attempt recorded as abandoned;
    /// - enqueues whose writer died after linking the marker are finished into their queues (from the marker, or
    ///   the `tmp/` name of an item for several queues); other staged writes and purge trash are removed;
    /// - markers of files that are not items are removed; items whose marker is missing get it back.
    /// `tmpGraceNanos` protects a write whose file exists but is not yet locked (the named fallback only).
    public func recover(tmpGraceNanos: Int64 = 2_000_000_000) -> RecoveryReport {
        var report = RecoveryReport()
        let now = self.now()
        recoverTmp(now: now, grace: tmpGraceNanos, into: &report)
        let queues = allQueues(into: &report)
        for qd in queues { recoverClaims(qd, now: now, into: &report) }
        recoverMarkers(queues, into: &report)
        invalidateScan()
        return report
    }

    /// The write side of `recover`: finishes enqueues whose writer died after linking the marker (from `tmp/` and
    /// from the markers), removes abandoned writes. The ingress and consumers run it every 30 s. The markers' part
    /// lists `keys/` and the queues' directories and matches inode numbers, so a healthy spool costs listings, no
    /// `stat` per item: `spool recover` over 100,000 healthy items takes 0.16 s here, warm (0.5% of a core every 30 s).
    public func recoverInterruptedWrites(tmpGraceNanos: Int64 = 2_000_000_000) -> RecoveryReport {
        var r = RecoveryReport()
        recoverTmp(now: now(), grace: tmpGraceNanos, into: &r)
        recoverUnfinishedEnqueues(into: &r)
        recoverMarkers(allQueues(into: &r), into: &r)
        if !r.completedWrites.isEmpty { invalidateScan() }
        // The markers' pass held every name of the spool for a moment (about 200 bytes an item): give it back, or a
        // long-running process keeps its high-water mark (Reliability/memory.py).
        Heap.releaseFreeMemory()
        return r
    }

    /// Enqueues of this process that failed after their marker was linked (`unfinishedEnqueues`): finished now if
    /// the disk lets us (their marker has one link and a free lock), else kept for the next round.
    private func recoverUnfinishedEnqueues(into report: inout RecoveryReport) {
        for name in unfinishedEnqueues.withLock({ Array($0) }) {
            var settled = true
            if let fd = try? FileDescriptor.open(name, in: keys, [.readOnly, .noFollow, .nonBlocking]) {
                defer { try? fd.close() }
                if (try? fd.tryLockExclusive()) == .acquired, let st = try? fd.stat(), st.linkCount < 2 {
                    do throws(SpoolError) {
                        if try finishInterruptedEnqueue(name: name, fd: fd, st: st) == .finished {
                            report.completedWrites.append(SpoolKey(fileName: name)?.value ?? name)
                        }
                    } catch {
                        settled = false
                    }
                }
            }
            if settled { unfinishedEnqueues.withLock { _ = $0.remove(name) } }
        }
    }

    /// Only the cheap part of `recover`, for this handle's queue: returns items of dead claimants (free lock) to
    /// `new/`. Consumers run it every second, so a killed consumer's items are picked up within seconds.
    public func recoverDeadClaims() -> [String] {
        var r = RecoveryReport()
        recoverClaims(q, now: now(), into: &r)
        if !r.requeuedClaims.isEmpty { invalidateScan() }
        return r.requeuedClaims
    }

    /// Every queue's directories (a queue that cannot be opened is reported).
    func allQueues(into report: inout RecoveryReport) -> [QueueDirectories] {
        var out: [QueueDirectories] = []
        for n in queueNames() {
            do { out.append(try queueDirectories(n)) } catch { report.problems.append("cannot open queue \(n): \(error)") }
        }
        return out
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
        var starts: [Int32: UInt64?] = [:]
        let alive: (Int32) -> UInt64? = { pid in
            if let known = starts[pid] { return known }
            let s = FS.processStartTicks(pid)
            starts[pid] = s
            return s
        }
        for entry in entries {
            let parts = entry.split(separator: ".", omittingEmptySubsequences: false)
            let kind = parts.count == 3 ? parts[2] : ""
            let itemName = String(parts.first ?? "")
            // The grace period exists for writers that may still be between creating a file and locking it (or
            // finishing a state file); a writer known to be dead gets none.
            let entryGrace = parts.count == 3 && Spool.writerIsDead(parts[1], alive: alive) ? 0 : grace
            guard let st = try? FS.stat(entry, in: tmp) else { continue } // taken care of already
            switch kind {
            case "w", "p":
                // A staged item (w) or purge trash (p): its writer holds the lock while alive.
                guard let fd = try? FileDescriptor.open(entry, in: tmp, [.readOnly, .noFollow, .nonBlocking]) else { continue }
                defer { try? fd.close() }
                guard (try? fd.tryLockExclusive()) == .acquired, let held = try? fd.stat(), held.isRegular,
                      let cur = try? FS.stat(entry, in: tmp), cur.sameFile(as: held) else { continue }
                if now - st.mtimeNanos < entryGrace && held.linkCount < 2 && kind == "w" { continue } // may be unlocked for a moment at creation
                let markerIsThis = (try? FS.stat(itemName, in: keys))?.sameFile(as: held) ?? false
                if kind == "w" && markerIsThis {
                    // The marker was linked, so a racing request may have been told "duplicate": finish the enqueue
                    // instead of dropping a durable item.
                    do throws(SpoolError) {
                        switch try finishInterruptedEnqueue(name: itemName, fd: fd, st: held) {
                        case .notAnItem, .keptKey:
                            report.problems.append("tmp/\(entry) is linked as key \(itemName) but is not an item"); continue
                        case .finished, .alreadyThere: break
                        }
                        report.completedWrites.append(SpoolKey(fileName: itemName)?.value ?? itemName)
                    } catch {
                        report.problems.append("cannot finish the enqueue of tmp/\(entry): \(error)"); continue
                    }
                } else if kind == "p" && markerIsThis && held.linkCount == 2 {
                    // An interrupted purge of the item's last queue entry: its marker goes too.
                    do throws(Errno) { try FS.unlink(itemName, in: keys) } catch {
                        report.problems.append("cannot remove key marker \(itemName) of purged tmp/\(entry): \(error)"); continue
                    }
                }
                removeTmp(entry, into: &report)
            default:
                // A state file being written (s), a health probe (h), or anything else: no lock; spare young ones.
                guard now - st.mtimeNanos >= entryGrace else { continue }
                if st.isDirectory {
                    do throws(Errno) { try FS.removeFlatDirectory(entry, in: tmp); report.removedTmp.append(entry) } catch {
                        report.problems.append("cannot remove tmp/\(entry): \(error)")
                    }
                } else {
                    removeTmp(entry, into: &report)
                }
            }
        }
    }

    private func removeTmp(_ entry: String, into report: inout RecoveryReport) {
        do throws(Errno) { try FS.unlink(entry, in: tmp); report.removedTmp.append(entry) } catch where error == .noEntry {} catch {
            report.problems.append("cannot remove tmp/\(entry): \(error)")
        }
    }

    private func recoverClaims(_ qd: QueueDirectories, now: Int64, into report: inout RecoveryReport) {
        let claimedDir = qd.dir(.claimed)
        guard let names = try? FS.listNames(in: claimedDir) else { report.problems.append("cannot list \(qd.prefix)claimed/"); return }
        for name in names {
            guard let key = SpoolKey(fileName: name) else { report.problems.append("foreign entry \(qd.prefix)claimed/\(name)"); continue }
            let fd: FileDescriptor
            do throws(Errno) { fd = try FileDescriptor.open(name, in: claimedDir, [.readWrite, .noFollow, .nonBlocking]) } catch where error == .noEntry {
                continue
            } catch {
                report.problems.append("cannot open \(qd.prefix)claimed/\(name): \(error)"); continue
            }
            defer { try? fd.close() }
            guard (try? fd.tryLockByte(qd.lockByte)) == .acquired else { continue } // claimant alive
            guard let held = try? fd.stat(), held.isRegular, let cur = try? FS.stat(name, in: claimedDir), cur.sameFile(as: held) else { continue }
            // The attempt that died is recorded, so that an item that kills every consumer is dead-lettered.
            let received = (try? Spool.readHeader(fd, fileSize: held.size))?.header.receivedAtNanos
            var st = (try? readState(name: name, in: qd)).flatMap { s in received.map { s.belongs(toItemReceivedAt: $0) } ?? true ? s : nil }
                ?? DeliveryState(itemReceivedAtNanos: received)
            st.attempts += 1
            st.record(AttemptRecord(startedAtNanos: held.ctimeNanos, durationNanos: max(0, now - held.ctimeNanos), outcome: .abandoned,
                                    status: "abandoned", error: "the claimant died during attempt \(st.attempts)"))
            st.lastStatus = "abandoned"
            st.lastError = "the claimant died during attempt \(st.attempts)"
            st.nextAttemptAtNanos = nil
            do throws(SpoolError) {
                try writeState(st, name: name, in: qd, dueAt: now)
                try sys("requeue \(name)") { () throws(Errno) in try FS.renameNoReplace(name, in: claimedDir, to: name, in: qd.dir(.new)) }
                report.requeuedClaims.append(qd.name == QueueName.defaultName ? key.value : "\(key.value) (queue \(qd.name))")
            } catch {
                report.problems.append("cannot requeue \(qd.prefix)claimed/\(name): \(error)")
            }
        }
    }

    private func recoverMarkers(_ queues: [QueueDirectories], into report: inout RecoveryReport) {
        guard let markers = try? FS.listEntries(in: keys) else { report.problems.append("cannot list keys/"); return }
        // A name listed in keys/ and in a queue's state directory with the same inode number is one file with two
        // links: a healthy item, known without a stat. Only the rest are looked at one by one. Entries moving during
        // the listings land in the rest.
        var markerInodes: [String: UInt64] = [:]
        markerInodes.reserveCapacity(markers.count)
        for m in markers where m.isRegular != false { markerInodes[m.name] = m.inode }
        var listings: [(QueueDirectories, ItemState, [FS.DirectoryEntry])] = []
        var healthy = Set<String>()
        for qd in queues {
            for state in ItemState.allCases {
                guard let entries = try? FS.listEntries(in: qd.dir(state)) else { report.problems.append("cannot list \(qd.prefix)\(state)/"); continue }
                listings.append((qd, state, entries))
                for e in entries where e.isRegular == true && markerInodes[e.name] == e.inode { healthy.insert(e.name) }
            }
        }
        // Queue entries first: a missing marker is restored; an entry that is a separate copy of the marker's file
        // (`rsync -a` without -H, `cp -r` turn hard links into copies) is linked to the marker's file again.
        for (qd, state, entries) in listings {
            for e in entries {
                guard let key = SpoolKey(fileName: e.name) else { report.problems.append("foreign entry \(qd.prefix)\(state)/\(e.name)"); continue }
                if e.isRegular == true && markerInodes[e.name] == e.inode { continue }  // healthy, as above
                guard let st = try? FS.stat(e.name, in: qd.dir(state)) else { continue }
                guard st.isRegular else { report.problems.append("\(qd.prefix)\(state)/\(e.name) is not a regular file"); continue }
                let marker = try? FS.stat(e.name, in: keys)
                if let marker, marker.sameFile(as: st) { continue }
                do throws(SpoolError) {
                    if let marker, marker.linkCount == 1, (state == .done || state == .failed), isKeptKeyFile(e.name) != nil {
                        // A purge that replaced the marker with a kept key and stopped before removing the entry.
                        if try purgeItem(name: e.name, key: key, state: state, cutoff: Int64.max, keepKeysNanos: nil, in: qd) {
                            report.finishedPurges.append(qd.name == QueueName.defaultName ? key.value : "\(key.value) (queue \(qd.name))")
                        }
                        continue
                    }
                    if let marker {
                        guard st.linkCount == 1, marker.size == st.size else {
                            report.problems.append("\(qd.prefix)\(state)/\(e.name) is not the file its key marker links to"); continue
                        }
                        try relinkCopy(name: e.name, in: qd.dir(state))
                        report.relinkedCopies.append(key.value)
                    } else {
                        try sys("restore key marker") { () throws(Errno) in try FS.link(e.name, in: qd.dir(state), to: e.name, in: keys) }
                        report.relinkedMarkers.append(key.value)
                    }
                } catch {
                    report.problems.append("\(qd.prefix)\(state)/\(e.name): cannot link it to its key marker: \(error)")
                }
            }
        }
        let now = self.now()
        for m in markers where !healthy.contains(m.name) {
            guard let st = try? FS.stat(m.name, in: keys), st.linkCount < 2 else { continue }
            // A kept key carries its forget time as its mtime too: one not yet due is known without opening it.
            if st.mtimeNanos > now && st.size <= Int64(ItemHeader.maxBytes) { continue }
            guard let key = SpoolKey(fileName: m.name) else { report.problems.append("foreign entry keys/\(m.name)"); continue }
            guard let fd = try? FileDescriptor.open(m.name, in: keys, [.readOnly, .noFollow, .nonBlocking]) else { continue }
            defer { try? fd.close() }
            guard (try? fd.tryLockExclusive()) == .acquired, let held = try? fd.stat(), held.linkCount < 2,
                  let cur = try? FS.stat(m.name, in: keys), cur.sameFile(as: held) else { continue }
            do throws(SpoolError) {
                switch try finishInterruptedEnqueue(name: m.name, fd: fd, st: held) {
                case .finished: report.completedWrites.append(key.value)
                case .alreadyThere: break
                case .keptKey(let forgetAt):
                    guard forgetAt <= now else { continue }
                    try sys("remove kept key \(m.name)") { () throws(Errno) in try FS.unlink(m.name, in: keys) }
                    report.forgottenKeys += 1
                case .notAnItem:
                    try sys("remove key marker \(m.name)") { () throws(Errno) in try FS.unlink(m.name, in: keys) }
                    report.removedOrphanMarkers.append(key.value)
                }
            } catch {
                report.problems.append("cannot finish the enqueue of \(key.value): \(error)")
            }
        }
    }

    /// Replaces a queue entry that is a copy of its marker's file with a link to that file: linked as a `tmp/` name,
    /// renamed over the entry (atomic: the entry is the copy or the link, both whole).
    private func relinkCopy(name: String, in d: FileDescriptor) throws(SpoolError) {
        let t = tmpName(for: name, kind: "k")
        try sys("relink \(name)") { () throws(Errno) in
            try FS.link(name, in: keys, to: t, in: tmp)
            do throws(Errno) { try FS.rename(t, in: tmp, to: name, in: d) } catch { try? FS.unlink(t, in: tmp); throw error }
        }
    }

    /// Removes items of this queue in `states` that finished before `olderThanNanos` ago; an item's key marker goes
    /// with its last queue entry, so its key can be enqueued again. Each item goes to `tmp/` first (one rename), so a
    /// crash never leaves half an item. With `keepKeysNanos`, the key of an item purged from its last queue is kept
    /// (a kept key: docs/spool-format.md) until that long after the item finished, so a redelivery meanwhile is
    /// still a duplicate. At most `limit` items go per call (a long-running consumer purges in slices).
    public func purge(states: [ItemState], olderThanNanos: Int64, keepKeysNanos: Int64? = nil, limit: Int = .max) throws(SpoolError) -> [String] {
        let cutoff = now() - olderThanNanos
        var removed: [String] = []
        outer: for state in states {
            precondition(state == .done || state == .failed, "purge only takes done or failed")
            let d = dir(state)
            let names = try sys("list \(state)") { () throws(Errno) in try FS.listNames(in: d) }
            for name in names {
                if removed.count >= limit { break outer }
                guard let key = SpoolKey(fileName: name) else { continue }
                if try purgeItem(name: name, key: key, state: state, cutoff: cutoff, keepKeysNanos: keepKeysNanos, in: q) {
                    removed.append(key.value)
                }
            }
        }
        if !removed.isEmpty { _ = try? keys.fsync() }
        return removed
    }

    /// The keys `purge(states:olderThanNanos:)` would remove now (`purge --dry-run`): finished before the cutoff.
    public func purgeCandidates(states: [ItemState], olderThanNanos: Int64) throws(SpoolError) -> [String] {
        let cutoff = now() - olderThanNanos
        var out: [String] = []
        for state in states {
            let d = dir(state)
            let names = try sys("list \(state)") { () throws(Errno) in try FS.listNames(in: d) }
            for name in names {
                guard let key = SpoolKey(fileName: name), let st = try? FS.stat(name, in: d) else { continue }
                if ((try? readState(name: name, in: q))?.finishedAtNanos ?? st.ctimeNanos) <= cutoff { out.append(key.value) }
            }
        }
        return out
    }

    /// Where `purge(key:)` would find `key`: done or failed; else the error it would throw.
    public func finishedState(key: SpoolKey) throws(SpoolError) -> ItemState {
        for state in [ItemState.done, .failed] where (try? FS.stat(key.fileName, in: dir(state))) != nil { return state }
        if (try? FS.stat(key.fileName, in: keys)) != nil && keptKeyUntil(key) == nil {
            throw .conflict("\(key) is not finished in queue \(queue) (it is waiting or claimed, or in another queue)")
        }
        throw .notFound(key: key.value)
    }

    /// Purges one finished item (done or failed) of this queue, whenever it finished; the same steps and lock as
    /// `purge`. A kept key (its item purged earlier) is forgotten: the key may be enqueued again.
    public func purge(key: SpoolKey) throws(SpoolError) {
        for state in [ItemState.done, .failed] where (try? FS.stat(key.fileName, in: dir(state))) != nil {
            if try purgeItem(name: key.fileName, key: key, state: state, cutoff: Int64.max, keepKeysNanos: nil, in: q) {
                _ = try? keys.fsync()
                return
            }
            throw .busy(key: key.value)
        }
        if (try? FS.stat(key.fileName, in: keys)) != nil {
            guard keptKeyUntil(key) != nil else {
                throw .conflict("\(key) is not finished in queue \(queue) (it is waiting or claimed, or in another queue)")
            }
            try sys("forget kept key \(key)") { () throws(Errno) in try FS.unlink(key.fileName, in: keys); try keys.fsync() }
            return
        }
        throw .notFound(key: key.value)
    }

    /// When the kept key of `key` is forgotten, if `keys/<name>` is a kept key (not an item's marker).
    public func keptKeyUntil(_ key: SpoolKey) -> Int64? {
        isKeptKeyFile(key.fileName)
    }

    /// The forget time of `keys/<name>` if it is a kept key: one link, and a header with `forget_at_ns`.
    func isKeptKeyFile(_ name: String) -> Int64? {
        guard let fd = try? FileDescriptor.open(name, in: keys, [.readOnly, .noFollow, .nonBlocking]) else { return nil }
        defer { try? fd.close() }
        guard let st = try? fd.stat(), st.isRegular, st.linkCount == 1, st.size <= Int64(ItemHeader.maxBytes) + 64 else { return nil }
        return (try? Spool.readHeader(fd, fileSize: st.size))?.header.forgetAtNanos
    }

    /// One item of `purge`: false when it is not there any more, finished after `cutoff`, or locked.
    /// Steps: lock (the item's flock, against an enqueue being finished, and the queue's byte); remove the queue's
    /// `state/<name>`; if this is the item's last queue entry (it and the marker are the file's only links) and its
    /// key is to be kept, write the kept key to `tmp/` (flushed) and rename it over the marker; rename the entry into
    /// `tmp/<name>.<unique>.p`; if the trash and the marker are now the only links, remove the marker; remove the
    /// trash. `recover` finishes the rest after a crash at any step (a `.p` trash whose marker is the same file: the
    /// marker goes; a queue entry whose marker is a kept key: the entry goes).
    func purgeItem(name: String, key: SpoolKey, state: ItemState, cutoff: Int64, keepKeysNanos: Int64?, in qd: QueueDirectories) throws(SpoolError) -> Bool {
        let d = qd.dir(state)
        guard let st = try? FS.stat(name, in: d) else { return false }
        let finished = (try? readState(name: name, in: qd))?.finishedAtNanos ?? st.ctimeNanos
        guard finished <= cutoff else { return false }
        guard let fd = try? FileDescriptor.open(name, in: d, [.readWrite, .noFollow, .nonBlocking]) else { return false }
        defer { try? fd.close() }
        guard (try? fd.tryLockExclusive()) == .acquired, (try? fd.tryLockByte(qd.lockByte)) == .acquired, let held = try? fd.stat() else { return false }
        guard let cur = try? FS.stat(name, in: d), cur.sameFile(as: held) else { return false }
        do throws(Errno) { try FS.unlink(name, in: qd.state) } catch where error == .noEntry {} catch {
            throw SpoolError.system(operation: "remove delivery state of \(key)", errno: error)
        }
        if let keep = keepKeysNanos, finished + keep > now(), held.linkCount == 2,
           let m = try? FS.stat(name, in: keys), m.sameFile(as: held),
           let header = try? Spool.readHeader(fd, fileSize: held.size).header {
            try replaceMarkerWithKeptKey(name: name, key: key, header: ItemHeader.keptKey(of: header, until: finished + keep))
        }
        let trash = tmpName(for: name, kind: "p")
        do { try FS.renameNoReplace(name, in: d, to: trash, in: tmp) } catch { return false }
        if let m = try? FS.stat(name, in: keys), m.sameFile(as: held), let t = try? FS.stat(trash, in: tmp), t.linkCount == 2 {
            try sys("remove key marker of \(key)") { () throws(Errno) in try FS.unlink(name, in: keys) }
        }
        try? FS.unlink(trash, in: tmp)
        return true
    }

    /// Writes a kept key as `tmp/<name>.<unique>.t`, flushes it, sets its mtime to its forget time (so `recover`
    /// knows one not yet due without reading it), and renames it over `keys/<name>`: at every moment the key has a
    /// marker, the item's or the kept key.
    private func replaceMarkerWithKeptKey(name: String, key: SpoolKey, header: ItemHeader) throws(SpoolError) {
        let t = tmpName(for: name, kind: "t")
        try sys("keep the key of \(key)") { () throws(Errno) in
            let fd = try FileDescriptor.open(t, in: tmp, [.writeOnly, .create, .exclusive, .noFollow], mode: 0o600)
            do throws(Errno) {
                try fd.writeAll(header.encoded())
                try fd.setModificationTime(nanos: header.forgetAtNanos ?? now())
                try fd.fsync()
            } catch {
                try? fd.close(); try? FS.unlink(t, in: tmp)
                throw error
            }
            do throws(Errno) { try fd.close(); try FS.rename(t, in: tmp, to: name, in: keys) } catch {
                try? FS.unlink(t, in: tmp)
                throw error
            }
        }
    }

    /// Puts items of this queue back into `new/`, due now, with their attempt count reset (the history stays).
    /// Takes items from `failed/`, and from `new/` (making a waiting retry due at once).
    public func retry(key: SpoolKey) throws(SpoolError) {
        for state in [ItemState.failed, .new] where try requeue(name: key.fileName, key: key, from: state) {
            invalidateScan()
            return
        }
        if (try? FS.stat(key.fileName, in: keys)) != nil { throw .conflict("\(key) is not in failed/ or new/ of queue \(queue) (it is claimed or done, or in another queue)") }
        throw .notFound(key: key.value)
    }

    /// One step of `retry` and `replay`: the item `name` in `state` (new, done or failed) of this queue, due now, its
    /// attempts reset and its history kept. Under the queue's lock byte: the delivery state is written first (so an
    /// item never reaches `new/` with the attempt count that dead-lettered it), then the entry is renamed into
    /// `new/`. False when the item is not in `state` (any more); `busy` when a claimant or another command holds it.
    func requeue(name: String, key: SpoolKey, from state: ItemState) throws(SpoolError) -> Bool {
        guard let fd = try? FileDescriptor.open(name, in: dir(state), [.readWrite, .noFollow, .nonBlocking]) else { return false }
        defer { try? fd.close() }
        guard try sys("lock \(key)", { () throws(Errno) in try fd.tryLockByte(q.lockByte) }) == .acquired else { throw .busy(key: key.value) }
        guard let held = try? fd.stat(), let cur = try? FS.stat(name, in: dir(state)), cur.sameFile(as: held) else { return false }
        let received = (try? Spool.readHeader(fd, fileSize: held.size))?.header.receivedAtNanos
        let previous = (try? readState(name: name, in: q)).flatMap { s in received.map { s.belongs(toItemReceivedAt: $0) } ?? true ? s : nil }
        if previous != nil || state == .failed {
            var st = previous ?? DeliveryState(itemReceivedAtNanos: received)
            st.attempts = 0
            st.nextAttemptAtNanos = nil
            st.finishedAtNanos = nil
            try writeState(st, name: name, in: q, dueAt: now())
        }
        if state != .new {
            do throws(Errno) { try FS.renameNoReplace(name, in: dir(state), to: name, in: dir(.new)) } catch where error == .noEntry {
                return false
            } catch where error == .exists {
                throw .conflict("new/\(name) exists while \(key) is in \(state)/ of queue \(queue); run spool recover and inspect")
            } catch {
                throw .system(operation: "move \(key) to new", errno: error)
            }
        }
        return true
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
