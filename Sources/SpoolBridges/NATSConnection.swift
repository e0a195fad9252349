#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import SpoolSystem

/// Where and how to connect, and the time limits of the connection itself.
public struct NATSConnectionOptions: Sendable {
    public var endpoint: Endpoint
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

    public init(endpoint: Endpoint) { self.endpoint = endpoint }
}

/// One client connection to a NATS server, shared by all publisher threads of a process. A reader thread owns
/// the socket's life (handshake, reading, PING/PONG, reconnecting with backoff); publishers write under a lock
/// and wait for replies on a per-connection inbox (`_INBOX.<random>.<token>`), one token per request.
public final class NATSConnection: Sendable {
    public let options: NATSConnectionOptions
    let log: @Sendable (String) -> Void
    let inboxPrefix: String
    private let state = Mutex(State())
    private let writeLock = Mutex(())
    private let stopWake: Wakeup

    struct State {
        var fd: FileDescriptor?
        var info: NATSServerInfo?
        var waiters: [UInt64: ReplySlot] = [:]
        var nextToken: UInt64 = 1
        var started = false
        var closed = false
        var lastError = "not connected yet"
        var connects = 0
    }

    public init(options: NATSConnectionOptions, log: @escaping @Sendable (String) -> Void) throws {
        self.options = options
        self.log = log
        self.stopWake = try Wakeup()
        inboxPrefix = "_INBOX." + String(UInt64.random(in: 0...UInt64.max), radix: 36) + String(UInt64.random(in: 0...UInt64.max), radix: 36) + "."
    }

