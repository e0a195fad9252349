// SpoolSystem is the program's only door to the kernel: the only module that imports CSpoolShims and the only
// one that calls the C library's I/O (read, write, close, epoll, inotify, spawn, pidfd, signals, sockets)
// directly. Every wrapper is a thin raw call with EINTR retried that throws a typed `Errno` (the
// apple/swift-system model). `LayeringTests` checks the rule on the source tree.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CSpoolShims

/// A POSIX error number, thrown by every wrapper in this module (the apple/swift-system model).
public struct Errno: Error, Equatable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }

    /// The calling thread's `errno`.
    public static var current: Errno { Errno(rawValue: spool_errno()) }

    public var description: String {
        guard let c = strerror(rawValue) else { return "errno \(rawValue)" }
        return String(cString: c)
    }

    // Named for what they mean (the apple/swift-system names), not for their C spelling.
    public static let interrupted = Errno(rawValue: EINTR)
    public static let exists = Errno(rawValue: EEXIST)
    public static let noEntry = Errno(rawValue: ENOENT)
    public static let wouldBlock = Errno(rawValue: EAGAIN)
    public static let noSpace = Errno(rawValue: ENOSPC)
    public static let ioError = Errno(rawValue: EIO)
    public static let readOnlyFS = Errno(rawValue: EROFS)
    public static let diskQuotaExceeded = Errno(rawValue: EDQUOT)
    public static let notEmpty = Errno(rawValue: ENOTEMPTY)
    public static let notDirectory = Errno(rawValue: ENOTDIR)
    public static let isDirectory = Errno(rawValue: EISDIR)
    public static let tooManyLinks = Errno(rawValue: EMLINK)
    public static let tooManySymbolicLinkLevels = Errno(rawValue: ELOOP)
    public static let badFileDescriptor = Errno(rawValue: EBADF)
    public static let tooManyOpenFiles = Errno(rawValue: EMFILE)
    public static let tooManyOpenFilesInSystem = Errno(rawValue: ENFILE)
    public static let permissionDenied = Errno(rawValue: EACCES)
    public static let notPermitted = Errno(rawValue: EPERM)
    public static let invalidArgument = Errno(rawValue: EINVAL)
    public static let noChildProcess = Errno(rawValue: ECHILD)
    public static let noSuchProcess = Errno(rawValue: ESRCH)
    /// EOPNOTSUPP, which Linux also returns as ENOTSUP (same number) for a file system without user attributes.
    public static let notSupported = Errno(rawValue: EOPNOTSUPP)
    public static let notImplemented = Errno(rawValue: ENOSYS)
    public static let crossDevice = Errno(rawValue: EXDEV)
    public static let connectionRefused = Errno(rawValue: ECONNREFUSED)
    public static let connectionAborted = Errno(rawValue: ECONNABORTED)
    public static let protocolError = Errno(rawValue: EPROTO)
    public static let inProgress = Errno(rawValue: EINPROGRESS)
    public static let brokenPipe = Errno(rawValue: EPIPE)
    public static let connectionReset = Errno(rawValue: ECONNRESET)
    public static let timedOut = Errno(rawValue: ETIMEDOUT)
    public static let fileTooLarge = Errno(rawValue: EFBIG)
    /// ENODATA: the file has no extended attribute of that name.
    public static let noAttribute = Errno(rawValue: SPOOL_ENODATA)
    /// E2BIG: an extended attribute value larger than the file system takes.
    public static let attributeTooLarge = Errno(rawValue: SPOOL_E2BIG)
    /// ERANGE: the buffer is too small for the attribute (or the value is out of range).
    public static let resultOutOfRange = Errno(rawValue: SPOOL_ERANGE)

    /// True for the errors that mean "the storage cannot take writes right now" (the ingress answers 503).
    public var isStorageUnavailable: Bool {
        self == .noSpace || self == .ioError || self == .readOnlyFS || self == .diskQuotaExceeded
    }
}

/// Runs a raw call that returns -1 on failure, retrying on EINTR, and throws the typed errno.
@inline(__always)
public func retryingSyscall<T: FixedWidthInteger>(_ body: () -> T) throws(Errno) -> T {
    while true {
        let r = body()
        if r != -1 { return r }
        let e = Errno.current
        if e != .interrupted { throw e }
    }
}

/// Runs a raw call that returns -1 on failure, without retrying on EINTR (close(2) must never be retried on Linux).
@inline(__always)
public func singleSyscall<T: FixedWidthInteger>(_ body: () -> T) throws(Errno) -> T {
    let r = body()
    if r == -1 { throw Errno.current }
    return r
}
