import Synchronization
import SpoolSystem
import SpoolTLS
import SpoolWire

/// Where and how to connect, and the time limits of the connection itself.
public struct NATSConnectionOptions: Sendable {
    /// The servers to try, in random order (`--nats URL,URL,...`); more are learnt from INFO when `discover`.
    public var servers: [Endpoint]
    /// The first server given (for single-server callers and tests).
    public var endpoint: Endpoint { servers[0] }
    /// Add the servers a connected server announces in INFO `connect_urls` (its cluster peers).
    public var discover = true
    /// How long a server that refused our credentials is left alone (it is not hammered).
    public var authRejectionPauseNanos: Int64 = 30_000_000_000
    public var credentials = NATSCommand.ConnectOptions()
    /// TCP connect plus INFO/CONNECT/PONG handshake.
    public var connectTimeoutNanos: Int64 = 5_000_000_000
    /// A blocked write (the server stopped reading) breaks the connection after this long.
    public var writeTimeoutNanos: Int64 = 5_000_000_000
    /// Client PINGs while idle; `maxPingsOutstanding` unanswered ones mean the connection is dead.
    public var pingIntervalNanos: Int64 = 5_000_000_000
    public var maxPingsOutstanding = 2
    /// Reconnect delays double from `reconnectMinNanos` up to `reconnectMaxNanos`, with jitter.
    public var reconnectMinNanos: Int64 = 50_000_000
    public var reconnectMaxNanos: Int64 = 2_000_000_000
    /// Whom to trust and what to present when the connection is TLS (a `tls://` URL, or a server whose INFO
    /// says `tls_required`); nil: the system's roots, no client certificate.
    public var tls: TLSClientProfile?

    public init(endpoint: Endpoint) { self.servers = [endpoint] }

    /// At least one server; the list is shuffled here, so that many clients spread over a cluster.
    public init(servers: [Endpoint]) {
        precondition(!servers.isEmpty, "NATSConnectionOptions needs at least one server")
        self.servers = servers.shuffled()
    }
}

/// One client connection to a NATS server, shared by all publisher threads of a process. A reader thread owns
/// the socket's life (handshake, reading, PING/PONG, reconnecting with backoff); publishers write under a lock
/// and wait for replies on a per-connection inbox (`_INBOX.<random>.<token>`), one token per request.
public final class NATSConnection: Sendable {
    public let options: NATSConnectionOptions
    let log: @Sendable (String) -> Void
    let inboxPrefix: String
    private let state: Mutex<State>
    private let writeLock = Mutex(())
    private let stopWake: Wakeup

    struct State {
        var stream: (any ByteStream)?
        /// The stream of a handshake in progress (so `close` can interrupt it).
        var connecting: (any ByteStream)?
        var info: NATSServerInfo?
        /// Requests waiting for their reply, by inbox token: the group and the request's place in it.
        var waiters: [UInt64: (group: ReplyGroup, index: Int)] = [:]
        /// Subscriptions (by sid) that outlive reconnects (a JetStream pull consumer's inbox).
        var subscriptions: [String: NATSSubscription] = [:]
        var nextToken: UInt64 = 1
        var started = false
        var closed = false
        /// Set by `leaveServer`: the coming end of the connection is ours, not the server's.
        var leaving = false
        /// Servers left by `leaveServer`, passed over until then (unless no other is left to try).
        var leftUntil: [String: Int64] = [:]
        var lastError = "not connected yet"
        var connects = 0
        /// While waiting out a reconnect backoff: when the next attempt starts (monotonic); 0 otherwise.
        var reconnectAt: Int64 = 0
        /// Threads waiting for a connection (or for `close`); each is signalled once the state changes.
        var connectWaiters: [UInt64: Wakeup] = [:]
        /// The server pool: the given servers, then discovered ones; `next` is the one to try next.
        var pool: [Endpoint] = []
        var next = 0
        /// The server connected or being tried (for log lines and errors).
        var current: Endpoint
        /// Servers that refused our credentials, and until when they are left alone.
        var authRejectedUntil: [String: Int64] = [:]
    }

