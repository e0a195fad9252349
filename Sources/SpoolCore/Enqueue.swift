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
    public init(key: SpoolKey, payload: [UInt8], headers: [(String, String)] = []) {
        self.key = key
        self.payload = payload
        self.headers = headers.map { ($0.0.lowercased(), $0.1) }
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
    /// Steps for one item, numbered as in docs/spool-format.md ("enqueue", with the crash analysis of each):
    /// 1. create `tmp/<name>.<unique>.w` (the payload, locked, its metadata in an attribute) and write it;
    /// 2. fsync it (or one `syncfs` for the batch);
    /// 3. `link(tmp/….w, keys/<name>)`: the atomic create-if-absent that decides accepted vs duplicate;
    /// 4. `rename(tmp/….m, meta/<name>)` without attributes, then `renameat2(tmp/….w, new/<name>, RENAME_NOREPLACE)`;
    /// 5. fsync `keys/` and `new/` (and `tmp/` first when the batch answers a duplicate), or one `syncfs`;
    /// 6. the caller answers.
    public func enqueueBatch(_ requests: [EnqueueRequest]) -> [Result<EnqueueOutcome, SpoolError>] {
        var results = [Result<EnqueueOutcome, SpoolError>?](repeating: nil, count: requests.count)
        var staged: [Int: StagedItem] = [:]
        let receivedAt = now()

        // Descriptors for the flushes, opened before this batch changes anything. `fsync` and `syncfs` report a
        // writeback error once to each open file description: on the long-lived directory descriptors, shared with a
        // concurrent batch, that batch could take this batch's error away.
        let handles: FlushHandles
        do { handles = try openFlushHandles() } catch {
            return requests.map { _ in .failure(error) }
        }
        defer { handles.close() }

        // Phase 0: a key whose marker already has an item is a duplicate; nothing needs writing for it.
        // (The marker only ever goes away through purge, so what this sees stays true until we answer.)
        var knownDuplicates: [Int] = []
        for (i, r) in requests.enumerated() {
            if let st = try? FS.stat(r.key.fileName, in: keys), st.linkCount >= 2 { knownDuplicates.append(i) }
        }
        let skip = Set(knownDuplicates)
        // Phase 1: write every other item into tmp/.
        for (i, r) in requests.enumerated() where !skip.contains(i) {
            do { staged[i] = try stage(r, receivedAt: receivedAt) } catch { results[i] = .failure(error) }
        }
        // Phase 2: flush data, either one `syncfs` for the whole batch or every file (with writeback of all of them
        // started first, so that the per-file flushes overlap).
        let files = staged.values.reduce(0) { $0 + ($1.meta == nil ? 1 : 2) }
        let wholeFS = useSyncfs(files: files)
        var syncfsCalls = 0, syncfsNanos: Int64 = 0
        var fileNanos: Int64 = 0, dirFlushes = 0, dirNanos: Int64 = 0
        func timed(_ body: () throws(Errno) -> Void) throws(Errno) -> Int64 {
            let t0 = monotonicNanos()
            try body()
            return monotonicNanos() - t0
        }
        if wholeFS {
            do throws(SpoolError) {
                try sys("flush file system") { () throws(Errno) in syncfsNanos += try timed { () throws(Errno) in try faults.check(.fsync); try handles.tmp.syncFileSystem() } }
                syncfsCalls += 1
            } catch {
                for (i, s) in staged { results[i] = .failure(error); discard(s) }
                staged = [:]
            }
        } else {
            for s in staged.values { s.payload.startWriteback(); s.meta?.startWriteback() }
            for (i, s) in staged.sorted(by: { $0.key < $1.key }) {
                do throws(SpoolError) {
                    try sys("flush item") { () throws(Errno) in
                        fileNanos += try timed { () throws(Errno) in
                            try faults.check(.fsync); try s.payload.fsync()
                            if let m = s.meta { try faults.check(.fsync); try m.fsync() }
                        }
                    }
                } catch {
                    results[i] = .failure(error)
                    discard(s)
                    staged[i] = nil
                }
            }
        }
        // Phase 3: publish. The link decides accepted vs duplicate atomically.
        var published: [Int] = []
        var newDirTouched = false
        for (i, s) in staged.sorted(by: { $0.key < $1.key }) {
            do {
                let outcome = try publish(s)
                if outcome == .accepted { s.published = true }
                // Duplicates flush new/ too: an earlier request for the key may have failed on that flush.
                newDirTouched = true
                results[i] = .success(outcome)
                published.append(i)
            } catch {
                results[i] = .failure(error)
            }
        }
        // Phase 4: make the names durable, once for the whole batch. Duplicates need this too: the marker that made
        // them duplicates may belong to a write still in flight in another process.
        for i in knownDuplicates { results[i] = .success(.duplicate); published.append(i) }
        if !knownDuplicates.isEmpty { newDirTouched = true }
        let anyDuplicate = published.contains { (try? results[$0]?.get()) == .duplicate }
        if !published.isEmpty {
            do {
                if wholeFS {
                    try sys("flush file system") { () throws(Errno) in syncfsNanos += try timed { () throws(Errno) in try faults.check(.fsync); try handles.tmp.syncFileSystem() } }
                    syncfsCalls += 1
                } else {
                    func flushDir(_ what: String, _ fd: FileDescriptor) throws(SpoolError) {
                        try sys("flush \(what) directory") { () throws(Errno) in dirNanos += try timed { () throws(Errno) in try faults.check(.fsync); try fd.fsync() } }
                        dirFlushes += 1
                    }
                    // A duplicate may stand on a write still in flight elsewhere, its payload only in tmp/: flushing
                    // tmp/ (and new/, where it may have moved meanwhile) keeps what the answer promises on disk.
                    if anyDuplicate { try flushDir("tmp", handles.tmp) }
                    try flushDir("keys", handles.keys)
                    if newDirTouched {
                        if staged.values.contains(where: { $0.metaDirTouched }) { try flushDir("meta", handles.meta) }
                        try flushDir("new", handles.new)
                    }
                }
                recordFlushCosts(files: files, fileNanos: fileNanos, dirFlushes: dirFlushes, dirNanos: dirNanos,
                                 syncfsCalls: syncfsCalls, syncfsNanos: syncfsNanos)
            } catch {
                for i in published { results[i] = .failure(error) }
            }
        }
        for s in staged.values { discard(s) }
        let acceptedNames = published.filter { (try? results[$0]?.get()) == .accepted }.map { requests[$0].key.fileName }
        if !acceptedNames.isEmpty { noteNewItems(names: acceptedNames) }
        return results.map { $0! }
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

    private func recordFlushCosts(files: Int, fileNanos: Int64, dirFlushes: Int, dirNanos: Int64, syncfsCalls: Int, syncfsNanos: Int64) {
        if syncfsCalls > 0 { syncfsBatches.wrappingAdd(1, ordering: .relaxed) } else { fsyncBatches.wrappingAdd(1, ordering: .relaxed) }
        guard flushMode == .auto else { return }
        let now = monotonicNanos()
        flushCosts.withLock { m in
            if syncfsCalls > 0 {
                m.recordSyncfs(calls: syncfsCalls, seconds: Double(syncfsNanos) / 1e9, now: now)
            } else if files > 0 || dirFlushes > 0 {
                m.recordFsync(files: files, fileSeconds: Double(fileNanos) / 1e9, directories: dirFlushes,
                              directorySeconds: Double(dirNanos) / 1e9, now: now)
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
            let meta = ItemMeta(key: r.key.value, receivedAtNanos: receivedAt, size: Int64(r.payload.count), headers: r.headers).jsonBytes
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

    private func publish(_ s: StagedItem) throws(SpoolError) -> EnqueueOutcome {
        for _ in 0..<8 {
            do throws(Errno) {
                try faults.check(.link)
                try FS.link(s.payloadName, in: tmp, to: s.key.fileName, in: keys)
            } catch where error == .exists {
                if try resolveExistingMarker(s.key) { return .duplicate }
                continue
            } catch {
                throw SpoolError.system(operation: "link key marker", errno: error)
            }
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
                // consumer claim the item at once. Its data is already durable; its name is flushed below.
                s.payload.unlock()
                return .accepted
            } catch {
                // The marker is linked: a racing request may already have answered "duplicate" on the strength of it,
                // so the write must not be undone. It stays in tmp/ (durable, its lock dropped when we close it) and
                // `recover`, which consumers and the ingress run periodically, finishes it. This request gets an error.
                s.linked = true
                if error == .exists { throw SpoolError.conflict("new/\(s.key.fileName) exists; the write is kept in tmp/ for recover") }
                throw SpoolError.system(operation: "publish item", errno: error)
            }
        }
        throw SpoolError.busy(key: s.key.value)
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
