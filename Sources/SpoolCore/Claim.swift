import SpoolSystem

/// An item this process has claimed in one queue. It holds that queue's lock byte on the item file for as long as
/// it lives, so every other process sees at once that the claimant is alive (and, after a crash, that it is not).
/// Finish it with exactly one of `complete`, `fail` or `release`.
public final class ClaimedItem: @unchecked Sendable {
    // @unchecked: the descriptors are immutable; `meta` and `finished` are only touched by the owner
    // of the claim, which the API hands to one caller at a time.
    public let key: SpoolKey
    /// The header and this queue's delivery state; `attempts` counts this attempt.
    public internal(set) var meta: ItemMeta
    /// The attempt this claim is (1 for the first).
    public var attempt: Int { meta.attempts }
    /// Path of the claimed item file (`claimed/<name>` of the queue). It starts with the item header: the payload
    /// is the `payloadSize` bytes from `payloadOffset`.
    public let payloadPath: String
    public let payloadOffset: Int
    public var payloadSize: Int { size }
    /// The queue it was claimed from.
    public var queueName: String { queue.name }
    let payload: FileDescriptor
    let queue: QueueDirectories
    /// The payload's size (from the header, checked against the claim's fstat).
    let size: Int
    /// The delivery state the item had in this queue before this attempt (nil: it never failed here).
    let previous: DeliveryState?
    let startedAt: Int64
    var finished = false

    init(key: SpoolKey, meta: ItemMeta, payloadPath: String, payload: FileDescriptor, payloadOffset: Int, size: Int,
         queue: QueueDirectories, previous: DeliveryState?, startedAt: Int64) {
        self.key = key; self.meta = meta; self.payloadPath = payloadPath; self.payload = payload
        self.payloadOffset = payloadOffset; self.size = size; self.queue = queue; self.previous = previous; self.startedAt = startedAt
    }

    /// The stored bytes, exactly as received.
    public func readPayload() throws(SpoolError) -> [UInt8] {
        // Bounded by the header's size, which the claim checked against the file's real size.
        try sys("read payload") { () throws(Errno) in try payload.readToEnd(from: payloadOffset, size: size) }
    }

    /// The open item descriptor, which holds the claim's lock (read and write: the lock needs it). Handlers that
    /// inherit it must keep it open and never write to it; `positionAtPayload` makes reading it give the payload.
    public var payloadDescriptor: FileDescriptor { payload }

    /// Sets the descriptor's offset to the payload's first byte: reading it to the end gives exactly the payload.
    public func positionAtPayload() throws(SpoolError) {
        try sys("seek to the payload") { () throws(Errno) in try payload.seek(to: payloadOffset) }
    }

    /// The delivery state with this attempt ended as `outcome`: counted, and in the history.
    func stateAfterAttempt(_ outcome: AttemptRecord.Outcome, status: String?, error: String?, now: Int64) -> DeliveryState {
        var st = previous ?? DeliveryState(itemReceivedAtNanos: meta.receivedAtNanos)
        st.attempts = attempt
        st.record(AttemptRecord(startedAtNanos: startedAt, durationNanos: max(0, now - startedAt), outcome: outcome, status: status, error: error))
        return st
    }

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
    /// Lock first, then rename: open `new/<name>`, take the queue's lock byte without blocking, check the name still
    /// refers to that file and that it is due, then `renameat2(new/<name>, claimed/<name>, NOREPLACE)`. The
    /// lock is held before the item ever appears in `claimed/`, so `recover` cannot mistake a fresh claim for a
    /// dead one. Nothing is written: the attempt is recorded when it ends (`fail`, or `recover` for a claimant that
    /// died), so an item that kills its consumer every time still reaches `maxAttempts` and is dead-lettered.
    ///
    /// `delayNanos` (a queue's `delay`): an item is not claimed for its first attempt before its arrival (the header's
    /// `received_at`) plus the delay. Retries, and items sent back by `retry` or `replay`, wait only for their own time.
    public func claim(policy: RetryPolicy = RetryPolicy(), delayNanos: Int64 = 0) throws(SpoolError) -> ClaimedItem? {
        let now = self.now()
        if scan.withLock({ st in
            st.claiming = true
            let changed = st.delayNanos != delayNanos; st.delayNanos = delayNanos; return changed
        }) { invalidateScan() }
        refreshCandidatesIfNeeded(now: now)
        // Each candidate is tried at most once per call; losing a race just moves on to the next.
        while let name = scan.withLock({ $0.popNear(head: 8) }) {
            if let item = try tryClaim(name: name, now: now, policy: policy, delayNanos: delayNanos) { return item }
        }
        return nil
    }

