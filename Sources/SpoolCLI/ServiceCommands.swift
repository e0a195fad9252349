import SpoolBridges
import SpoolConsumer
import SpoolConfig
import SpoolCore
import SpoolHTTP
import SpoolIngress
import SpoolReconcile
import SpoolSignatures
import SpoolSystem
import SpoolTLS
import SpoolWire

extension CLI {
    /// Long-running commands (`serve`, `consume`).
    static let serviceCommands: [Command] = [serveCommand, consumeCommand, pullCommand, reconcileCommand, uiCommand]

    /// The command's log function (`--log-format`, `--log-level`: `LogSettings`): each call is one write(2), so
    /// lines of threads never interleave.
    static func logger(_ ctx: Context, component: String) -> @Sendable (String) -> Void {
        ctx.logging.logger(ctx.console, component: component)
    }

    static let consumeCommand = Command(
        name: "consume", summary: "process items with a handler command, or bridge them to NATS JetStream or HTTP",
        synopsis: "(--exec CMD | --nats nats://HOST:PORT --subject SUBJECT | --post http://HOST[:PORT]/PATH)",
        description: """
        Claims items and hands each to exactly one sink: a handler command (--exec), NATS JetStream (--nats)
        or an HTTP endpoint (--post). Anything not done is retried after backoff and failed once
        --max-attempts attempts are used. Durations: 250ms, 30s, 15m, 24h, 7d. Any number of consumers may
        run on one spool.
        """,
        groups: [
            OptionGroup("sinks (give exactly one)", [
                .value("--exec", "CMD", help: """
                    run '/bin/sh -c CMD': stdin is the stored payload; the environment has
                    SPOOL_KEY, SPOOL_ATTEMPT, SPOOL_FILE, SPOOL_DIR, SPOOL_RECEIVED_AT (and
                    SPOOL_CONTENT_TYPE). Exit 0: done. Exit 65: failed at once (poison payload).
                    """),
                .value("--nats", "URL[,URL...]", help: """
                    nats://HOST:PORT (several, comma-separated: a cluster, tried in random order);
                    publish to NATS JetStream with Nats-Msg-Id = key (stored once per key within the
                    stream's duplicate window), Spool-Key and Spool-Received-At; done on a positive ack.
                    tls://HOST:PORT for TLS (also used when the server requires it)
                    """),
                .value("--post", "http[s]://HOST[:PORT]/PATH", help: """
                    POST the exact bytes with their Content-Type, X-Spool-Key, X-Spool-Attempt.
                    2xx: done. 408, 429, 5xx, timeout, connection error: retried (Retry-After is
                    honoured). Other 4xx and 3xx (redirects are not followed): failed. https://
                    verifies the server's certificate and host name (a failure is a retried attempt)
                    """),
            ]),
            OptionGroup("with --nats", [
                .value("--subject", "SUBJECT", help: "the subject to publish to (required)"),
                .value("--nats-token", "T", default: "$SPOOL_NATS_TOKEN", help: "token auth"),
                .value("--nats-token-file", "FILE", help: "token auth, the token read from FILE (not readable by others)"),
                .value("--nats-nkey", "FILE", help: "NKEY auth: a user seed (SU...) in FILE, not readable by others"),
                .value("--nats-creds", "FILE", help: "JWT auth: a .creds file (user JWT + NKEY seed), not readable by others"),
                .flag("--nats-no-discover", help: "use only the --nats servers, not the cluster peers they announce"),
                .value("--nats-user", "U", help: "user/password auth"),
                .value("--nats-password", "P", default: "$SPOOL_NATS_PASSWORD", help: "the password for --nats-user"),
                .value("--nats-password-file", "FILE", help: "the password for --nats-user, read from FILE (not readable by others)"),
                .value("--nats-stream", "NAME", help: "the stream that must store SUBJECT (checked before the first publish)"),
                .flag("--create-stream", help: "create --nats-stream for SUBJECT if it does not exist"),
            ]),
            OptionGroup("with --post", [
                .repeated("--header", "'Name: value'", help: "extra request header; repeat for several"),
            ]),
            OptionGroup("TLS (with --post https://, or --nats)", [
                .value("--ca-file", "FILE", default: "the system's roots", help: "trust only the CAs in this PEM file"),
                .value("--client-cert", "FILE", help: "PEM certificate chain to present (mutual TLS)"),
                .value("--client-key", "FILE", help: "its PEM private key (not readable by others)"),
            ]),
        ],
        options: [
            .value("--config", "FILE", help: """
                take the queue's settings from its [queue.NAME] table in this file (exec or
                post, concurrency, max_attempts, backoff, max_backoff, rate, delay, retain_done,
                keep_keys, on_failed); flags
                given here override them. Default $SPOOL_CONFIG
                """),
            .value("--concurrency", "N", default: "1", help: "items in flight at once"),
            .value("--rate", "N/s|N/m|N/h", help: """
                start at most N attempts per second, minute or hour, across every consumer
                process of the queue on this machine (shared through the spool directory)
                """),
            .value("--delay", "D", default: "0s", help: "start an item's first attempt no earlier than its arrival plus D"),
            .value("--retain-done", "D", default: "keep them", help: """
                purge done items of the queue once they finished more than D ago, continuously
                (at most every min(D/10, 1m)); their keys go with them unless --keep-keys
                """),
            .value("--keep-keys", "D", default: "as long as the item", help: """
                with --retain-done: a purged item's key stays a duplicate until D after the item
                finished (a small file in keys/), so a late redelivery is not delivered again
                """),
            .value("--on-failed", "CMD", help: """
                run /bin/sh -c CMD once for each item this consumer moves to failed/: payload on
                stdin; SPOOL_KEY, SPOOL_QUEUE, SPOOL_ATTEMPTS, SPOOL_LAST_STATUS, SPOOL_LAST_ERROR,
                SPOOL_FILE; output to stderr; at most 60s. Its failure is logged and changes nothing
                """),
            .value("--max-attempts", "N", default: """
                enough for the retries to span 24h even at the shortest jitter: 60 with --exec
                (1s doubling to 1h), 585 with --nats/--post (1s doubling to 5m); with another
                --backoff or --max-backoff, as many as 24h takes with it
                """, help: "attempts before failed/"),
            .value("--backoff", "D", default: "1s", help: "first retry delay, doubling with jitter"),
            .value("--max-backoff", "D", default: "1h with --exec; 5m with --nats/--post", help: "longest retry delay"),
            .value("--timeout", "D", default: "5m with --exec; 10s with --nats/--post", help: """
                --exec: handler time limit, SIGTERM then SIGKILL 5s later;
                --nats/--post: limit of one attempt: connect, send, ack or response
                """),
            .value("--grace", "D", default: "30s", help: "on SIGTERM/SIGINT, time for running attempts to finish"),
            .value("--poll-interval", "D", default: "1s", help: "wake-up interval where inotify is unavailable or with --no-inotify"),
            .flag("--no-inotify", help: """
                poll new/ every --poll-interval instead of watching it with inotify; for file
                systems where inotify does not work (some network file systems)
                """),
            .flag("--drain", help: """
                exit 0 once no item is due and nothing runs; an item whose retry is not due yet
                stays in new/ for a later run (ls shows when: "retry in 0.4s")
                """),
            .flag("--once", help: "process at most one item; exit 3 if there was none"),
            .value("--metrics-listen", "HOST:PORT", help: """
                serve Prometheus metrics at http://HOST:PORT/metrics (and /healthz): attempts by
                outcome, their duration, attempts in flight, the queue's items per state and
                the age of its oldest waiting item (docs/operations.md, "Metrics and alerts")
                """),
        ] + LogSettings.options,
        environment: [
            EnvironmentVariable("SPOOL_NATS_TOKEN", "--nats token when neither --nats-token nor --nats-user is given"),
            EnvironmentVariable("SPOOL_NATS_PASSWORD", "the password for --nats-user when --nats-password is not given"),
            EnvironmentVariable("SPOOL_LIBSSL", "the libssl.so.3 to load for TLS (default: the system's)"),
            EnvironmentVariable("SPOOL_CONFIG", "the configuration file when --config is not given"),
        ],
        examples: [
            ("spool consume --exec ./handler.sh --concurrency 4", "run ./handler.sh for each item, four at a time"),
            ("spool consume --post https://api.example.com/hook --retain-done 7d --keep-keys 30d",
             "forward each item; purge delivered ones after a week, remember their keys for a month"),
            ("spool consume --queue billing --config /etc/spool/spool.toml", "the [queue.billing] table's settings"),
        ],
        run: { given, ctx in
            let ctx = try ctx.withLogging(given)
            let args = try withQueueSettings(given, ctx)
            let sink = try parseSink(args)
            let (config, timeout) = try parseConsumerConfiguration(args, sink: sink)
            let log = logger(ctx, component: "consume")
            // Sink configuration is checked before the spool is touched: a typo is a usage error (exit 64).
            let prepared = try makeProcessor(args, ctx, sink: sink, timeout: timeout, maxAttempts: config.policy.maxAttempts, log: log)
            if args.value("--on-failed") == "" { throw UsageError("--on-failed CMD needs a command") }
            let metrics = try args.value("--metrics-listen").map { v throws(UsageError) in try parseListen(v) }
            return try runConsumer(ctx, sink: prepared, config: config, onFailed: args.value("--on-failed"), metricsListen: metrics, log: log)
        })

