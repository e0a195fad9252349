import SpoolSystem

public enum EnqueueOutcome: String, Sendable, Equatable {
    /// The item is new and durable.
    case accepted
    /// The key was seen before (in any state); the item that exists for it is durable.
    case duplicate
}

public struct EnqueueRequest: Sendable {
    public var key: SpoolKey
    public var payload: [UInt8]
    /// Selected request headers, stored in the metadata (names are lowercased).
    public var headers: [(String, String)]
    /// Where the item comes from, recorded in its header.
    public var source: ItemHeader.Source
    /// The queues it enters (fan-out); empty: the queue of the `Spool` it is enqueued through.
    public var queues: [String]
    public init(key: SpoolKey, payload: [UInt8], headers: [(String, String)] = [], source: ItemHeader.Source = .webhook,
                queues: [String] = []) {
        self.key = key
        self.payload = payload
        self.headers = headers.map { ($0.0.lowercased(), $0.1) }
        self.source = source
        self.queues = queues
    }
}

extension Spool {
    /// Enqueues one item, durably, before returning. See `enqueueBatch`.
    public func enqueue(key: SpoolKey, payload: [UInt8], headers: [(String, String)] = [], source: ItemHeader.Source = .webhook,
                        queues: [String] = []) throws(SpoolError) -> EnqueueOutcome {
        try enqueueBatch([EnqueueRequest(key: key, payload: payload, headers: headers, source: source, queues: queues)])[0].get()
    }

    /// Enqueues several items with shared flushes (group commit): every payload is written, then all are
    /// flushed together, then each is published, then each directory is flushed once for the whole batch.
    /// A result is `.success` only when that item (or the existing item of its key) is durable.
    ///
    /// Steps, numbered as in docs/spool-format.md ("enqueue", with the crash analysis of each). Each function below
    /// runs its step for the whole batch before the next one begins (steps 3 and 4 item by item, in `publishAll`):
    /// - before step 1, `findKnownDuplicates`: a key whose marker already has an item is a duplicate, nothing is
    ///   written for it (it is still answered only after step 5);
    /// 1. `writeIntoTmp`: open an unnamed file in `tmp/` (`O_TMPFILE`; the fallback names it `tmp/<name>.<unique>.w`),
    ///    lock it, write the header and the payload;
    /// 2. `flushData`: fsync it (or one `syncfs` for the batch);
    /// 3. `publishAll` → `linkMarker`: link it as `keys/<name>`, the atomic create-if-absent that decides
    ///    accepted vs duplicate (an item for several queues is first linked as `tmp/<name>.<unique>.w`);
    /// 4. `publishAll` → `linkIntoQueues`: link it as `new/<name>` of each of its queues, remove the `tmp/` name;
    /// 5. `flushNames`: fsync `keys/` and each queue's `new/` (and `tmp/` first when the batch answers a
    ///    duplicate), or one `syncfs`;
    /// 6. `answer`: the results, from which the caller answers.
    public func enqueueBatch(_ requests: [EnqueueRequest]) -> [Result<EnqueueOutcome, SpoolError>] {
        let receivedAt = now()
        // Descriptors for the flushes, opened before this batch changes anything. `fsync` and `syncfs` report a
        // writeback error once to each open file description: on the long-lived directory descriptors, shared with a
        // concurrent batch, that batch could take this batch's error away.
        let handles: FlushHandles
        do { handles = try openFlushHandles() } catch {
            return requests.map { _ in .failure(error) }
        }
        defer { handles.close() }

        var batch = EnqueueBatch(count: requests.count)
        batch.knownDuplicates = findKnownDuplicates(requests)
        writeIntoTmp(requests, receivedAt: receivedAt, handles, &batch)  // step 1
        flushData(&batch, handles)                              // step 2
        publishAll(&batch)                                      // steps 3 and 4
        flushNames(&batch, handles)                             // step 5
        return answer(requests, batch)                          // step 6
    }

