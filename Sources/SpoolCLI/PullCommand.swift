import SpoolBridges
import SpoolCore
import SpoolSystem

extension CLI {
    static let pullCommand = Command(
        name: "pull", summary: "move messages of a JetStream pull consumer into the local spool",
        synopsis: "--nats URL[,URL...] --stream NAME --consumer DURABLE",
        description: """
        The worker side of a cluster: fetches messages of a durable JetStream pull consumer and enqueues each
        under its key (the Spool-Key header, else Nats-Msg-Id, else js-STREAM-SEQUENCE), payload byte for
        byte, Content-Type and Spool-Received-At kept; 'spool consume --exec' then handles them with claims,
        retries and dead letters. Pull requests stay open on the server (heartbeats every second; silence for
        two means they are sent again), so a message arrives as soon as it is stored. What arrived is made
        durable in one group commit, and only then acknowledged (accepted, or already there: a redelivery is
        a duplicate and is acked); a full or failing disk answers -NAK with a 5s delay. Several pulls may share
        one durable: each message goes to one of them (at-least-once across machines, once by key within one
        spool). SIGTERM/SIGINT: stop fetching, store and ack what arrived, exit 0.
        """,
        options: [
            .value("--nats", "URL[,URL...]", help: "the servers (nats:// or tls://), tried in random order"),
            .value("--stream", "NAME", help: "the stream"),
            .value("--consumer", "DURABLE", help: "the durable pull consumer"),
            .flag("--create-consumer", help: "create DURABLE (explicit acks, deliver all) if it does not exist"),
            .value("--filter", "SUBJECT", help: "with --create-consumer: only messages on SUBJECT"),
            .value("--batch", "N", default: "64", help: "ask for more when fewer than N are still to come (up to 2N open)"),
            .value("--max-ack-pending", "N", default: "1024", help: "with --create-consumer: unacknowledged messages at most"),
            .value("--ack-wait", "D", default: "30s", help: "with --create-consumer: redelivery after D without an ack"),
            .value("--nats-token", "T", default: "$SPOOL_NATS_TOKEN", help: "token auth"),
            .value("--nats-token-file", "FILE", help: "token auth, the token read from FILE (not readable by others)"),
            .value("--nats-user", "U", help: "user/password auth"),
            .value("--nats-password", "P", default: "$SPOOL_NATS_PASSWORD", help: "the password for --nats-user"),
            .value("--nats-password-file", "FILE", help: "the password for --nats-user, read from FILE (not readable by others)"),
            .value("--nats-nkey", "FILE", help: "NKEY auth: a user seed (SU...) in FILE, not readable by others"),
            .value("--nats-creds", "FILE", help: "JWT auth: a .creds file, not readable by others"),
            .flag("--nats-no-discover", help: "use only the --nats servers, not the cluster peers they announce"),
            .value("--ca-file", "FILE", default: "the system's roots", help: "TLS: trust only the CAs in this PEM file"),
            .value("--client-cert", "FILE", help: "TLS: certificate chain to present"),
            .value("--client-key", "FILE", help: "TLS: its private key (not readable by others)"),
            .value("--metrics-listen", "HOST:PORT", help: """
                serve Prometheus metrics at http://HOST:PORT/metrics (and /healthz): messages
                fetched, enqueued, duplicate, acked, naked; the queue's items per state and the
                age of its oldest waiting item
                """),
        ] + LogSettings.options,
        environment: [
            EnvironmentVariable("SPOOL_NATS_TOKEN", "--nats token when neither --nats-token nor --nats-user is given"),
            EnvironmentVariable("SPOOL_NATS_PASSWORD", "the password for --nats-user when --nats-password is not given"),
        ],
        run: { args, ctx in try runPull(args, ctx.withLogging(args)) })