    /// `consume`'s arguments with the settings of its queue's `[queue.NAME]` table (from `--config` or `$SPOOL_CONFIG`)
    /// filled in where the command line gave none: the command line overrides the file, and a sink given here
    /// replaces the file's.
    static func withQueueSettings(_ args: ParsedArguments, _ ctx: Context) throws -> ParsedArguments {
        guard let path = configPath(args, ctx) else { return args }
        let config = try loadConfiguration(path)
        guard let q = config.queue(ctx.queue) else { return args }
        var out = args
        if ["--exec", "--nats", "--post"].allSatisfy({ args.value($0) == nil }) {
            if let e = q.exec { out.values["--exec"] = [e] }
            if let p = q.post { out.values["--post"] = [p] }
        }
        func fill(_ flag: String, _ value: String?) { if args.value(flag) == nil, let value { out.values[flag] = [value] } }
        fill("--concurrency", q.concurrency.map(String.init))
        fill("--max-attempts", q.maxAttempts.map(String.init))
        fill("--backoff", q.backoff)
        fill("--max-backoff", q.maxBackoff)
        fill("--rate", q.rate)
        fill("--delay", q.delay)
        fill("--retain-done", q.retainDone)
        fill("--keep-keys", q.keepKeys)
        fill("--on-failed", q.onFailed)
        return out
    }

    /// Where `consume` hands items: exactly one of `--exec`, `--nats`, `--post`.
    enum Sink {
        case exec(String), nats(String), post(String)
        var isExec: Bool { if case .exec = self { true } else { false } }
    }

    /// The sink, and the options that belong to a sink other than the chosen one (usage errors).
    static func parseSink(_ args: ParsedArguments) throws(UsageError) -> Sink {
        guard args.positionals.isEmpty else { throw UsageError("unexpected argument \(args.positionals[0])") }
        let exec = args.value("--exec"), nats = args.value("--nats"), post = args.value("--post")
        let sinks = [exec, nats, post].compactMap { $0 }
        guard sinks.count == 1 else {
            throw UsageError(sinks.isEmpty ? "one of --exec CMD, --nats URL or --post URL is required"
                                           : "--exec, --nats and --post exclude each other; give exactly one")
        }
        if exec == "" { throw UsageError("--exec CMD is required") }
        let natsOnly = ["--subject", "--nats-token", "--nats-token-file", "--nats-user", "--nats-password", "--nats-password-file",
                        "--nats-stream", "--nats-nkey", "--nats-creds"]
        if nats == nil {
            for o in natsOnly where args.value(o) != nil { throw UsageError("\(o) needs --nats") }
            if args.flag("--create-stream") { throw UsageError("--create-stream needs --nats") }
            if args.flag("--nats-no-discover") { throw UsageError("--nats-no-discover needs --nats") }
        }
        if post == nil && !args.all("--header").isEmpty { throw UsageError("--header needs --post") }
        if (args.value("--client-cert") == nil) != (args.value("--client-key") == nil) {
            throw UsageError("--client-cert and --client-key go together")
        }
        let secureSink = nats != nil || post.map { $0.lowercased().hasPrefix("https://") } == true
        if !secureSink {
            for o in ["--ca-file", "--client-cert", "--client-key"] where args.value(o) != nil {
                throw UsageError("\(o) needs --post https:// or --nats")
            }
        }
        if let exec { return .exec(exec) }
        if let nats { return .nats(nats) }
        return .post(post!)
    }

