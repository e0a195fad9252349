#if canImport(Glibc)
import Glibc
#endif
import CSpoolShims
import SpoolBridges
import SpoolConsumer
import SpoolCore
import SpoolHTTP
import SpoolIngress
import SpoolSystem
import SpoolWire

extension CLI {
    /// Long-running commands (`serve`, `consume`).
    static let serviceCommands: [Command] = [serveCommand, consumeCommand]

    /// One timestamped line on stderr, written with a single write(2) so lines of threads never interleave.
    static func logger(_ console: Console, component: String) -> @Sendable (String) -> Void {
        let clock = SystemClock()
        return { line in console.writeErr(Array("\(RFC3339.format(nanos: clock.nowNanos())) \(component) \(line)\n".utf8)) }
    }

    static let consumeCommand = Command(
        name: "consume", summary: "process items with a handler command, or bridge them to NATS JetStream or HTTP",
        usage: """
        usage: spool consume (--exec CMD | --nats URL --subject SUBJECT | --post URL) [options]

        Claims items and hands each to exactly one sink:
          --exec CMD            run '/bin/sh -c CMD': stdin is the stored payload; the environment has
                                SPOOL_KEY, SPOOL_ATTEMPT, SPOOL_FILE, SPOOL_DIR, SPOOL_RECEIVED_AT (and
                                SPOOL_CONTENT_TYPE). Exit 0: done. Exit 65: failed at once (poison payload).
          --nats nats://HOST:PORT --subject SUBJECT
                                publish to NATS JetStream with Nats-Msg-Id = key (stored once per key within the
                                stream's duplicate window), Spool-Key and Spool-Received-At; done on a positive ack
            --nats-token T        token auth (default $SPOOL_NATS_TOKEN)
            --nats-user U         user/password auth (password default $SPOOL_NATS_PASSWORD)
            --nats-password P
            --nats-stream NAME    the stream that must store SUBJECT (checked before the first publish)
            --create-stream       create --nats-stream for SUBJECT if it does not exist
          --post http://HOST[:PORT]/PATH
                                POST the exact bytes with their Content-Type, X-Spool-Key, X-Spool-Attempt.
                                2xx: done. 408, 429, 5xx, timeout, connection error: retried (Retry-After is
                                honoured). Other 4xx and 3xx (redirects are not followed): failed. https:// is
                                not supported yet.
            --header 'Name: value'  extra request header; repeat for several
        Anything not done is retried after backoff and failed once --max-attempts attempts are used.

          --concurrency N       items in flight at once (default 1)
          --max-attempts N      attempts before failed/ (default 5 with --exec; 100 with --nats/--post, so
                                that hours of broker or endpoint outage do not dead-letter items)
          --backoff D           first retry delay, doubling with jitter (default 1s)
          --max-backoff D       longest retry delay (default 1h with --exec; 5m with --nats/--post)
          --timeout D           --exec: handler time limit, SIGTERM then SIGKILL 5s later (default 5m);
                                --nats/--post: limit of one attempt: connect, send, ack or response (default 10s)
          --grace D             on SIGTERM/SIGINT, time for running attempts to finish (default 30s)
          --poll-interval D     wake-up interval where inotify is unavailable (default 1s)
          --drain               exit 0 once no item is due and nothing runs
          --once                process at most one item; exit 3 if there was none
        Durations: 250ms, 30s, 15m, 24h, 7d. Any number of consumers may run on one spool.
        """,
        options: [.value("--exec"), .value("--nats"), .value("--subject"), .value("--nats-token"), .value("--nats-user"),
                  .value("--nats-password"), .value("--nats-stream"), .flag("--create-stream"), .value("--post"), .repeated("--header"),
                  .value("--concurrency"), .value("--max-attempts"), .value("--backoff"), .value("--max-backoff"),
                  .value("--timeout"), .value("--grace"), .value("--poll-interval"), .flag("--drain"), .flag("--once"), .flag("--no-inotify")],
        run: { args, ctx in
            guard args.positionals.isEmpty else { throw UsageError("unexpected argument \(args.positionals[0])") }
            let exec = args.value("--exec"), nats = args.value("--nats"), post = args.value("--post")
            let sinks = [exec, nats, post].compactMap { $0 }
            guard sinks.count == 1 else {
                throw UsageError(sinks.isEmpty ? "one of --exec CMD, --nats URL or --post URL is required"
                                               : "--exec, --nats and --post exclude each other; give exactly one")
            }
            if exec == "" { throw UsageError("--exec CMD is required") }
            let natsOnly = ["--subject", "--nats-token", "--nats-user", "--nats-password", "--nats-stream"]
            if nats == nil {
                for o in natsOnly where args.value(o) != nil { throw UsageError("\(o) needs --nats") }
                if args.flag("--create-stream") { throw UsageError("--create-stream needs --nats") }
            }
            if post == nil && !args.all("--header").isEmpty { throw UsageError("--header needs --post") }
            if args.flag("--drain") && args.flag("--once") { throw UsageError("--drain and --once exclude each other") }
            var config = ConsumerConfiguration()
            if let v = args.value("--concurrency") { config.concurrency = try Parse.unsigned(v, name: "--concurrency", max: 1024) }
            guard config.concurrency >= 1 else { throw UsageError("--concurrency must be at least 1") }
            var policy = RetryPolicy()
            if exec == nil {
                // A bridge's failures are mostly outages of the far side: keep retrying for hours, not seconds.
                policy.maxAttempts = 100
                policy.maxNanos = 300_000_000_000
            }
            if let v = args.value("--max-attempts") { policy.maxAttempts = try Parse.unsigned(v, name: "--max-attempts", max: 1_000_000) }
            guard policy.maxAttempts >= 1 else { throw UsageError("--max-attempts must be at least 1") }
            if let v = args.value("--backoff") { policy.baseNanos = try Parse.duration(v, name: "--backoff") }
            if let v = args.value("--max-backoff") { policy.maxNanos = try Parse.duration(v, name: "--max-backoff") }
            config.policy = policy
            let defaultTimeout: Int64 = exec != nil ? 300_000_000_000 : 10_000_000_000
            let timeout = try args.value("--timeout").map { try Parse.duration($0, name: "--timeout") } ?? defaultTimeout
            guard timeout > 0 else { throw UsageError("--timeout must be positive") }
            if let v = args.value("--grace") { config.graceNanos = try Parse.duration(v, name: "--grace") }
            if let v = args.value("--poll-interval") {
                config.pollIntervalNanos = max(1_000_000, try Parse.duration(v, name: "--poll-interval"))
            }
            config.useInotify = !args.flag("--no-inotify")
            config.mode = args.flag("--drain") ? .drain : args.flag("--once") ? .once : .forever

            let log = logger(ctx.console, component: "consume")
            // Sink configuration is checked before the spool is touched: a typo is a usage error (exit 64).
            let processor: any ItemProcessor
            var natsConnection: NATSConnection? = nil
            var sinkName = "exec"
            do {
                if let nats {
                    guard let subject = args.value("--subject"), !subject.isEmpty else { throw UsageError("--nats needs --subject SUBJECT") }
                    var options = NATSConnectionOptions(endpoint: try Endpoint.nats(nats))
                    let env = ctx.console.environment
                    // Token or user/password, never both; the environment only fills in what the flags leave open.
                    if args.value("--nats-token") != nil && args.value("--nats-user") != nil {
                        throw UsageError("--nats-token and --nats-user exclude each other")
                    }
                    if let user = args.value("--nats-user") {
                        options.credentials.user = user
                        options.credentials.password = args.value("--nats-password") ?? env["SPOOL_NATS_PASSWORD"]
                    } else if args.value("--nats-password") != nil {
                        throw UsageError("--nats-password needs --nats-user")
                    } else {
                        options.credentials.token = args.value("--nats-token") ?? env["SPOOL_NATS_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
                    }
                    options.connectTimeoutNanos = min(timeout, 5_000_000_000)
                    var js = JetStreamConfiguration(subject: subject)
                    js.stream = args.value("--nats-stream")
                    js.createStream = args.flag("--create-stream")
                    if js.createStream && js.stream == nil { throw UsageError("--create-stream needs --nats-stream NAME") }
                    js.timeoutNanos = timeout
                    try js.validate()
                    let connection = try NATSConnection(options: options, log: log)
                    processor = try JetStreamPublisher(connection: connection, configuration: js)
                    natsConnection = connection
                    sinkName = "nats \(nats) subject \(subject)"
                } else if let post {
                    var fwd = try HTTPForwardConfiguration(url: post, headers: args.all("--header"))
                    fwd.timeoutNanos = timeout
                    processor = HTTPForwarder(configuration: fwd)
                    sinkName = "post \(post)"
                } else {
                    processor = ExecProcessor(command: exec!, spoolDir: ctx.dir, timeoutNanos: timeout, environment: ctx.console.environment, log: log)
                }
            } catch let error as BridgeError {
                if error.kind == .configuration { throw UsageError(error.message) }
                throw CommandFailure(message: error.message)
            }

            let spool = try ctx.openSpool()
            let consumer = try Consumer(spool: spool, processor: processor, configuration: config, log: log)
            let stop = try Wakeup()
            guard spool_install_termination_pipe(stop.fd.rawValue) == 0 else { throw CommandFailure(message: "cannot install signal handlers") }
            natsConnection?.start()
            defer { natsConnection?.close() }
            log("started on \(ctx.dir) (\(sinkName), concurrency \(config.concurrency), pid \(FS.processID))")
            let result = consumer.run(stopFD: stop.fd)
            log("stopped: \(result.processed) attempts, \(result.done) done, \(result.retried) retried, \(result.failed) failed, \(result.released) released")
            if config.mode == .once && result.processed == 0 { return 3 }
            return 0
        })

    static let serveCommand = Command(
        name: "serve", summary: "receive webhooks over HTTP into the spool",
        usage: """
        usage: spool serve [--listen HOST:PORT] [--path PATH] [--key-path DOTTED.PATH]... [--key-header NAME]
                           [--token-file FILE] [--max-body BYTES] [--max-connections N] [--flush auto|fsync|syncfs]

        Accepts POST PATH, takes the key from the body (JSON at movie.project, then project; form data by
        field name) or from --key-header, stores the exact bytes durably and only then answers
        200 {"status":"accepted"|"duplicate","key":"..."}. GET /healthz and GET /metrics (Prometheus).

          --listen HOST:PORT    address to listen on (default 127.0.0.1:8080; port 0 picks a free one)
          --path PATH           webhook path (default /json2video/done)
          --key-path P          dotted JSON path of the key; repeat to try several in order
          --key-header NAME     take the key from this request header instead (e.g. webhook-id)
          --token-file FILE     require this token (?token= or Authorization: Bearer); default $SPOOL_TOKEN
          --max-body BYTES      largest body accepted (default 1048576)
          --max-connections N   connections held at once (default 10000)
          --flush MODE          how a batch is made durable. fsync: flush each file, then each directory;
                                syncfs: one flush of the whole file system after the data and one after the
                                names (far faster on most disks, but it also flushes everything else on that
                                file system); auto (default): per batch, whichever has measured cheaper
                                lately (syncfs only on Linux 5.8+, where it reports write errors)
        Prints one line 'listening on http://HOST:PORT spool DIR' once ready. SIGTERM/SIGINT: stop
        accepting, finish requests in flight (at most 10s), exit 0.
        """,
        options: [.value("--listen"), .value("--path"), .repeated("--key-path"), .value("--key-header"), .value("--token-file"),
                  .value("--max-body"), .value("--max-connections"), .value("--flush")],
        run: { args, ctx in
            guard args.positionals.isEmpty else { throw UsageError("unexpected argument \(args.positionals[0])") }
            let listen = args.value("--listen") ?? "127.0.0.1:8080"
            guard let colon = listen.lastIndex(of: ":") else { throw UsageError("--listen takes HOST:PORT") }
            let host = String(listen[..<colon])
            let port = try Parse.unsigned(String(listen[listen.index(after: colon)...]), name: "--listen port", max: 65535)
            guard !host.isEmpty else { throw UsageError("--listen takes HOST:PORT") }
            var ingress = IngressConfiguration()
            if let p = args.value("--path") {
                guard p.hasPrefix("/"), !p.contains("?"), !p.contains(" ") else { throw UsageError("--path must start with / and hold no query") }
                ingress.path = p
            }
            if !args.all("--key-path").isEmpty {
                for p in args.all("--key-path") where p.isEmpty || p.split(separator: ".", omittingEmptySubsequences: false).contains(where: \.isEmpty) {
                    throw UsageError("--key-path '\(p)' is not a dotted path")
                }
                ingress.keyPaths = args.all("--key-path")
            }
            ingress.keyHeader = args.value("--key-header")
            if let v = ctx.console.environment["SPOOL_COMMITTERS"], let n = Int(v), (1...16).contains(n) { ingress.committers = n }
            if let f = args.value("--token-file") {
                do {
                    let bytes = try FileDescriptor.open(f, [.readOnly]).closeAfter { try $0.readAll(limit: 4096) }
                    var t = String(decoding: bytes, as: UTF8.self)
                    while t.last == "\n" || t.last == "\r" || t.last == " " { t.removeLast() }
                    guard !t.isEmpty else { throw CommandFailure(message: "token file \(f) is empty") }
                    ingress.token = t
                } catch let e as CommandFailure { throw e } catch { throw CommandFailure(message: "cannot read token file \(f): \(error)") }
            } else if let t = ctx.console.environment["SPOOL_TOKEN"], !t.isEmpty {
                ingress.token = t
            }
            var http = HTTPServerConfiguration()
            if let v = args.value("--max-body") { http.maxBody = try Parse.unsigned(v, name: "--max-body", max: 1 << 30) }
            if let v = args.value("--max-connections") { http.maxConnections = max(1, try Parse.unsigned(v, name: "--max-connections", max: 1_000_000)) }

            var flush = FlushMode.auto
            if let f = args.value("--flush") {
                guard let m = FlushMode(rawValue: f) else { throw UsageError("--flush takes auto, fsync or syncfs") }
                flush = m
            }
            let spool = try ctx.openSpool(flush: flush)
            let log = logger(ctx.console, component: "serve")
            let report = spool.recover()
            for line in report.lines { log("recover: \(line)") }
            let handler: IngressHandler
            do { handler = try IngressHandler(spool: spool, configuration: ingress) } catch { throw CommandFailure(message: "\(error)") }
            let console = ctx.console
            let server = HTTPServer(configuration: http, handler: handler, accessLog: { e in
                handler.record(e)
                let line = "\(RFC3339.format(nanos: e.timeNanos)) \(logSafe(e.remote)) \(logSafe(e.method)) \(logSafe(e.path)) \(e.status) key=\(e.logKey.map { logSafe($0) } ?? "-") \(String(format3(e.durationMilliseconds)))ms rid=\(e.requestID.map { logSafe($0) } ?? "-")\n"
                console.writeErr(Array(line.utf8))
            })
            handler.setConnectionGauge { server.openConnections }
            let bound: UInt16
            do { bound = try server.bind(host: host, port: UInt16(port)) } catch {
                throw CommandFailure(message: "cannot listen on \(listen): \(error)")
            }
            let stop = try Wakeup()
            guard spool_install_termination_pipe(stop.fd.rawValue) == 0 else { throw CommandFailure(message: "cannot install signal handlers") }
            startThread {
                // Every 30 s, finish enqueues that were linked but not moved into new/ (a publish that failed).
                while true {
                    guard let ready = try? pollReadable([stop.fd], timeoutMillis: 30_000) else { usleep(1_000_000); continue }
                    if ready[0] { break }
                    for line in spool.recoverInterruptedWrites().lines { log("recover: \(line)") }
                }
                log("stop requested: finishing requests in flight (at most 10s)")
                server.shutdown(grace: .seconds(10))
            }
            ctx.console.out("listening on http://\(host.contains(":") ? "[\(host)]" : host):\(bound) spool \(ctx.dir)")
            do { try server.run() } catch { throw CommandFailure(message: "server failed: \(error)") }
            handler.stop()
            log("stopped")
            return 0
        })
}

/// Milliseconds with three decimals, without Foundation's formatters.
func format3(_ v: Double) -> String {
    let micros = Int((v * 1000).rounded())
    let ms = micros / 1000, frac = micros % 1000
    return "\(ms)." + String(repeating: "0", count: 3 - String(frac).count) + String(frac)
}
