import SpoolSystem

/// The one error type of the spool protocol layer. The ingress maps it to an HTTP status,
/// the CLI to an exit code.
public enum SpoolError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The key cannot name an item (empty, control characters, too long).
    case invalidKey(String)
    /// The spool directory is unsafe to use (symlink, writable by others, not ours, not a directory).
    case unsafeDirectory(String)
    /// A system call failed; `operation` says what the spool was doing.
    case system(operation: String, errno: Errno)
    case notFound(key: String)
    /// On-disk data that does not follow the format (unparsable metadata, a missing payload).
    case corrupt(String)
    /// Another process holds the item.
    case busy(key: String)
    /// The on-disk state contradicts the protocol's invariants (for example two items under one key).
    case conflict(String)

    public var description: String {
        switch self {
        case .invalidKey(let m): return "invalid key: \(m)"
        case .unsafeDirectory(let m): return m
        case let .system(op, e): return "\(op): \(e)"
        case .notFound: return "no such item"
        case .corrupt(let m): return "corrupt spool data: \(m)"
        case .busy(let k): return "item \(k) is held by another process"
        case .conflict(let m): return "spool conflict: \(m)"
        }
    }

    /// True when the storage cannot take writes right now (disk full, I/O error, read-only, quota):
    /// the ingress answers 503 with Retry-After and keeps running.
    public var isStorageUnavailable: Bool {
        if case .system(_, let e) = self { return e.isStorageUnavailable }
        return false
    }
}

/// Runs system calls, turning their `Errno` into a `SpoolError` that says what the spool was doing.
@inline(__always)
func sys<T>(_ operation: @autoclosure () -> String, _ body: () throws(Errno) -> T) throws(SpoolError) -> T {
    do throws(Errno) { return try body() } catch {
        throw SpoolError.system(operation: operation(), errno: error)
    }
}