    /// The consumer's loop settings, and the time limit of one attempt.
    static func parseConsumerConfiguration(_ args: ParsedArguments, sink: Sink) throws(UsageError) -> (config: ConsumerConfiguration, timeoutNanos: Int64) {
        if args.flag("--drain") && args.flag("--once") { throw UsageError("--drain and --once exclude each other") }
        var config = ConsumerConfiguration()
        if let v = args.value("--concurrency") { config.concurrency = try Parse.unsigned(v, name: "--concurrency", max: 1024) }
        guard config.concurrency >= 1 else { throw UsageError("--concurrency must be at least 1") }
        config.policy = try retryPolicy(args, sink: sink)
        let defaultTimeout: Int64 = sink.isExec ? 300_000_000_000 : 10_000_000_000
        let timeout = try args.value("--timeout").map { v throws(UsageError) in try Parse.duration(v, name: "--timeout") } ?? defaultTimeout
        guard timeout > 0 else { throw UsageError("--timeout must be positive") }
        if let v = args.value("--grace") { config.graceNanos = try Parse.duration(v, name: "--grace") }
        if let v = args.value("--poll-interval") {
            config.pollIntervalNanos = max(1_000_000, try Parse.duration(v, name: "--poll-interval"))
        }
        config.useInotify = !args.flag("--no-inotify")
        config.mode = args.flag("--drain") ? .drain : args.flag("--once") ? .once : .forever
        if let v = args.value("--delay") { config.delayNanos = try Parse.duration(v, name: "--delay") }
        if let v = args.value("--retain-done") {
            config.retainDoneNanos = try Parse.duration(v, name: "--retain-done")
            guard config.retainDoneNanos! > 0 else { throw UsageError("--retain-done must be positive") }
        }
        if let v = args.value("--keep-keys") {
            guard let retain = config.retainDoneNanos else { throw UsageError("--keep-keys needs --retain-done") }
            let keep = try Parse.duration(v, name: "--keep-keys")
            guard keep >= retain else { throw UsageError("--keep-keys must be at least --retain-done (a key is kept at least as long as its item)") }
            config.keepKeysNanos = keep
        }
        if let v = args.value("--rate") {
            guard let r = PaceRate(v) else { throw UsageError("--rate: expected attempts per second, minute or hour, such as 10/s, 600/m or 5/h (1 to 1000000), got '\(logSafe(v))'") }
            config.pace = r
        }
        return (config, timeout)
    }

    static func retryPolicy(_ args: ParsedArguments, sink: Sink) throws(UsageError) -> RetryPolicy {
        var policy = RetryPolicy()
        // A bridge's failures are mostly outages of the far side: its retries come back sooner (at most 5 minutes apart).
        if !sink.isExec { policy.maxNanos = 300_000_000_000 }
        if let v = args.value("--backoff") { policy.baseNanos = try Parse.duration(v, name: "--backoff") }
        if let v = args.value("--max-backoff") { policy.maxNanos = try Parse.duration(v, name: "--max-backoff") }
        if let v = args.value("--max-attempts") {
            policy.maxAttempts = try Parse.unsigned(v, name: "--max-attempts", max: 1_000_000)
        } else {
            // The default: enough attempts that the retries span 24 hours, with this backoff (docs/consumers.md).
            policy.maxAttempts = policy.attempts(spanning: RetryPolicy.defaultSpanNanos)
        }
        guard policy.maxAttempts >= 1 else { throw UsageError("--max-attempts must be at least 1") }
        return policy
    }

    /// The processor behind the sink, with the NATS connection to start and close (if any) and a name for the log.
    struct PreparedSink {
        let processor: any ItemProcessor
        var natsConnection: NATSConnection? = nil
        let name: String
    }

    /// A bridge's configuration error is a usage error (exit 64); its other errors are runtime failures.
    static func makeProcessor(_ args: ParsedArguments, _ ctx: Context, sink: Sink, timeout: Int64, maxAttempts: Int,
                              log: @escaping @Sendable (String) -> Void) throws -> PreparedSink {
        do {
            switch sink {
            case .nats(let url):
                return try makeNATSPublisher(args, env: ctx.console.environment, url: url, timeout: timeout, log: log)
            case .post(let url):
                var fwd = try HTTPForwardConfiguration(url: url, headers: args.all("--header"))
                fwd.timeoutNanos = timeout
                if fwd.endpoint.secure { fwd.tls = try TLSSetup.clientProfile(args, env: ctx.console.environment, alpn: ["http/1.1"]) }
                return PreparedSink(processor: HTTPForwarder(configuration: fwd), name: "post \(url)")
            case .exec(let command):
                let exec = ExecProcessor(command: command, spoolDir: ctx.dir, timeoutNanos: timeout, maxAttempts: maxAttempts,
                                         environment: ctx.console.environment, log: log)
                return PreparedSink(processor: exec, name: "exec")
            }
        } catch let error as BridgeError {
            if error.kind == .configuration { throw UsageError(error.message) }
            throw CommandFailure(message: error.message)
        }
    }

    static func makeNATSPublisher(_ args: ParsedArguments, env: [String: String], url: String, timeout: Int64,
                                  log: @escaping @Sendable (String) -> Void) throws -> PreparedSink {
        guard let subject = args.value("--subject"), !subject.isEmpty else { throw UsageError("--nats needs --subject SUBJECT") }
        let options = try natsOptions(args, env: env, urls: url, timeout: timeout)
        var js = JetStreamConfiguration(subject: subject)
        js.stream = args.value("--nats-stream")
        js.createStream = args.flag("--create-stream")
        if js.createStream && js.stream == nil { throw UsageError("--create-stream needs --nats-stream NAME") }
        js.timeoutNanos = timeout
        try js.validate()
        let connection = try NATSConnection(options: options, log: log)
        let publisher = try JetStreamPublisher(connection: connection, configuration: js)
        return PreparedSink(processor: publisher, natsConnection: connection, name: "nats \(url) subject \(subject)")
    }

    /// `--nats URL[,URL...]` with its authentication and TLS options, as `consume --nats` and `pull` take them.
    static func natsOptions(_ args: ParsedArguments, env: [String: String], urls url: String, timeout: Int64) throws -> NATSConnectionOptions {
        let urls = url.split(separator: ",", omittingEmptySubsequences: false).map { String($0.drop(while: { $0 == " " })) }
        guard !urls.contains(where: { $0.isEmpty }), urls.count <= 32 else { throw UsageError("--nats takes URL[,URL...] (at most 32)") }
        var servers: [Endpoint] = []
        for u in urls { servers.append(try Endpoint.nats(u)) }
        var options = NATSConnectionOptions(servers: servers)
        options.discover = !args.flag("--nats-no-discover")
        try setNATSCredentials(&options, args, env: env)
        // TLS is known to be needed with tls:// or TLS flags; a nats:// server may still require it (its INFO
        // says so), and then the system's roots are used, with OpenSSL loaded at that moment.
        if servers.contains(where: \.secure) || args.value("--ca-file") != nil || args.value("--client-cert") != nil {
            options.tls = try TLSSetup.clientProfile(args, env: env, alpn: [])
        }
        options.connectTimeoutNanos = min(timeout, 5_000_000_000)
        return options
    }

