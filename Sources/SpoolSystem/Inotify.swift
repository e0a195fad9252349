#if canImport(Glibc)
import Glibc
#endif
import CSpoolShims

/// An inotify instance watching one directory for names that arrive in it (created, moved in, touched).
public final class DirectoryWatch {
    public let descriptor: FileDescriptor

    /// Watches `path`; throws when inotify is unavailable or the watch cannot be added.
    public init(path: String) throws(Errno) {
        let fd = try retryingSyscall { spool_inotify_init() }
        descriptor = FileDescriptor(rawValue: fd)
        do throws(Errno) {
            _ = try retryingSyscall { spool_inotify_add_watch(fd, path, SPOOL_IN_MOVED_TO | SPOOL_IN_CREATE | SPOOL_IN_ATTRIB) }
        } catch {
            try? descriptor.close()
            throw error
        }
    }

    public func close() { try? descriptor.close() }

    /// Reads the pending events (nonblocking) and returns the names they mention; nil when the kernel's queue
    /// overflowed and events were lost (the caller must rescan the directory).
    public func readNames() -> [String]? {
        var names: [String] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buf.withUnsafeMutableBytes { Glibc.read(descriptor.rawValue, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            // struct inotify_event { int wd; uint32_t mask, cookie, len; char name[]; }
            var off = 0
            while off + 16 <= n {
                let mask = buf.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: off + 4, as: UInt32.self) }
                let len = Int(buf.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: off + 12, as: UInt32.self) })
                if mask & 0x4000 != 0 { return nil } // IN_Q_OVERFLOW
                if len > 0, off + 16 + len <= n {
                    names.append(String(decoding: buf[(off + 16)..<(off + 16 + len)].prefix { $0 != 0 }, as: UTF8.self))
                }
                off += 16 + len
            }
        }
        return names
    }
}
