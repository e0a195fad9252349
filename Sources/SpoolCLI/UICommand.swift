import SpoolCore
import SpoolHTTP
import SpoolSystem
import SpoolUI
import SpoolWire

extension CLI {
    static let uiCommand = Command(
        name: "ui", summary: "a web page of the queue: counts, chart, failed items, retry",
        description: """
        Serves the operator's pages (counts per state, arrivals and completions per minute over the last
        hour, failed, claimed and waiting items, each item's metadata and payload; retry and purge) and
        /api/stats and /api/items?state=S&limit=N as JSON. No JavaScript; every response carries a strict
        Content-Security-Policy. Loopback only unless --token-file is given (open /?token=TOKEN once: it
        sets a cookie). Prints 'listening on http://HOST:PORT spool DIR' once ready; SIGTERM/SIGINT stop it.
        """,
        options: [
            .value("--listen", "HOST:PORT", default: "127.0.0.1:8081", help: """
                address to listen on; port 0 picks a free one. An address other than
                loopback needs --token-file
                """),
            .value("--token-file", "FILE", help: "require the token in FILE (first line; the file must not be open to others)"),
        ] + LogSettings.options + [LogSettings.accessLogOption],
        run: { args, ctx in
            let ctx = try ctx.withLogging(args, accessLog: true)
            guard args.positionals.isEmpty else { throw UsageError("unexpected argument \(args.positionals[0])") }
            let listen = try parseListen(args.value("--listen") ?? "127.0.0.1:8081")
            if args.value("--token-file") == nil && !UIHandler.isLoopbackHost(listen.host) {
                throw UsageError("--listen \(listen.text) is not a loopback address: anyone who can reach it could retry and purge items; give --token-file FILE (or use SSH port forwarding to 127.0.0.1)")
            }
            // Only --token-file: $SPOOL_TOKEN is the ingress's, and a UI opened by mistake must not guess.
            let token = args.value("--token-file") == nil ? nil : try readToken(args, env: [:])
            let spool = try ctx.openSpool()
            let log = logger(ctx, component: "ui")
            let handler = UIHandler(spool: spool, configuration: UIConfiguration(token: token))
            var http = HTTPServerConfiguration()
            http.maxBody = 64 * 1024
            http.maxConnections = 256
            // The path only: a `?token=` never reaches the log.
            let server = HTTPServer(configuration: http, handler: handler, accessLog: ctx.logging.accessLogger(ctx.console, component: "ui"))
            let bound: UInt16
            do { bound = try server.bind(host: listen.host, port: listen.port) } catch {
                throw CommandFailure(message: "cannot listen on \(listen.text): \(error)")
            }
            let stop = try Wakeup()
            do throws(Errno) { try TerminationSignals.deliver(to: stop) } catch { throw CommandFailure(message: "cannot install signal handlers: \(error)") }
        try CLI.acknowledgeHangups("ui", stop: stop, log: log)
            let notifier = SystemdNotifier(environment: ctx.console.environment)
            startThread {
                while (try? pollReadable([stop.fd], timeoutMillis: -1))?.first != true {}
                log("stop requested")
                notifier?.send("STOPPING=1")
                server.shutdown(grace: .seconds(5))
            }
            ctx.console.out("listening on http://\(hostText(listen.host)):\(bound) spool \(ctx.dir)")
            notifier?.send("READY=1\nSTATUS=listening on \(hostText(listen.host)):\(bound)")
            notifier?.startWatchdog()
            defer { notifier?.stopWatchdog() }
            do { try server.run() } catch { throw CommandFailure(message: "server failed: \(error)") }
            log("stopped")
            return 0
        })
}