    /// What one `enqueueBatch` carries from step to step, by request index.
    private struct EnqueueBatch {
        var results: [Result<EnqueueOutcome, SpoolError>?]
        /// Items written into tmp/ and still held (step 1 on); a failed flush discards its item and drops it here.
        var staged: [Int: StagedItem] = [:]
        /// Requests whose key already had an item before the batch began: nothing is written for them.
        var knownDuplicates: [Int] = []
        /// Requests with an outcome (accepted or duplicate): it stands once step 5 has made their names durable.
        var published: [Int] = []
        /// Whether step 5 must flush the queues' `new/`.
        var newDirTouched = false
        /// Files flushed in step 2, and whether the batch uses `syncfs`.
        var files = 0
        var wholeFS = false
        var timings = FlushTimings()

        init(count: Int) { results = Array(repeating: nil, count: count) }
    }

    /// What the flushes of one batch cost, for `FlushCostModel`.
    private struct FlushTimings {
        var syncfsCalls = 0, syncfsNanos: Int64 = 0
        var fileNanos: Int64 = 0, dirFlushes = 0, dirNanos: Int64 = 0
    }

    /// Before step 1: the requests whose key's marker already has an item (a link count of 2 or more). They are
    /// duplicates and nothing needs writing for them. (The marker only ever goes away through purge, so what this
    /// sees stays true until we answer.)
    private func findKnownDuplicates(_ requests: [EnqueueRequest]) -> [Int] {
        var known: [Int] = []
        for (i, r) in requests.enumerated() {
            if let st = try? FS.stat(r.key.fileName, in: keys), st.linkCount >= 2 { known.append(i) }
        }
        return known
    }

    /// Step 1: writes every other item into tmp/ (see `stage`).
    private func writeIntoTmp(_ requests: [EnqueueRequest], receivedAt: Int64, _ handles: FlushHandles, _ batch: inout EnqueueBatch) {
        let skip = Set(batch.knownDuplicates)
        for (i, r) in requests.enumerated() where !skip.contains(i) {
            do throws(SpoolError) { batch.staged[i] = try stage(r, receivedAt: receivedAt, handles: handles) } catch { batch.results[i] = .failure(error) }
        }
    }

    /// Step 2: flushes the data, either one `syncfs` for the whole batch or every file (with writeback of all of them
    /// started first, so that the per-file flushes overlap). An item whose flush fails is discarded.
    private func flushData(_ batch: inout EnqueueBatch, _ handles: FlushHandles) {
        batch.files = batch.staged.count
        batch.wholeFS = useSyncfs(files: batch.files)
        if batch.wholeFS {
            do throws(SpoolError) {
                try flushFileSystem(handles, &batch.timings)
            } catch {
                for (i, s) in batch.staged { batch.results[i] = .failure(error); discard(s) }
                batch.staged = [:]
            }
        } else {
            for s in batch.staged.values { s.payload.startWriteback() }
            for (i, s) in batch.staged.sorted(by: { $0.key < $1.key }) {
                do throws(SpoolError) {
                    try sys("flush item") { () throws(Errno) in
                        batch.timings.fileNanos += try timed { () throws(Errno) in
                            try faults.check(.fsync); try s.payload.fsync()
                        }
                    }
                } catch {
                    batch.results[i] = .failure(error)
                    discard(s)
                    batch.staged[i] = nil
                }
            }
        }
    }

    /// Steps 3 and 4 for every item still staged (see `publish`).
    private func publishAll(_ batch: inout EnqueueBatch) {
        for (i, s) in batch.staged.sorted(by: { $0.key < $1.key }) {
            do throws(SpoolError) {
                let outcome = try publish(s)
                if outcome == .accepted { s.published = true }
                // Duplicates flush new/ too: an earlier request for the key may have failed on that flush.
                batch.newDirTouched = true
                batch.results[i] = .success(outcome)
                batch.published.append(i)
            } catch {
                batch.results[i] = .failure(error)
            }
        }
    }

