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

/// Many answers on one inbox (a JetStream pull batch), handed from the reader thread to the thread that asked.
/// Done at `limit` messages or at the first status message (which ends a pull), woken through an eventfd.
final class BatchSlot: Sendable {
    private struct State { var messages: [NATSMessage] = []; var done = false }
    private let state = Mutex(State())
    private let wake: Wakeup
    private let limit: Int

    init(limit: Int) throws(Errno) {
        self.limit = max(1, limit)
        wake = try Wakeup()
    }

    func add(_ m: NATSMessage) {
        let signal = state.withLock { st -> Bool in
            if st.done { return false }
            // A heartbeat (100) says the pull is alive; other statuses end it.
            if let status = m.headers?.status {
                if status == 100 { return false }
                st.done = true
                return true
            }
            st.messages.append(m)
            if st.messages.count >= limit { st.done = true }
            return st.done
        }
        if signal { wake.signal() }
    }

    /// The messages that came, once the batch is done or `deadline` passed.
    func wait(until deadline: Int64) -> [NATSMessage] {
        while true {
            let (done, messages) = state.withLock { ($0.done, $0.messages) }
            let left = deadline - monotonicNanos()
            if done || left <= 0 {
                state.withLock { $0.done = true }
                return messages
            }
            _ = try? pollReadable([wake.fd], timeoutMillis: Int32(clamping: (left + 999_999) / 1_000_000))
            wake.drain()
        }
    }
}
