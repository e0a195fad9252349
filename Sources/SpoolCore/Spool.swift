import Synchronization
import SpoolSystem
import SpoolWire

/// The states an item moves through. Each is a directory of the same name under the spool root.
public enum ItemState: String, CaseIterable, Sendable, Comparable {
    case new, claimed, done, failed
    public static func < (a: ItemState, b: ItemState) -> Bool {
        ItemState.allCases.firstIndex(of: a)! < ItemState.allCases.firstIndex(of: b)!
    }
}

/// The directories of one queue: its four state directories and `state/` (delivery state per item). The queue
/// `default` lives at the spool's root (`new/`, `claimed/`, ... as in format 1, so that `ls spool/failed` keeps
/// working); any other queue under `queues/<name>/`.
public final class QueueDirectories: Sendable {
    public let name: String
    /// The queue's directory relative to the spool root, with a trailing slash ("" for `default`).
    public let prefix: String
    /// The queue's own directory (the spool root for `default`; not owned: closed by its owner), which holds
    /// `paused` while the queue is paused.
    let base: FileDescriptor
    let dirs: [ItemState: FileDescriptor]
    /// `state/`: one file per item that has delivery history in this queue.
    let state: FileDescriptor
    /// The byte of an item file whose open-file-description lock is this queue's claim lock (docs/spool-format.md,
    /// "Locks"): queues lock different bytes of a shared item, so claims in two queues never wait for each other.
    let lockByte: Int64
    let owned: [FileDescriptor]

    init(name: String, prefix: String, base: FileDescriptor, dirs: [ItemState: FileDescriptor], state: FileDescriptor, lockByte: Int64,
         owned: [FileDescriptor]) {
        self.name = name; self.prefix = prefix; self.base = base; self.dirs = dirs; self.state = state; self.lockByte = lockByte
        self.owned = owned
    }

    func dir(_ s: ItemState) -> FileDescriptor { dirs[s]! }

    deinit { for fd in owned { try? fd.close() } }

    /// Claim-lock bytes: far beyond any payload, `default` at 2^62, any other queue at 2^62 + 1 + (the inode number
    /// of its directory, below 2^61). Two directories that exist at once have different inode numbers on one file
    /// system, so two queues never share a byte; every process computes the same byte from the same directory.
    static let defaultLockByte: Int64 = 1 << 62
    static func lockByte(directoryInode ino: UInt64) -> Int64 { defaultLockByte + 1 + Int64(ino & ((1 << 61) - 1)) }
}

/// A spool directory: the on-disk queue shared by `spool serve`, `spool consume` and the operator commands.
/// Layout and crash-safety argument: docs/spool-format.md. All methods are safe to call from many threads
/// and many processes at once. A `Spool` acts on one queue (`queue`, default `default`) for claims, listings and
/// operator commands; enqueues name the queues they feed.
public final class Spool: Sendable {
    /// Names of the directories under the root. `tmp` holds staged writes, state files being written and purge
    /// trash; `keys` holds one idempotency marker per key (a hard link to the item file, never moved);
    /// `queues` holds the queues other than `default`.
    public static let tmpDir = "tmp"
    public static let keysDir = "keys"
    public static let queuesDir = "queues"
    public static let stateDir = "state"
    /// The file at the root that records the format version ("2\n").
    public static let formatFile = "format"
    /// A regular file where format 1 had the directory `meta/`: a format 1 binary refuses a spool whose `meta` is
    /// not a directory, so an old binary stops instead of misreading format 2 items.
    public static let guardFile = "meta"
    public static let formatVersion = 2