    /// Step 5: makes the names durable, once for the whole batch. Duplicates need this too: the marker that made
    /// them duplicates may belong to a write still in flight in another process. If a flush fails, no request that
    /// depended on it succeeds.
    private func flushNames(_ batch: inout EnqueueBatch, _ handles: FlushHandles) {
        for i in batch.knownDuplicates { batch.results[i] = .success(.duplicate); batch.published.append(i) }
        if !batch.knownDuplicates.isEmpty { batch.newDirTouched = true }
        let published = batch.published, results = batch.results
        guard !published.isEmpty else { return }
        let anyDuplicate = published.contains { (try? results[$0]?.get()) == .duplicate }
        do throws(SpoolError) {
            if batch.wholeFS {
                try flushFileSystem(handles, &batch.timings)
            } else {
                // A duplicate may stand on a write still in flight elsewhere, its payload only in tmp/: flushing
                // tmp/ (and new/, where it may have moved meanwhile) keeps what the answer promises on disk.
                if anyDuplicate { try flushDirectory("tmp", handles.tmp, &batch.timings) }
                try flushDirectory("keys", handles.keys, &batch.timings)
                if batch.newDirTouched {
                    for (name, fd) in handles.new.sorted(by: { $0.key < $1.key }) { try flushDirectory("\(name) new", fd, &batch.timings) }
                }
            }
            recordFlushCosts(files: batch.files, batch.timings)
        } catch {
            for i in published { batch.results[i] = .failure(error) }
        }
    }

    /// Step 6: lets go of the staged files (a linked item's stay in tmp/ for `recover`), tells the claim scan about
    /// the accepted items, and returns the answers.
    private func answer(_ requests: [EnqueueRequest], _ batch: EnqueueBatch) -> [Result<EnqueueOutcome, SpoolError>] {
        for s in batch.staged.values { discard(s) }
        let acceptedNames = batch.published.filter {
            (try? batch.results[$0]?.get()) == .accepted && (requests[$0].queues.isEmpty || requests[$0].queues.contains(queue))
        }.map { requests[$0].key.fileName }
        if !acceptedNames.isEmpty { noteNewItems(names: acceptedNames) }
        return batch.results.map { $0! }
    }

    /// One timed `syncfs` of the spool's file system (steps 2 and 5 when the batch uses `syncfs`).
    private func flushFileSystem(_ handles: FlushHandles, _ timings: inout FlushTimings) throws(SpoolError) {
        try sys("flush file system") { () throws(Errno) in
            timings.syncfsNanos += try timed { () throws(Errno) in try faults.check(.fsync); try handles.tmp.syncFileSystem() }
        }
        timings.syncfsCalls += 1
    }

    /// One timed directory `fsync` of step 5.
    private func flushDirectory(_ what: String, _ fd: FileDescriptor, _ timings: inout FlushTimings) throws(SpoolError) {
        try sys("flush \(what) directory") { () throws(Errno) in
            timings.dirNanos += try timed { () throws(Errno) in try faults.check(.fsync); try fd.fsync() }
        }
        timings.dirFlushes += 1
    }

    /// Fresh descriptors of the directories a batch flushes (`.` opened through the spool's own descriptors, so
    /// no path is resolved again): `tmp/`, `keys/` and the `new/` of every queue the batch feeds, by queue name.
    final class FlushHandles {
        let tmp: FileDescriptor, keys: FileDescriptor
        var new: [String: FileDescriptor] = [:]
        var queues: [String: QueueDirectories] = [:]
        init(tmp: FileDescriptor, keys: FileDescriptor) { self.tmp = tmp; self.keys = keys }
        func close() { for fd in [tmp, keys] + Array(new.values) { try? fd.close() } }
    }

    fileprivate func openFlushHandles() throws(SpoolError) -> FlushHandles {
        var opened: [FileDescriptor] = []
        do throws(Errno) {
            for d in [tmp, keys] { opened.append(try FileDescriptor.open(".", in: d, [.readOnly, .directory])) }
        } catch {
            for fd in opened { try? fd.close() }
            throw SpoolError.system(operation: "open directories to flush", errno: error)
        }
        let h = FlushHandles(tmp: opened[0], keys: opened[1])
        do throws(SpoolError) { _ = try h.queue(queue, of: self) } catch { h.close(); throw error }
        return h
    }

