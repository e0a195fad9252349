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

/// A spool directory: the on-disk queue shared by `spool serve`, `spool consume` and the operator commands.
/// Layout and crash-safety argument: docs/spool-format.md. All methods are safe to call from many threads
/// and many processes at once.
public final class Spool: Sendable {
    /// Names of the directories under the root. `tmp` holds writes in progress and purge trash;
    /// `keys` holds one idempotency marker per key (a hard link to the item's payload, never moved);
    /// `meta` holds metadata files for items whose metadata does not fit an attribute (replaced by rename).
    public static let tmpDir = "tmp"
    public static let keysDir = "keys"
    public static let metaDir = "meta"
    /// The extended attribute that holds a fresh item's metadata on its payload (until `meta/<name>` exists).
    public static let metaAttribute = "user.spool.meta"

    public let path: String
    let root: FileDescriptor
    let tmp: FileDescriptor
    let keys: FileDescriptor
    let metas: FileDescriptor
    let stateDirs: [ItemState: FileDescriptor]
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
    /// Who we are in `claimed_by` (host:pid).
    let identity: String
    private let counter = Atomic<UInt64>(0)
    /// `<pid>-<start>-<random>`, drawn once: the writer's identity (pid and start time, in clock ticks since boot,
    /// so `recover` can tell at once whether the writer of a tmp/ file is alive), and with the counter a name
    /// unique even against leftovers of a dead process that had the same pid (no syscall per item).
    private let tmpSalt = "\(FS.processID)-\(FS.processStartTicks(FS.processID) ?? 0)-\(UInt32.random(in: 0...UInt32.max))"
    /// False once the file system refused extended attributes: metadata files are then written at enqueue.
    let attributesUsable: Atomic<Bool>
    let scan = Mutex(ClaimScanState())
    let lockedAtClaim = Atomic<Int>(0)
    /// Claims that found a due item locked by someone else and left it for a look 5 ms later: a racing claimant,
    /// an enqueue just done, or a child process between its fork and its exec, which holds copies of our
    /// descriptors and so of our locks.
    public var claimsThatFoundItLocked: Int { lockedAtClaim.load(ordering: .relaxed) }

    /// Opens (and on first use creates) a spool directory. Refuses a root or state directory that is a
    /// symlink, not a directory, not owned by us, or writable by group or others.
    /// `metadataInAttributes: false` writes `meta/<name>` at enqueue instead of the payload's extended attribute
    /// (what happens anyway on file systems without user extended attributes).
    public init(path: String, create: Bool = true, clock: any WallClock = SystemClock(), faults: FaultHooks = .none,
                metadataInAttributes: Bool = true, flush: FlushMode = .auto) throws(SpoolError) {
        self.path = path
        self.flushMode = flush
        self.attributesUsable = Atomic(metadataInAttributes)
        self.clock = clock
        self.faults = faults
        identity = "\(FS.hostName):\(FS.processID)"

        let st = try Spool.statOrCreate(path, create: create)
        try Spool.checkSafe(st, what: "spool directory", path: path)
        let rootFD = try sys("open spool directory \(path)") { () throws(Errno) in try FileDescriptor.open(path, [.readOnly, .directory, .noFollow]) }
        // Check what was opened, not only what the path named a moment before.
        do throws(SpoolError) {
            let opened = try sys("stat spool directory \(path)") { () throws(Errno) in try rootFD.stat() }
            guard opened.sameFile(as: st) else { throw SpoolError.unsafeDirectory("spool directory \(path) changed while it was opened") }
            try Spool.checkSafe(opened, what: "spool directory", path: path)
        } catch {
            try? rootFD.close()
            throw error
        }
        var opened: [FileDescriptor] = [rootFD]
        func openSub(_ name: String) throws(SpoolError) -> FileDescriptor {
            try sys("open \(path)/\(name)") { () throws(Errno) in
                do throws(Errno) { try FS.mkdir(name, in: rootFD, mode: 0o700) } catch where error == .exists {}
            }
            let sst = try sys("open \(path)/\(name)") { () throws(Errno) in try FS.stat(name, in: rootFD) }
            try Spool.checkSafe(sst, what: "spool subdirectory", path: "\(path)/\(name)")
            let fd = try sys("open \(path)/\(name)") { () throws(Errno) in
                try FileDescriptor.open(name, in: rootFD, [.readOnly, .directory, .noFollow])
            }
            opened.append(fd)
            return fd
        }
        do {
            tmp = try openSub(Spool.tmpDir)
            keys = try openSub(Spool.keysDir)
            metas = try openSub(Spool.metaDir)
            var dirs: [ItemState: FileDescriptor] = [:]
            for s in ItemState.allCases { dirs[s] = try openSub(s.rawValue) }
            stateDirs = dirs
        } catch {
            for fd in opened { try? fd.close() }
            throw error
        }
        root = rootFD
    }

    deinit {
        for fd in [root, tmp, keys, metas] + Array(stateDirs.values) { try? fd.close() }
    }

    /// The root's status, creating the directory first when it is missing and `create` is set.
    static func statOrCreate(_ path: String, create: Bool) throws(SpoolError) -> FileStat {
        do throws(Errno) { return try FS.stat(path) } catch where error == .noEntry && create {
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
        if st.uid != FS.userID { throw .unsafeDirectory("\(what) belongs to uid \(st.uid), not to us (uid \(FS.userID))") }
        if st.permissions & 0o022 != 0 {
            throw .unsafeDirectory("\(what) is writable by group or others (mode \(String(st.permissions, radix: 8))); run: chmod go-w \(shellQuoted(path))")
        }
    }

    func dir(_ s: ItemState) -> FileDescriptor { stateDirs[s]! }

    /// Path of an item's payload (relative if the spool path is), for handlers (`SPOOL_FILE`).
    public func payloadPath(state: ItemState, name: String) -> String { "\(path)/\(state.rawValue)/\(name)" }

    /// A name for a new entry in `tmp/`: `<item name>.<pid>-<counter>-<random>.<kind>`.
    /// `.` never occurs in item names, so the item name is everything before the first dot.
    func tmpName(for name: String, kind: Character) -> String {
        let n = counter.wrappingAdd(1, ordering: .relaxed).newValue
        return "\(name).\(tmpSalt)-\(n).\(kind)"
    }

    public func now() -> Int64 { clock.nowNanos() }
}