    public init(options: NATSConnectionOptions, log: @escaping @Sendable (String) -> Void) throws {
        self.options = options
        self.log = log
        self.stopWake = try Wakeup()
        var initial = State(current: options.servers[0])
        initial.pool = options.servers
        self.state = Mutex(initial)
        inboxPrefix = "_INBOX." + String(UInt64.random(in: 0...UInt64.max), radix: 36) + String(UInt64.random(in: 0...UInt64.max), radix: 36) + "."
    }

    /// The server connected or being tried.
    var url: String { state.withLock { $0.current.natsURL } }

    /// The servers known now (given and discovered), for tests and logs.
    public var knownServers: [String] { state.withLock { $0.pool.map(\.natsURL) } }

    /// Starts the reader thread, which connects and keeps reconnecting until `close()`.
    public func start() {
        let go = state.withLock { st -> Bool in
            if st.started || st.closed { return false }
            st.started = true
            return true
        }
        if go { startThread { [self] in self.runLoop() } }
    }

    /// Stops reconnecting, drops the socket and fails requests still waiting.
    public func close() {
        let streams = state.withLock { st -> [any ByteStream] in st.closed = true; return [st.stream, st.connecting].compactMap { $0 } }
        stopWake.signal()
        wakeConnectWaiters()
        for s in streams { s.interrupt() }
        if !state.withLock({ $0.started }) { failWaiters("connection closed") }
    }

    /// Drops the connection to the current server so that the next one of the pool is tried (requests waiting on
    /// it fail as on any lost connection). For a server that is up but cut off from the rest of its cluster
    /// (`StrandedServer`); with a pool of one server it does nothing. True when the connection was dropped.
    @discardableResult
    public func leaveServer(reason: String) -> Bool {
        let stream = state.withLock { st -> (any ByteStream)? in
            guard st.pool.count > 1, let s = st.stream else { return nil }
            st.leaving = true
            st.leftUntil[st.current.natsURL] = monotonicNanos() + 30_000_000_000
            return s
        }
        guard let stream else { return false }
        log("nats: leaving \(url): \(reason); trying the next server")
        stream.interrupt()
        return true
    }

    public var isConnected: Bool { state.withLock { $0.stream != nil } }
    /// Completed handshakes so far (tests use it to see a reconnect happen).
    public var connectCount: Int { state.withLock { $0.connects } }
    public var serverInfo: NATSServerInfo? { state.withLock { $0.stream != nil ? $0.info : nil } }

    /// Why the connection is down ("" while connected).
    public var lastError: String { state.withLock { $0.stream != nil ? "" : $0.lastError } }

    /// Waits until connected, or `timeoutNanos` passes. True when connected.
    public func waitUntilConnected(timeoutNanos: Int64) -> Bool {
        if case .connected = awaitConnection(until: monotonicNanos() + timeoutNanos) { return true }
        return false
    }

    /// While disconnected: when the next connection attempt starts (monotonic), or nil if one is under way or
    /// the connection is up. Consumers use it to sleep through an outage instead of failing items.
    public var nextReconnectAt: Int64? {
        state.withLock { st -> Int64? in st.stream == nil && st.reconnectAt != 0 ? st.reconnectAt : nil }
    }

    enum ConnectionWait { case connected(NATSServerInfo), closed, timedOut(String) }

    /// Sleeps (in poll(2) on an eventfd of its own, never a busy wait) until the connection is up or closed,
    /// or `deadline` passes.
    func awaitConnection(until deadline: Int64) -> ConnectionWait {
        // The connected case (every publish) costs one lock; a waiter's eventfd and token are made only when needed.
        var wake: Wakeup? = nil
        var token: UInt64? = nil
        defer { if let token { _ = state.withLock { $0.connectWaiters.removeValue(forKey: token) } } }
        while true {
            let now = monotonicNanos()
            let seen = state.withLock { st -> ConnectionWait? in
                if st.closed { return .closed }
                if st.stream != nil, let i = st.info { return .connected(i) }
                if now >= deadline { return .timedOut(st.lastError) }
                if let wake, token == nil {  // registered under the same lock as the check
                    token = st.nextToken
                    st.nextToken += 1
                    st.connectWaiters[token!] = wake
                }
                return nil
            }
            if let seen { return seen }
            guard let w = wake else {
                guard let w = try? Wakeup() else { sleep(nanoseconds: 50_000_000); continue }
                wake = w
                continue  // register it, re-checking the state under the lock
            }
            _ = try? pollReadable([w.fd], timeoutMillis: Int32(clamping: (deadline - now + 999_999) / 1_000_000))
            w.drain()
        }
    }

