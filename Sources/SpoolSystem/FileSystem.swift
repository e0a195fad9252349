#if canImport(Glibc)
import Glibc
#endif
import CSpoolShims

/// Directory-relative file system calls. Every path argument is a single name or a short relative path
/// under an open directory descriptor, so that nothing resolves outside the directory the caller opened.
public enum FS {
    public static func mkdir(_ name: String, in dir: FileDescriptor, mode: UInt32 = 0o700) throws(Errno) {
        _ = try retryingSyscall { mkdirat(dir.rawValue, name, mode_t(mode)) }
    }

    /// `renameat(2)`: replaces the target if it exists (used only for a metadata file inside an item we hold).
    public static func rename(_ from: String, in fromDir: FileDescriptor, to: String, in toDir: FileDescriptor) throws(Errno) {
        _ = try retryingSyscall { renameat(fromDir.rawValue, from, toDir.rawValue, to) }
    }

    /// `renameat2(RENAME_NOREPLACE)`: fails with EEXIST rather than replacing an existing name.
    public static func renameNoReplace(_ from: String, in fromDir: FileDescriptor, to: String, in toDir: FileDescriptor) throws(Errno) {
        _ = try retryingSyscall { spool_renameat_noreplace(fromDir.rawValue, from, toDir.rawValue, to) }
    }

    /// `linkat(2)`: atomic create-if-absent of a second name for an existing file (EEXIST if taken).
    public static func link(_ from: String, in fromDir: FileDescriptor, to: String, in toDir: FileDescriptor) throws(Errno) {
        _ = try retryingSyscall { linkat(fromDir.rawValue, from, toDir.rawValue, to, 0) }
    }

    /// Gives an open file (an `O_TMPFILE`, or any file) another name: `linkat` of `/proc/self/fd/N` with
    /// `AT_SYMLINK_FOLLOW`, which needs no privilege (unlike `AT_EMPTY_PATH` on older kernels). EEXIST if taken.
    public static func link(openFile fd: FileDescriptor, to: String, in toDir: FileDescriptor) throws(Errno) {
        _ = try retryingSyscall { spool_link_fd(fd.rawValue, toDir.rawValue, to) }
    }

    public static func unlink(_ name: String, in dir: FileDescriptor) throws(Errno) {
        _ = try retryingSyscall { unlinkat(dir.rawValue, name, 0) }
    }

    public static func rmdir(_ name: String, in dir: FileDescriptor) throws(Errno) {
        _ = try retryingSyscall { unlinkat(dir.rawValue, name, AT_REMOVEDIR) }
    }

    /// `fstatat(AT_SYMLINK_NOFOLLOW)`: a symlink is reported as itself, never followed.
    public static func stat(_ name: String, in dir: FileDescriptor = .cwd) throws(Errno) -> FileStat {
        var s = Glibc.stat()
        _ = try retryingSyscall { fstatat(dir.rawValue, name, &s, AT_SYMLINK_NOFOLLOW) }
        return FileStat(s)
    }

    /// The names in a directory, without `.` and `..`. Reads through a duplicate descriptor so `dir` stays open.
    public static func listNames(in dir: FileDescriptor) throws(Errno) -> [String] {
        try listEntries(in: dir).map(\.name)
    }

    /// One directory entry as `getdents` gives it: no `stat` needed for its inode number or, on file systems
    /// that fill in `d_type` (ext4, XFS, tmpfs), whether it is a regular file.
    public struct DirectoryEntry: Sendable, Equatable {
        public var name: String
        public var inode: UInt64
        /// nil when the file system does not say (`DT_UNKNOWN`): `stat` it.
        public var isRegular: Bool?
    }

    /// The entries of `dir` except `.` and `..`, in directory order.
    /// Each listing opens the directory afresh: a `dup` would share one read position with every other listing
    /// through `dir`, and threads listing at once would skip and repeat each other's entries.
    public static func listEntries(in dir: FileDescriptor) throws(Errno) -> [DirectoryEntry] {
        let own = try FileDescriptor.open(".", in: dir, [.readOnly, .directory])
        guard let d = fdopendir(own.rawValue) else {
            let e = Errno.current
            try? own.close()
            throw e
        }
        defer { closedir(d) }  // closes `own`
        var entries: [DirectoryEntry] = []
        while true {
            spool_set_errno(0)
            guard let ent = readdir(d) else {
                let e = Errno.current
                if e.rawValue != 0 { throw e }
                return entries
            }
            let name = withUnsafeBytes(of: ent.pointee.d_name) { raw -> String in
                let p = raw.bindMemory(to: CChar.self)
                return String(cString: p.baseAddress!)
            }
            if name == "." || name == ".." { continue }
            let type = ent.pointee.d_type
            entries.append(DirectoryEntry(name: name, inode: UInt64(ent.pointee.d_ino),
                                          isRegular: type == UInt8(DT_UNKNOWN) ? nil : type == UInt8(DT_REG)))
        }
    }