    /// Tells the claim cache that `new/` changed. With names (from inotify) they are added to the cache
    /// directly; without, the next claim lists the directory again.
    ///
    /// Names are kept only by a handle that claims: `spool serve` enqueues through its own handle and never claims, and
    /// kept every accepted name there (about 150 bytes a webhook, for ever: issue 25.6, Reliability/memory.py).
    public func noteNewItems(names: [String]? = nil) {
        scan.withLock { st in
            if let names, st.claiming { st.append(names) } else { st.invalidated = true }
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

    /// Lists `new/` and keeps the due items, oldest first: an item's arrival (its file's mtime, plus the queue's
    /// delay), or for a waiting retry the not-before time (the mtime of its `state/` file, listed once, so most items
    /// cost one stat). The claim checks the header's arrival; the mtime only orders and schedules the look.
    func rescan(now: Int64, dirMtime: Int64, wallNow: Int64) {
        let d = dir(.new)
        let delay = scan.withLock { st -> Int64 in st.invalidated = false; return st.delayNanos }
        guard let names = try? FS.listNames(in: d) else { return }
        let withState = Set((try? FS.listNames(in: q.state)) ?? [])
        var due: [(Int64, String)] = []
        var nextDue: Int64? = nil
        due.reserveCapacity(names.count)
        for n in names {
            guard let st = try? FS.stat(n, in: d), st.isRegular else { continue }
            var at = st.mtimeNanos + delay
            if withState.contains(n), let ss = try? FS.stat(n, in: q.state) { at = ss.mtimeNanos }
            if at <= now { due.append((at, n)) } else { nextDue = min(nextDue ?? at, at) }
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

    private func tryClaim(name: String, now: Int64, policy: RetryPolicy, delayNanos: Int64) throws(SpoolError) -> ClaimedItem? {
        guard let key = SpoolKey(fileName: name) else { return nil }
        let newDir = dir(.new)
        let fd: FileDescriptor
        do throws(Errno) {
            try faults.check(.open)
            fd = try FileDescriptor.open(name, in: newDir, [.readWrite, .noFollow, .nonBlocking])
        } catch where error == .noEntry || error == .tooManySymbolicLinkLevels {
            return nil  // another claimant won the race, or a symbolic link that is not ours (recover reports it)
        } catch {
            // Out of descriptors, an I/O error: say so, rather than look like an empty queue.
            throw SpoolError.system(operation: "claim \(key)", errno: error)
        }
        var keep = false
        defer { if !keep { try? fd.close() } }
        var locked = (try? fd.tryLockByte(q.lockByte)) == .acquired
        if !locked {
            // Every lock on a file in new/ is brief: a claimant between its lock and its rename, a retry being
            // written back, a child between fork and exec. One short wait nearly always finds it free; otherwise
            // look again in 5 ms.
            sleep(nanoseconds: 200_000)
            locked = (try? fd.tryLockByte(q.lockByte)) == .acquired
        }
        guard locked else {
            lockedAtClaim.add(1, ordering: .relaxed)
            noteDue(now + 5_000_000)
            return nil
        }
        guard let held = try? fd.stat(), held.isRegular, let cur = try? FS.stat(name, in: newDir),
              cur.sameFile(as: held) else { return nil }
        var previous: DeliveryState?
        var stateError: SpoolError?
        do throws(SpoolError) { previous = try readState(name: name, in: q) } catch { stateError = error }
        if let due = previous?.nextAttemptAtNanos, due > now { noteDue(due); return nil }
        // A delayed queue: a first attempt waits for the arrival in the header (read before the rename, so an item not
        // yet due never moves); an unreadable header is left to the code below, which dead-letters it.
        var early: (header: ItemHeader, payloadOffset: Int)?
        if delayNanos > 0 && previous == nil, let h = try? Spool.readHeader(fd, fileSize: held.size) {
            let due = h.header.receivedAtNanos.addingReportingOverflow(delayNanos)
            if !due.overflow && due.partialValue > now { noteDue(due.partialValue); return nil }
            early = h
        }
        do throws(Errno) {
            try faults.check(.rename)
            try FS.renameNoReplace(name, in: newDir, to: name, in: dir(.claimed))
        } catch where error == .noEntry || error == .exists {
            return nil
        } catch {
            throw SpoolError.system(operation: "claim \(key)", errno: error)
        }
        let header: ItemHeader, offset: Int
        do throws(SpoolError) {
            if let early { (header, offset) = early } else { (header, offset) = try Spool.readHeader(fd, fileSize: held.size) }
        } catch {
            // Not an item this release can read (a hand edit, a torn disk): keep the file, dead-letter it, say why.
            let item = ClaimedItem(key: key, meta: ItemMeta(key: key.value, receivedAtNanos: held.mtimeNanos, size: held.size),
                                   payloadPath: payloadPath(state: .claimed, name: name), payload: fd, payloadOffset: 0,
                                   size: Int(held.size), queue: q, previous: previous, startedAt: now)
            keep = true
            _ = try? finishFailed(item, error: "the item file is unreadable: \(error)", status: "corrupt")
            return nil
        }
        if let p = previous, !p.belongs(toItemReceivedAt: header.receivedAtNanos) { previous = nil }  // an earlier item's
        var meta = Spool.meta(header: header, state: previous)
        if let stateError { meta.lastError = "delivery state was unreadable and has been reset: \(stateError)" }
        meta.attempts = (previous?.attempts ?? 0) + 1
        meta.lastAttemptAtNanos = now
        meta.nextAttemptAtNanos = nil
        let item = ClaimedItem(key: key, meta: meta, payloadPath: payloadPath(state: .claimed, name: name), payload: fd,
                               payloadOffset: offset, size: Int(header.size), queue: q, previous: previous, startedAt: now)
        keep = true
        if let done = previous?.attempts, done >= policy.maxAttempts {
            // Every allowed attempt was made and none finished: the handler keeps killing its consumer.
            item.meta.attempts = done
            _ = try? finishFailed(item, error: "gave up after \(done) attempts that never finished (the consumer died each time)",
                                  status: "abandoned", recordAttempt: false)
            return nil
        }
        return item
    }

    /// Moves a claimed item to `done/`: one rename. Its delivery state is written only for an item that has one (it
    /// failed before, so its current state must say it succeeded now, with `status`). A first attempt that succeeds
    /// writes nothing more, whatever its status (the consumer logs it): that is the path of nearly every webhook,
    /// and a state file there would cost a file and a flush per item (the JetStream bridge's publish status made its
    /// rate 4x lower when it did).
    public func complete(_ item: ClaimedItem, status: String? = nil) throws(SpoolError) {
        precondition(!item.finished, "item already finished")
        if item.previous != nil {
            let now = self.now()
            var st = item.stateAfterAttempt(.done, status: status, error: nil, now: now)
            st.lastStatus = status ?? "done"
            st.lastError = nil
            st.nextAttemptAtNanos = nil
            st.finishedAtNanos = now
            try writeState(st, name: item.key.fileName, in: item.queue)
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
        var st = item.stateAfterAttempt(.retry, status: status, error: error, now: now)
        st.lastError = ItemMeta.clipError(error)
        st.lastStatus = status
        st.nextAttemptAtNanos = due
        try writeState(st, name: item.key.fileName, in: item.queue, dueAt: due)
        item.meta.lastError = st.lastError
        item.meta.lastStatus = status
        item.meta.nextAttemptAtNanos = due
        try move(item, to: .new)
        noteDue(due)
        return .retry(atNanos: due)
    }

    /// Puts a claimed item back in `new/`, due now, without using up an attempt (graceful shutdown): one rename, as
    /// the attempt was never recorded.
    public func release(_ item: ClaimedItem) throws(SpoolError) {
        precondition(!item.finished, "item already finished")
        try move(item, to: .new)
        noteNewItems(names: [item.key.fileName])
    }

    func finishFailed(_ item: ClaimedItem, error: String, status: String?, recordAttempt: Bool = true) throws(SpoolError) -> FailOutcome {
        let now = self.now()
        var st = recordAttempt ? item.stateAfterAttempt(.failed, status: status, error: error, now: now)
            : item.previous ?? DeliveryState(itemReceivedAtNanos: item.meta.receivedAtNanos)
        st.lastError = ItemMeta.clipError(error)
        st.lastStatus = status
        st.nextAttemptAtNanos = nil
        st.finishedAtNanos = now
        try writeState(st, name: item.key.fileName, in: item.queue)
        item.meta.lastError = st.lastError
        item.meta.lastStatus = status
        try move(item, to: .failed)
        return .failed
    }

    /// Renames `claimed/<name>` into `<state>/<name>` while the lock is still held, then drops the lock.
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
