import SpoolSystem
import SpoolWire

/// The event loop behind `HTTPServer.run`: one thread, level-triggered epoll, a periodic deadline sweep.
/// Confined to the thread that runs it; other threads reach it only through `HTTPServer.shared` and the eventfd.
final class ServerLoop {
    static let wakeToken: UInt64 = 1 << 40
    static let listenerBase: UInt64 = 1 << 41

    let server: HTTPServer
    let config: HTTPServerConfiguration
    let limits: HTTPParserLimits
    let epoll: Epoll
    var listeners: [FileDescriptor]
    /// Nonzero while accepting is paused after EMFILE/ENFILE (so a full fd table cannot make us spin).
    var listenersPausedUntil: Int64 = 0
    var connections: [UInt64: Connection] = [:]
    var nextID: UInt64 = 1
    /// Connections with pipelined bytes to parse once the loop is back at top level (avoids recursion).
    var resumeList: [Connection] = []
    let readBuffer: UnsafeMutableRawBufferPointer
    var dates = HTTPDateCache()
    var shuttingDown = false
    var shutdownDeadline: Int64 = 0
    var lastSweep: Int64 = 0
    let headerTimeout, bodyTimeout, idleTimeout, writeTimeout, lingerTimeout, sweepInterval: Int64

    init(server: HTTPServer, listeners: [FileDescriptor]) throws(Errno) {
        self.server = server
        self.config = server.configuration
        self.limits = server.configuration.parserLimits
        self.listeners = listeners
        headerTimeout = config.headerTimeout.nanoseconds
        bodyTimeout = config.bodyTimeout.nanoseconds
        idleTimeout = config.idleTimeout.nanoseconds
        writeTimeout = config.writeTimeout.nanoseconds
        lingerTimeout = config.lingerTimeout.nanoseconds
        sweepInterval = max(1_000_000, config.sweepInterval.nanoseconds)
        epoll = try Epoll()
        readBuffer = .allocate(byteCount: max(512, config.readChunkSize), alignment: 16)
        do throws(Errno) {
            try epoll.add(server.wakeup.fd, .readable, token: Self.wakeToken)
            for (i, l) in listeners.enumerated() {
                try epoll.add(l, .readable, token: Self.listenerBase + UInt64(i))
            }
        } catch {
            epoll.close()
            readBuffer.deallocate()
            throw error
        }
    }

    func close() {
        for c in Array(connections.values) { closeConnection(c) }
        epoll.close()
        readBuffer.deallocate()
    }

    func run() throws(Errno) {
        lastSweep = monotonicNanos()
        let waitMs = Int32(max(1, sweepInterval / 1_000_000))
        while true {
            if checkShutdown() { return }
            try epoll.wait(timeoutMillis: waitMs) { events, token in handleEvent(events, token) }
            drainCompletions()
            runResumeList()
            let now = monotonicNanos()
            if now - lastSweep >= sweepInterval {
                lastSweep = now
                sweep(now)
            }
        }
    }

    // MARK: Events

    func handleEvent(_ ev: Epoll.Events, _ token: UInt64) {
        if token == Self.wakeToken {
            server.wakeup.drain()
            server.wakePending.store(false, ordering: .sequentiallyConsistent)
            return
        }
        if token >= Self.listenerBase {
            let i = Int(token - Self.listenerBase)
            if i < listeners.count { acceptAll(listeners[i]) }
            return
        }
        guard let c = connections[token] else { return }
        if ev.contains(.writable) { flush(c) }
        if !c.closed, ev.contains(.readable) { onReadable(c) }
        // ERR/HUP are reported even without interest: a dead peer while we are not reading must not spin the loop.
        if !c.closed, !ev.isDisjoint(with: [.error, .hangUp]), !c.wantsRead || !ev.contains(.readable) {
            closeConnection(c)
        }
    }

