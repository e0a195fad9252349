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
    /// Where the item comes from, recorded in its metadata (`reconcile`); nil for the ingress.
    public var source: String?
    public init(key: SpoolKey, payload: [UInt8], headers: [(String, String)] = [], source: String? = nil) {
        self.key = key
        self.payload = payload
        self.headers = headers.map { ($0.0.lowercased(), $0.1) }
        self.source = source
    }
}

extension Spool {
    /// Enqueues one item, durably, before returning. See `enqueueBatch`.
    public func enqueue(key: SpoolKey, payload: [UInt8], headers: [(String, String)] = []) throws(SpoolError) -> EnqueueOutcome {
        try enqueueBatch([EnqueueRequest(key: key, payload: payload, headers: headers)])[0].get()
    }

    /// Enqueues several items with shared flushes (group commit): every payload is written, then all are
    /// flushed together, then each is published, then each directory is flushed once for the whole batch.
    /// A result is `.success` only when that item (or the existing item of its key) is durable.
    ///
    /// Steps, numbered as in docs/spool-format.md ("enqueue", with the crash analysis of each). Each function below
    /// runs its step for the whole batch before the next one begins (steps 3 and 4 item by item, in `publishAll`):
    /// - before step 1, `findKnownDuplicates`: a key whose marker already has an item is a duplicate, nothing is
    ///   written for it (it is still answered only after step 5);
    /// 1. `writeIntoTmp`: create `tmp/<name>.<unique>.w` (the payload, locked, its metadata in an attribute) and write it;
    /// 2. `flushData`: fsync it (or one `syncfs` for the batch);
    /// 3. `publishAll` → `linkMarker`: `link(tmp/….w, keys/<name>)`, the atomic create-if-absent that decides
    ///    accepted vs duplicate;
    /// 4. `publishAll` → `moveIntoNew`: `rename(tmp/….m, meta/<name>)` without attributes, then
    ///    `renameat2(tmp/….w, new/<name>, RENAME_NOREPLACE)`;
    /// 5. `flushNames`: fsync `keys/` and `new/` (`meta/` too if step 4 touched it, and `tmp/` first when the batch
    ///    answers a duplicate), or one `syncfs`;
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
        writeIntoTmp(requests, receivedAt: receivedAt, &batch)  // step 1
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
        /// Whether step 5 must flush `new/` (and `meta/` if an item touched it).
        var newDirTouched = false
        /// Files flushed in step 2 (a payload, plus its `.m` file if any), and whether the batch uses `syncfs`.
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
    private func writeIntoTmp(_ requests: [EnqueueRequest], receivedAt: Int64, _ batch: inout EnqueueBatch) {
        let skip = Set(batch.knownDuplicates)
        for (i, r) in requests.enumerated() where !skip.contains(i) {
            do throws(SpoolError) { batch.staged[i] = try stage(r, receivedAt: receivedAt) } catch { batch.results[i] = .failure(error) }
        }
    }