    /// Wakes every thread in `awaitConnection`; call after the state changed (connected, closed).
    private func wakeConnectWaiters() {
        let waiters = state.withLock { Array($0.connectWaiters.values) }
        for w in waiters { w.signal() }
    }

    /// Publishes `payload` (with `headers` as HPUB) to `subject` with a reply inbox and waits for the one reply.
    /// A connection outage shorter than the timeout is waited out; the reply may arrive from the server,
    /// from a service (JetStream), or as a 503 "no responders" status.
    public func request(subject: String, headers: NATSHeaders?, payload: [UInt8], timeoutNanos: Int64) throws(BridgeError) -> NATSMessage {
        try requests([NATSRequest(subject: subject, headers: headers, payload: payload)], timeoutNanos: timeoutNanos)[0].get()
    }

    /// Sends several requests in one write and waits for all their replies (pipelining: a batch of JetStream
    /// publishes costs one write and one wake-up, not one per message). One result per request, in order: its
    /// reply, or why there is none (too large, timed out, connection lost). Throws only when nothing was sent.
    public func requests(_ batch: [NATSRequest], timeoutNanos: Int64) throws(BridgeError) -> [Result<NATSMessage, BridgeError>] {
        guard !batch.isEmpty else { return [] }
        let deadline = monotonicNanos() + timeoutNanos
        let info: NATSServerInfo
        switch awaitConnection(until: deadline) {
        case .connected(let i): info = i
        case .closed: throw BridgeError(.connectionLost, "the NATS connection is closed")
        case .timedOut(let last): throw BridgeError(.connect, "not connected to \(url): \(last)")
        }
        let group: ReplyGroup
        do { group = try ReplyGroup(count: batch.count) } catch { throw BridgeError(.connectionLost, "cannot wait for a reply: \(error)") }
        var bytes: [UInt8] = []
        var tokens: [UInt64] = []
        tokens.reserveCapacity(batch.count)
        let first = state.withLock { st -> UInt64 in
            let t = st.nextToken
            st.nextToken += UInt64(batch.count)
            return t
        }
        for (i, r) in batch.enumerated() {
            let h = r.headers?.encoded()
            let size = (h?.count ?? 0) + r.payload.count
            guard size <= info.maxPayload else {
                group.fulfill(i, .failure(BridgeError(.rejected, "message of \(size) bytes exceeds the server's max_payload (\(info.maxPayload))", status: "too large")))
                continue
            }
            tokens.append(first + UInt64(i))
            NATSCommand.appendPublish(subject: r.subject, replyTo: inboxPrefix + String(first + UInt64(i)), headerBlock: h,
                                      payload: r.payload, to: &bytes)
        }
        state.withLock { st in for t in tokens { st.waiters[t] = (group, Int(t - first)) } }
        defer { state.withLock { st in for t in tokens { st.waiters.removeValue(forKey: t) } } }
        if !tokens.isEmpty { try write(bytes) }
        return group.wait(until: deadline).enumerated().map { i, r in
            r ?? .failure(BridgeError(.timeout, "no reply from \(url) on \(batch[i].subject) within \(timeoutNanos / 1_000_000)ms"))
        }
    }

