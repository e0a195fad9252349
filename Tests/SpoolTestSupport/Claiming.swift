import SpoolCore
import SpoolSystem

extension Spool {
    /// `claim`, looked at again for up to `timeout` seconds only while it comes back empty because the item was
    /// locked. Tests share a process with tests that spawn children, and a child holds copies of our descriptors,
    /// so of our flock locks, from its clone to its exec: under load, longer than the claim's own short wait.
    /// Any other empty claim is returned as it is, so a bug in the claim cache is not retried away.
    public func claimSoon(policy: RetryPolicy = RetryPolicy(), timeout: Double = 2) throws(SpoolError) -> ClaimedItem? {
        let deadline = monotonicNanos() + Int64(timeout * 1e9)
        while true {
            let lockedBefore = claimsThatFoundItLocked
            if let item = try claim(policy: policy) { return item }
            guard claimsThatFoundItLocked > lockedBefore, monotonicNanos() < deadline else { return nil }
            sleep(nanoseconds: 2_000_000)
            noteNewItems()
        }
    }

    /// `recover`, run again for up to 2 s until `done` holds: which items it may touch is decided by their locks,
    /// and the lock of a dead claimant or writer can outlive it in a spawning child for a moment (see `claimSoon`).
    public func recoverSoon(tmpGraceNanos: Int64 = 2_000_000_000, until done: (RecoveryReport) -> Bool) -> RecoveryReport {
        var r = recover(tmpGraceNanos: tmpGraceNanos)
        _ = waitUntil(timeout: 2) {
            if !done(r) { r = recover(tmpGraceNanos: tmpGraceNanos) }
            return done(r)
        }
        return r
    }
}
