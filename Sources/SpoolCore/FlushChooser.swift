import SpoolSystem

/// Picks, per enqueue batch, the cheaper of two ways to make it durable, from what each has recently cost on
/// this file system: `fsync` of every file and then of each directory, or one `syncfs(2)` after the data and
/// one after the names. A pure state machine (costs and times are passed in) so tests can drive it.
///
/// Why measure instead of fixing one: on a disk where each `fsync` is a device flush, a batch of 32 costs 32
/// flushes against 2 (4x faster in `Benchmarks/`); but `syncfs` also writes back whatever else is dirty on
/// the file system, so next to a busy neighbour it can cost far more. The loser is tried again now and then.
public struct FlushCostModel: Sendable, Equatable {
    /// Seconds per file `fsync`, per directory `fsync` and per `syncfs` call (moving averages).
    public private(set) var perFile: Double?
    public private(set) var perDirectory: Double?
    public private(set) var perSyncfs: Double?
    /// When each way was last used (monotonic nanoseconds).
    public private(set) var lastFsyncAt: Int64 = .min
    public private(set) var lastSyncfsAt: Int64 = .min

    /// Weight of the newest measurement.
    public static let alpha = 0.25
    /// How often the way that measured slower is tried again.
    public static let revisitNanos: Int64 = 10_000_000_000

    public init() {}

    /// True to flush a batch of `files` files and `directories` directory flushes with `syncfs`.
    public func prefersSyncfs(files: Int, directories: Int, now: Int64) -> Bool {
        // A batch of one gains little and would make a lone request pay for the whole file system.
        guard files >= 2 else { return false }
        guard let f = perFile, let d = perDirectory else { return false }
        guard let s = perSyncfs else { return true }
        let syncfsWins = 2 * s < Double(files) * f + Double(directories) * d
        let loserLast = syncfsWins ? lastFsyncAt : lastSyncfsAt
        if loserLast == .min || now - loserLast >= FlushCostModel.revisitNanos { return !syncfsWins }
        return syncfsWins
    }

    /// Records a batch flushed file by file: `fileSeconds` over `files` files, `directorySeconds` over `directories`.
    public mutating func recordFsync(files: Int, fileSeconds: Double, directories: Int, directorySeconds: Double, now: Int64) {
        if files > 0 { perFile = FlushCostModel.blend(perFile, fileSeconds / Double(files)) }
        if directories > 0 { perDirectory = FlushCostModel.blend(perDirectory, directorySeconds / Double(directories)) }
        lastFsyncAt = now
    }

    /// Records a batch flushed with `calls` `syncfs` calls taking `seconds` in all.
    public mutating func recordSyncfs(calls: Int, seconds: Double, now: Int64) {
        if calls > 0 { perSyncfs = FlushCostModel.blend(perSyncfs, seconds / Double(calls)) }
        lastSyncfsAt = now
    }

    static func blend(_ old: Double?, _ new: Double) -> Double {
        guard let old else { return new }
        return old + alpha * (new - old)
    }
}

/// Whether `syncfs(2)` reports writeback errors (Linux 5.8 and later). Before that it returned 0 even when the
/// data it flushed could not be written, so it cannot stand in for `fsync` there.
public let syncfsReportsErrors: Bool = {
    guard let k = FS.kernel else { return false }
    return k.name == "Linux" && kernelAtLeast(k.release, major: 5, minor: 8)
}()

/// Parses the leading `major.minor` of a kernel release string such as `6.18.44-fc` (nil parts: false).
public func kernelAtLeast(_ release: String, major: Int, minor: Int) -> Bool {
    let parts = release.split(separator: ".", maxSplits: 2).prefix(2).map { Int($0.prefix { $0.isASCII && $0.isNumber }) }
    guard parts.count == 2, let ma = parts[0], let mi = parts[1] else { return false }
    return ma > major || (ma == major && mi >= minor)
}