    /// Writes one whole command. A failed or timed-out write leaves a partial command on the wire, so the
    /// connection is shut down (the reader thread then reconnects).
    private func write(_ bytes: [UInt8]) throws(BridgeError) {
        try writeLock.withLock { _ throws(BridgeError) in
            guard let stream = state.withLock({ $0.stream }) else { throw BridgeError(.connectionLost, "not connected to \(url)") }
            do throws(StreamError) { try stream.writeAll(bytes, deadline: monotonicNanos() + options.writeTimeoutNanos) } catch {
                stream.interrupt()
                throw BridgeError(.connectionLost, "write to \(url) failed: \(error)")
            }
        }
    }

    // MARK: reader thread

    private func runLoop() {
        var delay = options.reconnectMinNanos
        var failuresInARow = 0
        while !state.withLock({ $0.closed }) {
            let stream: any ByteStream, info: NATSServerInfo
            var parser = NATSParser()
            let (server, wrapped) = nextServer()
            do throws(BridgeError) { (stream, info) = try handshake(server, &parser) } catch {
                state.withLock { $0.lastError = error.message }
                if failuresInARow == 0 { log("nats: cannot connect to \(server.natsURL): \(error.message); retrying") }
                if error.isAuthorizationFailure {
                    log("nats: \(server.natsURL) refused our credentials; leaving it alone for \(options.authRejectionPauseNanos / 1_000_000_000)s")
                    state.withLock { $0.authRejectedUntil[server.natsURL] = monotonicNanos() + options.authRejectionPauseNanos }
                }
                failuresInARow += 1
                // Every server of the pool was tried once: wait out the backoff before the next round; when
                // every one of them refused our credentials, until the first of them may be asked again.
                if wrapped || state.withLock({ $0.pool.count }) == 1 {
                    var jittered = delay / 2 + Int64.random(in: 0...max(1, delay / 2))
                    let now = monotonicNanos()
                    let refusals = state.withLock { st in st.pool.map { st.authRejectedUntil[$0.natsURL] ?? 0 } }
                    if let first = refusals.min(), first > now { jittered = max(jittered, first - now) }
                    state.withLock { $0.reconnectAt = monotonicNanos() + jittered }
                    _ = try? pollReadable([stopWake.fd], timeoutMillis: Int32(clamping: jittered / 1_000_000))
                    state.withLock { $0.reconnectAt = 0 }
                    delay = min(delay * 2, options.reconnectMaxNanos)
                }
                continue
            }
            if options.discover { learnServers(info.connectURLs, secure: server.secure) }
            // The subscriptions to renew are taken under the same lock that publishes the stream: one made later
            // sees the stream and sends its own SUB.
            let (closedMeanwhile, renew) = state.withLock { st -> (Bool, [NATSSubscription]) in
                st.connecting = nil
                if st.closed { return (true, []) }
                st.stream = stream; st.info = info; st.connects += 1; st.lastError = ""; st.leaving = false
                return (false, Array(st.subscriptions.values))
            }
            if closedMeanwhile { stream.close(); wakeConnectWaiters(); break }
            for sub in renew {
                if (try? write(NATSCommand.sub(sub.subject, sid: sub.sid))) != nil { sub.connection(ready: true) }
            }
            wakeConnectWaiters()
            log("nats: connected to \(url) (server \(info.version)\(failuresInARow > 0 ? ", after \(failuresInARow) failed attempts" : ""))")
            delay = options.reconnectMinNanos
            failuresInARow = 0
            var reason = readLoop(stream, &parser)
            if state.withLock({ st in defer { st.leaving = false }; return st.leaving }) { reason = "left it for another server" }
            stream.interrupt()
            writeLock.withLock { _ in
                state.withLock { $0.stream = nil; $0.lastError = reason }
                stream.close()
            }
            failWaiters(reason)
            for sub in state.withLock({ Array($0.subscriptions.values) }) { sub.connection(ready: false) }
            if !state.withLock({ $0.closed }) { log("nats: connection to \(url) lost: \(reason); reconnecting") }
        }
        failWaiters("connection closed")
    }

