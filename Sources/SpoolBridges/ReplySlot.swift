import Synchronization
import SpoolSystem
import SpoolWire

/// A one-shot answer handed from the connection's reader thread to the publisher thread waiting for it.
/// The first `fulfill` wins; the waiter sleeps in poll(2) on an eventfd, so it needs no condition variable.
final class ReplySlot: Sendable {
    private let result = Mutex<Result<NATSMessage, BridgeError>?>(nil)
    private let wake: Wakeup

    init() throws(Errno) {
        wake = try Wakeup()
    }

    func fulfill(_ r: Result<NATSMessage, BridgeError>) {
        let first = result.withLock { cur -> Bool in
            if cur != nil { return false }
            cur = r
            return true
        }
        if first { wake.signal() }
    }

    /// The answer, or nil once `deadline` (monotonic nanoseconds) has passed without one.
    func wait(until deadline: Int64) -> Result<NATSMessage, BridgeError>? {
        while true {
            if let r = result.withLock({ $0 }) { return r }
            let left = deadline - monotonicNanos()
            if left <= 0 { return nil }
            _ = try? pollReadable([wake.fd], timeoutMillis: Int32(clamping: (left + 999_999) / 1_000_000))
            wake.drain()
        }
    }
}