    func acceptAll(_ listener: FileDescriptor) {
        for _ in 0..<256 {
            let fd: FileDescriptor
            do {
                guard let accepted = try Socket.accept(listener) else { return }
                fd = accepted
            } catch {
                // EMFILE/ENFILE/ENOBUFS (or anything else): stop polling the listeners briefly instead of spinning.
                pauseListeners()
                return
            }
            if shuttingDown || connections.count >= config.maxConnections {
                try? fd.close()
                continue
            }
            try? fd.setNoDelay()
            let id = nextID
            nextID += 1
            let c = Connection(stream: server.makeStream(fd), id: id, remote: fd.peerName(), limits: limits, now: monotonicNanos(),
                               headerTimeout: headerTimeout, interest: .readable)
            do throws(Errno) { try epoll.add(fd, .readable, token: id) } catch {
                c.stream.close()
                continue
            }
            connections[id] = c
            server.openCount.add(1, ordering: .relaxed)
        }
    }

    func pauseListeners() {
        listenersPausedUntil = monotonicNanos() + 100_000_000
        for (i, l) in listeners.enumerated() {
            try? epoll.modify(l, [], token: Self.listenerBase + UInt64(i))
        }
    }

    func resumeListeners() {
        listenersPausedUntil = 0
        for (i, l) in listeners.enumerated() {
            try? epoll.modify(l, .readable, token: Self.listenerBase + UInt64(i))
        }
    }

    // MARK: Reading

    func onReadable(_ c: Connection) {
        let chunk = readBuffer.count
        var reads = 0
        while !c.closed && c.wantsRead && reads < 4 {
            reads += 1
            let n: Int
            do throws(StreamError) {
                switch try c.stream.read(into: readBuffer) {
                case .bytes(let k): n = k
                case .wouldBlock: return
                case .closed:
                    // EOF: an idle client left, or one that stopped mid-request cannot read an answer anyway.
                    closeConnection(c)
                    return
                }
            } catch {
                closeConnection(c)
                return
            }
            if c.phase == .lingering { continue }
            process(c, UnsafeRawBufferPointer(rebasing: readBuffer[0..<n]))
            if n < chunk { return }
        }
    }

    /// Feeds bytes to the connection's parser until it needs more, a request is dispatched, or it fails.
    func process(_ c: Connection, _ buf: UnsafeRawBufferPointer) {
        guard !buf.isEmpty else { return }
        if c.phase == .head && c.parser.isAtMessageStart {
            c.requestStartMono = monotonicNanos()
            c.requestStartWall = SystemClock().nowNanos()
            if c.readDeadlineKind == .idle {
                c.readDeadlineKind = .header
                c.readDeadline = c.requestStartMono &+ headerTimeout
            }
        }
        var off = 0
        while !c.closed {
            let rest = UnsafeRawBufferPointer(rebasing: buf[off...])
            let (used, step) = c.parser.next(rest)
            off += used
            switch step {
            case .needMore:
                return
            case .body(let r):
                c.body.append(contentsOf: rest[r])
            case .head(let head):
                c.head = head
                c.phase = .body
                if head.hasBody {
                    c.readDeadlineKind = .body
                    c.readDeadline = monotonicNanos() &+ bodyTimeout
                } else {
                    c.readDeadlineKind = .none
                }
                if let early = earlyResponse(c, head) {
                    if head.hasBody {
                        // The body will not be read, so the stream cannot be resynchronised: answer and close.
                        sendResponse(c, early, forceClose: true)
                    } else {
                        // Nothing follows the head: consume the empty message end and keep the connection.
                        _ = c.parser.next(UnsafeRawBufferPointer(start: nil, count: 0))
                        c.pending = Array(buf[off...])
                        sendResponse(c, early, forceClose: false)
                    }
                    return
                }
                if head.expectContinue && head.hasBody {
                    c.output.append(contentsOf: ResponseEncoder.continue100)
                    flush(c)
                }
            case .end(let trailers):
                c.pending = Array(buf[off...])
                dispatch(c, trailers: trailers)
                return
            case .error(let e):
                sendResponse(c, .error(status: e.status, e.reason), forceClose: true)
                return
            }
        }
    }

