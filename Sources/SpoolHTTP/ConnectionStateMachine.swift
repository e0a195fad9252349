import SpoolWire

/// One connection's HTTP exchange as one value (the swift-nio model): the loop reports what happened (bytes
/// arrived, the handler answered, the output drained, a deadline passed) and performs the action returned.
/// No I/O and no clock here, so every transition can be driven by a test with bytes and instants.
struct ConnectionStateMachine {
    enum State: Equatable {
        /// Between requests, or reading a request head.
        case head
        /// The head was accepted; reading its body.
        case body
        /// The request is with the handler (this sequence number); nothing more is read (backpressure).
        case handling(sequence: UInt64)
        /// A response is being written; after it, the connection is kept (false) or closed with a linger (true).
        case responding(closeAfter: Bool)
        /// A final response went out; input is drained and dropped until EOF or the linger deadline.
        case lingering
        case closed
    }

    /// The one read deadline in force (absolute, monotonic nanoseconds): trickling bytes never extends it.
    enum Deadline: Equatable {
        case none
        case idle(Int64)
        case header(Int64)
        case body(Int64)
        case linger(Int64)
    }

    enum Action {
        /// Nothing to do but wait for more bytes (or the next event).
        case readMore
        /// Send `100 Continue`, then feed `takePending()` back in.
        case sendContinue
        /// Hand the request to the handler; its answer must come back with this sequence number.
        case dispatch(HTTPRequest, sequence: UInt64)
        /// Encode and send this response (with `Connection: close` when `close`).
        case respond(HTTPResponse, close: Bool)
        /// Parse the pipelined bytes kept from the last read (`takePending()`).
        case parsePending
        /// Half-close and drain input until EOF or the linger deadline, so the client reads our last response.
        case linger
        case close
    }

    struct Timeouts {
        var header, body, idle, linger: Int64
    }

    private(set) var state: State = .head
    private(set) var deadline: Deadline
    /// The head of the request in flight (for the response's framing and the access log).
    private(set) var head: HTTPRequestHead?
    private var parser: HTTPParser
    private let limits: HTTPParserLimits
    private var body: [UInt8] = []
    /// Unparsed bytes after the request in flight (pipelining); at most one read's worth.
    private var pending: [UInt8] = []
    private var sequence: UInt64 = 0
    /// Set at shutdown: every response from now on closes its connection.
    private var closeAfterResponse = false
    let timeouts: Timeouts

    init(limits: HTTPParserLimits, timeouts: Timeouts, now: Int64) {
        self.limits = limits
        self.parser = HTTPParser(limits: limits)
        self.timeouts = timeouts
        self.deadline = .header(now &+ timeouts.header)  // the first request's head counts from the accept
    }

    /// True while input is wanted: reading a request, or draining before close.
    var wantsRead: Bool {
        switch state {
        case .head, .body, .lingering: return true
        case .handling, .responding, .closed: return false
        }
    }

    /// Nothing of a next request has arrived (not even pipelined): the connection may be closed without an answer.
    var isIdle: Bool { state == .head && parser.isAtMessageStart && pending.isEmpty }
    /// Whether a request was ever read on this connection (an idle one is then between keep-alive requests).
    var hasHadARequest: Bool { sequence > 0 }

    /// The next bytes begin a new request (the loop stamps its start time for the access log).
    var isAtRequestStart: Bool { state == .head && parser.isAtMessageStart }

    var hasPending: Bool { !pending.isEmpty }

    /// Method and path for the access log: the request's, or what the parser had read of a head it refused.
    var requestLine: (method: String, path: String)? {
        if let head { return (head.method, head.path) }
        return parser.requestLineSeen
    }

    mutating func takePending() -> [UInt8] {
        defer { pending = [] }
        return pending
    }

