import SpoolSystem
import SpoolWire

/// What `spool migrate` did (or, with `dryRun`, would do).
public struct MigrationReport: Sendable, Equatable {
    /// The format found before: 1, or 2 when there was nothing to do.
    public var from = 1
    public var converted: [String] = []
    /// Items already in format 2 (a migration interrupted earlier and run again).
    public var alreadyConverted = 0
    /// Items whose format 1 claimant had died: back in `new/`, the attempt recorded as abandoned.
    public var requeued: [String] = []
    /// Format 1 enqueues interrupted after their marker was linked, finished into `new/`.
    public var completedWrites: [String] = []
    public var removedTmp: [String] = []
    public var removedOrphanMarkers: [String] = []
    public var problems: [String] = []
    public var dryRun = false

    public var lines: [String] {
        let verb = dryRun ? "would " : ""
        if from == Spool.formatVersion { return ["already format \(Spool.formatVersion): nothing to do"] }
        return completedWrites.map { "\(verb)complete interrupted enqueue of \($0)" }
            + requeued.map { "\(verb)requeue \($0) (its format 1 claimant is gone)" }
            + removedTmp.map { "\(verb)remove tmp/\($0)" }
            + removedOrphanMarkers.map { "\(verb)remove orphan key marker \($0)" }
            + ["\(verb)convert \(converted.count) item(s) to format \(Spool.formatVersion)" + (alreadyConverted > 0 ? " (\(alreadyConverted) already converted)" : "")]
            + problems.map { "problem: \($0)" }
    }
}

/// `spool migrate`: upgrades a format 1 spool in place (docs/spool-format.md, "Upgrading from format 1").
///
/// Every item is rewritten as a format 2 item file (header, then the payload, flushed) named in `tmp/`, then renamed
/// over its old name in its state directory (claimed items of dead claimants into `new/`), then linked over its key
/// marker; its attempts and errors go to `state/<name>`. Each step leaves either the old item or the new one under
/// each name, so a migration killed anywhere and run again finishes the job: an item already in format 2 is only
/// checked (its marker, its old `claimed/` name). The directories are flushed, `meta/` is removed, and only then is
/// `format` written: until then every other command sees format 1 and refuses to run.
public enum SpoolMigration {
    static let v1Attribute = "user.spool.meta"
    static let v1MetaDir = "meta"

    public static func migrate(path: String, dryRun: Bool = false, clock: any WallClock = SystemClock()) throws(SpoolError) -> MigrationReport {
        let st = try Spool.statOrCreate(path, create: false)
        try Spool.checkSafe(st, what: "spool directory", path: path)
        let root = try sys("open spool directory \(path)") { () throws(Errno) in try FileDescriptor.open(path, [.readOnly, .directory, .noFollow]) }
        return try root.closeAfter { (root) throws(SpoolError) -> MigrationReport in
            var report = MigrationReport()
            report.dryRun = dryRun
            switch try SpoolFormat.detect(root: root) {
            case .version(Spool.formatVersion):
                report.from = Spool.formatVersion
                return report
            case .version(let v): throw .unsupportedFormat(path: path, found: v)
            case .empty: throw .corrupt("\(path) holds no spool (no keys/ and no format file)")
            case .version1: break
            }
            // One migration at a time.
            guard try sys("lock spool directory") { () throws(Errno) in try root.tryLockExclusive() } == .acquired else {
                throw .busy(key: "(the spool directory: another spool migrate is running)")
            }
            var m = try Migrator(root: root, path: path, dryRun: dryRun, now: clock.nowNanos())
            defer { m.close() }
            try m.run(&report)
            return report
        }
    }
}

/// The state of one migration run: the directories it works in.
struct Migrator {
    let root: FileDescriptor, path: String, dryRun: Bool, now: Int64
    var opened: [FileDescriptor] = []
    var tmp = FileDescriptor(rawValue: -1), keys = FileDescriptor(rawValue: -1), state = FileDescriptor(rawValue: -1)
    var dirs: [ItemState: FileDescriptor] = [:]
    /// nil when there is no `meta/` directory (already removed by an interrupted run).
    var metas: FileDescriptor?
    var counter = 0

