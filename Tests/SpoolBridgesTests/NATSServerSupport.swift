import Foundation
import Synchronization
import Testing
import SpoolWire
import SpoolConsumer
import SpoolCore
import SpoolSystem
import SpoolTLS
import SpoolTestSupport
@testable import SpoolBridges

/// The `nats-server` binary, if installed (Debian package `nats-server`; `.ci/run` installs it).
/// `$NATS_SERVER` overrides the search (`NATS_SERVER=none` shows what happens without it).
let natsServerPath: String? = {
    if let e = ProcessInfo.processInfo.environment["NATS_SERVER"], !e.isEmpty {
        return FileManager.default.isExecutableFile(atPath: e) ? e : nil
    }
    for p in ["/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server"] where FileManager.default.isExecutableFile(atPath: p) {
        return p
    }
    return nil
}()

/// True when the live JetStream tests can run; otherwise they are reported as skipped, loudly.
let natsAvailable: Bool = {
    if natsServerPath == nil {
        let line = "\n**** SKIPPED: JetStream bridge tests need nats-server (apt-get install nats-server); they did NOT run ****\n\n"
        FileHandle.standardError.write(Data(line.utf8))
    }
    return natsServerPath != nil
}()

/// A real `nats-server -js` on a loopback port with its own store directory; stopped (or killed) by its pid.
final class NATSServerProcess: @unchecked Sendable {
    // @unchecked: `process` is replaced only by start/restart, which the owning test calls from one thread.
    let port: UInt16
    let storeDir: String
    let logPath: String
    /// More `nats-server` flags (TLS: `--tlscert ...`), kept for restarts.
    let extra: [String]
    /// What test clients (`connectedClient`, `streamCount`) present when the server requires TLS.
    let clientTLS: TLSClientProfile?
    /// Without JetStream the server answers every stream request with "no responders", as a server cut off from
    /// its cluster's stream does.
    let jetstream: Bool
    private var process: Child?

    init(extra: [String] = [], clientTLS: TLSClientProfile? = nil, jetstream: Bool = true) throws {
        self.extra = extra
        self.jetstream = jetstream
        self.clientTLS = clientTLS
        port = try freePort()
        let base = makeTempDir("nats")
        storeDir = base + "/js"
        logPath = base + "/nats.log"
        try start()
    }

    var url: String { "nats://127.0.0.1:\(port)" }
    var endpoint: Endpoint { Endpoint(host: "127.0.0.1", port: port, defaultPort: 4222) }
    var pid: Int32 { process?.pid ?? -1 }

    /// Starts the server (again, on the same port and store) and waits until it accepts connections.
    func start() throws {
        process = try Child(natsServerPath!, (jetstream ? ["-js"] : []) + ["-a", "127.0.0.1", "-p", "\(port)", "-sd", storeDir, "-l", logPath] + extra)
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if let fd = try? Socket.connect(Socket.Address(host: "127.0.0.1", port: port)!) {
                try? fd.close()
                return
            }
            usleep(20_000)
        }
        throw BridgeError(.connect, "nats-server did not start on port \(port); log: \(logPath)")
    }

    /// SIGTERM (graceful) or SIGKILL, then reaps the process.
    func stop(signal: Int32 = SIGTERM) {
        guard let p = process else { return }
        p.signal(signal)
        p.wait()
        process = nil
    }

    deinit { stop(signal: SIGKILL) }
}

/// A connection for tests, connected before returning.
func connectedClient(_ server: NATSServerProcess, log: @escaping @Sendable (String) -> Void = { _ in }) throws -> NATSConnection {
    var o = NATSConnectionOptions(endpoint: server.endpoint)
    o.tls = server.clientTLS
    o.reconnectMinNanos = 20_000_000
    o.reconnectMaxNanos = 200_000_000
    let c = try NATSConnection(options: o, log: log)
    c.start()
    guard c.waitUntilConnected(timeoutNanos: 5_000_000_000) else { throw BridgeError(.connect, "test client did not connect") }
    return c
}