    /// Server-level checks (417, 411), then the handler's own `checkHead`.
    func earlyResponse(_ c: Connection, _ head: HTTPRequestHead) -> HTTPResponse? {
        if head.expectationUnsupported { return .error(status: 417, "unsupported expectation") }
        if head.framing == .none && config.bodyRequiredMethods.contains(head.method) {
            return .error(status: 411, "Content-Length or chunked Transfer-Encoding required")
        }
        return server.handler.checkHead(head, remote: c.remote)
    }

    func dispatch(_ c: Connection, trailers: HTTPHeaders) {
        guard let head = c.head else { return }
        c.phase = .handling
        c.readDeadlineKind = .none
        c.sequence += 1
        let request = HTTPRequest(head: head, body: c.body, trailers: trailers)
        c.body = []
        updateInterest(c)
        let server = self.server, id = c.id, seq = c.sequence
        server.handler.handle(request, remote: c.remote) { response in
            server.complete(connection: id, sequence: seq, response: response)
        }
    }

    func drainCompletions() {
        let done = server.shared.withLock { s -> [HTTPServer.Completion] in
            if s.completions.isEmpty { return [] }
            defer { s.completions = [] }
            return s.completions
        }
        for item in done {
            guard let c = connections[item.connection], c.phase == .handling, c.sequence == item.sequence else { continue }
            sendResponse(c, item.response, forceClose: false)
        }
    }

    func runResumeList() {
        while !resumeList.isEmpty {
            let list = resumeList
            resumeList = []
            for c in list {
                c.resumeQueued = false
                guard !c.closed, c.phase == .head else { continue }
                let bytes = c.pending
                c.pending = []
                bytes.withUnsafeBytes { process(c, $0) }
                if !c.closed { updateInterest(c) }
            }
        }
    }

    // MARK: Writing

    func sendResponse(_ c: Connection, _ r: HTTPResponse, forceClose: Bool) {
        let head = c.head
        let close = forceClose || r.close || shuttingDown || !(head?.keepAlive ?? false)
        let bytes = ResponseEncoder.encode(r, close: close, http10KeepAlive: !close && head?.version == .http1_0,
                                           date: config.sendDate ? dates.current() : nil)
        log(c, status: r.status, logKey: r.logKey)
        c.phase = .responding
        c.readDeadlineKind = .none
        c.closeAfterWrite = close
        c.exchangeInFlight = true
        if c.output.isEmpty { c.output = bytes } else { c.output.append(contentsOf: bytes) }
        flush(c)
    }

    func flush(_ c: Connection) {
        while c.hasOutput {
            let step = c.output.withUnsafeBytes { p in
                Result { () throws(StreamError) in try c.stream.write(UnsafeRawBufferPointer(rebasing: p[c.outputOffset...])) }
            }
            switch step {
            case .success(.bytes(let n)):
                c.outputOffset += n
            case .success(.wouldBlock):
                if c.writeDeadline == 0 { c.writeDeadline = monotonicNanos() &+ writeTimeout }
                updateInterest(c)
                return
            case .success(.closed), .failure:
                closeConnection(c)
                return
            }
        }
        c.output = []
        c.outputOffset = 0
        c.writeDeadline = 0
        if c.exchangeInFlight {
            c.exchangeInFlight = false
            finishExchange(c)
        } else {
            updateInterest(c)
        }
    }

    func finishExchange(_ c: Connection) {
        if c.closeAfterWrite {
            startLinger(c)
            return
        }
        c.phase = .head
        c.head = nil
        c.body = []
        c.readDeadlineKind = .idle
        c.readDeadline = monotonicNanos() &+ idleTimeout
        if !c.pending.isEmpty && !c.resumeQueued {
            c.resumeQueued = true
            resumeList.append(c)
        }
        updateInterest(c)
    }