    /// Step 2: flushes the data, either one `syncfs` for the whole batch or every file (with writeback of all of them
    /// started first, so that the per-file flushes overlap). An item whose flush fails is discarded.
    private func flushData(_ batch: inout EnqueueBatch, _ handles: FlushHandles) {
        batch.files = batch.staged.values.reduce(0) { $0 + ($1.meta == nil ? 1 : 2) }
        batch.wholeFS = useSyncfs(files: batch.files)
        if batch.wholeFS {
            do throws(SpoolError) {
                try flushFileSystem(handles, &batch.timings)
            } catch {
                for (i, s) in batch.staged { batch.results[i] = .failure(error); discard(s) }
                batch.staged = [:]
            }
        } else {
            for s in batch.staged.values { s.payload.startWriteback(); s.meta?.startWriteback() }
            for (i, s) in batch.staged.sorted(by: { $0.key < $1.key }) {
                do throws(SpoolError) {
                    try sys("flush item") { () throws(Errno) in
                        batch.timings.fileNanos += try timed { () throws(Errno) in
                            try faults.check(.fsync); try s.payload.fsync()
                            if let m = s.meta { try faults.check(.fsync); try m.fsync() }
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
                    if batch.staged.values.contains(where: { $0.metaDirTouched }) { try flushDirectory("meta", handles.meta, &batch.timings) }
                    try flushDirectory("new", handles.new, &batch.timings)
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
        let acceptedNames = batch.published.filter { (try? batch.results[$0]?.get()) == .accepted }.map { requests[$0].key.fileName }
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
    /// no path is resolved again).
    struct FlushHandles {
        let tmp: FileDescriptor, keys: FileDescriptor, new: FileDescriptor, meta: FileDescriptor
        func close() { for fd in [tmp, keys, new, meta] { try? fd.close() } }
    }

    private func openFlushHandles() throws(SpoolError) -> FlushHandles {
        var opened: [FileDescriptor] = []
        do throws(Errno) {
            for d in [tmp, keys, dir(.new), metas] {
                opened.append(try FileDescriptor.open(".", in: d, [.readOnly, .directory]))
            }
        } catch {
            for fd in opened { try? fd.close() }
            throw SpoolError.system(operation: "open directories to flush", errno: error)
        }
        return FlushHandles(tmp: opened[0], keys: opened[1], new: opened[2], meta: opened[3])
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
        /// `<name>.<unique>`: the payload is `tmp/<base>.w`, the metadata `tmp/<base>.m`.
        let base: String
        let payload: FileDescriptor
        /// Nil when the metadata went into the payload's extended attribute.
        let meta: FileDescriptor?
        var published = false
        /// The marker was linked but the item could not be moved into new/: keep the files for `recover`.
        var linked = false
        var metaMoved = false
        /// A file in `meta/` was replaced or removed, so `meta/` must be flushed.
        var metaDirTouched = false
        init(key: SpoolKey, base: String, payload: FileDescriptor, meta: FileDescriptor?) {
            self.key = key; self.base = base; self.payload = payload; self.meta = meta
        }
        var payloadName: String { base + ".w" }
        var metaName: String { base + ".m" }
        func closeAll() { try? payload.close(); try? meta?.close() }
    }

    private func stage(_ r: EnqueueRequest, receivedAt: Int64) throws(SpoolError) -> StagedItem {
        let w = tmpName(for: r.key.fileName, kind: "w")
        let base = String(w.dropLast(2))
        var payloadFD: FileDescriptor?
        var metaFD: FileDescriptor?
        do throws(SpoolError) {
            let p = try sys("create payload in tmp/") { () throws(Errno) in
                try faults.check(.open)
                return try FileDescriptor.open(base + ".w", in: tmp, [.readWrite, .create, .exclusive, .noFollow], mode: 0o600)
            }
            payloadFD = p
            // Held until the item leaves tmp/, so `recover` never mistakes a live write for a dead one. A recover may hold
            // it for a moment (it looks at every unlocked tmp/ file): wait for it rather than go on unlocked.
            try sys("lock payload") { () throws(Errno) in try p.lockExclusive() }
            try sys("write payload") { () throws(Errno) in try faults.check(.write); try p.writeAll(r.payload) }
            var itemMeta = ItemMeta(key: r.key.value, receivedAtNanos: receivedAt, size: Int64(r.payload.count), headers: r.headers)
            itemMeta.source = r.source
            let meta = itemMeta.jsonBytes
            // A fresh item's metadata rides on the payload itself (one inode, one flush); where the file system has
            // no extended attributes, or the value is too large for it, it is a file of its own.
            if attributesUsable.load(ordering: .relaxed) {
                do throws(Errno) {
                    try faults.check(.write)
                    try p.setAttribute(Spool.metaAttribute, meta)
                    return StagedItem(key: r.key, base: base, payload: p, meta: nil)
                } catch where error == .notSupported {
                    attributesUsable.store(false, ordering: .relaxed)
                } catch where error == .attributeTooLarge || error == .resultOutOfRange || error == .noSpace && meta.count > 3000 {
                    // Too large for an attribute: a stub here, the metadata in a file.
                    try sys("write metadata stub") { () throws(Errno) in try p.setAttribute(Spool.metaAttribute, ItemMeta.spilledStub) }
                } catch {
                    throw SpoolError.system(operation: "write metadata", errno: error)
                }
            }
            let m = try sys("create metadata in tmp/") { () throws(Errno) in
                try faults.check(.open)
                return try FileDescriptor.open(base + ".m", in: tmp, [.writeOnly, .create, .exclusive, .noFollow], mode: 0o600)
            }
            metaFD = m
            try sys("write metadata") { () throws(Errno) in try faults.check(.write); try m.writeAll(meta) }
            return StagedItem(key: r.key, base: base, payload: p, meta: m)
        } catch {
            try? metaFD?.close(); try? payloadFD?.close()
            try? FS.unlink(base + ".w", in: tmp)
            try? FS.unlink(base + ".m", in: tmp)
            throw error
        }
    }

    private func discard(_ s: StagedItem) {
        s.closeAll()
        if s.linked { return }
        if !s.published { try? FS.unlink(s.payloadName, in: tmp) }
        if s.meta != nil && !s.metaMoved { try? FS.unlink(s.metaName, in: tmp) }
    }

    /// Steps 3 and 4 for one item: `.duplicate` when its key already has a live item, `.accepted` once it is in new/.
    private func publish(_ s: StagedItem) throws(SpoolError) -> EnqueueOutcome {
        guard try linkMarker(s) else { return .duplicate }
        try moveIntoNew(s)
        return .accepted
    }

    /// Step 3: `link(tmp/….w, keys/<name>)`, the atomic create-if-absent. True when the marker now links to this
    /// item; false when the key has a live item (a duplicate). An orphan marker is removed and the link tried again.
    private func linkMarker(_ s: StagedItem) throws(SpoolError) -> Bool {
        for _ in 0..<8 {
            do throws(Errno) {
                try faults.check(.link)
                try FS.link(s.payloadName, in: tmp, to: s.key.fileName, in: keys)
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

    /// Step 4, with the marker linked: the metadata file (if any) over `meta/<name>`, then
    /// `renameat2(tmp/….w, new/<name>, RENAME_NOREPLACE)`, then the lock dropped.
    private func moveIntoNew(_ s: StagedItem) throws(SpoolError) {
        do throws(Errno) {
            // The marker is ours: any metadata file under this name is a stale leftover (its item was deleted by
            // hand) and is replaced. With an attribute no file is read unless the attribute points to one.
            if s.meta != nil {
                try faults.check(.rename)
                try FS.rename(s.metaName, in: tmp, to: s.key.fileName, in: metas)
                s.metaMoved = true
                s.metaDirTouched = true
            }
            try faults.check(.rename)
            try FS.renameNoReplace(s.payloadName, in: tmp, to: s.key.fileName, in: dir(.new))
            // Out of tmp/, the lock has done its job (keeping recover off a live write); dropping it now lets a
            // consumer claim the item at once. Its data is already durable; its name is flushed in step 5.
            s.payload.unlock()
        } catch {
            // The marker is linked: a racing request may already have answered "duplicate" on the strength of it,
            // so the write must not be undone. It stays in tmp/ (durable, its lock dropped when we close it) and
            // `recover`, which consumers and the ingress run periodically, finishes it. This request gets an error.
            s.linked = true
            if error == .exists { throw SpoolError.conflict("new/\(s.key.fileName) exists; the write is kept in tmp/ for recover") }
            throw SpoolError.system(operation: "publish item", errno: error)
        }
    }

    /// Decides what an existing `keys/<name>` means. Returns true for a live item (a duplicate); false when the
    /// marker was an orphan (no item links to it any more) and has been removed, so the caller links again.
    func resolveExistingMarker(_ key: SpoolKey) throws(SpoolError) -> Bool {
        let st: FileStat
        do throws(Errno) { st = try FS.stat(key.fileName, in: keys) } catch where error == .noEntry { return false } catch {
            throw SpoolError.system(operation: "stat key marker", errno: error)
        }
        // The marker is a hard link to the payload: a second link means an item (or a write in progress) holds it.
        if st.linkCount >= 2 { return true }
        // An orphan marker: its item was deleted by hand or lost. Remove it under its lock, after checking the
        // name still refers to the same file, so two repairers cannot both act on it.
        let fd: FileDescriptor
        do throws(Errno) { fd = try FileDescriptor.open(key.fileName, in: keys, [.readOnly, .noFollow, .nonBlocking]) } catch where error == .noEntry {
            return false
        } catch { throw SpoolError.system(operation: "repair orphan key marker", errno: error) }
        return try fd.closeAfter { (fd) throws(SpoolError) -> Bool in
            var locked = false
            for _ in 0..<2000 where !locked {
                locked = try sys("lock orphan key marker") { () throws(Errno) in try fd.tryLockExclusive() == .acquired }
                if !locked { sleep(nanoseconds: 500_000) }
            }
            if !locked { throw SpoolError.busy(key: key.value) }
            return try sys("repair orphan key marker") { () throws(Errno) -> Bool in
                let held = try fd.stat()
                guard let cur = try? FS.stat(key.fileName, in: keys), cur.sameFile(as: held) else { return false }
                if held.linkCount >= 2 { return true }
                try FS.unlink(key.fileName, in: keys)
                return false
            }
        }
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
