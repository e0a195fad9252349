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
    /// At shutdown, connections accepted but still without a request byte get this long to send one: a client that
    /// has just connected is about to (with socket activation the next process could not answer it, the kernel having
    /// handed it to us), and closing it would break a request that was never refused.
    var freshCloseAt: Int64 = 0
    static let freshConnectionGrace: Int64 = 1_000_000_000
    var lastSweep: Int64 = 0
    let timeouts: ConnectionStateMachine.Timeouts
    let writeTimeout, sweepInterval: Int64

    init(server: HTTPServer, listeners: [FileDescriptor]) throws(Errno) {
        self.server = server
        self.config = server.configuration
        self.limits = server.configuration.parserLimits
        self.listeners = listeners
        timeouts = .init(header: config.headerTimeout.nanoseconds, body: config.bodyTimeout.nanoseconds,
                         idle: config.idleTimeout.nanoseconds, linger: config.lingerTimeout.nanoseconds)
        writeTimeout = config.writeTimeout.nanoseconds
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
        if ev.contains(.writable) {
            if c.hasOutput { flush(c) }
            if !c.closed, c.readWaitsForWrite {
                c.readWaitsForWrite = false
                onReadable(c)
            }
        }
        if !c.closed, ev.contains(.readable) {
            if c.writeWaitsForRead {
                c.writeWaitsForRead = false
                flush(c)
            }
            if !c.closed { onReadable(c) }
        }
        // ERR/HUP are reported even without interest: a dead peer while we are not reading must not spin the loop.
        if !c.closed, !ev.isDisjoint(with: [.error, .hangUp]), !c.machine.wantsRead || !ev.contains(.readable) {
            closeConnection(c)
        }
        if !c.closed { updateInterest(c) }
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
            let machine = ConnectionStateMachine(limits: limits, timeouts: timeouts, now: monotonicNanos())
            guard let stream = server.makeStream(fd) else {
                try? fd.close()
                continue
            }
            let c = Connection(stream: stream, id: id, remote: fd.peerName(), machine: machine, interest: .readable)
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
        while !c.closed && c.machine.wantsRead {
            if reads == 4 {
                // Fairness: come back at top level if the stream still holds input the socket no longer shows.
                if c.stream.hasBufferedInput { queueResume(c) }
                return
            }
            reads += 1
            let n: Int
            do throws(StreamError) {
                switch try c.stream.read(into: readBuffer) {
                case .bytes(let k): n = k
                case .wouldBlock(let interest):
                    if interest == .write { c.readWaitsForWrite = true }
                    return
                case .closed:
                    // EOF: an idle client left, or one that stopped mid-request cannot read an answer anyway.
                    closeConnection(c)
                    return
                }
            } catch {
                closeConnection(c)
                return
            }
            process(c, UnsafeRawBufferPointer(rebasing: readBuffer[0..<n]))
            if n < chunk && !c.stream.hasBufferedInput { return }
        }
    }

    /// Feeds bytes to the connection's exchange and performs what it asks for.
    func process(_ c: Connection, _ buf: UnsafeRawBufferPointer) {
        guard !buf.isEmpty, !c.closed else { return }
        if c.machine.isAtRequestStart {
            c.requestStartMono = monotonicNanos()
            c.requestStartWall = SystemClock().nowNanos()
        }
        let action = c.machine.received(buf, now: monotonicNanos()) { head in earlyResponse(c, head) }
        perform(action, on: c)
    }

    /// Executes one action of a connection's state machine.
    func perform(_ action: ConnectionStateMachine.Action, on c: Connection) {
        switch action {
        case .readMore:
            break
        case .sendContinue:
            c.output.append(contentsOf: ResponseEncoder.continue100)
            flush(c)
            let rest = c.machine.takePending()
            rest.withUnsafeBytes { process(c, $0) }
        case .dispatch(let request, let sequence):
            updateInterest(c)
            let server = self.server, id = c.id
            server.handler.handle(request, remote: c.remote) { response in
                server.complete(connection: id, sequence: sequence, response: response)
            }
        case .respond(let response, let close):
            sendResponse(c, response, close: close)
        case .parsePending:
            queueResume(c)
            updateInterest(c)
        case .linger:
            // Half-closes and drains input for a moment, so the client reads our final response rather than a reset.
            c.stream.shutdownWrite()
            updateInterest(c)
        case .close:
            closeConnection(c)
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

    func drainCompletions() {
        let done = server.shared.withLock { s -> [HTTPServer.Completion] in
            if s.completions.isEmpty { return [] }
            defer { s.completions = [] }
            return s.completions
        }
        for item in done {
            guard let c = connections[item.connection], !c.closed,
                  let action = c.machine.handlerResponded(item.response, sequence: item.sequence) else { continue }
            perform(action, on: c)
        }
    }

    func queueResume(_ c: Connection) {
        guard !c.resumeQueued else { return }
        c.resumeQueued = true
        resumeList.append(c)
    }

    /// Pipelined bytes kept from an earlier read, and input a stream holds that epoll cannot see, at top level
    /// (so a long pipeline never recurses).
    func runResumeList() {
        while !resumeList.isEmpty {
            let list = resumeList
            resumeList = []
            for c in list {
                c.resumeQueued = false
                guard !c.closed, c.machine.state == .head else { continue }
                if c.machine.hasPending {
                    let bytes = c.machine.takePending()
                    bytes.withUnsafeBytes { process(c, $0) }
                }
                if !c.closed, c.machine.wantsRead, c.stream.hasBufferedInput { onReadable(c) }
                if !c.closed { updateInterest(c) }
            }
        }
    }

    // MARK: Writing

    func sendResponse(_ c: Connection, _ r: HTTPResponse, close: Bool) {
        let head = c.machine.head
        let bytes = ResponseEncoder.encode(r, close: close, http10KeepAlive: !close && head?.version == .http1_0,
                                           date: config.sendDate ? dates.current() : nil)
        log(c, status: r.status, logKey: r.logKey, outcome: r.logOutcome, reason: r.logReason)
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
            case .success(.wouldBlock(let interest)):
                if c.writeDeadline == 0 { c.writeDeadline = monotonicNanos() &+ writeTimeout }
                if interest == .read { c.writeWaitsForRead = true }
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
        perform(c.machine.outputDrained(now: monotonicNanos()), on: c)
        guard !c.closed else { return }
        // The next request may already sit decrypted in the stream, where epoll cannot see it.
        if c.machine.wantsRead && c.stream.hasBufferedInput { queueResume(c) }
        updateInterest(c)
    }

    func updateInterest(_ c: Connection) {
        guard !c.closed else { return }
        let want = c.wantedInterest
        if want != c.interest {
            try? epoll.modify(c.stream.descriptor, want, token: c.id)
            c.interest = want
        }
    }

    func closeConnection(_ c: Connection) {
        guard !c.closed else { return }
        c.closed = true
        c.machine.closed()
        epoll.remove(c.stream.descriptor)
        c.stream.close()
        connections[c.id] = nil
        server.openCount.subtract(1, ordering: .relaxed)
    }

    func log(_ c: Connection, status: HTTPStatus, logKey: String?, outcome: String? = nil, reason: String? = nil) {
        guard let sink = server.accessLog else { return }
        let now = monotonicNanos()
        let start = c.requestStartMono == 0 ? now : c.requestStartMono
        let wall = c.requestStartWall == 0 ? SystemClock().nowNanos() : c.requestStartWall
        let line = c.machine.requestLine
        var entry = AccessLogEntry(timeNanos: wall, remote: c.remote, method: line?.method ?? "-", path: line?.path ?? "-",
                                   status: status, logKey: logKey, durationMilliseconds: Double(now - start) / 1e6,
                                   requestID: c.machine.head?.requestID)
        entry.outcome = outcome; entry.reason = reason
        entry.forwardedFor = c.machine.head?.headers.values(for: "x-forwarded-for") ?? []
        sink(entry)
    }

    // MARK: Deadlines and shutdown

    func sweep(_ now: Int64) {
        if listenersPausedUntil != 0 && now >= listenersPausedUntil && !shuttingDown { resumeListeners() }
        var expired: [Connection] = []
        for c in connections.values {
            if c.writeDeadline != 0 && now >= c.writeDeadline {
                expired.append(c)
                continue
            }
            switch c.machine.deadline {
            case .none: continue
            case .idle(let t), .header(let t), .body(let t), .linger(let t): if now >= t { expired.append(c) }
            }
        }
        for c in expired where !c.closed {
            if c.writeDeadline != 0 && now >= c.writeDeadline {
                closeConnection(c)
                continue
            }
            perform(c.machine.deadlinePassed(now: now), on: c)
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
            freshCloseAt = monotonicNanos() &+ min(grace, ServerLoop.freshConnectionGrace)
            for c in Array(connections.values) {
                c.machine.beginShutdown()
                if c.machine.isIdle && c.machine.hasHadARequest && !c.hasOutput { closeConnection(c) }
            }
        } else if freshCloseAt != 0 && monotonicNanos() >= freshCloseAt {
            freshCloseAt = 0
            for c in Array(connections.values) where c.machine.isIdle && !c.hasOutput { closeConnection(c) }
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