    public let path: String
    /// The queue this handle claims from, lists and operates on.
    public let queue: String
    let root: FileDescriptor
    let tmp: FileDescriptor
    let keys: FileDescriptor
    let queuesRoot: FileDescriptor
    let q: QueueDirectories
    /// Other queues opened for enqueues (fan-out) and recover.
    let otherQueues = Mutex<[String: QueueDirectories]>([:])
    let clock: any WallClock
    let faults: FaultHooks
    let flushMode: FlushMode
    /// What each way of flushing has cost lately (for `FlushMode.auto`).
    let flushCosts = Mutex(FlushCostModel())
    let fsyncBatches = Atomic<Int>(0)
    let syncfsBatches = Atomic<Int>(0)
    /// Enqueue batches made durable file by file and with `syncfs`, since this `Spool` was opened (for `/metrics`:
    /// what `--flush auto` chose).
    public var flushedBatches: (fsync: Int, syncfs: Int) {
        (fsyncBatches.load(ordering: .relaxed), syncfsBatches.load(ordering: .relaxed))
    }
    /// Who we are (host:pid), for log lines.
    let identity: String
    private let counter = Atomic<UInt64>(0)
    /// `<pid>-<start>-<random>`, drawn once: the writer's identity (pid and start time, in clock ticks since boot,
    /// so `recover` can tell at once whether the writer of a tmp/ file is alive), and with the counter a name
    /// unique even against leftovers of a dead process that had the same pid (no syscall per item).
    private let tmpSalt = "\(FS.processID)-\(FS.processStartTicks(FS.processID) ?? 0)-\(UInt32.random(in: 0...UInt32.max))"
    /// False once the file system refused `O_TMPFILE`: items are then written under a name in `tmp/` (the fallback).
    let unnamedFilesUsable: Atomic<Bool>
    let scan = Mutex(ClaimScanState())
    /// `isPaused`'s last look (monotonic time, answer): at most one stat of `paused` per 250 ms.
    let pausedSeen = Mutex<(at: Int64, paused: Bool)?>(nil)
    /// Keys whose enqueue failed after its marker was linked (the write is kept): `recoverInterruptedWrites` finishes
    /// them; after a restart the full `recover` finds their markers.
    let unfinishedEnqueues = Mutex<Set<String>>([])
    let lockedAtClaim = Atomic<Int>(0)
    /// Claims that found a due item locked by someone else and left it for a look 5 ms later: a racing claimant,
    /// an enqueue just done, or a child process between its fork and its exec, which holds copies of our
    /// descriptors and so of our locks.
    public var claimsThatFoundItLocked: Int { lockedAtClaim.load(ordering: .relaxed) }

    /// Opens (and on first use creates) a spool directory. Refuses a root or state directory that is a
    /// symlink, not a directory, not owned by us, or writable by group or others, and a spool in another format
    /// (format 1 needs `spool migrate`). `unnamedFiles: false` stages writes under names in `tmp/`, as on file
    /// systems without `O_TMPFILE`.
    public init(path: String, queue: String = QueueName.defaultName, create: Bool = true, clock: any WallClock = SystemClock(),
                faults: FaultHooks = .none, unnamedFiles: Bool = true, flush: FlushMode = .auto) throws(SpoolError) {
        guard QueueName.isValid(queue) else { throw .invalidQueue(queue) }
        self.path = path
        self.queue = queue
        self.flushMode = flush
        self.unnamedFilesUsable = Atomic(unnamedFiles)
        self.clock = clock
        self.faults = faults
        identity = "\(FS.hostName):\(FS.processID)"

        let st = try Spool.statOrCreate(path, create: create)
        try Spool.checkSafe(st, what: "spool directory", path: path)
        let rootFD = try sys("open spool directory \(path)") { () throws(Errno) in try FileDescriptor.open(path, [.readOnly, .directory, .noFollow]) }
        var opened: [FileDescriptor] = [rootFD]
        do throws(SpoolError) {
            // Check what was opened, not only what the path named a moment before.
            let o = try sys("stat spool directory \(path)") { () throws(Errno) in try rootFD.stat() }
            guard o.sameFile(as: st) else { throw SpoolError.unsafeDirectory("spool directory \(path) changed while it was opened") }
            try Spool.checkSafe(o, what: "spool directory", path: path)
            try SpoolFormat.ensure(root: rootFD, path: path, create: create)
            tmp = try Spool.openSubdirectory(Spool.tmpDir, in: rootFD, path: path, &opened)
            keys = try Spool.openSubdirectory(Spool.keysDir, in: rootFD, path: path, &opened)
            queuesRoot = try Spool.openSubdirectory(Spool.queuesDir, in: rootFD, path: path, &opened)
            q = try Spool.openQueue(queue, root: rootFD, queuesRoot: queuesRoot, path: path)
        } catch {
            for fd in opened { try? fd.close() }
            throw error
        }
        root = rootFD
    }

    /// Opens (creating it on first use) `name` under `dir`, checked like the root.
    static func openSubdirectory(_ name: String, in dir: FileDescriptor, path: String, _ opened: inout [FileDescriptor]) throws(SpoolError) -> FileDescriptor {
        let full = "\(path)/\(name)"
        try sys("open \(full)") { () throws(Errno) in
            do throws(Errno) { try FS.mkdir(name, in: dir, mode: 0o700) } catch where error == .exists {}
        }
        let sst = try sys("open \(full)") { () throws(Errno) in try FS.stat(name, in: dir) }
        try Spool.checkSafe(sst, what: "spool subdirectory", path: full)
        let fd = try sys("open \(full)") { () throws(Errno) in try FileDescriptor.open(name, in: dir, [.readOnly, .directory, .noFollow]) }
        opened.append(fd)
        return fd
    }

