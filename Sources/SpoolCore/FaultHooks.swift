import SpoolSystem

/// Points where a test can make the spool's own system calls fail (see `FaultHooks`).
public enum FaultPoint: String, Sendable, CaseIterable {
    case open, write, fsync, link, rename
    /// The links that put an enqueued item into its queues' `new/` (after its marker): a fault here leaves a write
    /// that must be kept and finished.
    case queueLink
}

/// Injected fault source: returns an errno to make that call fail instead of running it.
public struct FaultHooks: Sendable {
    public var inject: (@Sendable (FaultPoint) -> Errno?)?
    public init(_ inject: (@Sendable (FaultPoint) -> Errno?)? = nil) { self.inject = inject }
    public static let none = FaultHooks()

    @inline(__always)
    func check(_ p: FaultPoint) throws(Errno) {
        if let inject, let e = inject(p) { throw e }
    }
}