    static func runPull(_ args: ParsedArguments, _ ctx: Context) throws -> Int32 {
        guard args.positionals.isEmpty else { throw UsageError("unexpected argument \(args.positionals[0])") }
        guard let url = args.value("--nats") else { throw UsageError("pull needs --nats URL") }
        guard let stream = args.value("--stream") else { throw UsageError("pull needs --stream NAME") }
        guard let durable = args.value("--consumer") else { throw UsageError("pull needs --consumer DURABLE") }
        var config = JetStreamPullConfiguration(stream: stream, durable: durable)
        config.createConsumer = args.flag("--create-consumer")
        config.filterSubject = args.value("--filter")
        if config.filterSubject != nil && !config.createConsumer { throw UsageError("--filter needs --create-consumer") }
        if let v = args.value("--batch") { config.batch = try Parse.unsigned(v, name: "--batch", max: 1000) }
        if let v = args.value("--max-ack-pending") { config.maxAckPending = try Parse.unsigned(v, name: "--max-ack-pending", max: 1_000_000) }
        if let v = args.value("--ack-wait") { config.ackWaitNanos = max(1_000_000_000, try Parse.duration(v, name: "--ack-wait")) }
        if (args.value("--client-cert") == nil) != (args.value("--client-key") == nil) {
            throw UsageError("--client-cert and --client-key go together")
        }
        do throws(BridgeError) { try config.validate() } catch { throw UsageError(error.message) }
        let log = logger(ctx, component: "pull")
        let options: NATSConnectionOptions
        do { options = try natsOptions(args, env: ctx.console.environment, urls: url, timeout: 10_000_000_000) } catch let e as BridgeError {
            if e.kind == .configuration { throw UsageError(e.message) }
            throw CommandFailure(message: e.message)
        }
        let spool = try ctx.openSpool(create: true)
        for line in spool.recover().lines { log("recover: \(line)") }
        let connection = try NATSConnection(options: options, log: log)
        let stop = try Wakeup()
        do throws(Errno) { try TerminationSignals.deliver(to: stop) } catch { throw CommandFailure(message: "cannot install signal handlers: \(error)") }
        try CLI.acknowledgeHangups("pull", stop: stop, log: log)
        connection.start()
        defer { connection.close() }
        let puller = JetStreamPuller(connection: connection, spool: spool, configuration: config, log: log)
        var stopMetrics: (@Sendable () -> Void)?
        defer { stopMetrics?() }
        if let listen = try args.value("--metrics-listen").map({ v throws(UsageError) in try parseListen(v) }) {
            let endpoint = try MetricsEndpoint.start(listen, render: {
                let t = puller.total
                var out = "# HELP spool_pull_messages_total JetStream messages by what became of them.\n# TYPE spool_pull_messages_total counter\n"
                for (what, n) in [("fetched", t.fetched), ("enqueued", t.enqueued), ("duplicate", t.duplicates), ("acked", t.acked), ("naked", t.naked)] {
                    out += "spool_pull_messages_total{stream=\"\(stream)\",consumer=\"\(durable)\",what=\"\(what)\"} \(n)\n"
                }
                return out + QueueGauges.render(queue: spool.queue, stats: try? spool.stats(), paused: spool.pausedNow(), nowNanos: spool.now())
            }, ctx: ctx)
            stopMetrics = endpoint.stop
            log("metrics on http://\(hostText(listen.host)):\(endpoint.port)/metrics")
        }
        log("started on \(ctx.dir) (stream \(stream), consumer \(durable), batch \(config.batch), pid \(FS.processID))")
        let notifier = SystemdNotifier(environment: ctx.console.environment)
        notifier?.send("READY=1\nSTATUS=pulling \(stream)/\(durable) into \(ctx.dir)")
        notifier?.startWatchdog { let t = puller.total; return "fetched \(t.fetched), enqueued \(t.enqueued), acked \(t.acked)" }
        defer { notifier?.stopWatchdog() }
        var delay: Int64 = 100_000_000
        var lastReport = monotonicNanos()
        func report(_ prefix: String) {
            let t = puller.total
            log("\(prefix)fetched \(t.fetched), enqueued \(t.enqueued), duplicates \(t.duplicates), acked \(t.acked), naked \(t.naked)")
        }
        while (try? pollReadable([stop.fd], timeoutMillis: 0))?.first != true {
            do throws(BridgeError) {
                let r = try puller.step(stop: stop.fd)
                delay = 100_000_000
                if r.naked > 0 { _ = try? pollReadable([stop.fd], timeoutMillis: 1000) }
            } catch {
                if error.kind == .configuration || (error.kind == .notFound && !puller.hasFoundConsumer) {
                    throw CommandFailure(message: error.message)
                }
                log("nats: \(error.message); retrying")
                _ = try? pollReadable([stop.fd], timeoutMillis: Int32(delay / 1_000_000))
                delay = min(delay * 2, 5_000_000_000)
            }
            if monotonicNanos() - lastReport >= 10_000_000_000 {
                lastReport = monotonicNanos()
                report("")
            }
        }
        notifier?.send("STOPPING=1\nSTATUS=stopping")
        _ = puller.finish()
        report("stopped: ")
        return 0
    }
}
