#if canImport(Glibc)
import Glibc
#endif
import CSpoolShims

/// Starts a detached POSIX thread. Used for work that blocks in system calls (handlers, flushes), which must
/// not tie up Swift's cooperative pool or Dispatch's bounded one.
public func startThread(_ body: @escaping @Sendable () -> Void) {
    final class Box { let body: @Sendable () -> Void; init(_ b: @escaping @Sendable () -> Void) { body = b } }
    let raw = Unmanaged.passRetained(Box(body)).toOpaque()
    var tid = pthread_t()
    var attr = pthread_attr_t()
    pthread_attr_init(&attr)
    pthread_attr_setdetachstate(&attr, Int32(PTHREAD_CREATE_DETACHED))
    let rc = pthread_create(&tid, &attr, { p in
        let box = Unmanaged<AnyObject>.fromOpaque(p!).takeRetainedValue() as! Box
        box.body()
        return nil
    }, raw)
    pthread_attr_destroy(&attr)
    precondition(rc == 0, "pthread_create failed: \(rc)")
}

/// An eventfd used to wake a thread blocked in `poll`; `signal` may be called from any thread.
public final class Wakeup: Sendable {
    public let fd: FileDescriptor
    public init() throws {
        fd = FileDescriptor(rawValue: try retryingSyscall { spool_eventfd() })
    }
    deinit { try? fd.close() }
    public func signal() {
        var one: UInt64 = 1
        _ = withUnsafeBytes(of: &one) { Glibc.write(fd.rawValue, $0.baseAddress, 8) }
    }
    /// Clears pending wake-ups (non-blocking).
    public func drain() {
        var v: UInt64 = 0
        _ = withUnsafeMutableBytes(of: &v) { Glibc.read(fd.rawValue, $0.baseAddress, 8) }
    }
}

/// `poll(2)` on a few descriptors for readability; returns which are readable (or hung up).
public func pollReadable(_ fds: [FileDescriptor], timeoutMillis: Int32) throws -> [Bool] {
    var pfds = fds.map { pollfd(fd: $0.rawValue, events: Int16(POLLIN), revents: 0) }
    let n = Glibc.poll(&pfds, nfds_t(pfds.count), timeoutMillis)
    if n < 0 {
        let e = Errno.current
        if e == .interrupted { return fds.map { _ in false } }
        throw e
    }
    return pfds.map { $0.revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 }
}
