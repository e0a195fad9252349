import SpoolSystem
import SpoolWire

/// Per-connection state, owned by the loop thread only. Kept small (no buffers while idle) so thousands of
/// idle or slow clients cost little memory.
final class Connection {
    enum Phase {
        /// Reading a head (or idle between requests).
        case head
        /// Head accepted, reading the body.
        case body
        /// The request is with the handler; nothing more is read (backpressure).
        case handling
        /// A response is being written; the next request is parsed once it is out.
        case responding
        /// A final response went out with `Connection: close`; draining input until EOF or the linger deadline.
        case lingering
    }

    enum ReadDeadline { case none, idle, header, body, linger }

    /// The bytes of this connection: a plain socket, or (later) TLS over it. The loop never touches the socket.
    let stream: any ByteStream
    let id: UInt64
    let remote: String
    var parser: HTTPParser
    var phase: Phase = .head
    /// Unparsed bytes left after the request in flight (pipelining); at most one read's worth.
    var pending: [UInt8] = []
    var head: HTTPRequestHead?
    var body: [UInt8] = []
    /// Incremented per dispatched request; a handler's completion must carry the current value.
    var sequence: UInt64 = 0
    var readDeadlineKind: ReadDeadline = .header
    var readDeadline: Int64
    /// 0 when nothing is waiting to be written.
    var writeDeadline: Int64 = 0
    var output: [UInt8] = []
    var outputOffset = 0
    /// Close (with lingering) once `output` drains.
    var closeAfterWrite = false
    /// After `output` drains, finish the exchange (log done, reset for the next request).
    var exchangeInFlight = false
    /// The epoll interest currently registered.
    var interest: Epoll.Events
    var requestStartMono: Int64 = 0
    var requestStartWall: Int64 = 0
    var closed = false
    /// Queued on the loop's resume list (pipelined bytes to parse after a response went out).
    var resumeQueued = false

    init(stream: any ByteStream, id: UInt64, remote: String, limits: HTTPParserLimits, now: Int64, headerTimeout: Int64, interest: Epoll.Events) {
        self.stream = stream
        self.id = id
        self.remote = remote
        self.parser = HTTPParser(limits: limits)
        self.readDeadline = now &+ headerTimeout
        self.interest = interest
    }

    var hasOutput: Bool { outputOffset < output.count }

    /// True when reading is wanted: while parsing a request or draining before close.
    var wantsRead: Bool {
        switch phase {
        case .head, .body, .lingering: return true
        case .handling, .responding: return false
        }
    }
}
