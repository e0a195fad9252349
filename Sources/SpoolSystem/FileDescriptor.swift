#if canImport(Glibc)
import Glibc
#endif
import CSpoolShims

/// The metadata of a file that the spool protocol reads (a projection of `struct stat`).
public struct FileStat: Sendable, Equatable {
    public var device: UInt64
    public var inode: UInt64
    public var mode: UInt32
    public var linkCount: UInt64
    public var uid: UInt32
    public var size: Int64
    /// Modification time in nanoseconds since the Unix epoch.
    public var mtimeNanos: Int64
    /// Status-change time (a rename sets it): when a finished item arrived in `done/`.
    public var ctimeNanos: Int64

    public init(_ s: stat) {
        device = UInt64(s.st_dev)
        inode = UInt64(s.st_ino)
        mode = UInt32(s.st_mode)
        linkCount = UInt64(s.st_nlink)
        uid = UInt32(s.st_uid)
        size = Int64(s.st_size)
        mtimeNanos = FileStat.nanos(Int64(s.st_mtim.tv_sec), Int64(s.st_mtim.tv_nsec))
        ctimeNanos = FileStat.nanos(Int64(s.st_ctim.tv_sec), Int64(s.st_ctim.tv_nsec))
    }

    /// Seconds and nanoseconds to nanoseconds, clamped: a timestamp set to year 100000 must not trap.
    static func nanos(_ sec: Int64, _ nsec: Int64) -> Int64 {
        let limit: Int64 = 4_500_000_000 // years 1827 to 2112: differences of two stay inside Int64
        return min(max(sec, -limit), limit) * 1_000_000_000 + nsec
    }

    public var isDirectory: Bool { (mode & UInt32(Glibc.S_IFMT)) == UInt32(Glibc.S_IFDIR) }
    public var isRegular: Bool { (mode & UInt32(Glibc.S_IFMT)) == UInt32(Glibc.S_IFREG) }
    public var isSymlink: Bool { (mode & UInt32(Glibc.S_IFMT)) == UInt32(Glibc.S_IFLNK) }
    public var permissions: UInt32 { mode & 0o7777 }
    /// True when two stats describe the same file.
    public func sameFile(as other: FileStat) -> Bool { device == other.device && inode == other.inode }
}