    private func failWaiters(_ reason: String) {
        let waiters = state.withLock { st -> [(group: ReplyGroup, index: Int)] in
            let w = Array(st.waiters.values)
            st.waiters.removeAll()
            return w
        }
        for w in waiters { w.group.fulfill(w.index, .failure(BridgeError(.connectionLost, "connection to \(url) lost before the reply: \(reason)"))) }
    }

    /// The next server to try, round-robin over the pool, passing over servers that refused our credentials or
    /// that `leaveServer` left lately (unless every one did); `wrapped` is true when this choice starts a new round.
    private func nextServer() -> (Endpoint, wrapped: Bool) {
        state.withLock { st in
            let now = monotonicNanos()
            var wrapped = false
            for _ in 0..<st.pool.count {
                if st.next >= st.pool.count { st.next = 0 }
                let candidate = st.pool[st.next]
                st.next += 1
                if st.next >= st.pool.count { wrapped = true }
                if let until = st.authRejectedUntil[candidate.natsURL], until > now { continue }
                if let until = st.leftUntil[candidate.natsURL], until > now { continue }
                st.current = candidate
                return (candidate, wrapped)
            }
            // Every server refused us (or was left for reaching no stream) lately: try the next anyway, at the slow
            // pace of a full round.
            if st.next >= st.pool.count { st.next = 0 }
            st.current = st.pool[st.next]
            st.next += 1
            return (st.current, true)
        }
    }

    /// Adds the servers a connected server announced (its cluster), with the scheme of the one that told us.
    private func learnServers(_ urls: [String], secure: Bool) {
        var added: [String] = []
        state.withLock { st in
            for u in urls {
                guard let ep = try? Endpoint.nats((secure ? "tls://" : "nats://") + u),
                      !st.pool.contains(where: { $0.host == ep.host && $0.port == ep.port }), st.pool.count < 64 else { continue }
                st.pool.append(ep)
                added.append(ep.natsURL)
            }
        }
        if !added.isEmpty { log("nats: learnt \(added.joined(separator: ", ")) from the cluster") }
    }

    /// TCP connect, INFO, CONNECT + PING, PONG, SUB on our inbox: all within the connect timeout.
    private func handshake(_ server: Endpoint, _ parser: inout NATSParser) throws(BridgeError) -> (any ByteStream, NATSServerInfo) {
        let deadline = monotonicNanos() + options.connectTimeoutNanos
        var stream = try BridgeConnect.stream(to: server, deadline: deadline, timeoutNanos: options.connectTimeoutNanos)
        let closed = state.withLock { st -> Bool in
            if !st.closed { st.connecting = stream }
            return st.closed
        }
        do throws(BridgeError) {
            if closed { throw BridgeError(.connectionLost, "closed") }
            var pending: [NATSEvent] = []
            var info = try awaitInfo(stream, &parser, &pending, deadline: deadline)
            // NATS speaks INFO in plain text, then upgrades (a tls:// URL asks for it; a server may require it).
            let secure = server.secure || info.tlsRequired
            if secure {
                guard pending.isEmpty else { throw BridgeError(.protocolViolation, "data after INFO before the TLS handshake") }
                stream = try BridgeConnect.secure(stream, profile: options.tls ?? TLSClientProfile(), endpoint: server,
                                                  deadline: deadline, timeoutNanos: options.connectTimeoutNanos)
                let upgraded = stream
                state.withLock { if !$0.closed { $0.connecting = upgraded } }
            }
            if !info.headers { throw BridgeError(.connect, "the server does not support headers (NATS 2.2 or later is needed)") }
            try send(stream, try NATSCommand.connect(options.credentials, tls: secure, nonce: info.nonce) + NATSCommand.ping, deadline: deadline)
            // Everything up to the PONG, and whatever came in the same read after it: a server announces a changed
            // cluster (INFO) at any time, which is exactly when a peer fails over. No message can come before our SUB.
            var ponged = false
            while !ponged {
                if pending.isEmpty { pending = try readEvents(stream, &parser, deadline: deadline) }
                while !pending.isEmpty {
                    switch pending.removeFirst() {
                    case .pong: ponged = true
                    case .ping: try send(stream, NATSCommand.pong, deadline: deadline)
                    case .info(let i): info = i
                    case .ok: break
                    case .err(let text):
                        throw BridgeError(NATSServerError(text: text) == .unauthorized ? .unauthorized : .connect,
                                          "the server refused the connection: \(text)")
                    case .message: throw BridgeError(.protocolViolation, "a message before any subscription")
                    }
                }
            }
            try send(stream, NATSCommand.sub(inboxPrefix + "*", sid: "1"), deadline: deadline)
            return (stream, info)
        } catch {
            state.withLock { $0.connecting = nil }
            stream.close()
            throw error
        }
    }