    /// Opens a queue's directories, creating them on first use.
    static func openQueue(_ name: String, root: FileDescriptor, queuesRoot: FileDescriptor, path: String) throws(SpoolError) -> QueueDirectories {
        var opened: [FileDescriptor] = []
        do throws(SpoolError) {
            let base: FileDescriptor, prefix: String, lockByte: Int64
            if name == QueueName.defaultName {
                base = root; prefix = ""; lockByte = QueueDirectories.defaultLockByte
            } else {
                base = try openSubdirectory(name, in: queuesRoot, path: "\(path)/\(Spool.queuesDir)", &opened)
                prefix = "\(Spool.queuesDir)/\(name)/"
                let ino = try sys("stat queue \(name)") { () throws(Errno) in try base.stat().inode }
                lockByte = QueueDirectories.lockByte(directoryInode: ino)
            }
            var dirs: [ItemState: FileDescriptor] = [:]
            for s in ItemState.allCases { dirs[s] = try openSubdirectory(s.rawValue, in: base, path: "\(path)/\(prefix.isEmpty ? "" : prefix)", &opened) }
            let state = try openSubdirectory(Spool.stateDir, in: base, path: "\(path)/\(prefix)", &opened)
            return QueueDirectories(name: name, prefix: prefix, base: base, dirs: dirs, state: state, lockByte: lockByte, owned: opened)
        } catch {
            for fd in opened { try? fd.close() }
            throw error
        }
    }

    /// The directories of queue `name` (this handle's own, or another opened once and kept).
    func queueDirectories(_ name: String) throws(SpoolError) -> QueueDirectories {
        if name == queue { return q }
        if let known = otherQueues.withLock({ $0[name] }) { return known }
        guard QueueName.isValid(name) else { throw .invalidQueue(name) }
        let opened = try Spool.openQueue(name, root: root, queuesRoot: queuesRoot, path: path)
        return otherQueues.withLock { m in
            if let raced = m[name] { return raced }
            m[name] = opened
            return opened
        }
    }

    /// Every queue that exists in this spool: `default` and the directories under `queues/`, sorted.
    public func queueNames() -> [String] {
        let names = ((try? FS.listNames(in: queuesRoot)) ?? []).filter(QueueName.isValid)
        return ([QueueName.defaultName] + names.filter { $0 != QueueName.defaultName }).sorted()
    }

    deinit {
        for fd in [root, tmp, keys, queuesRoot] { try? fd.close() }
    }

    /// The root's status, creating the directory first when it is missing and `create` is set.
    static func statOrCreate(_ path: String, create: Bool) throws(SpoolError) -> FileStat {
        do throws(Errno) { return try FS.stat(path) } catch where error == .noEntry && !create {
            throw .notASpool(path: path, missing: true)
        } catch where error == .noEntry && create {
            try sys("create spool directory \(path)") { () throws(Errno) in
                do throws(Errno) { try FS.mkdir(path, in: .cwd, mode: 0o700) } catch where error == .exists {}
            }
            return try sys("stat \(path)") { () throws(Errno) in try FS.stat(path) }
        } catch {
            throw SpoolError.system(operation: "open spool directory \(path)", errno: error)
        }
    }

    /// `what` names the role, `path` the file: the hint must be a command that works when pasted.
    static func checkSafe(_ st: FileStat, what label: String, path: String) throws(SpoolError) {
        let what = "\(label) \(path)"
        if st.isSymlink { throw .unsafeDirectory("\(what) is a symlink; refusing to use it") }
        guard st.isDirectory else { throw .unsafeDirectory("\(what) is not a directory") }
        if st.uid != FS.userID { throw .notOwner(path: path, owner: st.uid, us: FS.userID) }
        if st.permissions & 0o022 != 0 {
            throw .unsafeDirectory("\(what) is writable by group or others (mode \(String(st.permissions, radix: 8))); run: chmod go-w \(shellQuoted(path))")
        }
    }

    func dir(_ s: ItemState) -> FileDescriptor { q.dir(s) }

    /// Path of a state directory of this queue (`new/` of `default` is `<spool>/new`), for watching it.
    public func directoryPath(_ state: ItemState) -> String { "\(path)/\(q.prefix)\(state.rawValue)" }

    /// Path of an item file in this queue (relative if the spool path is), for handlers (`SPOOL_FILE`).
    public func payloadPath(state: ItemState, name: String) -> String { "\(path)/\(q.prefix)\(state.rawValue)/\(name)" }

    /// A name for a new entry in `tmp/`: `<item name>.<pid>-<counter>-<random>.<kind>`.
    /// `.` never occurs in item names, so the item name is everything before the first dot.
    func tmpName(for name: String, kind: Character) -> String {
        let n = counter.wrappingAdd(1, ordering: .relaxed).newValue
        return "\(name).\(tmpSalt)-\(n).\(kind)"
    }

    public func now() -> Int64 { clock.nowNanos() }
}