    init(root: FileDescriptor, path: String, dryRun: Bool, now: Int64) throws(SpoolError) {
        self.root = root; self.path = path; self.dryRun = dryRun; self.now = now
        do throws(SpoolError) {
            tmp = try Spool.openSubdirectory(Spool.tmpDir, in: root, path: path, &opened)
            keys = try Spool.openSubdirectory(Spool.keysDir, in: root, path: path, &opened)
            for s in ItemState.allCases { dirs[s] = try Spool.openSubdirectory(s.rawValue, in: root, path: path, &opened) }
            if !dryRun { state = try Spool.openSubdirectory(Spool.stateDir, in: root, path: path, &opened) }
            if (try? FS.stat(SpoolMigration.v1MetaDir, in: root))?.isDirectory == true {
                metas = try Spool.openSubdirectory(SpoolMigration.v1MetaDir, in: root, path: path, &opened)
            }
        } catch {
            for fd in opened { try? fd.close() }
            throw error
        }
    }

    func close() { for fd in opened { try? fd.close() } }

    mutating func tmpName(_ name: String, _ kind: Character) -> String {
        counter += 1
        return "\(name).\(FS.processID)-\(FS.processStartTicks(FS.processID) ?? 0)-\(UInt32.random(in: 0...UInt32.max))-\(counter).\(kind)"
    }

    mutating func run(_ report: inout MigrationReport) throws(SpoolError) {
        try refuseLiveProcesses()
        try migrateTmp(&report)
        for s in ItemState.allCases {
            let names = try sys("list \(s)") { () throws(Errno) in try FS.listNames(in: dirs[s]!) }
            for name in names.sorted() {
                guard let key = SpoolKey(fileName: name) else { report.problems.append("foreign entry \(s)/\(name) left alone"); continue }
                try migrateItem(name: name, key: key, from: s, &report)
            }
        }
        try removeOrphanMarkers(&report)
        guard !dryRun else { return }
        // Every name and state file in place and durable before the format says 2.
        for fd in [tmp, keys, state] + ItemState.allCases.map({ dirs[$0]! }) {
            try sys("flush a spool directory") { () throws(Errno) in try fd.fsync() }
        }
        if let metas {
            try? metas.close()
            self.metas = nil
            try sys("remove meta/") { () throws(Errno) in try FS.removeFlatDirectory(SpoolMigration.v1MetaDir, in: root) }
        }
        try SpoolFormat.writeFile(Spool.guardFile, SpoolFormat.guardText, in: root)
        try SpoolFormat.writeFile(Spool.formatFile, Array("\(Spool.formatVersion)\n".utf8), in: root)
    }

    /// A format 1 process still running would keep writing format 1 items: refuse while any holds a lock.
    func refuseLiveProcesses() throws(SpoolError) {
        for (label, d) in [("claimed", dirs[.claimed]!), ("tmp", tmp)] {
            for name in (try? FS.listNames(in: d)) ?? [] {
                guard let fd = try? FileDescriptor.open(name, in: d, [.readOnly, .noFollow, .nonBlocking]) else { continue }
                defer { try? fd.close() }
                if (try? fd.tryLockExclusive()) == .busy {
                    throw .busy(key: "\(label)/\(name) (a spool process is running on \(path): stop every spool process, then migrate)")
                }
            }
        }
    }

    /// Format 1 `tmp/`: a write whose marker was linked is finished into `new/` (as format 1's recover did), with its
    /// `.m` file over `meta/<name>`; everything else is removed (no process is running).
    mutating func migrateTmp(_ report: inout MigrationReport) throws(SpoolError) {
        let entries = try sys("list tmp") { () throws(Errno) in try FS.listNames(in: tmp) }
        var finishedBases = Set<String>()
        for entry in entries.sorted(by: { $0.hasSuffix(".w") && !$1.hasSuffix(".w") }) {
            let parts = entry.split(separator: ".", omittingEmptySubsequences: false)
            let itemName = String(parts.first ?? "")
            guard let st = try? FS.stat(entry, in: tmp) else { continue }
            let markerIsThis = (try? FS.stat(itemName, in: keys))?.sameFile(as: st) ?? false
            if parts.count == 3 && parts[2] == "w" && markerIsThis && st.isRegular {
                report.completedWrites.append(SpoolKey(fileName: itemName)?.value ?? itemName)
                if dryRun {
                    // A real run moves it into new/ and converts it there; its .m file goes with it.
                    report.converted.append(SpoolKey(fileName: itemName)?.value ?? itemName)
                    finishedBases.insert(String(entry.dropLast(2)))
                    continue
                }
                let m = String(entry.dropLast(2)) + ".m"
                if let metas, (try? FS.stat(m, in: tmp)) != nil {
                    // Its metadata first: a failure here leaves both in tmp/ for the next run, never the item without it.
                    try sys("finish enqueue of \(itemName)") { () throws(Errno) in try FS.rename(m, in: tmp, to: itemName, in: metas) }
                }
                try sys("finish enqueue of \(itemName)") { () throws(Errno) in try FS.renameNoReplace(entry, in: tmp, to: itemName, in: dirs[.new]!) }
                continue
            }
            if dryRun && parts.count == 3 && parts[2] == "m" && finishedBases.contains(String(entry.dropLast(2))) { continue }
            if parts.count == 3 && parts[2] == "p" && markerIsThis && !dryRun { try? FS.unlink(itemName, in: keys) }
            report.removedTmp.append(entry)
            if dryRun { continue }
            do throws(Errno) {
                if st.isDirectory { try FS.removeFlatDirectory(entry, in: tmp) } else { try FS.unlink(entry, in: tmp) }
            } catch where error == .noEntry {} catch {
                throw SpoolError.system(operation: "remove tmp/\(entry)", errno: error)
            }
        }
    }

