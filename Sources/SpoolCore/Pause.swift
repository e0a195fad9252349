import SpoolSystem

/// Pausing a queue (docs/spool-format.md, "Pause"): the file `paused` in the queue's directory. While it exists no
/// consumer of the queue starts an attempt (running ones finish); webhooks keep being accepted. A file, so that the
/// state survives restarts and every process on the machine sees it.
extension Spool {
    public static let pausedFile = "paused"

    /// Pauses this handle's queue, durably (the file flushed and linked, the directory flushed). Pausing a paused
    /// queue changes nothing.
    public func pause() throws(SpoolError) {
        let text = Array("paused at \(RFC3339.format(nanos: now())) by \(identity)\n".utf8)
        try SpoolFormat.writeFile(Spool.pausedFile, text, in: q.base)
        pausedSeen.withLock { $0 = (monotonicNanos(), true) }
    }

    /// Resumes this handle's queue, durably. Resuming a running queue changes nothing.
    public func resume() throws(SpoolError) {
        try sys("resume queue \(queue)") { () throws(Errno) in
            do throws(Errno) { try FS.unlink(Spool.pausedFile, in: q.base) } catch where error == .noEntry {}
            try q.base.fsync()
        }
        pausedSeen.withLock { $0 = (monotonicNanos(), false) }
    }

    /// Whether the queue is paused now (one `stat`).
    public func pausedNow() -> Bool {
        let p = (try? FS.stat(Spool.pausedFile, in: q.base)) != nil
        pausedSeen.withLock { $0 = (monotonicNanos(), p) }
        return p
    }

    /// Whether the queue is paused, looked at again at most every 250 ms: what a consumer asks before each claim, so a
    /// pause or resume reaches every consumer within a second at the cost of four stats a second.
    public var isPaused: Bool {
        let now = monotonicNanos()
        if let cached = pausedSeen.withLock({ seen in seen.flatMap { now - $0.at < 250_000_000 ? $0.paused : nil } }) { return cached }
        return pausedNow()
    }
}