    var url: String { "nats://\(options.endpoint.authority(defaultPort: 0))" }

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
        let fd = state.withLock { st -> FileDescriptor? in st.closed = true; return st.fd }
        stopWake.signal()
        fd?.shutdownBoth()
        if !state.withLock({ $0.started }) { failWaiters("connection closed") }
    }

    public var isConnected: Bool { state.withLock { $0.fd != nil } }
    /// Completed handshakes so far (tests use it to see a reconnect happen).
    public var connectCount: Int { state.withLock { $0.connects } }
    public var serverInfo: NATSServerInfo? { state.withLock { $0.fd != nil ? $0.info : nil } }

    /// Why the connection is down ("" while connected).
    public var lastError: String { state.withLock { $0.fd != nil ? "" : $0.lastError } }

    /// Waits until connected, or `timeoutNanos` passes. True when connected.
    public func waitUntilConnected(timeoutNanos: Int64) -> Bool {
        let deadline = monotonicNanos() + timeoutNanos
        while true {
            let (connected, closed) = state.withLock { ($0.fd != nil, $0.closed) }
            if connected { return true }
            if closed || monotonicNanos() >= deadline { return false }
            usleep(5000)
        }
    }

    /// Publishes `payload` (with `headers` as HPUB) to `subject` with a reply inbox and waits for the one reply.
    /// A connection outage shorter than the timeout is waited out; the reply may arrive from the server,
    /// from a service (JetStream), or as a 503 "no responders" status.
    public func request(subject: String, headers: NATSHeaders?, payload: [UInt8], timeoutNanos: Int64) throws(BridgeError) -> NATSMessage {
        let deadline = monotonicNanos() + timeoutNanos
        var info: NATSServerInfo
        while true {
            let (i, closed, last) = state.withLock { ($0.fd != nil ? $0.info : nil, $0.closed, $0.lastError) }
            if closed { throw BridgeError(.connectionLost, "the NATS connection is closed") }
            if let i { info = i; break }
            if monotonicNanos() >= deadline { throw BridgeError(.connect, "not connected to \(url): \(last)") }
            usleep(5000)
        }
        let h = headers?.encoded() ?? []
        guard h.count + payload.count <= info.maxPayload else {
            throw BridgeError(.rejected, "message of \(h.count + payload.count) bytes exceeds the server's max_payload (\(info.maxPayload))", status: "too large")
        }
        let slot: ReplySlot
        do { slot = try ReplySlot() } catch { throw BridgeError(.connectionLost, "cannot wait for a reply: \(error)") }
        let token = state.withLock { st -> UInt64 in
            let t = st.nextToken
            st.nextToken += 1
            st.waiters[t] = slot
            return t
        }
        defer { _ = state.withLock { $0.waiters.removeValue(forKey: token) } }
        try write(NATSCommand.publish(subject: subject, replyTo: inboxPrefix + String(token), headers: headers, payload: payload))
        guard let r = slot.wait(until: deadline) else {
            throw BridgeError(.timeout, "no reply from \(url) on \(subject) within \(timeoutNanos / 1_000_000)ms")
        }
        return try r.get()
    }

    /// Writes one whole command. A failed or timed-out write leaves a partial command on the wire, so the
    /// connection is shut down (the reader thread then reconnects).
    private func write(_ bytes: [UInt8]) throws(BridgeError) {
        try writeLock.withLock { _ throws(BridgeError) in
            guard let fd = state.withLock({ $0.fd }) else { throw BridgeError(.connectionLost, "not connected to \(url)") }
            do { try fd.sendAll(bytes) } catch {
                fd.shutdownBoth()
                throw BridgeError(.connectionLost, "write to \(url) failed: \(error)")
            }
        }
    }

    // MARK: reader thread

    private func runLoop() {
        var delay = options.reconnectMinNanos
        var failuresInARow = 0
        while !state.withLock({ $0.closed }) {
            let fd: FileDescriptor, info: NATSServerInfo
            var parser = NATSParser()
            do { (fd, info) = try handshake(&parser) } catch {
                state.withLock { $0.lastError = error.message }
                if failuresInARow == 0 { log("nats: cannot connect to \(url): \(error.message); retrying") }
                failuresInARow += 1
                let jittered = delay / 2 + Int64.random(in: 0...max(1, delay / 2))
                _ = try? pollReadable([stopWake.fd], timeoutMillis: Int32(clamping: jittered / 1_000_000))
                delay = min(delay * 2, options.reconnectMaxNanos)
                continue
            }
            let closedMeanwhile = state.withLock { st -> Bool in
                if st.closed { return true }
                st.fd = fd; st.info = info; st.connects += 1; st.lastError = ""
                return false
            }
            if closedMeanwhile { try? fd.close(); break }
            log("nats: connected to \(url) (server \(info.version)\(failuresInARow > 0 ? ", after \(failuresInARow) failed attempts" : ""))")
            delay = options.reconnectMinNanos
            failuresInARow = 0
            let reason = readLoop(fd, &parser)
            fd.shutdownBoth()
            writeLock.withLock { _ in
                state.withLock { $0.fd = nil; $0.lastError = reason }
                try? fd.close()
            }
            failWaiters(reason)
            if !state.withLock({ $0.closed }) { log("nats: connection to \(url) lost: \(reason); reconnecting") }
        }
        failWaiters("connection closed")
    }

    private func failWaiters(_ reason: String) {
        let waiters = state.withLock { st -> [ReplySlot] in
            let w = Array(st.waiters.values)
            st.waiters.removeAll()
            return w
        }
        for w in waiters { w.fulfill(.failure(BridgeError(.connectionLost, "connection to \(url) lost before the reply: \(reason)"))) }
    }

    /// TCP connect, INFO, CONNECT + PING, PONG, SUB on our inbox: all within the connect timeout.
    private func handshake(_ parser: inout NATSParser) throws(BridgeError) -> (FileDescriptor, NATSServerInfo) {
        let ep = options.endpoint
        let deadline = monotonicNanos() + options.connectTimeoutNanos
        let addresses = Socket.resolve(host: ep.host, port: ep.port)
        guard !addresses.isEmpty else { throw BridgeError(.connect, "cannot resolve \(ep.host)") }
        var fd: FileDescriptor? = nil
        var lastError = ""
        for a in addresses {
            let left = max(1, (deadline - monotonicNanos()) / 1_000_000)
            do { fd = try Socket.connect(a, timeoutMillis: Int(left)); break } catch { lastError = "\(error)" }
        }
        guard let fd else { throw BridgeError(.connect, lastError) }
        do throws(BridgeError) {
            try? fd.setSendTimeout(milliseconds: Int(options.writeTimeoutNanos / 1_000_000))
            var info: NATSServerInfo? = nil
            var pending: [NATSEvent] = []
            while info == nil {
                pending += try readEvents(fd, &parser, deadline: deadline)
                while !pending.isEmpty, info == nil {
                    guard case .info(let i) = pending.removeFirst() else { throw BridgeError(.protocolViolation, "the server did not start with INFO") }
                    info = i
                }
            }
            guard var info else { throw BridgeError(.protocolViolation, "no INFO") }
            if info.tlsRequired { throw BridgeError(.connect, "the server requires TLS, which is not supported yet") }
            if !info.headers { throw BridgeError(.connect, "the server does not support headers (NATS 2.2 or later is needed)") }
            try send(fd, NATSCommand.connect(options.credentials) + NATSCommand.ping)
            var ponged = false
            while !ponged {
                if pending.isEmpty { pending = try readEvents(fd, &parser, deadline: deadline) }
                while !pending.isEmpty, !ponged {
                    switch pending.removeFirst() {
                    case .pong: ponged = true
                    case .ping: try send(fd, NATSCommand.pong)
                    case .info(let i): info = i
                    case .ok: break
                    case .err(let text): throw BridgeError(.connect, "the server refused the connection: \(text)")
                    case .message: throw BridgeError(.protocolViolation, "a message before any subscription")
                    }
                }
            }
            try send(fd, NATSCommand.sub(inboxPrefix + "*", sid: "1"))
            if !pending.isEmpty { throw BridgeError(.protocolViolation, "unexpected data after PONG") }
            return (fd, info)
        } catch {
            try? fd.close()
            throw error
        }
    }

    private func send(_ fd: FileDescriptor, _ bytes: [UInt8]) throws(BridgeError) {
        do { try fd.sendAll(bytes) } catch { throw BridgeError(.connectionLost, "write failed: \(error)") }
    }

    /// Reads until at least one event completes or the deadline passes.
    private func readEvents(_ fd: FileDescriptor, _ parser: inout NATSParser, deadline: Int64) throws(BridgeError) -> [NATSEvent] {
        var buf = [UInt8](repeating: 0, count: 16384)
        while true {
            if let f = parser.failure { throw BridgeError(.protocolViolation, "protocol error: \(f.message)") }
            let left = deadline - monotonicNanos()
            if left <= 0 { throw BridgeError(.timeout, "handshake with \(url) timed out") }
            let ready = (try? pollReadable([fd, stopWake.fd], timeoutMillis: Int32(clamping: (left + 999_999) / 1_000_000))) ?? [false, false]
            if ready[1] && state.withLock({ $0.closed }) { throw BridgeError(.connectionLost, "closed") }
            if !ready[0] { continue }
            let n: Int
            do { n = try buf.withUnsafeMutableBytes { try fd.recv(into: $0) } } catch { throw BridgeError(.connectionLost, "read failed: \(error)") }
            if n == 0 { throw BridgeError(.connectionLost, "the server closed the connection") }
            let events = parser.feed(buf[0..<n])
            if !events.isEmpty { return events }
        }
    }

    /// Reads and dispatches until the connection fails; returns why.
    private func readLoop(_ fd: FileDescriptor, _ parser: inout NATSParser) -> String {
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
            let wait = Int32(clamping: (options.pingIntervalNanos - sinceP + 999_999) / 1_000_000)
            let ready = (try? pollReadable([fd, stopWake.fd], timeoutMillis: wait)) ?? [false, false]
            if ready[1] { stopWake.drain(); continue }
            if !ready[0] { continue }
            let n: Int
            do { n = try buf.withUnsafeMutableBytes { try fd.recv(into: $0) } } catch { return "read failed: \(error)" }
            if n == 0 { return "the server closed the connection" }
            // Events completed before a violation are handled; then the connection ends.
            let events = parser.feed(buf[0..<n])
            for e in events {
                switch e {
                case .ping:
                    do { try write(NATSCommand.pong) } catch { return error.message }
                case .pong: outstanding = 0
                case .ok: break
                case .info(let i):
                    state.withLock { $0.info = i }
                    if i.lameDuck { log("nats: \(url) is entering lame duck mode (shutting down)") }
                case .err(let text):
                    log("nats: server error: \(logSafeText(text))")
                case .message(let m):
                    deliver(m)
                }
            }
            if let f = parser.failure { return "protocol error: \(f.message)" }
        }
    }

    private func deliver(_ m: NATSMessage) {
        guard m.subject.hasPrefix(inboxPrefix), let token = Digits.decimal(m.subject.utf8.dropFirst(inboxPrefix.utf8.count)) else { return }
        let slot = state.withLock { $0.waiters.removeValue(forKey: UInt64(token)) }
        slot?.fulfill(.success(m))
    }
}

/// Server text in our log: printable, one line, bounded.
func logSafeText(_ s: String) -> String {
    String(String.UnicodeScalarView(s.unicodeScalars.prefix(512).map { $0.value < 0x20 || $0.value == 0x7F ? "?" : $0 }))
}