    /// Format 1 metadata of an open item: its attribute, or `meta/<name>` when the attribute says so or is missing.
    func v1Meta(name: String, fd: FileDescriptor) -> ItemMeta? {
        if let attr = try? fd.attribute(SpoolMigration.v1Attribute, limit: ItemMeta.maxBytes), !ItemMeta.isSpilledStub(attr) {
            return try? ItemMeta.parse(attr)
        }
        guard let metas, let bytes = try? FileDescriptor.open(name, in: metas, [.readOnly, .noFollow, .nonBlocking]).closeAfter({ (fd) throws(Errno) in
            try fd.readAll(limit: ItemMeta.maxBytes + 1)
        }) else { return nil }
        return try? ItemMeta.parse(bytes)
    }

    mutating func migrateItem(name: String, key: SpoolKey, from s: ItemState, _ report: inout MigrationReport) throws(SpoolError) {
        let d = dirs[s]!
        let target: ItemState = s == .claimed ? .new : s
        let fd: FileDescriptor
        do throws(Errno) { fd = try FileDescriptor.open(name, in: d, [.readOnly, .noFollow, .nonBlocking]) } catch where error == .noEntry { return } catch {
            throw SpoolError.system(operation: "open \(s)/\(name)", errno: error)
        }
        defer { try? fd.close() }
        let st = try sys("stat \(s)/\(name)") { () throws(Errno) in try fd.stat() }
        guard st.isRegular else { report.problems.append("\(s)/\(name) is not a regular file; left alone"); return }
        if (try? Spool.readHeader(fd, fileSize: st.size)) != nil {
            // Converted by an earlier, interrupted run: finish its last steps.
            report.alreadyConverted += 1
            if dryRun { return }
            if s == .claimed {
                if let n = try? FS.stat(name, in: dirs[.new]!), n.sameFile(as: st) {
                    try sys("remove claimed/\(name)") { () throws(Errno) in try FS.unlink(name, in: d) }
                } else {
                    try sys("requeue \(name)") { () throws(Errno) in try FS.renameNoReplace(name, in: d, to: name, in: dirs[.new]!) }
                }
            }
            try pointMarker(name: name, at: target)
            return
        }
        if s == .claimed, (try? FS.stat(name, in: dirs[.new]!)) != nil {
            // An earlier run put the converted item into new/ and was killed before removing this old name.
            report.alreadyConverted += 1
            if !dryRun {
                try sys("remove claimed/\(name)") { () throws(Errno) in try FS.unlink(name, in: d) }
                try pointMarker(name: name, at: .new)
            }
            return
        }
        let payload = try sys("read \(s)/\(name)") { () throws(Errno) in try fd.readFromStart(size: Int(st.size)) }
        var meta = v1Meta(name: name, fd: fd) ?? {
            var m = ItemMeta(key: key.value, receivedAtNanos: st.mtimeNanos, size: st.size)
            m.lastError = "format 1 metadata was unreadable and has been rebuilt by spool migrate"
            return m
        }()
        meta.size = Int64(payload.count)
        report.converted.append(key.value)
        if s == .claimed { report.requeued.append(key.value) }
        if dryRun { return }
        let source = meta.source.flatMap(ItemHeader.Source.init(rawValue:)) ?? .webhook
        let header = ItemHeader(key: meta.key, receivedAtNanos: meta.receivedAtNanos, size: meta.size, headers: meta.headers, source: source)
        // Delivery state: what format 1 kept about attempts. Its attempts were counted at claim time, which is when
        // format 2 records an attempt's end, so the count carries over; a dead claimant's attempt is abandoned.
        var state: DeliveryState?
        var due: Int64? = nil
        // Nothing to record for an item that never failed (waiting for its first attempt, or done at its first).
        if meta.lastError != nil || meta.lastStatus != nil || meta.attempts > (target == .done ? 1 : 0) {
            var ds = DeliveryState(itemReceivedAtNanos: meta.receivedAtNanos)
            ds.attempts = meta.attempts
            ds.lastError = meta.lastError
            ds.lastStatus = meta.lastStatus
            ds.lastAttemptAtNanos = meta.lastAttemptAtNanos
            ds.finishedAtNanos = meta.finishedAtNanos
            if s == .claimed {
                ds.lastStatus = "abandoned"
                ds.lastError = "the format 1 claimant \(meta.claimedBy ?? "unknown") died during attempt \(meta.attempts)"
                ds.record(AttemptRecord(startedAtNanos: meta.lastAttemptAtNanos ?? st.ctimeNanos, durationNanos: 0, outcome: .abandoned,
                                        status: "abandoned", error: ds.lastError))
            }
            if s == .new, st.mtimeNanos > now { ds.nextAttemptAtNanos = st.mtimeNanos; due = st.mtimeNanos }
            state = ds
        }
        let newName = tmpName(name, "v")
        try sys("write format 2 item \(name)") { () throws(Errno) in
            let out = try FileDescriptor.open(newName, in: tmp, [.writeOnly, .create, .exclusive, .noFollow], mode: 0o600)
            do throws(Errno) {
                try out.closeAfter { (out) throws(Errno) in
                    try out.writeAll(header.encoded() + payload)
                    // The arrival stays the file's mtime, as for items enqueued in format 2.
                    try out.setModificationTime(nanos: meta.receivedAtNanos)
                    try out.fsync()
                }
            } catch { try? FS.unlink(newName, in: tmp); throw error }
        }
        if let state { try writeState(state, name: name, due: due ?? now) }
        // The new file takes the item's name (atomically replacing the old one), then the marker.
        try sys("replace \(s)/\(name)") { () throws(Errno) in
            if s == .claimed {
                try FS.renameNoReplace(newName, in: tmp, to: name, in: dirs[.new]!)
                try FS.unlink(name, in: d)
            } else {
                try FS.rename(newName, in: tmp, to: name, in: d)
            }
        }
        try pointMarker(name: name, at: target)
    }

