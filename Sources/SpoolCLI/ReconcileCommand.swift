import SpoolBridges
import SpoolCore
import SpoolIngress
import SpoolReconcile
import SpoolSystem
import SpoolTLS
import SpoolWire

extension CLI {
    static let reconcileCommand = Command(
        name: "reconcile", summary: "enqueue finished JSON2Video renders whose webhook never arrived",
        synopsis: "--api-key-file FILE",
        description: """
        Lists the account's movies of the last --since (GET /v2/movies, every page) every --every and
        enqueues each finished one (done, error, timeout) whose project has no item in the spool, once
        --grace has passed since it ended, as {"success":true,"movie":<the API's movie object, byte for
        byte>} under the key movie.project: the webhook's shape, so the same handler works unchanged.
        Its metadata says "source":"reconcile". Whichever of the webhook and reconcile comes first makes
        the item; the other is a duplicate. One request at a time. With --grace 0 --every 5s next to
        'spool consume' it is a complete receiver for local development (no public endpoint needed).
        401/403 at the first round: exit 1; later: logged. 429/5xx: retried after Retry-After or backoff.
        One log line per round with its counts. SIGTERM/SIGINT: stop after the current request.
        """,
        options: [
            .value("--api-key-file", "FILE", help: "the JSON2Video API key (one line; not readable by others)"),
            .value("--since", "D", default: "24h", help: "window of each round: movies created in the last D (at most 93d)"),
            .value("--every", "D", default: "5m", help: "interval between the starts of two rounds"),
            .value("--grace", "D", default: "10m", help: "time a finished render is given for its own webhook (0: pure polling)"),
            .value("--api-url", "URL", default: JSON2VideoClient.defaultURL, help: "the API's base URL"),
            .value("--ca-file", "FILE", default: "the system's roots", help: "with an https:// --api-url: trust only the CAs in this PEM file"),
            .flag("--once", help: "run one round and exit: 0, or 1 when the API or the network failed"),
            .value("--match-webhook", "URL", help: "only movies whose original JSON has a webhook destination with this URL"),
            .repeated("--match-client-data", "PATH=VALUE", help: "only movies whose client-data at the dotted PATH is VALUE; repeat: all must match"),
            .value("--max-requests-per-minute", "N", default: "30", help: "requests start at least 60s/N apart"),
            .value("--timeout", "D", default: "30s", help: "limit of one request: connect, send, response"),
        ] + LogSettings.options,
        environment: [EnvironmentVariable("SPOOL_LIBSSL", "the libssl.so.3 to load for https:// (default: the system's)")],
        run: { args, ctx in try runReconcile(args, ctx.withLogging(args)) })

    static func reconcileConfiguration(_ args: ParsedArguments) throws(UsageError) -> ReconcileConfiguration {
        guard args.positionals.isEmpty else { throw UsageError("unexpected argument \(args.positionals[0])") }
        var c = ReconcileConfiguration()
        if let v = args.value("--since") { c.sinceNanos = try Parse.duration(v, name: "--since") }
        guard c.sinceNanos > 0, c.sinceNanos <= ReconcileConfiguration.maxSinceNanos else { throw UsageError("--since must be more than 0 and at most 93d") }
        if let v = args.value("--every") { c.everyNanos = try Parse.duration(v, name: "--every") }
        guard c.everyNanos > 0 else { throw UsageError("--every must be positive") }
        // `--grace 0` (pure polling) as the issue and README write it, besides `0s`.
        if let v = args.value("--grace") { c.graceNanos = v == "0" ? 0 : try Parse.duration(v, name: "--grace") }
        if let v = args.value("--max-requests-per-minute") {
            c.maxRequestsPerMinute = try Parse.unsigned(v, name: "--max-requests-per-minute", max: 6000)
        }
        guard c.maxRequestsPerMinute >= 1 else { throw UsageError("--max-requests-per-minute must be at least 1") }
        if let w = args.value("--match-webhook") {
            guard !w.isEmpty else { throw UsageError("--match-webhook needs a URL") }
            c.filter.webhook = w
        }
        for t in args.all("--match-client-data") {
            guard let term = MovieFilter.clientDataTerm(t) else { throw UsageError("--match-client-data takes PATH=VALUE (got '\(t)')") }
            c.filter.clientData.append(term)
        }
        return c
    }