    /// Whether this batch is flushed with `syncfs` (see `FlushMode`, `FlushCostModel`).
    private func useSyncfs(files: Int) -> Bool {
        switch flushMode {
        case .fsync: return false
        case .syncfs: return files > 0
        case .auto:
            guard syncfsReportsErrors else { return false }
            let now = monotonicNanos()
            return flushCosts.withLock { $0.prefersSyncfs(files: files, directories: 2, now: now) }
        }
    }

    private func recordFlushCosts(files: Int, _ t: FlushTimings) {
        if t.syncfsCalls > 0 { syncfsBatches.wrappingAdd(1, ordering: .relaxed) } else { fsyncBatches.wrappingAdd(1, ordering: .relaxed) }
        guard flushMode == .auto else { return }
        let now = monotonicNanos()
        flushCosts.withLock { m in
            if t.syncfsCalls > 0 {
                m.recordSyncfs(calls: t.syncfsCalls, seconds: Double(t.syncfsNanos) / 1e9, now: now)
            } else if files > 0 || t.dirFlushes > 0 {
                m.recordFsync(files: files, fileSeconds: Double(t.fileNanos) / 1e9, directories: t.dirFlushes,
                              directorySeconds: Double(t.dirNanos) / 1e9, now: now)
            }
        }
    }

    final class StagedItem {
        let key: SpoolKey
        /// `<name>.<unique>`: the staging name is `tmp/<base>.w`.
        let base: String
        let payload: FileDescriptor
        /// The queues it enters.
        let queues: [QueueDirectories]
        /// Whether the file has a name in `tmp/` (`tmp/<base>.w`): the `O_TMPFILE` fallback, or an item for several
        /// queues between its marker and its last queue.
        var named: Bool
        var published = false
        /// The marker was linked but the item could not enter every queue: keep the file for `recover`.
        var linked = false
        init(key: SpoolKey, base: String, payload: FileDescriptor, queues: [QueueDirectories], named: Bool) {
            self.key = key; self.base = base; self.payload = payload; self.queues = queues; self.named = named
        }
        var payloadName: String { base + ".w" }
        func closeAll() { try? payload.close() }
    }

    private func stage(_ r: EnqueueRequest, receivedAt: Int64, handles: FlushHandles) throws(SpoolError) -> StagedItem {
        let names = r.queues.isEmpty ? [queue] : r.queues
        var queues: [QueueDirectories] = []
        for n in names where !queues.contains(where: { $0.name == n }) { queues.append(try handles.queue(n, of: self)) }
        let w = tmpName(for: r.key.fileName, kind: "w")
        let base = String(w.dropLast(2))
        var fd: FileDescriptor?
        var named = false
        do throws(SpoolError) {
            let p = try sys("create item in tmp/") { () throws(Errno) in
                try faults.check(.open)
                if unnamedFilesUsable.load(ordering: .relaxed) {
                    do throws(Errno) { return try FileDescriptor.openUnnamed(in: tmp) } catch where error == .notSupported || error == .isDirectory || error == .invalidArgument {
                        unnamedFilesUsable.store(false, ordering: .relaxed)  // no O_TMPFILE here: name it (the fallback)
                    }
                }
                named = true
                return try FileDescriptor.open(w, in: tmp, [.readWrite, .create, .exclusive, .noFollow], mode: 0o600)
            }
            fd = p
            // Held until the item is in all its queues, so that `recover` and a racing enqueue of the key never take a
            // live write for an interrupted one. A recover may hold it for a moment: wait for it.
            try sys("lock item") { () throws(Errno) in try p.lockExclusive() }
            let header = ItemHeader(key: r.key.value, receivedAtNanos: receivedAt, size: Int64(r.payload.count), headers: r.headers,
                                    source: r.source, queues: queues.map(\.name))
            var bytes = header.encoded()
            bytes += r.payload
            try sys("write item") { () throws(Errno) in try faults.check(.write); try p.writeAll(bytes) }
            return StagedItem(key: r.key, base: base, payload: p, queues: queues, named: named)
        } catch {
            try? fd?.close()
            if named { try? FS.unlink(w, in: tmp) }
            throw error
        }
    }

