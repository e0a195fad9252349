import SpoolSystem
import SpoolWire

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
    /// A queue name that is not 1 to 64 bytes of `[a-z0-9_-]` starting with a letter or digit.
    case invalidQueue(String)
    /// The spool is in an older format that this binary reads only to migrate it (`spool migrate`).
    case needsMigration(path: String, found: Int)
    /// The spool (or one of its directories) belongs to another user, typically the service's: the CLI adds the
    /// exact `sudo -u` command that runs the same command as that user.
    case notOwner(path: String, owner: UInt32, us: UInt32)
    /// The directory is missing or holds no spool, and the command does not create one (only `serve`, `enqueue`,
    /// `pull`, `reconcile` and `init` do): a mistyped `--dir` must not look like an empty queue.
    case notASpool(path: String, missing: Bool)
    /// The spool is in a format this binary does not know (written by a newer release).
    case unsupportedFormat(path: String, found: Int)

    public var description: String {
        switch self {
        case .invalidKey(let m): return "invalid key: \(m)"
        case .unsafeDirectory(let m): return m
        case let .system(op, e): return "\(op): \(e)"
        case .notFound(let k): return "no such item: \(logSafe(k))"
        case .corrupt(let m): return "corrupt spool data: \(m)"
        case .busy(let k): return "item \(k) is held by another process"
        case .conflict(let m): return "spool conflict: \(m)"
        case .invalidQueue(let q): return "invalid queue name \(q.debugDescription): use 1 to 64 of a-z, 0-9, _ and -, starting with a letter or digit"
        case let .needsMigration(p, v):
            return "spool directory \(p) is in format \(v); this release reads format \(Spool.formatVersion): run 'spool migrate --dir \(shellQuoted(p))' (docs/spool-format.md, Upgrading)"
        case let .notOwner(p, owner, us):
            return "\(p) belongs to uid \(owner), not to us (uid \(us)): run spool as that user"
        case let .notASpool(p, missing):
            return "\(p) \(missing ? "does not exist" : "is not a spool directory (it has no 'format' file)"); 'spool init --dir \(shellQuoted(p))' creates one (serve and enqueue do on first use)"
        case let .unsupportedFormat(p, v):
            return "spool directory \(p) is in format \(v), newer than this release understands (format \(Spool.formatVersion)); use a newer spool"
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
