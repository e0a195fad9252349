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

/// An eventfd used to wake a thread blocked in `poll`; `signal` may be called from any thread. The one wake-up
/// of the program: the server's loop, the consumers, the committers and the NATS reader all use it.
public final class Wakeup: Sendable {
    public let fd: FileDescriptor
    public init() throws(Errno) {
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

/// What a descriptor is polled for.
public struct PollInterest: OptionSet, Sendable, Hashable {
    public let rawValue: Int16
    public init(rawValue: Int16) { self.rawValue = rawValue }
    public static let read = PollInterest(rawValue: Int16(POLLIN))
    public static let write = PollInterest(rawValue: Int16(POLLOUT))
}

extension FileDescriptor {
    /// Waits until the descriptor is ready for `interest` (or hung up / in error, which the next call reports)
    /// or `deadline` (monotonic nanoseconds) passes: true when ready, false at the deadline.
    public func poll(_ interest: PollInterest, deadline: Int64) throws(Errno) -> Bool {
        var pfd = pollfd(fd: rawValue, events: interest.rawValue, revents: 0)
        while true {
            let left = deadline - monotonicNanos()
            if left <= 0 { return false }
            let n = Glibc.poll(&pfd, 1, Int32(clamping: (left + 999_999) / 1_000_000))
            if n > 0 { return true }
            if n < 0 {
                let e = Errno.current
                if e != .interrupted { throw e }
            }
        }
    }
}

/// `poll(2)` on a few descriptors for readability; returns which are readable (or hung up).
public func pollReadable(_ fds: [FileDescriptor], timeoutMillis: Int32) throws(Errno) -> [Bool] {
    var pfds = fds.map { pollfd(fd: $0.rawValue, events: Int16(POLLIN), revents: 0) }
    let n = Glibc.poll(&pfds, nfds_t(pfds.count), timeoutMillis)
    if n < 0 {
        let e = Errno.current
        if e == .interrupted { return fds.map { _ in false } }
        throw e
    }
    return pfds.map { $0.revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 }
}

/// Sleeps the calling thread (only where nothing can wake it usefully: backoff in tests and recovery loops).
public func sleep(nanoseconds: Int64) {
    var ts = timespec(tv_sec: Int(nanoseconds / 1_000_000_000), tv_nsec: Int(nanoseconds % 1_000_000_000))
    var rest = timespec()
    while nanosleep(&ts, &rest) == -1 && Errno.current == .interrupted { ts = rest }
}