    private func discard(_ s: StagedItem) {
        s.closeAll()
        if s.linked { return }
        if s.named && !s.published { try? FS.unlink(s.payloadName, in: tmp) }
    }

    /// Steps 3 and 4 for one item: `.duplicate` when its key already has a live item, `.accepted` once it is in all
    /// its queues.
    private func publish(_ s: StagedItem) throws(SpoolError) -> EnqueueOutcome {
        if s.queues.count > 1 && !s.named {
            // Between the marker and the last queue, the name in tmp/ is what tells recover (and a racing enqueue)
            // that this enqueue is not finished; a single queue needs none (see `resolveExistingMarker`).
            try sys("stage item") { () throws(Errno) in try faults.check(.link); try FS.link(openFile: s.payload, to: s.payloadName, in: tmp) }
            s.named = true
        }
        guard try linkMarker(s) else { return .duplicate }
        try linkIntoQueues(s)
        return .accepted
    }

    /// Step 3: the item linked as `keys/<name>`, the atomic create-if-absent. True when the marker now links to this
    /// item; false when the key has a live item (a duplicate). An orphan marker is removed and the link tried again.
    private func linkMarker(_ s: StagedItem) throws(SpoolError) -> Bool {
        for _ in 0..<8 {
            do throws(Errno) {
                try faults.check(.link)
                if s.named { try FS.link(s.payloadName, in: tmp, to: s.key.fileName, in: keys) } else { try FS.link(openFile: s.payload, to: s.key.fileName, in: keys) }
                return true
            } catch where error == .exists {
                if try resolveExistingMarker(s.key) { return false }
                continue
            } catch {
                throw SpoolError.system(operation: "link key marker", errno: error)
            }
        }
        throw SpoolError.busy(key: s.key.value)
    }

    /// Step 4, with the marker linked: the item linked as `new/<name>` of each queue, its `tmp/` name (if any)
    /// removed, its lock dropped.
    private func linkIntoQueues(_ s: StagedItem) throws(SpoolError) {
        let name = s.key.fileName
        for qd in s.queues {
            do throws(Errno) {
                try faults.check(.queueLink)
                try FS.link(name, in: keys, to: name, in: qd.dir(.new))
            } catch {
                // The marker is linked: a racing request may already have answered "duplicate" on the strength of it,
                // so the write must not be undone. `recover` (or the next enqueue of the key) finishes it from the
                // marker or the tmp/ name. This request gets an error.
                s.linked = true
                unfinishedEnqueues.withLock { _ = $0.insert(name) }
                if error == .exists { throw SpoolError.conflict("\(qd.prefix)new/\(name) exists; the write is kept for recover") }
                throw SpoolError.system(operation: "publish item", errno: error)
            }
        }
        s.published = true
        if s.named { try? FS.unlink(s.payloadName, in: tmp) }
        // In its queues, the lock has done its job (keeping recover off a live write); dropping it now lets a
        // consumer claim the item at once. Its data is already durable; its names are flushed in step 5.
        s.payload.unlock()
    }

