import CSpoolShims
import SpoolConsumer
import SpoolCore
import SpoolSystem

extension CLI {
    /// Long-running commands (`serve`, `consume`).
    static let serviceCommands: [Command] = [consumeCommand]

    /// One timestamped line on stderr, written with a single write(2) so lines of threads never interleave.
    static func logger(_ console: Console, component: String) -> @Sendable (String) -> Void {
        let clock = SystemClock()
        return { line in console.writeErr(Array("\(RFC3339.format(nanos: clock.nowNanos())) \(component) \(line)\n".utf8)) }
    }

    static let consumeCommand = Command(
        name: "consume", summary: "process items with a handler command",
        usage: """
        usage: spool consume --exec CMD [--concurrency N] [--max-attempts N] [--backoff DURATION]
                             [--max-backoff DURATION] [--timeout DURATION] [--grace DURATION]
                             [--poll-interval DURATION] [--drain | --once]

        Claims items and runs '/bin/sh -c CMD' for each: stdin is the stored payload; the environment has
        SPOOL_KEY, SPOOL_ATTEMPT, SPOOL_FILE, SPOOL_DIR, SPOOL_RECEIVED_AT (and SPOOL_CONTENT_TYPE).
        Exit 0: done. Exit 65: failed at once (poison payload). Anything else, a signal or a timeout:
        retried after backoff, failed once --max-attempts attempts are used.

          --concurrency N       handlers running at once (default 1)
          --max-attempts N      attempts before failed/ (default 5)
          --backoff D           first retry delay, doubling with jitter (default 1s)
          --max-backoff D       longest retry delay (default 1h)
          --timeout D           handler time limit: SIGTERM, then SIGKILL 5s later (default 5m)
          --grace D             on SIGTERM/SIGINT, time for running handlers to finish (default 30s)
          --poll-interval D     wake-up interval where inotify is unavailable (default 1s)
          --drain               exit 0 once no item is due and nothing runs
          --once                process at most one item; exit 3 if there was none
        Durations: 250ms, 30s, 15m, 24h, 7d. Any number of consumers may run on one spool.
        """,
        options: [.value("--exec"), .value("--concurrency"), .value("--max-attempts"), .value("--backoff"), .value("--max-backoff"),
                  .value("--timeout"), .value("--grace"), .value("--poll-interval"), .flag("--drain"), .flag("--once"), .flag("--no-inotify")],
        run: { args, ctx in
            guard args.positionals.isEmpty else { throw UsageError("unexpected argument \(args.positionals[0])") }
            guard let exec = args.value("--exec"), !exec.isEmpty else { throw UsageError("--exec CMD is required") }
            if args.flag("--drain") && args.flag("--once") { throw UsageError("--drain and --once exclude each other") }
            var config = ConsumerConfiguration()
            if let v = args.value("--concurrency") { config.concurrency = try Parse.unsigned(v, name: "--concurrency", max: 1024) }
            guard config.concurrency >= 1 else { throw UsageError("--concurrency must be at least 1") }
            var policy = RetryPolicy()
            if let v = args.value("--max-attempts") { policy.maxAttempts = try Parse.unsigned(v, name: "--max-attempts", max: 1_000_000) }
            guard policy.maxAttempts >= 1 else { throw UsageError("--max-attempts must be at least 1") }
            if let v = args.value("--backoff") { policy.baseNanos = try Parse.duration(v, name: "--backoff") }
            if let v = args.value("--max-backoff") { policy.maxNanos = try Parse.duration(v, name: "--max-backoff") }
            config.policy = policy
            let timeout = try args.value("--timeout").map { try Parse.duration($0, name: "--timeout") } ?? 300_000_000_000
            guard timeout > 0 else { throw UsageError("--timeout must be positive") }
            if let v = args.value("--grace") { config.graceNanos = try Parse.duration(v, name: "--grace") }
            if let v = args.value("--poll-interval") {
                config.pollIntervalNanos = max(1_000_000, try Parse.duration(v, name: "--poll-interval"))
            }
            config.useInotify = !args.flag("--no-inotify")
            config.mode = args.flag("--drain") ? .drain : args.flag("--once") ? .once : .forever

            let spool = try ctx.openSpool()
            let log = logger(ctx.console, component: "consume")
            let processor = ExecProcessor(command: exec, spoolDir: ctx.dir, timeoutNanos: timeout, environment: ctx.console.environment, log: log)
            let consumer = try Consumer(spool: spool, processor: processor, configuration: config, log: log)
            let stop = try Wakeup()
            guard spool_install_termination_pipe(stop.fd.rawValue) == 0 else { throw CommandFailure(message: "cannot install signal handlers") }
            log("started on \(ctx.dir) (concurrency \(config.concurrency), pid \(FS.processID))")
            let result = consumer.run(stopFD: stop.fd)
            log("stopped: \(result.processed) attempts, \(result.done) done, \(result.retried) retried, \(result.failed) failed, \(result.released) released")
            if config.mode == .once && result.processed == 0 { return 3 }
            return 0
        })
}