    /// Half-closes and drains input for a moment, so the client reads our final response rather than a reset.
    func startLinger(_ c: Connection) {
        c.phase = .lingering
        c.pending = []
        c.head = nil
        c.body = []
        c.parser = HTTPParser(limits: limits)
        c.stream.shutdownWrite()
        c.readDeadlineKind = .linger
        c.readDeadline = monotonicNanos() &+ lingerTimeout
        updateInterest(c)
    }

    func updateInterest(_ c: Connection) {
        guard !c.closed else { return }
        var want: Epoll.Events = []
        if c.wantsRead { want.insert(.readable) }
        if c.hasOutput { want.insert(.writable) }
        if want != c.interest {
            try? epoll.modify(c.stream.descriptor, want, token: c.id)
            c.interest = want
        }
    }

    func closeConnection(_ c: Connection) {
        guard !c.closed else { return }
        c.closed = true
        epoll.remove(c.stream.descriptor)
        c.stream.close()
        connections[c.id] = nil
        server.openCount.subtract(1, ordering: .relaxed)
    }

    func log(_ c: Connection, status: HTTPStatus, logKey: String?) {
        guard let sink = server.accessLog else { return }
        let now = monotonicNanos()
        let start = c.requestStartMono == 0 ? now : c.requestStartMono
        let wall = c.requestStartWall == 0 ? SystemClock().nowNanos() : c.requestStartWall
        sink(AccessLogEntry(timeNanos: wall, remote: c.remote, method: c.head?.method ?? "-", path: c.head?.path ?? "-",
                            status: status, logKey: logKey, durationMilliseconds: Double(now - start) / 1e6,
                            requestID: c.head?.requestID))
    }

    // MARK: Deadlines and shutdown

    func sweep(_ now: Int64) {
        if listenersPausedUntil != 0 && now >= listenersPausedUntil && !shuttingDown { resumeListeners() }
        var expired: [Connection] = []
        for c in connections.values {
            if (c.writeDeadline != 0 && now >= c.writeDeadline) || (c.readDeadlineKind != .none && now >= c.readDeadline) {
                expired.append(c)
            }
        }
        for c in expired where !c.closed {
            if c.writeDeadline != 0 && now >= c.writeDeadline {
                closeConnection(c)
                continue
            }
            switch c.readDeadlineKind {
            case .none:
                break
            case .idle, .linger:
                closeConnection(c)
            case .header:
                if c.phase == .head && c.parser.isAtMessageStart {
                    closeConnection(c)  // nothing was sent: nobody to answer
                } else {
                    sendResponse(c, .error(status: 408, "request head not received in time"), forceClose: true)
                }
            case .body:
                sendResponse(c, .error(status: 408, "request body not received in time"), forceClose: true)
            }
        }
    }

    /// Applies a pending `shutdown`; returns true when the loop should exit.
    func checkShutdown() -> Bool {
        if !shuttingDown {
            guard let grace = server.shared.withLock({ $0.shutdownGrace }) else { return false }
            shuttingDown = true
            shutdownDeadline = monotonicNanos() &+ grace
            let ls = server.shared.withLock { s -> [FileDescriptor] in
                defer { s.listeners = [] }
                return s.listeners
            }
            for l in ls {
                epoll.remove(l)
                try? l.close()
            }
            listeners = []
            for c in Array(connections.values) where c.phase == .head && c.parser.isAtMessageStart && c.pending.isEmpty && !c.hasOutput {
                closeConnection(c)
            }
        }
        if connections.isEmpty { return true }
        if monotonicNanos() >= shutdownDeadline {
            for c in Array(connections.values) { closeConnection(c) }
            return true
        }
        // Connections that became idle after their last response are closed by `sendResponse` forcing close.
        return false
    }
}