    /// The `--key-path` values (nil when none is given), each a dotted path of non-empty members (`serve`, `enqueue`).
    static func keyPaths(_ args: ParsedArguments) throws(UsageError) -> [String]? {
        let paths = args.all("--key-path")
        if paths.isEmpty { return nil }
        for p in paths where p.isEmpty || p.split(separator: ".", omittingEmptySubsequences: false).contains(where: \.isEmpty) {
            throw UsageError("--key-path '\(p)' is not a dotted path")
        }
        return paths
    }

    /// Token or user/password, never both; the environment only fills in what the flags leave open.
    static func setNATSCredentials(_ options: inout NATSConnectionOptions, _ args: ParsedArguments, env: [String: String]) throws {
        let ways = ["--nats-token", "--nats-token-file", "--nats-user", "--nats-nkey", "--nats-creds"].filter { args.value($0) != nil }
        if ways.count > 1 { throw UsageError("\(ways.joined(separator: " and ")) exclude each other") }
        // Seeds come from files whose mode is checked; the text is wiped once parsed (the seed itself stays in
        // memory for the connection's life: every reconnect signs a new nonce).
        if let f = args.value("--nats-nkey") {
            var text = try SecretFile.read(f, what: "NKEY seed file", limit: 4096)
            defer { for i in text.indices { text[i] = 0 } }
            do throws(BridgeError) { options.credentials.nkey = try NKeySeed(text: String(decoding: text, as: UTF8.self)) } catch {
                throw CommandFailure(message: "\(f): \(error.message)")
            }
            return
        }
        if let f = args.value("--nats-creds") {
            var text = try SecretFile.read(f, what: "creds file", limit: 65536)
            defer { for i in text.indices { text[i] = 0 } }
            do throws(BridgeError) {
                let creds = try NATSCredentials(text: String(decoding: text, as: UTF8.self))
                options.credentials.nkey = creds.seed
                options.credentials.jwt = creds.jwt
            } catch { throw CommandFailure(message: "\(f): \(error.message)") }
            return
        }
        if let user = args.value("--nats-user") {
            // An empty value is a mistake (an unset variable in a unit file), not a credential: say so, or, from the
            // environment, treat it as absent, as SPOOL_NATS_TOKEN is.
            guard !user.isEmpty else { throw UsageError("--nats-user is empty") }
            if args.value("--nats-password") == "" { throw UsageError("--nats-password is empty") }
            if args.value("--nats-password") != nil && args.value("--nats-password-file") != nil {
                throw UsageError("--nats-password and --nats-password-file exclude each other")
            }
            options.credentials.user = user
            if let f = args.value("--nats-password-file") {
                options.credentials.password = try SecretFile.readLine(f, what: "NATS password file")
            } else {
                options.credentials.password = args.value("--nats-password") ?? env["SPOOL_NATS_PASSWORD"].flatMap { $0.isEmpty ? nil : $0 }
            }
        } else if let flag = ["--nats-password", "--nats-password-file"].first(where: { args.value($0) != nil }) {
            throw UsageError("\(flag) needs --nats-user")
        } else if let f = args.value("--nats-token-file") {
            options.credentials.token = try SecretFile.readLine(f, what: "NATS token file")
        } else {
            if args.value("--nats-token") == "" { throw UsageError("--nats-token is empty") }
            options.credentials.token = args.value("--nats-token") ?? env["SPOOL_NATS_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
        }
    }

    /// Opens the spool and runs the consumer until it stops (SIGTERM/SIGINT, or `--drain`/`--once`).
    static func runConsumer(_ ctx: Context, sink: PreparedSink, config: ConsumerConfiguration, onFailed: String? = nil,
                            metricsListen: ListenAddress? = nil, log: @escaping @Sendable (String) -> Void) throws -> Int32 {
        let spool = try ctx.openSpool()
        var config = config
        var stopMetrics: (@Sendable () -> Void)?
        defer { stopMetrics?() }
        if let metricsListen {
            let m = ConsumerMetrics()
            config.metrics = m
            let sinkName = sink.name
            let endpoint = try MetricsEndpoint.start(metricsListen, render: {
                m.render(queue: spool.queue, sink: sinkName, stats: try? spool.stats(), paused: spool.pausedNow(), nowNanos: spool.now())
            }, ctx: ctx)
            stopMetrics = endpoint.stop
            log("metrics on http://\(hostText(metricsListen.host)):\(endpoint.port)/metrics")
        }
        var hook: FailureHook?
        if let command = onFailed {
            do throws(Errno) {
                hook = try FailureHook(command: command, spoolDir: ctx.dir, environment: ctx.console.environment, log: log)
            } catch { throw CommandFailure(message: "cannot prepare --on-failed: \(error)") }
            config.onFailed = { [hook] item in hook?.notify(item) }
        }
        let notifier = SystemdNotifier(environment: ctx.console.environment)
        config.onReady = { [notifier] in
            notifier?.send("READY=1\nSTATUS=consuming queue \(ctx.queue) of \(ctx.dir)")
            notifier?.startWatchdog()
        }
        config.onStopping = { [notifier] in notifier?.send("STOPPING=1\nSTATUS=stopping: finishing running attempts") }
        defer { notifier?.stopWatchdog() }
        let consumer = try Consumer(spool: spool, processor: sink.processor, configuration: config, log: log)
        let stop = try Wakeup()
        do throws(Errno) { try TerminationSignals.deliver(to: stop) } catch { throw CommandFailure(message: "cannot install signal handlers: \(error)") }
        let natsConnection = sink.natsConnection
        natsConnection?.start()
        defer { natsConnection?.close() }
        if let publisher = sink.processor as? JetStreamPublisher {
            do throws(BridgeError) { try publisher.checkAtStart() } catch where error.kind == .notFound {
                throw CommandFailure(message: error.message)
            } catch {
                log("nats: cannot check the stream at start (\(error.message)); it is checked again before the first publish")
            }
        }
        log("started on \(ctx.dir) (queue \(ctx.queue), \(sink.name), concurrency \(config.concurrency), pid \(FS.processID))")
        try acknowledgeHangups("consume", stop: stop, log: log)
        let result = consumer.run(stopFD: stop.fd)
        hook?.finish(deadlineNanos: config.graceNanos)
        log("stopped: \(result.processed) attempts, \(result.done) done, \(result.retried) retried, \(result.failed) failed, \(result.released) released"
            + (result.pacedWaits > 0 ? ", \(result.pacedWaits) waited for the rate" : ""))
        if let fatal = consumer.fatalError { throw CommandFailure(message: fatal) }
        if config.mode == .once && result.processed == 0 { return 3 }
        return 0
    }

    static let serveCommand = Command(
        name: "serve", summary: "receive webhooks over HTTP into the spool",
        description: """
        Accepts POST PATH, takes the key from the body (JSON at movie.project, then project; form data by
        field name) or from --key-header, stores the exact bytes durably and only then answers
        200 {"status":"accepted"|"duplicate","key":"..."}. With --verify, a webhook must carry a valid
        signature first (401 otherwise; nothing of it is stored). GET /healthz and GET /metrics (Prometheus).
        Prints one line 'listening on http://HOST:PORT spool DIR' (https:// with --tls-cert) once ready.
        SIGTERM/SIGINT: stop accepting, finish requests in flight (at most 10s), exit 0. SIGHUP: read the
        TLS certificate and key again (a pair that fails to load is logged and the old one kept).
        """,
        options: [
            .value("--config", "FILE", help: """
                serve the routes of this configuration file (docs/configuration.md): each
                [[route]] its path, key, token and signature, and fan-out into its queues by
                their match conditions (none taking it: the queue unrouted). Not with
                --path, --key-path, --key-header, --token-file, --verify, --secret-file,
                --tolerance; its listen unless --listen is given. Default $SPOOL_CONFIG
                """),
            .value("--listen", "HOST:PORT", default: "127.0.0.1:8080", help: "address to listen on; port 0 picks a free one"),
            .value("--path", "PATH", default: "/json2video/done", help: "webhook path"),
            .repeated("--key-path", "DOTTED.PATH", default: "movie.project, then project",
                      help: "dotted JSON path of the key; repeat to try several in order"),
            .value("--key-header", "NAME", help: "take the key from this request header instead (e.g. webhook-id)"),
            .value("--token-file", "FILE", help: "require the token in FILE (?token= or Authorization: Bearer); without\nthis option, $SPOOL_TOKEN if set"),
            .value("--verify", "KIND", help: """
                require the sender's HMAC-SHA256 signature: standard-webhooks (webhook-id,
                webhook-timestamp, webhook-signature, or Svix's svix-*), github
                (X-Hub-Signature-256) or stripe (Stripe-Signature). The key then defaults to
                the webhook-id (else svix-id) header, the X-GitHub-Delivery header, or the
                body's id. Missing or wrong: 401; a malformed signature header: 400.
                Combines with --token-file (both must pass)
                """),
            .value("--secret-file", "FILE", help: """
                the signing secrets for --verify, one a line (any one verifies: put the new
                secret next to the old one to rotate); not readable by others. Standard
                Webhooks: whsec_ and base64; GitHub and Stripe: exactly as the provider shows it
                """),
            .value("--tolerance", "D", default: "5m", help: "how far a signed timestamp may be from now, either way\n(not with github: it signs no timestamp)"),
            .value("--metrics-listen", "HOST:PORT", help: """
                serve /metrics and /healthz on this address instead (plain HTTP, no token);
                the webhook port then answers 404 for /metrics. Without it, /metrics on the
                webhook port needs the token when one is set (/healthz stays open: it says
                only "ok")
                """),
            .value("--tls-cert", "FILE", help: "serve HTTPS with this PEM certificate chain (leaf first)"),
            .value("--tls-key", "FILE", help: "the certificate's PEM private key (not readable by others)"),
            .value("--max-body", "BYTES", default: "1048576", help: "largest body accepted"),
            .value("--max-connections", "N", default: "10000", help: "connections held at once"),
            .value("--flush", "auto|fsync|syncfs", default: "auto", help: """
                how a batch is made durable. fsync: flush each file, then each directory;
                syncfs: one flush of the whole file system after the data and one after the
                names (far faster on most disks, but it also flushes everything else on that
                file system); auto: per batch, whichever has measured cheaper lately
                (syncfs only on Linux 5.8+, where it reports write errors)
                """),
        ] + serveReconcileOptions() + LogSettings.options + [LogSettings.accessLogOption, LogSettings.trustedProxyOption],
        environment: [
            EnvironmentVariable("SPOOL_TOKEN", "the token to require when --token-file is not given"),
            EnvironmentVariable("SPOOL_CONFIG", "the configuration file when --config is not given"),
            EnvironmentVariable("SPOOL_COMMITTERS", "threads making batches durable, a whole number from 1 to 16 (default 2)"),
            EnvironmentVariable("SPOOL_LIBSSL", "the libssl.so.3 to load for --tls-cert (default: the system's)"),
        ],
        examples: [
            ("spool serve --token-file /etc/spool/token", "accept webhooks on 127.0.0.1:8080 that carry the token"),
            ("spool serve --listen 0.0.0.0:8443 --tls-cert cert.pem --tls-key key.pem --verify standard-webhooks --secret-file whsec",
             "HTTPS, accepting only webhooks signed the Standard Webhooks way"),
        ],
        run: { args, ctx in
            let ctx = try ctx.withLogging(args, accessLog: true, trustedProxy: true)
            guard args.positionals.isEmpty else { throw UsageError("unexpected argument \(args.positionals[0])") }
            let (built, config) = try serveIngress(args, ctx)
            var ingress = built
            let listen = try parseListen(args.value("--listen") ?? config?.listen ?? "127.0.0.1:8080")
            let http = try httpConfiguration(args)
            let flush = try flushMode(args)
            let tls = try serverCertificate(args, env: ctx.console.environment)
            let metrics = try args.value("--metrics-listen").map { v throws(UsageError) in try parseListen(v) }
            ingress.metricsOnWebhookPort = metrics == nil
            let reconcile = try serveReconcileSetup(args, env: ctx.console.environment)
            return try startServer(ctx, listen: listen, ingress: ingress, http: http, flush: flush, tls: tls, metrics: metrics,
                                   reconcile: reconcile, reloadIngress: { try serveIngress(args, ctx).0 })
        })

    /// serve's routes with their tokens and secrets read (modes checked), from `--config` or the flags: at start,
    /// and again at each SIGHUP (rotated secrets, an edited configuration file).
    static func serveIngress(_ args: ParsedArguments, _ ctx: Context) throws -> (IngressConfiguration, Configuration?) {
        let config = try configPath(args, ctx).map { try loadConfiguration($0) }
        let verify = try parseVerify(args)
        var ingress = try ingressConfiguration(args, env: ctx.console.environment, verify: verify)
        if let config, !config.routes.isEmpty {
            let perRoute = ["--path", "--key-path", "--key-header", "--token-file", "--verify", "--secret-file", "--tolerance"]
            if let clash = perRoute.first(where: { !args.all($0).isEmpty }) {
                throw UsageError("\(clash) is a route's setting: with --config, routes come from the file")
            }
            ingress.routes = try routes(config)
        } else {
            ingress.token = try readToken(args, env: ctx.console.environment)
            ingress.signature = try readSignatureVerifier(verify)
        }
        return (ingress, config)
    }

    /// The ingress routes of a configuration file: each route's token and secrets read (modes checked) before
    /// anything listens, its queues with the match conditions of their `[queue.NAME]` tables.
    static func routes(_ config: Configuration) throws -> [IngressRoute] {
        try config.routes.map { r in
            var route = IngressRoute(path: r.path)
            if let k = r.keyPaths { route.keyPaths = k }
            route.keyHeader = r.keyHeader
            route.token = try r.tokenFile.map { try SecretFile.readLine($0, what: "token file of route \(r.path)") }
            if let v = r.verify, let file = r.secretFile, let scheme = SignatureScheme(rawValue: v) {
                let options = VerifyOptions(scheme: scheme, secretFile: file, toleranceSeconds: Int64(r.toleranceSeconds ?? 300))
                route.signature = try readSignatureVerifier(options)
                // As with --verify: without a key rule, the key is where that sender puts its delivery id.
                if r.keyPaths == nil && r.keyHeader == nil {
                    switch scheme {
                    case .standardWebhooks: route.keyHeader = StandardWebhooksHeaders.id; route.keyHeaderAlias = StandardWebhooksHeaders.svixID
                    case .github: route.keyHeader = GitHubHeaders.delivery
                    case .stripe: route.keyPaths = ["id"]
                    }
                }
            }
            route.queues = r.queues.map { RouteQueue(name: $0, match: config.queue($0)?.match ?? []) }
            return route
        }
    }

    /// `--listen HOST:PORT` (an IPv6 host without brackets: the port follows the last colon).
    struct ListenAddress {
        let text: String
        let host: String
        let port: UInt16
    }

    static func parseListen(_ listen: String) throws(UsageError) -> ListenAddress {
        guard let colon = listen.lastIndex(of: ":") else { throw UsageError("--listen takes HOST:PORT") }
        var host = String(listen[..<colon])
        // `[::1]:8080`, as in URLs: the brackets are not part of the address.
        if host.hasPrefix("[") && host.hasSuffix("]") && host.count > 2 { host = String(host.dropFirst().dropLast()) }
        let port = try Parse.unsigned(String(listen[listen.index(after: colon)...]), name: "--listen port", max: 65535)
        guard !host.isEmpty else { throw UsageError("--listen takes HOST:PORT") }
        return ListenAddress(text: listen, host: host, port: UInt16(port))
    }

    /// Path, key source and committer threads (`SPOOL_COMMITTERS`, strictly 1 to 16); the token is read separately.
    /// With `--verify` and neither `--key-path` nor `--key-header`, the key is where that sender puts its
    /// delivery id.
    static func ingressConfiguration(_ args: ParsedArguments, env: [String: String], verify: VerifyOptions? = nil) throws(UsageError) -> IngressConfiguration {
        var ingress = IngressConfiguration()
        if let p = args.value("--path") {
            guard p.hasPrefix("/"), !p.contains("?"), !p.contains(" ") else { throw UsageError("--path must start with / and hold no query") }
            ingress.path = p
        }
        if let paths = try keyPaths(args) { ingress.keyPaths = paths }
        ingress.keyHeader = args.value("--key-header")
        if let verify, args.all("--key-path").isEmpty, ingress.keyHeader == nil {
            switch verify.scheme {
            case .standardWebhooks:
                ingress.keyHeader = StandardWebhooksHeaders.id
                ingress.keyHeaderAlias = StandardWebhooksHeaders.svixID
            case .github: ingress.keyHeader = GitHubHeaders.delivery
            case .stripe: ingress.keyPaths = ["id"]
            }
        }
        if let n = try Parse.environment(env, "SPOOL_COMMITTERS", in: 1...16) { ingress.committers = n }
        return ingress
    }

    /// `--verify KIND --secret-file FILE [--tolerance D]`, checked together before anything is read.
    struct VerifyOptions {
        let scheme: SignatureScheme
        let secretFile: String
        let toleranceSeconds: Int64
    }

    static func parseVerify(_ args: ParsedArguments) throws(UsageError) -> VerifyOptions? {
        let kind = args.value("--verify"), file = args.value("--secret-file"), tolerance = args.value("--tolerance")
        guard let kind else {
            if file != nil { throw UsageError("--secret-file needs --verify KIND") }
            if tolerance != nil { throw UsageError("--tolerance needs --verify KIND") }
            return nil
        }
        guard let scheme = SignatureScheme(rawValue: kind) else {
            throw UsageError("--verify takes standard-webhooks, github or stripe, got '\(logSafe(kind, maxScalars: 64))'")
        }
        guard let file, !file.isEmpty else { throw UsageError("--verify needs --secret-file FILE") }
        var seconds: Int64 = 300
        if let tolerance {
            guard scheme.signsTimestamp else { throw UsageError("--tolerance does not apply to --verify github (GitHub signs no timestamp)") }
            let nanos = try Parse.duration(tolerance, name: "--tolerance")
            guard nanos >= 1_000_000_000 else { throw UsageError("--tolerance must be at least 1s (signed timestamps are whole seconds)") }
            seconds = nanos / 1_000_000_000
        }
        return VerifyOptions(scheme: scheme, secretFile: file, toleranceSeconds: seconds)
    }

    /// At most this many secrets: each one costs an HMAC per request (rotation needs two).
    static let maxSecrets = 16

    /// The secrets of `--secret-file`, one a line (surrounding blanks and CR ignored, blank lines skipped), each
    /// turned into its HMAC key. The file's mode is checked as the token file's; a secret never appears in a message.
    static func readSignatureVerifier(_ options: VerifyOptions?) throws(CommandFailure) -> SignatureVerifier? {
        guard let options else { return nil }
        let path = options.secretFile
        let bytes = try SecretFile.read(path, what: "secret file", limit: 65536)
        var keys: [[UInt8]] = []
        for (n, line) in bytes.split(separator: 0x0A, omittingEmptySubsequences: false).enumerated() {
            let blank: (UInt8) -> Bool = { $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }
            guard let first = line.firstIndex(where: { !blank($0) }), let last = line.lastIndex(where: { !blank($0) }) else { continue }
            let text = String(decoding: line[first...last], as: UTF8.self)
            do throws(SignatureScheme.SecretError) { keys.append(try options.scheme.key(fromSecret: text)) } catch {
                throw CommandFailure(message: "secret file \(path) line \(n + 1) \(error)")
            }
        }
        guard !keys.isEmpty else { throw CommandFailure(message: "secret file \(path) holds no secret (one a line)") }
        guard keys.count <= maxSecrets else { throw CommandFailure(message: "secret file \(path) holds \(keys.count) secrets; at most \(maxSecrets)") }
        return SignatureVerifier(scheme: options.scheme, keys: keys, toleranceSeconds: options.toleranceSeconds)
    }

    /// `--tls-cert` and `--tls-key`: OpenSSL loaded and the pair checked before anything listens.
    static func serverCertificate(_ args: ParsedArguments, env: [String: String]) throws -> TLSServerCertificate? {
        let cert = args.value("--tls-cert"), key = args.value("--tls-key")
        guard cert != nil || key != nil else { return nil }
        guard let cert, let key else { throw UsageError("--tls-cert and --tls-key go together") }
        try TLSSetup.loadLibrary(env: env)
        try SecretFile.checkMode(key, what: "--tls-key")
        do throws(TLSError) { return try TLSServerCertificate(certificateChainFile: cert, privateKeyFile: key) } catch {
            throw CommandFailure(message: "TLS: \(error)")
        }
    }

    /// The token webhooks must carry: the first line of `--token-file`, else `$SPOOL_TOKEN`, else none.
    static func readToken(_ args: ParsedArguments, env: [String: String]) throws -> String? {
        guard let f = args.value("--token-file") else { return env["SPOOL_TOKEN"].flatMap { $0.isEmpty ? nil : $0 } }
        return try SecretFile.readLine(f, what: "token file")
    }

    static func httpConfiguration(_ args: ParsedArguments) throws(UsageError) -> HTTPServerConfiguration {
        var http = HTTPServerConfiguration()
        if let v = args.value("--max-body") { http.maxBody = try Parse.unsigned(v, name: "--max-body", max: 1 << 30) }
        if let v = args.value("--max-connections") { http.maxConnections = max(1, try Parse.unsigned(v, name: "--max-connections", max: 1_000_000)) }
        return http
    }

    static func flushMode(_ args: ParsedArguments) throws(UsageError) -> FlushMode {
        guard let f = args.value("--flush") else { return .auto }
        guard let m = FlushMode(rawValue: f) else { throw UsageError("--flush takes auto, fsync or syncfs") }
        return m
    }

    /// 127.0.0.0/8, ::1 and localhost: addresses only this machine reaches.
    static func isLoopback(_ host: String) -> Bool {
        host.hasPrefix("127.") || host == "::1" || host == "[::1]" || host == "localhost"
    }

    /// True when some webhook path takes requests without a token or a signature.
    static func acceptsAnyone(_ ingress: IngressConfiguration) -> Bool {
        if ingress.routes.isEmpty { return ingress.token == nil && ingress.signature == nil }
        return ingress.routes.contains { $0.token == nil && $0.signature == nil }
    }

    /// Opens the spool, binds, and serves until SIGTERM/SIGINT.
    static func startServer(_ ctx: Context, listen: ListenAddress, ingress: IngressConfiguration,
                            http: HTTPServerConfiguration, flush: FlushMode, tls: TLSServerCertificate?,
                            metrics: ListenAddress? = nil,
                            reconcile: (JSON2VideoClient, ReconcileConfiguration)? = nil,
                            reloadIngress: (@Sendable () throws -> IngressConfiguration)? = nil) throws -> Int32 {
        let spool = try ctx.openSpool(create: true, flush: flush)
        let log = logger(ctx, component: "serve")
        let report = spool.recover()
        for line in report.lines { log("recover: \(line)") }
        let handler = try IngressHandler(spool: spool, configuration: ingress)
        // Starting is not refused (the file system may become writable, and /healthz says 503 meanwhile), but said.
        if !spool.probeWritable() {
            log("warning: cannot write to the spool directory \(ctx.dir): every webhook is answered 503 until it is writable")
        }
        if let v = ingress.signature {
            let tolerance = v.scheme.signsTimestamp ? ", tolerance \(v.toleranceSeconds)s" : ""
            log("verifying \(v.scheme.rawValue) signatures with \(v.keyCount) secret\(v.keyCount == 1 ? "" : "s")\(tolerance)")
        }
        let server = makeHTTPServer(http, handler: handler, ctx: ctx, tls: tls)
        // Sockets passed by systemd (spool-serve.socket) replace --listen and --metrics-listen: a restart then refuses
        // no connection, the kernel keeps them in the backlog meanwhile.
        let passed = try activatedSockets(ctx.console.environment)
        let bound: UInt16
        var listenText = "\(hostText(listen.host)):\(listen.port)"
        do {
            if let fd = passed.webhook {
                bound = try server.adopt(listener: fd)
                listenText = "\(fd.localName()) (socket from systemd)"
            } else {
                bound = try server.bind(host: listen.host, port: listen.port)
                listenText = "\(hostText(listen.host)):\(bound)"
            }
        } catch {
            throw CommandFailure(message: "cannot listen on \(listen.text): \(error)")
        }
        if passed.webhook == nil && !isLoopback(listen.host) && acceptsAnyone(ingress) {
            log("warning: listening on \(listenText) without a token or --verify\(ingress.routes.isEmpty ? "" : " on some route"): anyone who can reach it can enqueue webhooks (--token-file, --verify, or a route's token_file)")
        }
        var probes: (server: HTTPServer, port: UInt16)? = nil
        if metrics != nil || passed.metrics != nil {
            let p = HTTPServer(handler: handler.probeHandler, accessLog: accessLog(handler, ctx))
            do {
                if let fd = passed.metrics { probes = (p, try p.adopt(listener: fd)) }
                else if let metrics { probes = (p, try p.bind(host: metrics.host, port: metrics.port)) }
            } catch {
                throw CommandFailure(message: "cannot listen on \(metrics?.text ?? "the metrics socket"): \(error)")
            }
        }
        let stop = try Wakeup()
        do throws(Errno) { try TerminationSignals.deliver(to: stop) } catch { throw CommandFailure(message: "cannot install signal handlers: \(error)") }
        let notifier = SystemdNotifier(environment: ctx.console.environment)
        startMaintenance(spool: spool, servers: [server] + (probes.map { [$0.server] } ?? []), stop: stop, notifier: notifier, log: log)
        try startReloader(tls, console: ctx.console, log: log) {
            // Tokens, secrets and routes: all read again, or (any failure) none of them; the error never shows a secret.
            guard let reloadIngress else { return }
            do {
                let fresh = try reloadIngress()
                handler.reload(fresh)
                log("SIGHUP: routes, tokens and secrets reloaded (\(handler.routePaths.map { logSafe($0) }.joined(separator: ", ")))")
            } catch let e as UsageError {
                log("error: SIGHUP: reload failed, keeping the previous routes, tokens and secrets: \(e.message)")
            } catch let e as CommandFailure {
                log("error: SIGHUP: reload failed, keeping the previous routes, tokens and secrets: \(e.message)")
            } catch {
                log("error: SIGHUP: reload failed, keeping the previous routes, tokens and secrets: \(error)")
            }
        }
        let probesDone = try? Wakeup()
        if let probes {
            startThread {
                do { try probes.server.run() } catch { log("metrics server failed: \(error)") }
                probesDone?.signal()
            }
        }
        if let reconcile { startServeReconcile(reconcile, spool: spool, handler: handler, ctx: ctx) }
        _ = bound
        ctx.console.out("listening on \(tls == nil ? "http" : "https")://\(listenText) spool \(ctx.dir)")
        if let probes { ctx.console.out("metrics on http://\(metrics.map { "\(hostText($0.host)):\(probes.port)" } ?? "\(probes.port) (socket from systemd)")") }
        notifier?.send("READY=1\nSTATUS=listening on \(listenText)")
        notifier?.startWatchdog()
        defer { notifier?.stopWatchdog() }
        do { try server.run() } catch { throw CommandFailure(message: "server failed: \(error)") }
        if probes != nil, let probesDone { _ = try? pollReadable([probesDone.fd], timeoutMillis: 15_000) }
        handler.stop()
        log("stopped")
        return 0
    }

    /// The sockets systemd passed (socket activation): named `webhook` and `metrics` (`FileDescriptorName=`), or a
    /// single unnamed one, the webhook socket. Anything else is a configuration error.
    static func activatedSockets(_ env: [String: String]) throws -> (webhook: FileDescriptor?, metrics: FileDescriptor?) {
        let fds: [(name: String?, fd: FileDescriptor)]
        do throws(Systemd.ListenError) { fds = try Systemd.takeListenFDs(environment: env) } catch {
            throw CommandFailure(message: "\(error)")
        }
        if fds.isEmpty { return (nil, nil) }
        if fds.count == 1 && (fds[0].name == nil || fds[0].name == "webhook") { return (fds[0].fd, nil) }
        var webhook: FileDescriptor?, metrics: FileDescriptor?
        for (name, fd) in fds {
            switch name {
            case "webhook" where webhook == nil: webhook = fd
            case "metrics" where metrics == nil: metrics = fd
            default: throw CommandFailure(message: "systemd passed a socket named '\(logSafe(name ?? ""))': name them webhook and metrics (FileDescriptorName=)")
            }
        }
        guard webhook != nil else { throw CommandFailure(message: "systemd passed no socket named webhook") }
        return (webhook, metrics)
    }

    /// The HTTP server with the ingress behind it and one access-log line per request on stderr.
    static func makeHTTPServer(_ http: HTTPServerConfiguration, handler: IngressHandler, ctx: Context,
                               tls: TLSServerCertificate? = nil) -> HTTPServer {
        // With TLS each accepted socket gets a session of the certificate current at accept time; a session
        // that cannot be made closes the connection (never plain text on the TLS port).
        let makeStream: @Sendable (FileDescriptor) -> (any ByteStream)?
        if let tls {
            makeStream = { fd in
                do throws(TLSError) { return try TLSStream(descriptor: fd, server: tls.current) } catch { return nil }
            }
        } else {
            makeStream = { fd in SocketStream(fd) }
        }
        let server = HTTPServer(configuration: http, handler: handler, accessLog: accessLog(handler, ctx), makeStream: makeStream)
        handler.setConnectionGauge { server.openConnections }
        return server
    }

    /// One line per request on stderr, and the request counted in the ingress's metrics.
    static func accessLog(_ handler: IngressHandler, _ ctx: Context) -> @Sendable (AccessLogEntry) -> Void {
        ctx.logging.accessLogger(ctx.console, component: "serve", webhooks: true, record: { handler.record($0) })
    }

    /// A host as it appears in a URL (IPv6 in brackets).
    static func hostText(_ host: String) -> String { host.contains(":") ? "[\(host)]" : host }

    /// SIGHUP reads the certificate and key again, for connections accepted from then on; a pair that does not
    /// load is reported and the old one kept. Without TLS, SIGHUP is logged and ignored (never a stop).
    static func startReloader(_ tls: TLSServerCertificate?, console: Console, log: @escaping @Sendable (String) -> Void,
                              also: @escaping @Sendable () -> Void = {}) throws {
        let hup = try Wakeup()
        do throws(Errno) { try HangUpSignal.deliver(to: hup) } catch { throw CommandFailure(message: "cannot install signal handlers: \(error)") }
        startThread {
            while true {
                guard (try? pollReadable([hup.fd], timeoutMillis: -1))?.first == true else { continue }
                hup.drain()
                also()
                guard let tls else { continue }
                do throws(TLSError) {
                    let serial = try tls.reload()
                    log("SIGHUP: TLS certificate reloaded (serial \(serial))")
                } catch {
                    log("error: TLS reload failed, still serving the previous certificate: \(error)")
                }
            }
        }
    }

    /// SIGHUP for a command with nothing it can reload safely while running (consume, pull, reconcile, ui): logged
    /// with what to do instead, never the default action (which killed the process and left its item claimed). The
    /// thread ends once `stop` is readable.
    static func acknowledgeHangups(_ command: String, stop: Wakeup, log: @escaping @Sendable (String) -> Void) throws {
        let hup = try Wakeup()
        do throws(Errno) { try HangUpSignal.deliver(to: hup) } catch { throw CommandFailure(message: "cannot install signal handlers: \(error)") }
        startThread {
            while true {
                guard let ready = try? pollReadable([hup.fd, stop.fd], timeoutMillis: -1) else { return }
                if ready[1] { return }
                hup.drain()
                log("SIGHUP: \(command) reads its options and files once, at start; restart it to apply changes (running work is not affected)")
            }
        }
    }

    /// A thread that finishes interrupted enqueues every 30 s and, once `stop` is readable, shuts the server down.
    static func startMaintenance(spool: Spool, servers: [HTTPServer], stop: Wakeup, notifier: SystemdNotifier? = nil,
                                 log: @escaping @Sendable (String) -> Void) {
        startThread {
            // Every 30 s, finish enqueues that were linked but not moved into new/ (a publish that failed).
            while true {
                guard let ready = try? pollReadable([stop.fd], timeoutMillis: 30_000) else { sleep(nanoseconds: 1_000_000_000); continue }
                if ready[0] { break }
                for line in spool.recoverInterruptedWrites().lines { log("recover: \(line)") }
            }
            log("stop requested: finishing requests in flight (at most 10s)")
            notifier?.send("STOPPING=1\nSTATUS=stopping: finishing requests in flight")
            for server in servers { server.shutdown(grace: .seconds(10)) }
        }
    }
}

/// Milliseconds with three decimals, without Foundation's formatters.
func format3(_ v: Double) -> String {
    let micros = Int((v * 1000).rounded())
    let ms = micros / 1000, frac = micros % 1000
    return "\(ms)." + String(repeating: "0", count: 3 - String(frac).count) + String(frac)
}
