import SpoolSystem

/// An item this process has claimed. It holds an exclusive `flock` on the payload for as long as it
/// lives, so every other process sees at once that the claimant is alive (and, after a crash, that it is not).
/// Finish it with exactly one of `complete`, `fail` or `release`.
public final class ClaimedItem: @unchecked Sendable {
    // @unchecked: the descriptors are immutable; `meta` and `finished` are only touched by the owner
    // of the claim, which the API hands to one caller at a time.
    public let key: SpoolKey
    public internal(set) var meta: ItemMeta
    /// The attempt this claim is (1 for the first).
    public var attempt: Int { meta.attempts }
    /// Path of the claimed payload (`claimed/<name>`).
    public let payloadPath: String
    let payload: FileDescriptor
    /// The payload's size when it was claimed (from the claim's fstat).
    let size: Int
    var finished = false

    init(key: SpoolKey, meta: ItemMeta, payloadPath: String, payload: FileDescriptor, size: Int) {
        self.key = key; self.meta = meta; self.payloadPath = payloadPath; self.payload = payload; self.size = size
    }

    /// The stored bytes, exactly as received.
    public func readPayload() throws(SpoolError) -> [UInt8] {
        // Bounded by the file's real size when it was claimed (never by metadata, which could be anything).
        try sys("read payload") { () throws(Errno) in try payload.readFromStart(size: size) }
    }

    /// The open payload descriptor (positioned anywhere); handlers may read it with pread.
    public var payloadDescriptor: FileDescriptor { payload }

    func close() {
        try? payload.close()
    }

    deinit { if !finished { close() } }
}

public enum FailOutcome: Sendable, Equatable {
    /// Back in `new/`, due again at this time.
    case retry(atNanos: Int64)
    /// Moved to `failed/` (attempts used up, or a permanent failure).
    case failed
}

extension Spool {
    /// Claims the oldest due item it can get, or returns nil when none is due.
    ///
    /// Lock first, then rename: open `new/<name>`, take its `flock` without blocking, check the name still
    /// refers to that file and that it is due, then `renameat2(new/<name>, claimed/<name>, NOREPLACE)`. The
    /// lock is held before the item ever appears in `claimed/`, so `recover` cannot mistake a fresh claim for a
    /// dead one. The attempt count goes up here, at claim time, so an item that kills its consumer every time
    /// still reaches `maxAttempts` and is dead-lettered instead of looping for ever.
    public func claim(policy: RetryPolicy = RetryPolicy()) throws(SpoolError) -> ClaimedItem? {
        let now = self.now()
        refreshCandidatesIfNeeded(now: now)
        // Each candidate is tried at most once per call; losing a race just moves on to the next.
        while let name = scan.withLock({ $0.popNear(head: 8) }) {
            if let item = try tryClaim(name: name, now: now, policy: policy) { return item }
        }
        return nil
    }

    /// Tells the claim cache that `new/` changed. With names (from inotify) they are added to the cache
    /// directly; without, the next claim lists the directory again.
    public func noteNewItems(names: [String]? = nil) {
        scan.withLock { st in
            if let names { st.append(names) } else { st.invalidated = true }
        }
    }

    /// The earliest not-before time of waiting items seen at the last scan, if any were not yet due.
    public func nextDueTime() -> Int64? { scan.withLock { $0.nextDueNanos } }

    private func refreshCandidatesIfNeeded(now: Int64) {
        // A full, recent cache needs no look at the directory (one stat per claim saved when busy).
        if scan.withLock({ !$0.invalidated && !$0.isEmpty && now - $0.scannedAt <= 5_000_000_000 }) { return }
        let dirMtime = (try? dir(.new).stat().mtimeNanos) ?? -2
        let wallNow = SystemClock().nowNanos()
        let needScan = scan.withLock { st -> Bool in
            if st.invalidated { return true }
            // An empty cache is refreshed when new/ changed (another process added or returned an item), when a
            // waiting retry fell due, or when the last listing was so close to the last change that a later
            // change could hide behind the file system's coarse timestamp; a full cache now and then, to put
            // late arrivals in order.
            if st.isEmpty {
                return dirMtime != st.scannedDirMtime || st.scannedWallNanos - dirMtime < 50_000_000
                    || (st.nextDueNanos.map { $0 <= now } ?? false)
            }
            return now - st.scannedAt > 5_000_000_000
        }
        if needScan { rescan(now: now, dirMtime: dirMtime, wallNow: wallNow) }
    }