    /// The server speaks first: its INFO, before anything else.
    private func awaitInfo(_ stream: any ByteStream, _ parser: inout NATSParser, _ pending: inout [NATSEvent],
                           deadline: Int64) throws(BridgeError) -> NATSServerInfo {
        while true {
            pending += try readEvents(stream, &parser, deadline: deadline)
            if !pending.isEmpty {
                guard case .info(let i) = pending.removeFirst() else { throw BridgeError(.protocolViolation, "the server did not start with INFO") }
                return i
            }
        }
    }

    private func send(_ stream: any ByteStream, _ bytes: [UInt8], deadline: Int64) throws(BridgeError) {
        do throws(StreamError) { try stream.writeAll(bytes, deadline: deadline) } catch {
            throw BridgeError(.connectionLost, "write failed: \(error)")
        }
    }

    /// Reads until at least one event completes or the deadline passes.
    private func readEvents(_ stream: any ByteStream, _ parser: inout NATSParser, deadline: Int64) throws(BridgeError) -> [NATSEvent] {
        var buf = [UInt8](repeating: 0, count: 16384)
        while true {
            if let f = parser.failure { throw BridgeError(.protocolViolation, "protocol error: \(f.message)") }
            let n: Int
            do throws(StreamError) {
                n = try buf.withUnsafeMutableBytes { p in Result { () throws(StreamError) in try stream.read(into: p, deadline: deadline) } }.get()
            } catch {
                if error == .timedOut { throw BridgeError(.timeout, "handshake with \(url) timed out") }
                throw BridgeError(.connectionLost, "read failed: \(error)")
            }
            if n == 0 { throw BridgeError(.connectionLost, state.withLock({ $0.closed }) ? "closed" : "the server closed the connection") }
            let events = parser.feed(buf[0..<n])
            if !events.isEmpty { return events }
        }
    }

    /// Reads and dispatches until the connection fails; returns why. Wakes for the server's bytes and for its own
    /// PING timer; `close` interrupts the stream.
    private func readLoop(_ stream: any ByteStream, _ parser: inout NATSParser) -> String {
        var buf = [UInt8](repeating: 0, count: 65536)
        var lastPing = monotonicNanos()
        var outstanding = 0
        while true {
            if state.withLock({ $0.closed }) { return "connection closed" }
            let sinceP = monotonicNanos() - lastPing
            if sinceP >= options.pingIntervalNanos {
                if outstanding >= options.maxPingsOutstanding { return "no PONG for \(outstanding) PINGs: stale connection" }
                do { try write(NATSCommand.ping) } catch { return error.message }
                outstanding += 1
                lastPing = monotonicNanos()
                continue
            }
            let n: Int
            do throws(StreamError) {
                let until = lastPing + options.pingIntervalNanos
                n = try buf.withUnsafeMutableBytes { p in Result { () throws(StreamError) in try stream.read(into: p, deadline: until) } }.get()
            } catch {
                if error == .timedOut { continue }
                return "read failed: \(error)"
            }
            if n == 0 { return state.withLock({ $0.closed }) ? "connection closed" : "the server closed the connection" }
            // Events completed before a violation are handled; then the connection ends.
            for e in parser.feed(buf[0..<n]) {
                switch e {
                case .ping:
                    do { try write(NATSCommand.pong) } catch { return error.message }
                case .pong: outstanding = 0
                case .ok: break
                case .info(let i):
                    let secure = state.withLock { st -> Bool in st.info = i; return st.current.secure }
                    // A server announces cluster changes (a node joining) in INFO at any time.
                    if options.discover { learnServers(i.connectURLs, secure: secure) }
                    if i.lameDuck { log("nats: \(url) is entering lame duck mode (shutting down)") }
                case .err(let text):
                    log("nats: server error: \(logSafe(text, maxScalars: 512))")
                case .message(let m):
                    deliver(m)
                }
            }
            if let f = parser.failure { return "protocol error: \(f.message)" }
        }
    }

