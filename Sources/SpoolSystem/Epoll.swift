#if canImport(Glibc)
import Glibc
#endif
import CSpoolShims

/// An epoll instance (level-triggered), for the HTTP server's event loop. Each registration carries a 64-bit token
/// that comes back with its events.
public final class Epoll {
    public struct Events: OptionSet, Sendable, Hashable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        public static let readable = Events(rawValue: SPOOL_EPOLLIN)
        public static let writable = Events(rawValue: SPOOL_EPOLLOUT)
        /// Reported whether asked for or not.
        public static let error = Events(rawValue: SPOOL_EPOLLERR)
        public static let hangUp = Events(rawValue: SPOOL_EPOLLHUP)
    }

    public let descriptor: FileDescriptor
    private var eventBuffer = [UInt32](repeating: 0, count: 256)
    private var tokenBuffer = [UInt64](repeating: 0, count: 256)

    public init() throws(Errno) {
        descriptor = FileDescriptor(rawValue: try retryingSyscall { spool_epoll_create() })
    }

    public func close() { try? descriptor.close() }

    public func add(_ fd: FileDescriptor, _ events: Events, token: UInt64) throws(Errno) {
        _ = try retryingSyscall { spool_epoll_ctl(descriptor.rawValue, SPOOL_EPOLL_CTL_ADD, fd.rawValue, events.rawValue, token) }
    }

    public func modify(_ fd: FileDescriptor, _ events: Events, token: UInt64) throws(Errno) {
        _ = try retryingSyscall { spool_epoll_ctl(descriptor.rawValue, SPOOL_EPOLL_CTL_MOD, fd.rawValue, events.rawValue, token) }
    }

    public func remove(_ fd: FileDescriptor) {
        _ = spool_epoll_ctl(descriptor.rawValue, SPOOL_EPOLL_CTL_DEL, fd.rawValue, 0, 0)
    }

    /// Waits up to `timeoutMillis` and calls `body` for each ready registration (at most 256 per call). An
    /// interrupted wait returns with no events.
    public func wait(timeoutMillis: Int32, _ body: (Events, UInt64) -> Void) throws(Errno) {
        let n = spool_epoll_wait(descriptor.rawValue, &eventBuffer, &tokenBuffer, 256, timeoutMillis)
        if n < 0 {
            let e = Errno.current
            if e == .interrupted { return }
            throw e
        }
        for i in 0..<Int(n) { body(Events(rawValue: eventBuffer[i]), tokenBuffer[i]) }
    }
}
