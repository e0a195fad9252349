import Synchronization
import SpoolSystem

/// A subscription that outlives reconnects: the connection sends its SUB again after every handshake, and it
/// queues what arrives for one thread that waits on `fd` (a JetStream pull consumer, whose requests stay open on
/// the server and deliver as messages come). `epoch` changes each time the SUB is in place on a new connection,
/// so that the owner knows to send its requests again.
public final class NATSSubscription: Sendable {
    /// The inbox subject to use as a reply subject.
    public let subject: String
    let sid: String
    private struct State {
        var messages: [NATSMessage] = []
        var dropped = 0
        var epoch = 0
        var ready = false
        var lastActivity: Int64 = 0
    }
    private let state = Mutex(State())
    private let wake: Wakeup
    /// Messages held at most; the server sends only what was asked for, so more means a peer that ignores that.
    let limit: Int

    init(subject: String, sid: String, limit: Int) throws(Errno) {
        self.subject = subject
        self.sid = sid
        self.limit = max(1, limit)
        wake = try Wakeup()
    }

    /// Readable when messages came or the connection changed.
    public var fd: FileDescriptor { wake.fd }

    /// Reader thread: one message (a status message too: heartbeats and ends of requests matter to the owner).
    func add(_ m: NATSMessage) {
        state.withLock { st in
            st.lastActivity = monotonicNanos()
            if st.messages.count < limit { st.messages.append(m) } else { st.dropped += 1 }
        }
        wake.signal()
    }

    /// Reader thread: the SUB is in place on a new connection (true), or the connection is gone (false).
    func connection(ready: Bool) {
        state.withLock { st in
            st.ready = ready
            if ready { st.epoch += 1; st.lastActivity = monotonicNanos() }
        }
        wake.signal()
    }

    /// The SUB is in place on the current connection.
    public var isReady: Bool { state.withLock { $0.ready } }
    /// Counts the connections the subscription was in place on; a change means requests sent before are gone.
    public var epoch: Int { state.withLock { $0.epoch } }
    /// When the server last sent anything here (a message or a heartbeat), or the subscription was made ready.
    public var lastActivityNanos: Int64 { state.withLock { $0.lastActivity } }

    /// What arrived so far (at most `max`), without waiting; and how many messages were dropped over the limit.
    public func take(max: Int) -> (messages: [NATSMessage], dropped: Int) {
        wake.drain()
        return state.withLock { st in
            let n = Swift.min(max, st.messages.count)
            let out = Array(st.messages.prefix(n))
            st.messages.removeFirst(n)
            let d = st.dropped
            st.dropped = 0
            if !st.messages.isEmpty { wake.signal() }
            return (out, d)
        }
    }
}