    /// The key file's one line (a trailing newline is not part of the key).
    static func readAPIKey(_ path: String) throws(CommandFailure) -> String {
        var bytes = try SecretFile.read(path, what: "--api-key-file", limit: 4096)
        while let last = bytes.last, last == 0x0A || last == 0x0D || last == 0x20 || last == 0x09 { bytes.removeLast() }
        guard !bytes.isEmpty, let key = String(validating: bytes, as: UTF8.self) else {
            throw CommandFailure(message: "--api-key-file \(path) holds no key")
        }
        return key
    }

    /// The API client from the key file, the URL and the CA file (shared by `reconcile` and `serve --reconcile-…`).
    static func makeReconcileClient(keyFile: String, apiURL: String, caFile: String?, timeout: Int64,
                                    env: [String: String], caOption: String) throws -> JSON2VideoClient {
        let endpoint: Endpoint
        do throws(BridgeError) { endpoint = try Endpoint.http(apiURL) } catch { throw UsageError("--api-url: \(error.message)") }
        if !endpoint.secure && caFile != nil { throw UsageError("\(caOption) needs an https:// API URL") }
        if endpoint.target.contains("?") { throw UsageError("--api-url must not have a query") }
        let key = try readAPIKey(keyFile)
        var profile: TLSClientProfile? = nil
        if endpoint.secure {
            try TLSSetup.loadLibrary(env: env)
            let p = TLSClientProfile(caFile: caFile, alpnProtocols: ["http/1.1"])
            do throws(TLSError) { _ = try p.context() } catch { throw CommandFailure(message: "TLS: \(error)") }
            profile = p
        }
        do throws(BridgeError) {
            return try JSON2VideoClient(apiURL: apiURL, apiKey: key, tls: profile, timeoutNanos: timeout)
        } catch {
            // The URL was checked above (a usage error); what is left is the key file's content.
            throw CommandFailure(message: error.message)
        }
    }

    static func runReconcile(_ args: ParsedArguments, _ ctx: Context) throws -> Int32 {
        let config = try reconcileConfiguration(args)
        guard let keyFile = args.value("--api-key-file") else { throw UsageError("--api-key-file FILE is required") }
        let apiURL = args.value("--api-url") ?? JSON2VideoClient.defaultURL
        let timeout = try args.value("--timeout").map { v throws(UsageError) in try Parse.duration(v, name: "--timeout") } ?? 30_000_000_000
        guard timeout > 0 else { throw UsageError("--timeout must be positive") }
        let client = try makeReconcileClient(keyFile: keyFile, apiURL: apiURL, caFile: args.value("--ca-file"), timeout: timeout,
                                             env: ctx.console.environment, caOption: "--ca-file")
        let endpoint = client.endpoint
        let log = logger(ctx, component: "reconcile")
        let spool = try ctx.openSpool(create: true)
        // An enqueue of ours cut short (a SIGKILL between its marker and its rename) is finished before we look.
        for line in spool.recoverInterruptedWrites().lines { log("recover: \(line)") }
        let stop = try Wakeup()
        do throws(Errno) { try TerminationSignals.deliver(to: stop) } catch { throw CommandFailure(message: "cannot install signal handlers: \(error)") }
        try CLI.acknowledgeHangups("reconcile", stop: stop, log: log)
        let pause: (Int64) -> Bool = { nanos in
            let deadline = monotonicNanos() + max(0, nanos)
            while true {
                let left = deadline - monotonicNanos()
                if left <= 0 { return true }
                let ms = Int32(min((left + 999_999) / 1_000_000, 3_600_000))
                if (try? pollReadable([stop.fd], timeoutMillis: ms))?.first == true { return false }
            }
        }
        let once = args.flag("--once")
        let reconciler = Reconciler(spool: spool, pager: client, configuration: config, log: log, pause: pause)
        log("started on \(ctx.dir) (api \(endpoint.secure ? "https" : "http")://\(endpoint.authority), since \(humanDuration(nanos: config.sinceNanos)), "
            + "every \(humanDuration(nanos: config.everyNanos)), grace \(humanDuration(nanos: config.graceNanos)), pid \(FS.processID))")
        let notifier = once ? nil : SystemdNotifier(environment: ctx.console.environment)
        notifier?.send("READY=1\nSTATUS=reconciling every \(humanDuration(nanos: config.everyNanos))")
        notifier?.startWatchdog { "\(reconciler.rounds) rounds" }
        defer { notifier?.stopWatchdog() }
        while true {
            let started = monotonicNanos()
            let r = reconciler.round()
            let took = Double((monotonicNanos() - started) / 1_000_000) / 1000
            log("round \(reconciler.rounds): \(r.line) (\(took)s)")
            if r.stopped { break }
            if let e = r.error {
                if e.kind == .rejectedKey && (once || reconciler.rounds == 1) { throw CommandFailure(message: "the API rejected the key") }
                if once { throw CommandFailure(message: e.message) }
            }
            if once { break }
            if !pause(started + config.everyNanos - monotonicNanos()) { break }
        }
        notifier?.send("STOPPING=1")
        let t = reconciler.totals
        log("stopped: \(reconciler.rounds) rounds, \(t.seen) movies seen, \(t.enqueued) enqueued, \(t.apiErrors) API errors")
        return 0
    }
}