    /// Lists `new/` and keeps the due items, oldest not-before time (payload mtime) first.
    func rescan(now: Int64, dirMtime: Int64, wallNow: Int64) {
        let d = dir(.new)
        scan.withLock { $0.invalidated = false }
        guard let names = try? FS.listNames(in: d) else { return }
        var due: [(Int64, String)] = []
        var nextDue: Int64? = nil
        due.reserveCapacity(names.count)
        for n in names {
            guard let st = try? FS.stat(n, in: d), st.isRegular else { continue }
            if st.mtimeNanos <= now { due.append((st.mtimeNanos, n)) } else { nextDue = min(nextDue ?? st.mtimeNanos, st.mtimeNanos) }
        }
        due.sort { $0.0 < $1.0 }
        scan.withLock { st in
            st.replace(with: due.map { $0.1 })
            st.nextDueNanos = nextDue
            st.scannedAt = now
            st.scannedDirMtime = dirMtime
            st.scannedWallNanos = wallNow
        }
    }

    private func tryClaim(name: String, now: Int64, policy: RetryPolicy) throws(SpoolError) -> ClaimedItem? {
        guard let key = SpoolKey(fileName: name) else { return nil }
        let newDir = dir(.new)
        let fd: FileDescriptor
        do throws(Errno) {
            try faults.check(.open)
            fd = try FileDescriptor.open(name, in: newDir, [.readOnly, .noFollow, .nonBlocking])
        } catch where error == .noEntry || error == .tooManySymbolicLinkLevels {
            return nil  // another claimant won the race, or a symbolic link that is not ours (recover reports it)
        } catch {
            // Out of descriptors, an I/O error: say so, rather than look like an empty queue.
            throw SpoolError.system(operation: "claim \(key)", errno: error)
        }
        var keep = false
        defer { if !keep { try? fd.close() } }
        var locked = (try? fd.tryLockExclusive()) == .acquired
        if !locked {
            // Every lock on a file in new/ is brief: an enqueuer drops its lock just after the rename that woke us
            // (inotify), a claimant between its lock and its rename, a retry being written back. One short wait
            // nearly always finds it free; otherwise look again in 5 ms.
            sleep(nanoseconds: 200_000)
            locked = (try? fd.tryLockExclusive()) == .acquired
        }
        guard locked else {
            lockedAtClaim.add(1, ordering: .relaxed)
            noteDue(now + 5_000_000)
            return nil
        }
        guard let held = try? fd.stat(), held.isRegular, let cur = try? FS.stat(name, in: newDir),
              cur.sameFile(as: held) else { return nil }
        guard held.mtimeNanos <= now else { noteDue(held.mtimeNanos); return nil }
        do throws(Errno) {
            try faults.check(.rename)
            try FS.renameNoReplace(name, in: newDir, to: name, in: dir(.claimed))
        } catch where error == .noEntry || error == .exists {
            return nil
        } catch {
            throw SpoolError.system(operation: "claim \(key)", errno: error)
        }
        var meta: ItemMeta
        do { meta = try readMeta(name: name, payload: fd) } catch {
            // Metadata lost or unreadable (a hand edit, a torn disk): keep the payload, rebuild what we can.
            meta = ItemMeta(key: key.value, receivedAtNanos: held.mtimeNanos, size: held.size)
            meta.lastError = "metadata was unreadable and has been rebuilt: \(error)"
        }
        let item = ClaimedItem(key: key, meta: meta, payloadPath: payloadPath(state: .claimed, name: name), payload: fd,
                               size: Int(held.size))
        keep = true
        if meta.attempts >= policy.maxAttempts {
            // Every allowed attempt was claimed and none finished: the handler keeps killing its consumer.
            _ = try? finishFailed(item, error: "gave up after \(meta.attempts) attempts that never finished (the consumer died each time)", status: "abandoned")
            return nil
        }
        item.meta.attempts += 1
        item.meta.claimedBy = identity
        item.meta.lastAttemptAtNanos = now
        item.meta.nextAttemptAtNanos = nil
        do { try writeMeta(item.meta, payload: fd, name: name) } catch {
            try? release(item)
            throw error
        }
        return item
    }