    /// Removes a directory and the plain files directly inside it (item directories hold no subdirectories).
    public static func removeFlatDirectory(_ name: String, in dir: FileDescriptor) throws(Errno) {
        let fd = try FileDescriptor.open(name, in: dir, [.readOnly, .directory, .noFollow])
        try fd.closeAfter { (fd) throws(Errno) in
            for entry in try listNames(in: fd) {
                do throws(Errno) { try unlink(entry, in: fd) } catch where error == .isDirectory || error == .notPermitted {
                    try removeFlatDirectory(entry, in: fd)
                } catch where error == .noEntry {}
            }
        }
        do throws(Errno) { try rmdir(name, in: dir) } catch where error == .noEntry {}
    }

    /// Reads an extended attribute by path without following a final symlink (one system call where opening
    /// the file would take three); nil when absent.
    public static func attribute(atPath path: String, _ name: String, limit: Int) throws(Errno) -> [UInt8]? {
        try readAttribute(limit: limit) { spool_lgetxattr(path, name, $0, $1) }
    }

    /// This machine's host name ("" if it cannot be read).
    public static var hostName: String {
        var buf = [CChar](repeating: 0, count: 256)
        guard gethostname(&buf, 255) == 0 else { return "" }
        return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The running kernel's name and release (`uname`), or nil if they cannot be read.
    public static var kernel: (name: String, release: String)? {
        var u = utsname()
        guard uname(&u) == 0 else { return nil }
        func field<T>(_ v: inout T) -> String {
            withUnsafeBytes(of: &v) { raw in String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self) }
        }
        return (field(&u.sysname), field(&u.release))
    }

    /// Processors online (at least 1).
    public static var onlineProcessors: Int { max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }
    /// Clock ticks per second (`_SC_CLK_TCK`), the unit of the CPU times in /proc/PID/stat.
    public static var clockTicksPerSecond: Int { max(1, Int(sysconf(Int32(_SC_CLK_TCK)))) }

    /// The current working directory, or nil if it cannot be read.
    public static var currentDirectory: String? {
        var buf = [CChar](repeating: 0, count: 4096)
        guard getcwd(&buf, 4096) != nil else { return nil }
        return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The process's real user id (spool directories must belong to it).
    public static var userID: UInt32 { UInt32(getuid()) }
    public static var processID: Int32 { getpid() }

    /// When process `pid` started, in clock ticks since boot (field 22 of /proc/PID/stat); nil when there is no
    /// such process. With the pid it names one process for good: a reused pid has another start time.
    public static func processStartTicks(_ pid: Int32) -> UInt64? {
        guard pid > 0, let fd = try? FileDescriptor.open("/proc/\(pid)/stat", [.readOnly]) else { return nil }
        defer { try? fd.close() }
        guard let bytes = try? fd.readAll(limit: 4096), let close = bytes.lastIndex(of: UInt8(ascii: ")")) else { return nil }
        let fields = bytes[(close + 1)...].split(separator: UInt8(ascii: " "))
        // Field 22 of the line is the 20th after the command name (fields 1 and 2).
        guard fields.count > 19 else { return nil }
        return UInt64(String(decoding: fields[19], as: UTF8.self))
    }
}

/// What the binary was built from (`spool version`).
public enum BuildInfo {
    /// The git commit Packaging/build.sh compiled in, or "unknown" for a plain `swift build`.
    public static var commit: String { String(cString: spool_build_commit()) }
}

/// The process's heap.
public enum Heap {
    /// Returns freed heap memory to the kernel (`malloc_trim`): after a pass that held a listing of every item, so the
    /// resident size does not keep its high-water mark for the life of a long-running process.
    public static func releaseFreeMemory() { spool_malloc_trim() }
}