extension CLI {
    /// `serve --reconcile-api-key-file`: the same loop on a thread of the server process, its counters on /metrics.
    /// A rejected key or a failed round is logged (the server keeps serving webhooks); the thread ends with the process.
    static func serveReconcileOptions() -> [Option] {
        [
            .value("--reconcile-api-key-file", "FILE", help: "also run 'spool reconcile' in this process with this API key\n(docs/reconcile.md); its counters are on /metrics"),
            .value("--reconcile-every", "D", default: "5m", help: "with --reconcile-api-key-file: as reconcile's --every"),
            .value("--reconcile-grace", "D", default: "10m", help: "with --reconcile-api-key-file: as reconcile's --grace"),
            .value("--reconcile-api-url", "URL", default: JSON2VideoClient.defaultURL, help: "with --reconcile-api-key-file: as reconcile's --api-url"),
            .value("--reconcile-ca-file", "FILE", help: "with --reconcile-api-key-file: as reconcile's --ca-file"),
        ]
    }

    /// The loop to start inside `serve`, or nil without `--reconcile-api-key-file` (its companions are then usage errors).
    static func serveReconcileSetup(_ args: ParsedArguments, env: [String: String]) throws -> (JSON2VideoClient, ReconcileConfiguration)? {
        guard let keyFile = args.value("--reconcile-api-key-file") else {
            for o in ["--reconcile-every", "--reconcile-grace", "--reconcile-api-url", "--reconcile-ca-file"] where args.value(o) != nil {
                throw UsageError("\(o) needs --reconcile-api-key-file")
            }
            return nil
        }
        var c = ReconcileConfiguration()
        if let v = args.value("--reconcile-every") { c.everyNanos = try Parse.duration(v, name: "--reconcile-every") }
        guard c.everyNanos > 0 else { throw UsageError("--reconcile-every must be positive") }
        if let v = args.value("--reconcile-grace") { c.graceNanos = v == "0" ? 0 : try Parse.duration(v, name: "--reconcile-grace") }
        let client = try makeReconcileClient(keyFile: keyFile, apiURL: args.value("--reconcile-api-url") ?? JSON2VideoClient.defaultURL,
                                             caFile: args.value("--reconcile-ca-file"), timeout: 30_000_000_000, env: env,
                                             caOption: "--reconcile-ca-file")
        return (client, c)
    }

    static func startServeReconcile(_ setup: (JSON2VideoClient, ReconcileConfiguration), spool: Spool, handler: IngressHandler,
                                    ctx: Context) {
        let log = logger(ctx, component: "reconcile")
        let pause: (Int64) -> Bool = { nanos in sleep(nanoseconds: max(0, nanos)); return true }
        let reconciler = Reconciler(spool: spool, pager: setup.0, configuration: setup.1, log: log, pause: pause)
        handler.setExtraMetrics { reconciler.metricsText() }
        let every = setup.1.everyNanos
        startThread {
            log("started inside serve (api \(setup.0.endpoint.authority), every \(humanDuration(nanos: every)))")
            while true {
                let started = monotonicNanos()
                let r = reconciler.round()
                log("round \(reconciler.rounds): \(r.line)")
                sleep(nanoseconds: max(0, started + every - monotonicNanos()))
            }
        }
    }
}