    /// Decides what an existing `keys/<name>` means. Returns true for a live item (a duplicate); false when the
    /// marker was an orphan that has been removed, so the caller links again.
    /// - 2 links or more: an item in some queue, or an enqueue staged in `tmp/`: a duplicate.
    /// - 1 link, locked: an enqueue in flight (its writer holds the lock until the item is in its queues): a duplicate;
    ///   if the writer dies, `recover` finishes it from the marker.
    /// - 1 link, unlocked: an enqueue whose writer died between the marker and its queue: finished here, into the
    ///   queues its header names, then a duplicate. A marker whose file is not an item is an orphan and removed.
    /// - 1 link, a kept key (a purged item's header): a duplicate until its `forget_at`, then removed.
    func resolveExistingMarker(_ key: SpoolKey) throws(SpoolError) -> Bool {
        let st: FileStat
        do throws(Errno) { st = try FS.stat(key.fileName, in: keys) } catch where error == .noEntry { return false } catch {
            throw SpoolError.system(operation: "stat key marker", errno: error)
        }
        if st.linkCount >= 2 { return true }
        let fd: FileDescriptor
        do throws(Errno) { fd = try FileDescriptor.open(key.fileName, in: keys, [.readOnly, .noFollow, .nonBlocking]) } catch where error == .noEntry {
            return false
        } catch { throw SpoolError.system(operation: "open key marker", errno: error) }
        return try fd.closeAfter { (fd) throws(SpoolError) -> Bool in
            guard try sys("lock key marker", { () throws(Errno) in try fd.tryLockExclusive() }) == .acquired else { return true }
            let held = try sys("stat key marker") { () throws(Errno) in try fd.stat() }
            guard let cur = try? FS.stat(key.fileName, in: keys), cur.sameFile(as: held) else { return false }
            if held.linkCount >= 2 { return true }
            switch try finishInterruptedEnqueue(name: key.fileName, fd: fd, st: held) {
            case .finished, .alreadyThere: return true
            case .keptKey(let forgetAt) where forgetAt > now(): return true
            case .keptKey:
                // Its time is over: the key may be enqueued again.
                try sys("remove kept key") { () throws(Errno) in try FS.unlink(key.fileName, in: keys) }
                return false
            case .notAnItem:
                try sys("remove orphan key marker") { () throws(Errno) in try FS.unlink(key.fileName, in: keys) }
                return false
            }
        }
    }

    enum FinishOutcome: Equatable { case finished, alreadyThere, notAnItem, keptKey(forgetAt: Int64) }

    /// Links a marked item (its lock held by the caller) into `new/` of every queue its header names that it is not
    /// in yet, and flushes those directories. The item's data was flushed before its marker was linked.
    func finishInterruptedEnqueue(name: String, fd: FileDescriptor, st: FileStat) throws(SpoolError) -> FinishOutcome {
        guard st.isRegular, let header = try? Spool.readHeader(fd, fileSize: st.size).header else { return .notAnItem }
        if let forgetAt = header.forgetAtNanos { return .keptKey(forgetAt: forgetAt) }
        var linked = false
        for qn in header.queues {
            let qd = try queueDirectories(qn)
            // Already in this queue (this file, or a copy of it that a backup tool made: recover relinks those).
            if ItemState.allCases.contains(where: { (try? FS.stat(name, in: qd.dir($0))) != nil }) { continue }
            do throws(Errno) {
                try FS.link(name, in: keys, to: name, in: qd.dir(.new))
                linked = true
                try qd.dir(.new).fsync()
            } catch where error == .exists {
                throw SpoolError.conflict("\(qd.prefix)new/\(name) is another file than the key's marker; run spool recover and inspect")
            } catch {
                throw SpoolError.system(operation: "finish the enqueue of \(name)", errno: error)
            }
        }
        if linked && header.queues.contains(queue) { noteNewItems(names: [name]) }
        return linked ? .finished : .alreadyThere
    }

    func invalidateScan() { scan.withLock { $0.invalidated = true } }

    /// Remembers that an item in `new/` becomes due at `nanos`, so the claim cache looks again then.
    func noteDue(_ nanos: Int64) { scan.withLock { $0.nextDueNanos = min($0.nextDueNanos ?? nanos, nanos) } }
}

/// Runs `body` and returns how long it took, in nanoseconds.
private func timed(_ body: () throws(Errno) -> Void) throws(Errno) -> Int64 {
    let t0 = monotonicNanos()
    try body()
    return monotonicNanos() - t0
}

extension Spool.FlushHandles {
    /// The directories of queue `name`, with a fresh descriptor of its `new/` for the batch's flush.
    func queue(_ name: String, of spool: Spool) throws(SpoolError) -> QueueDirectories {
        if let known = queues[name] { return known }
        let qd = try spool.queueDirectories(name)
        let fd = try sys("open \(qd.prefix)new/ to flush") { () throws(Errno) in try FileDescriptor.open(".", in: qd.dir(.new), [.readOnly, .directory]) }
        queues[name] = qd
        new[name] = fd
        return qd
    }
}