/// An owned file descriptor number. Not closed automatically: use `closeAfter` or `close()` on every path.
public struct FileDescriptor: Sendable, Hashable {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }

    /// The current working directory, for `*at` calls with relative paths.
    public static let cwd = FileDescriptor(rawValue: AT_FDCWD)

    public struct OpenFlags: OptionSet, Sendable {
        public let rawValue: Int32
        public init(rawValue: Int32) { self.rawValue = rawValue }
        public static let readOnly = OpenFlags([])
        public static let writeOnly = OpenFlags(rawValue: O_WRONLY)
        public static let readWrite = OpenFlags(rawValue: O_RDWR)
        public static let create = OpenFlags(rawValue: O_CREAT)
        public static let exclusive = OpenFlags(rawValue: O_EXCL)
        public static let truncate = OpenFlags(rawValue: O_TRUNC)
        public static let append = OpenFlags(rawValue: O_APPEND)
        public static let directory = OpenFlags(rawValue: O_DIRECTORY)
        public static let noFollow = OpenFlags(rawValue: O_NOFOLLOW)
        public static let nonBlocking = OpenFlags(rawValue: O_NONBLOCK)
        public static let closeOnExec = OpenFlags(rawValue: SPOOL_O_CLOEXEC)
    }

    /// `openat(2)`; always adds O_CLOEXEC so handlers we spawn never inherit spool files.
    public static func open(_ path: String, in dir: FileDescriptor = .cwd, _ flags: OpenFlags, mode: UInt32 = 0o600) throws(Errno) -> FileDescriptor {
        let all = flags.union(.closeOnExec).rawValue
        let fd = try retryingSyscall { openat(dir.rawValue, path, all, mode_t(mode)) }
        return FileDescriptor(rawValue: fd)
    }

    /// Runs `body` and closes the descriptor afterwards, whatever happens.
    public func closeAfter<R, E: Error>(_ body: (FileDescriptor) throws(E) -> R) throws(E) -> R {
        defer { try? close() }
        return try body(self)
    }

    public func close() throws(Errno) {
        _ = try singleSyscall { Glibc.close(rawValue) }
    }

    /// Reads at most `count` bytes; an empty result means end of file.
    public func read(upTo count: Int) throws(Errno) -> [UInt8] {
        var buf = [UInt8](repeating: 0, count: count)
        let n = try buf.withUnsafeMutableBytes { p in Result { () throws(Errno) in try read(into: p) } }.get()
        buf.removeSubrange(n...)
        return buf
    }

    /// Reads into a raw buffer once; returns the byte count (0 at end of file).
    public func read(into p: UnsafeMutableRawBufferPointer) throws(Errno) -> Int {
        try retryingSyscall { Glibc.read(rawValue, p.baseAddress, p.count) }
    }

    /// Reads the whole file (or stream) but fails with `EFBIG` once more than `limit` bytes arrive.
    public func readAll(limit: Int) throws(Errno) -> [UInt8] {
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = try chunk.withUnsafeMutableBytes { p in Result { () throws(Errno) in try read(into: p) } }.get()
            if n == 0 { return out }
            if out.count + n > limit { throw Errno.fileTooLarge }
            out.append(contentsOf: chunk[0..<n])
        }
    }

    /// Reads a regular file of `size` bytes from byte 0 with pread(2), leaving the offset alone. A short read of a
    /// regular file is its end, so the expected size costs one call; a file grown beyond `size` is `EFBIG`.
    public func readFromStart(size: Int) throws(Errno) -> [UInt8] {
        try readToEnd(from: 0, size: size)
    }

    /// Reads the `size` bytes from `offset` to the end of a regular file with pread(2), leaving the offset alone;
    /// bytes beyond `offset + size` are `EFBIG` (the file grew), fewer is a short result.
    public func readToEnd(from offset: Int, size: Int) throws(Errno) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: size + 1)
        var have = 0
        while have < out.count {
            let asked = out.count - have
            let n = try out.withUnsafeMutableBytes { p in
                Result { () throws(Errno) in try retryingSyscall { Glibc.pread(rawValue, p.baseAddress! + have, asked, off_t(offset + have)) } }
            }.get()
            have += n
            if n < asked { break }
        }
        if have > size { throw Errno.fileTooLarge }
        out.removeSubrange(have...)
        return out
    }

    /// Up to `count` bytes from `offset` of a regular file with pread(2), leaving the offset alone. A short read of a
    /// regular file is its end, so a file shorter than `count` costs one call.
    public func read(at offset: Int, upTo count: Int) throws(Errno) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        var have = 0
        while have < count {
            let asked = count - have
            let n = try out.withUnsafeMutableBytes { p in
                Result { () throws(Errno) in try retryingSyscall { Glibc.pread(rawValue, p.baseAddress! + have, asked, off_t(offset + have)) } }
            }.get()
            have += n
            if n < asked { break }
        }
        out.removeSubrange(have...)
        return out
    }

    /// Sets the file offset (a handler's stdin starts at the payload, after the item header).
    public func seek(to offset: Int) throws(Errno) { _ = try retryingSyscall { lseek(rawValue, off_t(offset), SEEK_SET) } }

    /// `openat(dir, ".", O_TMPFILE|O_RDWR)`: a regular file without a name, given one by `FS.link(openFile:)`.
    /// `EOPNOTSUPP`/`EISDIR`/`EINVAL` where the file system (or kernel) has no O_TMPFILE.
    public static func openUnnamed(in dir: FileDescriptor, mode: UInt32 = 0o600) throws(Errno) -> FileDescriptor {
        FileDescriptor(rawValue: try retryingSyscall { spool_open_tmpfile(dir.rawValue, mode) })
    }

    /// An exclusive open-file-description lock on the one byte at `offset` (`F_OFD_SETLK`), without waiting.
    /// Unlike `flock`, locks on different bytes of one inode do not conflict: each queue of a shared item file locks
    /// its own byte. The descriptor must be open for writing. Held until the description's last descriptor closes.
    public func tryLockByte(_ offset: Int64) throws(Errno) -> LockResult {
        while true {
            if spool_ofd_lock(rawValue, offset, 1, 0) == 0 { return .acquired }
            let e = Errno.current
            if e == .interrupted { continue }
            if e == .wouldBlock || e == .permissionDenied { return .busy }
            throw e
        }
    }

    /// Drops a byte lock of `tryLockByte` early.
    public func unlockByte(_ offset: Int64) { _ = spool_ofd_unlock(rawValue, offset) }

    /// Writes every byte, looping over short writes; a write that makes no progress is an error.
    public func writeAll(_ bytes: [UInt8]) throws(Errno) {
        try bytes.withUnsafeBytes { p in Result { () throws(Errno) in try writeAll(p) } }.get()
    }

    public func writeAll(_ p: UnsafeRawBufferPointer) throws(Errno) {
        var off = 0
        while off < p.count {
            let n = try retryingSyscall { Glibc.write(rawValue, p.baseAddress! + off, p.count - off) }
            if n == 0 { throw Errno.ioError }
            off += n
        }
    }

    /// Writes every byte at `offset` with pwrite(2), leaving the file offset alone.
    public func writeAll(_ bytes: [UInt8], at offset: Int) throws(Errno) {
        try bytes.withUnsafeBytes { p in
            Result { () throws(Errno) in
                var off = 0
                while off < p.count {
                    let n = try retryingSyscall { Glibc.pwrite(rawValue, p.baseAddress! + off, p.count - off, off_t(offset + off)) }
                    if n == 0 { throw Errno.ioError }
                    off += n
                }
            }
        }.get()
    }

    /// One `write(2)`, returning how much was written (for non-blocking sockets and pipes).
    public func write(_ p: UnsafeRawBufferPointer) throws(Errno) -> Int {
        try retryingSyscall { Glibc.write(rawValue, p.baseAddress, p.count) }
    }

    /// Moves the file offset back to the start (a payload handed to a second handler must be read from byte 0).
    public func rewind() throws(Errno) { _ = try retryingSyscall { lseek(rawValue, 0, SEEK_SET) } }

    public func fsync() throws(Errno) { _ = try retryingSyscall { Glibc.fsync(rawValue) } }

    /// `syncfs(2)`: makes everything on this descriptor's file system durable, in one pass and one device flush.
    public func syncFileSystem() throws(Errno) { _ = try retryingSyscall { spool_syncfs(rawValue) } }

    public func stat() throws(Errno) -> FileStat {
        var s = Glibc.stat()
        _ = try retryingSyscall { fstat(rawValue, &s) }
        return FileStat(s)
    }

    public enum LockResult: Sendable { case acquired, busy }

    /// `flock(LOCK_EX|LOCK_NB)`: the kernel drops the lock when the process dies, so a dead holder is seen at once.
    public func tryLockExclusive() throws(Errno) -> LockResult {
        while true {
            if flock(rawValue, LOCK_EX | LOCK_NB) == 0 { return .acquired }
            let e = Errno.current
            if e == .interrupted { continue }
            if e == .wouldBlock { return .busy }
            throw e
        }
    }

    /// Sets an extended attribute (the spool keeps a fresh item's metadata in one, on the payload itself).
    public func setAttribute(_ name: String, _ value: [UInt8]) throws(Errno) {
        _ = try retryingSyscall { value.withUnsafeBytes { spool_fsetxattr(rawValue, name, $0.baseAddress, UInt64($0.count)) } }
    }

    /// Reads an extended attribute; nil when the file has none of that name (or the file system has none at all).
    public func attribute(_ name: String, limit: Int) throws(Errno) -> [UInt8]? {
        try readAttribute(limit: limit) { spool_fgetxattr(rawValue, name, $0, $1) }
    }

    /// `flock(LOCK_EX)`, waiting for another holder to let go.
    public func lockExclusive() throws(Errno) { _ = try retryingSyscall { flock(rawValue, LOCK_EX) } }

    /// Drops a `flock` early (closing the descriptor drops it too).
    public func unlock() { _ = flock(rawValue, LOCK_UN) }

    /// Sets the modification time (nanoseconds since the epoch); the spool uses it as the not-before time.
    public func setModificationTime(nanos: Int64) throws(Errno) {
        _ = try retryingSyscall { spool_futimens_mtime(rawValue, nanos / 1_000_000_000, nanos % 1_000_000_000) }
    }

    /// Starts writeback of the file's dirty pages without waiting (lets one later fsync cover many files).
    public func startWriteback() { _ = spool_sync_file_range_write(rawValue) }

    public func setNonBlocking() throws(Errno) {
        let flags = try retryingSyscall { fcntl(rawValue, F_GETFL) }
        _ = try retryingSyscall { fcntl(rawValue, F_SETFL, flags | O_NONBLOCK) }
    }
}

/// The shared loop of attribute reads (by descriptor or by path): starts with a small buffer (metadata is usually a
/// few hundred bytes) and grows only when the call says the value is larger; ENODATA/ENOTSUP mean "no attribute".
func readAttribute(limit: Int, _ call: (UnsafeMutableRawPointer?, UInt64) -> Int64) throws(Errno) -> [UInt8]? {
    var size = min(limit, 4096)
    while true {
        var buf = [UInt8](unsafeUninitializedCapacity: size) { _, n in n = size }
        let n = buf.withUnsafeMutableBytes { call($0.baseAddress, UInt64($0.count)) }
        if n >= 0 { buf.removeSubrange(Int(n)...); return buf }
        let e = Errno.current
        if e == .interrupted { continue }
        if e.rawValue == SPOOL_ENODATA || e.rawValue == SPOOL_ENOTSUP { return nil }
        if e.rawValue == SPOOL_ERANGE && size < limit {
            let needed = call(nil, 0)
            size = min(limit, max(size * 2, Int(max(needed, 0))))
            continue
        }
        throw e
    }
}
