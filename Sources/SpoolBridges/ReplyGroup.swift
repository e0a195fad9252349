import Synchronization
import SpoolSystem
import SpoolWire

/// The answers to requests sent together (one request, or a pipelined batch of publishes), handed from the
/// connection's reader thread to the one thread waiting for all of them. The first answer per request wins; the
/// waiter sleeps in poll(2) on one eventfd for the whole group, so it needs no condition variable.
final class ReplyGroup: Sendable {
    private struct State {
        var results: [Result<NATSMessage, BridgeError>?]
        var missing: Int
    }
    private let state: Mutex<State>
    private let wake: Wakeup

    init(count: Int) throws(Errno) {
        state = Mutex(State(results: Array(repeating: nil, count: count), missing: count))
        wake = try Wakeup()
    }

    func fulfill(_ index: Int, _ r: Result<NATSMessage, BridgeError>) {
        let complete = state.withLock { st -> Bool in
            guard st.results.indices.contains(index), st.results[index] == nil else { return false }
            st.results[index] = r
            st.missing -= 1
            return st.missing == 0
        }
        if complete { wake.signal() }
    }

    /// The answers once all came, or at `deadline` (monotonic nanoseconds) those that did (nil: none yet).
    func wait(until deadline: Int64) -> [Result<NATSMessage, BridgeError>?] {
        while true {
            let (missing, results) = state.withLock { ($0.missing, $0.results) }
            let left = deadline - monotonicNanos()
            if missing == 0 || left <= 0 { return results }
            _ = try? pollReadable([wake.fd], timeoutMillis: Int32(clamping: (left + 999_999) / 1_000_000))
            wake.drain()
        }
    }
}
