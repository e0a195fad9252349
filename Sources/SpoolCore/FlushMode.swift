/// How a batch of enqueues is made durable.
public enum FlushMode: String, Sendable, CaseIterable {
    /// Per batch, whichever of `fsync` and `syncfs` has measured cheaper lately (`FlushCostModel`); `syncfs`
    /// only where it reports writeback errors (Linux 5.8+). The default.
    case auto
    /// `fsync` each file and each directory: touches only the spool's own files.
    case fsync
    /// One `syncfs` for a whole batch instead of one `fsync` per file: far fewer device flushes, but it also
    /// flushes everything else dirty on that file system. For a spool on a file system of its own.
    case syncfs
}
