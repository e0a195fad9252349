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

    public static let interrupted = Errno(rawValue: EINTR)
    public static let exists = Errno(rawValue: EEXIST)
    public static let noEntry = Errno(rawValue: ENOENT)
    public static let wouldBlock = Errno(rawValue: EAGAIN)
    public static let noSpace = Errno(rawValue: ENOSPC)
    public static let io = Errno(rawValue: EIO)
    public static let readOnlyFS = Errno(rawValue: EROFS)
    public static let quota = Errno(rawValue: EDQUOT)
    public static let notEmpty = Errno(rawValue: ENOTEMPTY)
    public static let notDirectory = Errno(rawValue: ENOTDIR)
    public static let isDirectory = Errno(rawValue: EISDIR)
    public static let tooManyLinks = Errno(rawValue: EMLINK)
    public static let loop = Errno(rawValue: ELOOP)
    public static let badFD = Errno(rawValue: EBADF)
    public static let tooManyFiles = Errno(rawValue: EMFILE)
    public static let tooManyFilesSystem = Errno(rawValue: ENFILE)
    public static let permission = Errno(rawValue: EACCES)
    public static let notPermitted = Errno(rawValue: EPERM)
    public static let invalid = Errno(rawValue: EINVAL)
    public static let noChild = Errno(rawValue: ECHILD)
    public static let search = Errno(rawValue: ESRCH)
    public static let notSupported = Errno(rawValue: EOPNOTSUPP)
    public static let noSys = Errno(rawValue: ENOSYS)
    public static let crossDevice = Errno(rawValue: EXDEV)
    public static let connectionRefused = Errno(rawValue: ECONNREFUSED)
    public static let inProgress = Errno(rawValue: EINPROGRESS)
    public static let brokenPipe = Errno(rawValue: EPIPE)
    public static let connectionReset = Errno(rawValue: ECONNRESET)
    public static let timedOut = Errno(rawValue: ETIMEDOUT)
    public static let noData = Errno(rawValue: SPOOL_ENODATA)
    public static let notSupportedXattr = Errno(rawValue: SPOOL_ENOTSUP)
    public static let tooBig = Errno(rawValue: SPOOL_E2BIG)
    public static let range = Errno(rawValue: SPOOL_ERANGE)

    /// True for the errors that mean "the storage cannot take writes right now" (the ingress answers 503).
    public var isStorageUnavailable: Bool {
        self == .noSpace || self == .io || self == .readOnlyFS || self == .quota
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
