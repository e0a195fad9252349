import Synchronization
import SpoolSystem
import SpoolWire

/// An HTTP/1.1 server on one epoll event-loop thread (the thread that calls `run`).
///
/// The public surface is thread-safe: `bind` before `run`, `shutdown` and `openConnections` from anywhere,
/// and handlers respond from any thread through a queue the loop drains after an eventfd wake-up.
public final class HTTPServer: Sendable {
    public let configuration: HTTPServerConfiguration
    let handler: any HTTPHandler
    let accessLog: (@Sendable (AccessLogEntry) -> Void)?

    struct Completion: Sendable {
        var connection: UInt64
        var sequence: UInt64
        var response: HTTPResponse
    }

    struct Shared: Sendable {
        var listeners: [FileDescriptor] = []
        var completions: [Completion] = []
        /// Set by `shutdown`: the grace period in nanoseconds.
        var shutdownGrace: Int64?
        var running = false
        var finished = false
    }

    let shared = Mutex(Shared())
    /// Coalesces wake-ups: only the first completion after a drain writes to the eventfd.
    let wakePending = Atomic<Bool>(false)
    let openCount = Atomic<Int>(0)
    /// Wakes the loop (nil if it could not be created; `run` then throws).
    let wakeupOrNil: Wakeup?
    var wakeup: Wakeup { wakeupOrNil! }
    /// Wraps each accepted socket: a plain `SocketStream`, or TLS over it (the server knows nothing of TLS).
    /// nil refuses the connection (a TLS session could not be set up): it is closed, never served in plain text.
    let makeStream: @Sendable (FileDescriptor) -> (any ByteStream)?

    public init(configuration: HTTPServerConfiguration = HTTPServerConfiguration(), handler: any HTTPHandler,
                accessLog: (@Sendable (AccessLogEntry) -> Void)? = nil,
                makeStream: @escaping @Sendable (FileDescriptor) -> (any ByteStream)? = { SocketStream($0) }) {
        self.configuration = configuration
        self.handler = handler
        self.accessLog = accessLog
        self.makeStream = makeStream
        self.wakeupOrNil = try? Wakeup()
    }

    deinit {
        for l in shared.withLock({ $0.listeners }) { try? l.close() }
    }

    /// Listens on `host:port` (numeric address or `localhost`; port 0 picks a free port) and returns the bound port.
    @discardableResult
    public func bind(host: String, port: UInt16) throws(Errno) -> UInt16 {
        guard let address = Socket.Address(host: host, port: port) else { throw Errno.invalidArgument }
        let fd = try Socket.listen(address, backlog: configuration.listenBacklog)
        let actual: UInt16
        do throws(Errno) { actual = try fd.localPort() } catch {
            try? fd.close()
            throw error
        }
        let accepted = shared.withLock { s -> Bool in
            guard !s.running && !s.finished else { return false }
            s.listeners.append(fd)
            return true
        }
        guard accepted else {
            try? fd.close()
            throw Errno.invalidArgument
        }
        return actual
    }

    /// Serves on a socket that is already listening (one passed by systemd's socket activation): made non-blocking
    /// and served like a bound one. Returns its port.
    @discardableResult
    public func adopt(listener fd: FileDescriptor) throws(Errno) -> UInt16 {
        try fd.setNonBlocking()
        let port = try fd.localPort()
        let accepted = shared.withLock { s -> Bool in
            guard !s.running && !s.finished else { return false }
            s.listeners.append(fd)
            return true
        }
        guard accepted else { throw Errno.invalidArgument }
        return port
    }

    /// Serves until `shutdown` (blocks the calling thread, which becomes the event loop). Call once.
    public func run() throws(Errno) {
        guard wakeupOrNil != nil else { throw Errno.tooManyOpenFiles }
        let listeners = try shared.withLock { s throws(Errno) -> [FileDescriptor] in
            guard !s.running && !s.finished else { throw Errno.invalidArgument }
            s.running = true
            return s.listeners
        }
        defer {
            shared.withLock { s in
                for l in s.listeners { try? l.close() }
                s.listeners = []
                s.running = false
                s.finished = true
            }
        }
        TerminationSignals.ignoreBrokenPipe()
        _ = try? Socket.raiseOpenFileLimit()
        let loop = try ServerLoop(server: self, listeners: listeners)
        defer { loop.close() }
        try loop.run()
    }

    /// Stops accepting, lets requests in flight finish for at most `grace`, closes idle connections; `run` then returns.
    public func shutdown(grace: Duration = .seconds(10)) {
        shared.withLock { s in
            if s.shutdownGrace == nil { s.shutdownGrace = max(0, grace.nanoseconds) }
        }
        wake(force: true)
    }

    /// Connections currently open (accepted and not yet closed).
    public var openConnections: Int { openCount.load(ordering: .relaxed) }

    /// Queues a handler's response for the loop; responses for connections that are gone (or duplicates) are dropped there.
    func complete(connection: UInt64, sequence: UInt64, response: HTTPResponse) {
        shared.withLock { $0.completions.append(Completion(connection: connection, sequence: sequence, response: response)) }
        wake(force: false)
    }

    func wake(force: Bool) {
        let already = wakePending.exchange(true, ordering: .acquiringAndReleasing)
        if already && !force { return }
        wakeup.signal()
    }
}