    private func deliver(_ m: NATSMessage) {
        // A pulled JetStream message carries its stream subject, not the inbox: it is routed by subscription.
        if let sub = state.withLock({ $0.subscriptions[m.sid] }) {
            sub.add(m)
            return
        }
        guard m.subject.hasPrefix(inboxPrefix), let token = Digits.decimal(m.subject.utf8.dropFirst(inboxPrefix.utf8.count)) else { return }
        if let w = state.withLock({ $0.waiters.removeValue(forKey: UInt64(token)) }) { w.group.fulfill(w.index, .success(m)) }
    }

    /// A subscription on an inbox of its own (sid `p<n>`, subject `<prefix>p.<n>`: two tokens, so the shared
    /// `<prefix>*` reply subscription does not match it and the server sends each message once), kept across reconnects until
    /// `unsubscribe`. It holds at most `limit` messages not yet taken.
    public func subscribe(limit: Int) throws(BridgeError) -> NATSSubscription {
        let token = state.withLock { st -> UInt64 in st.nextToken += 1; return st.nextToken - 1 }
        let sub: NATSSubscription
        do { sub = try NATSSubscription(subject: inboxPrefix + "p.\(token)", sid: "p\(token)", limit: limit) } catch {
            throw BridgeError(.connectionLost, "cannot subscribe: \(error)")
        }
        let connected = state.withLock { st -> Bool in
            st.subscriptions[sub.sid] = sub
            return st.stream != nil
        }
        // Not connected: the next handshake sends the SUB. A failed write here breaks the connection, and the
        // reconnect sends it.
        if connected, (try? write(NATSCommand.sub(sub.subject, sid: sub.sid))) != nil { sub.connection(ready: true) }
        return sub
    }

    /// Ends a subscription: the server stops delivering to it (a pull request whose inbox lost its interest is
    /// dropped by JetStream), and a later reconnect does not renew it.
    public func unsubscribe(_ sub: NATSSubscription) {
        _ = state.withLock { $0.subscriptions.removeValue(forKey: sub.sid) }
        try? write(NATSCommand.unsub(sid: sub.sid))
        sub.connection(ready: false)
    }

    /// Publishes without waiting for anything (a JetStream `+ACK`/`-NAK` to a message's reply subject).
    /// With `replyTo`, what answers goes there (a JetStream pull request's messages, to a subscription).
    public func publish(subject: String, replyTo: String? = nil, payload: [UInt8]) throws(BridgeError) {
        _ = try awaitConnectedInfo()
        try write(NATSCommand.publish(subject: subject, replyTo: replyTo, headers: nil, payload: payload))
    }

    /// Publishes several messages in one write (a batch of acks costs one system call, not one per message).
    public func publish(_ messages: [(subject: String, payload: [UInt8])]) throws(BridgeError) {
        guard !messages.isEmpty else { return }
        _ = try awaitConnectedInfo()
        var bytes: [UInt8] = []
        for m in messages { bytes += NATSCommand.publish(subject: m.subject, replyTo: nil, headers: nil, payload: m.payload) }
        try write(bytes)
    }

    private func awaitConnectedInfo() throws(BridgeError) -> NATSServerInfo {
        switch awaitConnection(until: monotonicNanos() + options.writeTimeoutNanos) {
        case .connected(let i): return i
        case .closed: throw BridgeError(.connectionLost, "the NATS connection is closed")
        case .timedOut(let last): throw BridgeError(.connect, "not connected to \(url): \(last)")
        }
    }
}