    /// Makes `keys/<name>` a link to the item now in `state/<name>`: linked under a `tmp/` name, renamed over the marker.
    mutating func pointMarker(name: String, at s: ItemState) throws(SpoolError) {
        let item = try sys("stat \(s)/\(name)") { () throws(Errno) in try FS.stat(name, in: dirs[s]!) }
        if let m = try? FS.stat(name, in: keys), m.sameFile(as: item) { return }
        let t = tmpName(name, "k")
        try sys("relink key marker of \(name)") { () throws(Errno) in
            try FS.link(name, in: dirs[s]!, to: t, in: tmp)
            do throws(Errno) { try FS.rename(t, in: tmp, to: name, in: keys) } catch { try? FS.unlink(t, in: tmp); throw error }
        }
    }

    mutating func writeState(_ st: DeliveryState, name: String, due: Int64) throws(SpoolError) {
        let t = tmpName(name, "s")
        try sys("write delivery state of \(name)") { () throws(Errno) in
            let fd = try FileDescriptor.open(t, in: tmp, [.writeOnly, .create, .exclusive, .noFollow], mode: 0o600)
            do throws(Errno) {
                try fd.closeAfter { (fd) throws(Errno) in
                    try fd.writeAll(st.jsonBytes)
                    try fd.setModificationTime(nanos: due)
                    try fd.fsync()
                }
                try FS.rename(t, in: tmp, to: name, in: state)
            } catch { try? FS.unlink(t, in: tmp); throw error }
        }
    }

    /// Format 1 markers that no item links to (link count 1, not a format 2 item): removed, as format 1's recover did.
    mutating func removeOrphanMarkers(_ report: inout MigrationReport) throws(SpoolError) {
        let names = try sys("list keys") { () throws(Errno) in try FS.listNames(in: keys) }
        for name in names {
            guard let st = try? FS.stat(name, in: keys), st.isRegular, st.linkCount < 2 else { continue }
            let isItem = (try? FileDescriptor.open(name, in: keys, [.readOnly, .noFollow, .nonBlocking]).closeAfter { (fd) throws(SpoolError) in
                try Spool.readHeader(fd, fileSize: st.size)
            }) != nil
            if isItem { continue }  // a format 2 enqueue interrupted after its marker: recover finishes it
            report.removedOrphanMarkers.append(SpoolKey(fileName: name)?.value ?? name)
            if !dryRun { try? FS.unlink(name, in: keys) }
        }
    }
}