    /// Feeds bytes read from the peer; `check` may answer a head early (401, 413...) before its body is read.
    mutating func received(_ buffer: UnsafeRawBufferPointer, now: Int64,
                           check: (HTTPRequestHead) -> HTTPResponse?) -> Action {
        switch state {
        case .lingering: return .readMore
        case .head, .body: break
        case .handling, .responding, .closed:
            // Not reading in these states; bytes can only be ours to keep for after the response.
            pending.append(contentsOf: buffer)
            return .readMore
        }
        guard !buffer.isEmpty else { return .readMore }
        if isAtRequestStart, case .idle = deadline { deadline = .header(now &+ timeouts.header) }
        var offset = 0
        while true {
            let rest = UnsafeRawBufferPointer(rebasing: buffer[offset...])
            let (used, step) = parser.next(rest)
            offset += used
            switch step {
            case .needMore:
                return .readMore
            case .body(let range):
                body.append(contentsOf: rest[range])
            case .head(let h):
                if let action = headArrived(h, now: now, check: check, after: UnsafeRawBufferPointer(rebasing: buffer[offset...])) {
                    return action
                }
            case .end(let trailers):
                pending = Array(buffer[offset...])
                return requestComplete(trailers: trailers)
            case .error(let e):
                // Say the limit, so a sender (or its operator) knows what to change.
                let reason = e.status == .contentTooLarge ? "\(e.reason) of \(limits.maxBody) bytes" : e.reason
                return respond(.error(status: e.status, reason), forceClose: true)
            }
        }
    }

    /// A head was parsed: early answers, `100 Continue`, or go on reading the body (nil).
    private mutating func headArrived(_ h: HTTPRequestHead, now: Int64, check: (HTTPRequestHead) -> HTTPResponse?,
                                      after rest: UnsafeRawBufferPointer) -> Action? {
        head = h
        state = .body
        deadline = h.hasBody ? .body(now &+ timeouts.body) : .none
        if let early = check(h) {
            // With a body that will not be read, the stream cannot be resynchronised: answer and close.
            guard !h.hasBody else { return respond(early, forceClose: true) }
            // Nothing follows the head: consume the empty message end and keep the connection.
            _ = parser.next(UnsafeRawBufferPointer(start: nil, count: 0))
            pending = Array(rest)
            return respond(early, forceClose: false)
        }
        if h.expectContinue && h.hasBody {
            pending = Array(rest)
            return .sendContinue
        }
        return nil
    }

    private mutating func requestComplete(trailers: HTTPHeaders) -> Action {
        guard let h = head else { return .close }
        sequence += 1
        state = .handling(sequence: sequence)
        deadline = .none
        defer { body = [] }
        return .dispatch(HTTPRequest(head: h, body: body, trailers: trailers), sequence: sequence)
    }

    /// The handler answered; nil when the answer is stale (a request of a connection that moved on).
    mutating func handlerResponded(_ response: HTTPResponse, sequence answered: UInt64) -> Action? {
        guard case .handling(let current) = state, current == answered else { return nil }
        return respond(response, forceClose: false)
    }

    private mutating func respond(_ response: HTTPResponse, forceClose: Bool) -> Action {
        let close = forceClose || response.close || closeAfterResponse || !(head?.keepAlive ?? false)
        state = .responding(closeAfter: close)
        deadline = .none
        return .respond(response, close: close)
    }

    /// Everything written so far has gone to the peer.
    mutating func outputDrained(now: Int64) -> Action {
        guard case .responding(let closeAfter) = state else { return .readMore }
        head = nil
        body = []
        if closeAfter {
            state = .lingering
            pending = []
            parser = HTTPParser(limits: limits)
            deadline = .linger(now &+ timeouts.linger)
            return .linger
        }
        state = .head
        deadline = .idle(now &+ timeouts.idle)
        return pending.isEmpty ? .readMore : .parsePending
    }

    /// The read deadline passed: close quietly, or answer 408 when part of a request arrived.
    mutating func deadlinePassed(now: Int64) -> Action {
        switch deadline {
        case .none:
            return .readMore
        case .idle(let t), .linger(let t):
            return now >= t ? .close : .readMore
        case .header(let t):
            guard now >= t else { return .readMore }
            if isAtRequestStart { return .close }  // nothing was sent: nobody to answer
            return respond(.error(status: 408, "request head not received in time"), forceClose: true)
        case .body(let t):
            guard now >= t else { return .readMore }
            return respond(.error(status: 408, "request body not received in time"), forceClose: true)
        }
    }

    /// Shutdown began: responses from now on close their connections.
    mutating func beginShutdown() { closeAfterResponse = true }

    mutating func closed() {
        state = .closed
        deadline = .none
        pending = []
        body = []
    }
}