/// A started connection (fast reconnects for tests) and a publisher to `subject` that creates `stream`.
func startedPublisher(endpoint: Endpoint, tls: TLSClientProfile?, subject: String, stream: String, log: LogLines,
                      timeout: Int64 = 5_000_000_000, connectTimeout: Int64 = 1_000_000_000) throws -> (NATSConnection, JetStreamPublisher) {
    var o = NATSConnectionOptions(endpoint: endpoint)
    o.tls = tls
    o.reconnectMinNanos = 20_000_000
    o.reconnectMaxNanos = 200_000_000
    o.connectTimeoutNanos = connectTimeout
    let c = try NATSConnection(options: o, log: log.log)
    var js = JetStreamConfiguration(subject: subject)
    js.stream = stream
    js.createStream = true
    js.timeoutNanos = timeout
    let p = try JetStreamPublisher(connection: c, configuration: js)
    c.start()
    return (c, p)
}

/// Messages in `stream`, asked with our own client (`$JS.API.STREAM.INFO`, state.messages).
func streamCount(_ server: NATSServerProcess, _ stream: String) throws -> Int64 {
    let c = try connectedClient(server)
    defer { c.close() }
    return try JetStreamPublisher.streamMessageCount(c, stream: stream)
}

/// One stored message read back through `$JS.API.STREAM.MSG.GET` (headers and payload are base64 in the reply).
struct StoredMessage {
    var subject: String
    var headers: NATSHeaders?
    var payload: [UInt8]
}

func storedMessage(_ c: NATSConnection, stream: String, seq: Int) throws -> StoredMessage {
    let r = try c.request(subject: "$JS.API.STREAM.MSG.GET.\(stream)", headers: nil, payload: Array("{\"seq\":\(seq)}".utf8), timeoutNanos: 5_000_000_000)
    let v = try JetStreamAPI.json(r, what: "msg get")
    let m = try #require(v["message"])
    let data = try #require(Data(base64Encoded: m["data"]?.stringValue ?? ""))
    var headers: NATSHeaders? = nil
    if let h = m["hdrs"]?.stringValue, let raw = Data(base64Encoded: h) { headers = try NATSHeaders.parse(Array(raw)[...]) }
    return StoredMessage(subject: m["subject"]?.stringValue ?? "", headers: headers, payload: Array(data))
}

/// A deterministic payload per key, so every stored message can be checked byte for byte.
func payload(for key: String) -> [UInt8] {
    var out = Array("{\"project\":\"\(key)\",\"bytes\":\"".utf8)
    var x: UInt32 = 2166136261
    for b in key.utf8 { x = (x ^ UInt32(b)) &* 16777619 }
    for _ in 0..<(64 + Int(x % 200)) { x = x &* 1103515245 &+ 12345; out.append(UInt8(0x21 + (x >> 16) % 90)) }
    out += Array("\"}\r\n".utf8) + [0x00, 0xFF]
    return out
}

/// Fills a fresh spool with `count` items `prefix0`… in one group commit, with a content type.
func filledSpool(_ tag: String, prefix: String, count: Int) throws -> Spool {
    let spool = try Spool(path: makeTempDir(tag) + "/spool")
    let requests = try (0..<count).map { i in
        EnqueueRequest(key: try SpoolKey("\(prefix)\(i)"), payload: payload(for: "\(prefix)\(i)"), headers: [("content-type", "application/json")])
    }
    for r in spool.enqueueBatch(requests) { _ = try r.get() }
    return spool
}

/// Collects consumer log lines (for assertions and for failure messages).
final class LogLines: Sendable {
    private let lines = Mutex<[String]>([])
    /// One entry per line: a consumer logs a batch's lines in one call.
    var log: @Sendable (String) -> Void { { [self] l in lines.withLock { $0 += l.split(separator: "\n").map(String.init) } } }
    var all: [String] { lines.withLock { $0 } }
    func count(_ fragment: String) -> Int { all.filter { $0.contains(fragment) }.count }
}