    /// Moves a claimed item to `done/`: one rename. The metadata is rewritten only when there is something to
    /// record (`status`); otherwise the time it finished is the payload's ctime, which the rename sets.
    public func complete(_ item: ClaimedItem, status: String? = nil) throws(SpoolError) {
        precondition(!item.finished, "item already finished")
        if let status {
            item.meta.claimedBy = nil
            item.meta.finishedAtNanos = now()
            item.meta.lastStatus = status
            try writeMeta(item.meta, payload: item.payload, name: item.key.fileName)
        }
        try move(item, to: .done)
    }

    /// Records a failed attempt. Retryable failures go back to `new/` with a not-before time from `policy`,
    /// until `policy.maxAttempts` attempts are used; then, or for a permanent failure, to `failed/`.
    @discardableResult
    public func fail(_ item: ClaimedItem, error: String, status: String? = nil, retryable: Bool, policy: RetryPolicy,
                     retryAfterNanos: Int64? = nil) throws(SpoolError) -> FailOutcome {
        precondition(!item.finished, "item already finished")
        if !retryable || item.meta.attempts >= policy.maxAttempts {
            return try finishFailed(item, error: error, status: status)
        }
        let now = self.now()
        var delay = policy.delay(afterAttempt: item.meta.attempts)
        if let ra = retryAfterNanos { delay = max(delay, min(ra, policy.maxNanos)) }
        let (sum, overflow) = now.addingReportingOverflow(delay)
        let due = overflow ? 4_400_000_000_000_000_000 : min(sum, 4_400_000_000_000_000_000)
        item.meta.claimedBy = nil
        item.meta.lastError = ItemMeta.clipError(error)
        item.meta.lastStatus = status
        item.meta.nextAttemptAtNanos = due
        try writeMeta(item.meta, payload: item.payload, name: item.key.fileName)
        try sys("set retry time") { () throws(Errno) in try item.payload.setModificationTime(nanos: due) }
        try move(item, to: .new)
        noteDue(due)
        return .retry(atNanos: due)
    }

    /// Puts a claimed item back in `new/`, due now, without using up an attempt (graceful shutdown).
    public func release(_ item: ClaimedItem) throws(SpoolError) {
        precondition(!item.finished, "item already finished")
        item.meta.claimedBy = nil
        item.meta.attempts = max(0, item.meta.attempts - 1)
        try writeMeta(item.meta, payload: item.payload, name: item.key.fileName)
        try sys("set retry time") { () throws(Errno) in try item.payload.setModificationTime(nanos: now()) }
        try move(item, to: .new)
        noteNewItems(names: [item.key.fileName])
    }

    func finishFailed(_ item: ClaimedItem, error: String, status: String?) throws(SpoolError) -> FailOutcome {
        item.meta.claimedBy = nil
        item.meta.lastError = ItemMeta.clipError(error)
        item.meta.lastStatus = status
        item.meta.nextAttemptAtNanos = nil
        item.meta.finishedAtNanos = now()
        try writeMeta(item.meta, payload: item.payload, name: item.key.fileName)
        try move(item, to: .failed)
        return .failed
    }

    /// Renames `claimed/<name>` into `state/<name>` while the lock is still held, then drops the lock.
    private func move(_ item: ClaimedItem, to state: ItemState) throws(SpoolError) {
        let name = item.key.fileName
        do throws(Errno) {
            try faults.check(.rename)
            try FS.renameNoReplace(name, in: dir(.claimed), to: name, in: dir(state))
        } catch where error == .exists {
            // One item per key: another file under this name contradicts the protocol. Keep both; say so.
            throw SpoolError.conflict("\(state)/\(name) exists while \(item.key) is claimed; run spool recover and inspect")
        } catch {
            throw SpoolError.system(operation: "move \(item.key) to \(state)", errno: error)
        }
        item.finished = true
        item.close()
    }
}
