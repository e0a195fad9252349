import SpoolConfig
import SpoolCore
import SpoolIngress
import SpoolSystem
import SpoolWire

extension CLI {
    static let operatorCommands: [Command] = [enqueueCommand, lsCommand, showCommand, statsCommand, retryCommand, purgeCommand, recoverCommand,
                                              migrateCommand, validateCommand, pauseCommand, resumeCommand, replayCommand, initCommand]

    static let enqueueCommand = Command(
        name: "enqueue", summary: "add a payload to the spool (same path as the ingress)",
        synopsis: "[FILE|-]",
        description: """
        Reads FILE (or stdin) and enqueues it durably. Without --key the key is taken from the body:
        JSON at movie.project, then project (or the --key-path paths); form data with
        --content-type application/x-www-form-urlencoded. Prints 'accepted KEY' or 'duplicate KEY'.
        """,
        options: [
            .value("--key", "KEY", help: "the item's key, instead of taking it from the body"),
            .repeated("--key-path", "DOTTED.PATH", default: "movie.project, then project",
                      help: "dotted JSON path of the key; repeat to try several in order"),
            .value("--content-type", "TYPE", help: "stored with the payload; application/x-www-form-urlencoded takes the key\nfrom form data"),
        ],
        run: { args, ctx in
            guard args.positionals.count <= 1 else { throw UsageError("at most one FILE") }
            let paths = try keyPaths(args)
            let source = args.positionals.first ?? "-"
            let body: [UInt8]
            do {
                if source == "-" { body = try ctx.console.readStdin() } else {
                    body = try FileDescriptor.open(source, [.readOnly]).closeAfter { (fd) throws(Errno) in try fd.readAll(limit: CLI.maxStdinBytes) }
                }
            } catch { throw CommandFailure(message: "cannot read \(source == "-" ? "stdin" : source): \(error)") }
            let key: SpoolKey
            if let k = args.value("--key") {
                key = try SpoolKey(k)
            } else {
                let extractor = KeyExtractor(paths: paths ?? IngressConfiguration.json2videoKeyPaths)
                key = try extractor.extract(body: body, contentType: args.value("--content-type"))
            }
            var headers: [(String, String)] = []
            if let ct = args.value("--content-type") { headers.append(("content-type", ct)) }
            let spool = try ctx.openSpool(create: true)
            let outcome = try spool.enqueue(key: key, payload: body, headers: headers, source: .enqueue, queues: ctx.queues)
            ctx.console.out("\(outcome.rawValue) \(logSafe(key.value))")
            return 0
        })

    static func parseStates(_ names: [String]) throws -> [ItemState] {
        if names.isEmpty { return ItemState.allCases }
        return try names.map { n in
            guard let s = ItemState(rawValue: n) else { throw UsageError("unknown state '\(n)' (new, claimed, done, failed)") }
            return s
        }
    }

    /// `--state done|failed` (purge, replay): the finished states named, else `otherwise`.
    static func finishedStates(_ args: ParsedArguments, otherwise: [ItemState]) throws -> [ItemState] {
        let names = args.all("--state")
        if names.isEmpty { return otherwise }
        return try names.map { n -> ItemState in
            guard let s = ItemState(rawValue: n), s == .done || s == .failed else { throw UsageError("--state takes done or failed") }
            return s
        }
    }

    /// Runs `body` for each KEY, printing its line or `error: KEY: ...`; exit 1 if any failed (retry, purge).
    static func forEachKey(_ keys: [String], _ ctx: Context, _ body: (SpoolKey) throws -> String) -> Int32 {
        var failures = 0
        for k in keys {
            do {
                ctx.console.out(try body(try SpoolKey(k)))
            } catch {
                ctx.console.err("error: \(logSafe(k)): \(error)")
                failures += 1
            }
        }
        return failures == 0 ? 0 : 1
    }

    static func infoJSON(_ i: ItemInfo, now: Int64) -> String { String(decoding: infoJSONBytes(i, now: now), as: UTF8.self) }

    /// One `ls --json` line (the object is SpoolCore's, shared with `spool ui`).
    static func infoJSONBytes(_ i: ItemInfo, now: Int64, into o: inout [UInt8]) { i.appendJSON(now: now, to: &o) }

    static func infoJSONBytes(_ i: ItemInfo, now: Int64) -> [UInt8] {
        var o: [UInt8] = []
        infoJSONBytes(i, now: now, into: &o)
        return o
    }

    static func shortInfo(_ i: ItemInfo, now: Int64) -> String {
        var bits: [String] = []
        if i.state == .new, i.dueAtNanos > now { bits.append("retry in \(humanDuration(nanos: i.dueAtNanos.subtractingReportingOverflow(now).overflow ? Int64.max : i.dueAtNanos - now))") }
        if i.state == .claimed, let c = i.meta?.claimedBy { bits.append("by \(c)") }
        if let src = i.meta?.source { bits.append("from \(src)") }
        if let s = i.meta?.lastStatus { bits.append(s) }
        if let e = i.meta?.lastError {
            let oneLine = e.split(whereSeparator: { $0 == "\n" || $0 == "\r" }).last.map(String.init) ?? ""
            bits.append(oneLine.count > 60 ? String(oneLine.prefix(57)) + "..." : oneLine)
        }
        return logSafe(bits.joined(separator: "; "))
    }

    static let lsCommand = Command(
        name: "ls", summary: "list items",
        synopsis: "[STATE...]",
        description: """
        STATE is new, claimed, done or failed (default: all). The table shows STATE, KEY, AGE (since
        received), SIZE, ATTEMPTS and INFO (next retry, claimant, "from reconcile", last error). --json prints one object
        per line with state, key, size, received_at, attempts, path, and next_attempt_at, last_error,
        claimed_by, source when present.
        """,
        options: [
            .flag("--json", help: "one JSON object per line instead of the table"),
            .value("--limit", "N", help: "list at most N items"),
        ],
        run: { args, ctx in
            let states = try parseStates(args.positionals)
            let limit = try args.value("--limit").map { try Parse.unsigned($0, name: "--limit") }
            let spool = try ctx.openSpool()
            let items = try spool.list(states: states, limit: limit)
            let now = spool.now()
            if args.flag("--json") {
                var out: [UInt8] = []
                out.reserveCapacity(min(items.count, 1 << 20) * 200)
                for i in items {
                    infoJSONBytes(i, now: now, into: &out)
                    out.append(0x0A)
                    if out.count > 1 << 20 { ctx.console.writeOut(out); out.removeAll(keepingCapacity: true) }
                }
                ctx.console.writeOut(out)
                return 0
            }
            if spool.pausedNow() { ctx.console.out("queue \(spool.queue) is paused: no attempt starts until 'spool resume \(spool.queue)'") }
            var rows = [["STATE", "KEY", "AGE", "SIZE", "ATTEMPTS", "INFO"]]
            for i in items {
                rows.append([i.state.rawValue, logSafe(i.key), humanDuration(nanos: now.subtractingReportingOverflow(i.receivedAtNanos).overflow ? Int64.max : now - i.receivedAtNanos), "\(i.size)", "\(i.meta?.attempts ?? 0)", shortInfo(i, now: now)])
            }
            let widths = (0..<6).map { c in rows.map { $0[c].count }.max() ?? 0 }
            var out = ""
            for r in rows {
                out += (0..<6).map { c in c == 5 ? r[c] : r[c].padding(widths[c] + 1) }.joined(separator: " ").trimmingTrailingSpaces + "\n"
            }
            ctx.console.writeOut(Array(out.utf8))
            return 0
        })

    static let showCommand = Command(
        name: "show", summary: "show one item's metadata and payload",
        synopsis: "KEY",
        description: """
        Prints the item's metadata (state, path, size, times, attempts, headers, last error) and its payload
        when it is text. An unknown key exits 1 with 'error: no such item: KEY'.
        """,
        options: [
            .flag("--json", help: "print the metadata as one object"),
            .flag("--body", help: "write exactly the stored bytes to stdout"),
        ],
        run: { args, ctx in
            guard args.positionals.count == 1 else { throw UsageError("expected one KEY") }
            let key = try SpoolKey(args.positionals[0])
            let spool = try ctx.openSpool()
            let info = try spool.find(key: key)
            let body = try spool.payload(of: info)
            if args.flag("--body") { ctx.console.writeOut(body); return 0 }
            let now = spool.now()
            if args.flag("--json") {
                var j = infoJSON(info, now: now)
                j.removeLast()
                if let m = info.meta {
                    j += ",\"headers\":{" + m.headers.map { JSONWriter.quote($0.0) + ":" + JSONWriter.quote($0.1) }.joined(separator: ",") + "}"
                    j += ",\"history\":[" + m.history.map { a in
                        "{\"started_at\":\"\(RFC3339.format(nanos: a.startedAtNanos))\",\"duration_ns\":\(a.durationNanos),\"outcome\":\"\(a.outcome.rawValue)\""
                            + (a.status.map { ",\"status\":" + JSONWriter.quote($0) } ?? "") + (a.error.map { ",\"error\":" + JSONWriter.quote($0) } ?? "") + "}"
                    }.joined(separator: ",") + "]"
                }
                ctx.console.out(j + "}")
                return 0
            }
            var lines = [
                "key:         \(logSafe(info.key))",
                "queue:       \(info.queue)",
                "state:       \(info.state.rawValue)",
                "path:        \(info.path)",
                "size:        \(info.size)",
                "received_at: \(RFC3339.format(nanos: info.receivedAtNanos))",
                "attempts:    \(info.meta?.attempts ?? 0)",
            ]
            if info.state == .new, info.dueAtNanos > now { lines.append("next_attempt_at: \(RFC3339.format(nanos: info.dueAtNanos))") }
            if info.state == .done || info.state == .failed, let f = info.finishedAtNanos { lines.append("finished_at: \(RFC3339.format(nanos: f))") }
            if let m = info.meta {
                // Metadata comes from the disk, headers from the network, last_error from a handler: escaped.
                if let c = m.claimedBy, info.state == .claimed { lines.append("claimed_by:  \(logSafe(c))") }
                if let s = m.lastStatus { lines.append("last_status: \(logSafe(s))") }
                if let src = m.source { lines.append("source:      \(logSafe(src))") }
                for (n, v) in m.headers { lines.append("header:      \(logSafe(n)): \(logSafe(v))") }
                if let e = m.lastError { lines.append("last_error:\n" + e.split(separator: "\n", omittingEmptySubsequences: false).map { "  " + logSafe(String($0)) }.joined(separator: "\n")) }
                if !m.history.isEmpty {
                    lines.append("history:")
                    for a in m.history {
                        let err = a.error.map { ": " + (($0.split(whereSeparator: { $0 == "\n" }).last).map(String.init) ?? "") } ?? ""
                        lines.append("  \(RFC3339.format(nanos: a.startedAtNanos)) \(humanDuration(nanos: a.durationNanos)) \(a.outcome.rawValue)"
                                     + (a.status.map { " (\(logSafe($0)))" } ?? "") + logSafe(err))
                    }
                }
            } else { lines.append("metadata:    unreadable") }
            ctx.console.out(lines.joined(separator: "\n"))
            ctx.console.out("")
            if let text = String(validating: body, as: UTF8.self),
               !text.unicodeScalars.contains(where: { ($0.value < 0x20 && $0 != "\n" && $0 != "\t" && $0 != "\r") || (0x7F...0x9F).contains($0.value) }) {
                ctx.console.out(text)
            } else {
                ctx.console.out("(\(body.count) bytes of binary payload; use --body)")
            }
            return 0
        })

    static let statsCommand = Command(
        name: "stats", summary: "counts per state, bytes, oldest waiting item",
        description: """
        Items and bytes per state, the age of the oldest item waiting in new/, key markers and tmp/ entries.
        """,
        options: [
            .flag("--json", help: """
                print {"new":N,"claimed":N,"done":N,"failed":N,"bytes":{...},
                "oldest_waiting_age_seconds":S|null,"tmp":N,"keys":N}
                """),
        ],
        run: { args, ctx in
            guard args.positionals.isEmpty else { throw UsageError("unexpected argument \(args.positionals[0])") }
            let spool = try ctx.openSpool()
            let s = try spool.stats()
            let now = spool.now()
            let age = s.oldestWaitingAgeSeconds(now: now)
            let paused = spool.pausedNow()
            if args.flag("--json") {
                var j = s.json(now: now)
                j.removeLast()
                ctx.console.out(j + ",\"queue\":\(JSONWriter.quote(spool.queue)),\"paused\":\(paused)}")
                return 0
            }
            var lines: [String] = ["queue \(spool.queue)" + (paused ? " (paused: 'spool resume \(spool.queue)' to resume)" : "")]
            for st in ItemState.allCases { lines.append("\(st.rawValue.padding(8)) \(plural(s.counts[st] ?? 0, "item")), \(plural(Int(s.bytes[st] ?? 0), "byte"))") }
            lines.append("oldest waiting: " + (age.map { humanDuration(nanos: $0 * 1_000_000_000) } ?? "none"))
            lines.append("keys \(s.keyMarkers), tmp \(s.tmpEntries)")
            ctx.console.out(lines.joined(separator: "\n"))
            return 0
        })

    static let retryCommand = Command(
        name: "retry", summary: "send failed items back to new/",
        synopsis: "(KEY... | --all-failed)",
        description: """
        Moves items from failed/ (or waiting in new/) back to new/, due now, with attempts reset.
        """,
        options: [.flag("--all-failed", help: "retry every item in failed/ (instead of KEYs)")],
        run: { args, ctx in
            let all = args.flag("--all-failed")
            if all == !args.positionals.isEmpty { throw UsageError("give KEYs or --all-failed") }
            let spool = try ctx.openSpool()
            if all {
                let keys = try spool.retryAllFailed()
                for k in keys { ctx.console.out("retried \(logSafe(k))") }
                ctx.console.out("\(keys.count) item(s) retried")
                return 0
            }
            return forEachKey(args.positionals, ctx) { k in
                try spool.retry(key: k)
                return "retried \(logSafe(k.value))"
            }
        })

    static let purgeCommand = Command(
        name: "purge", summary: "delete finished items (and forget their keys)",
        synopsis: "(--older-than DURATION [--keep-keys D] | KEY...) [--dry-run] [--verbose]",
        description: """
        Removes finished items of the queue, with their key markers once no other queue holds them: a
        later webhook with the same key is accepted again. With --older-than, items of the state (default
        done) that finished more than DURATION ago (30s, 15m, 24h, 7d); with KEYs, those items, done or
        failed. --keep-keys D keeps each purged key (a small file in keys/, without the payload) until D
        after its item finished, so a late redelivery is still a duplicate; a KEY whose item is gone and
        whose key is kept is forgotten. --dry-run prints what would go and removes nothing.
        """,
        options: [
            .repeated("--state", "done|failed", default: "done", help: "with --older-than: the state to purge; repeat for both"),
            .value("--older-than", "DURATION", help: "purge items that finished more than DURATION ago"),
            .value("--keep-keys", "D", help: "with --older-than: keep purged keys until D after their item finished"),
            .flag("--dry-run", help: "print what would be purged, remove nothing"),
            .flag("--verbose", help: "with --older-than: print each purged key"),
        ],
        examples: [
            ("spool purge --older-than 7d --keep-keys 30d", "payloads for a week, keys for a month"),
            ("spool purge --state failed --older-than 30d --dry-run", "what a month-old failed/ holds"),
        ],
        run: { args, ctx in
            let keys = try args.positionals.map { try SpoolKey($0) }
            let older = try args.value("--older-than").map { try Parse.duration($0, name: "--older-than") }
            if (older == nil) == keys.isEmpty { throw UsageError("give --older-than DURATION or KEYs") }
            if !keys.isEmpty && !args.all("--state").isEmpty { throw UsageError("--state goes with --older-than") }
            let keep = try args.value("--keep-keys").map { try Parse.duration($0, name: "--keep-keys") }
            if keep != nil && older == nil { throw UsageError("--keep-keys goes with --older-than") }
            if let keep, let older, keep < older { throw UsageError("--keep-keys must be at least --older-than (a key is kept at least as long as its item)") }
            let states = try finishedStates(args, otherwise: [.done])
            let spool = try ctx.openSpool()
            let dry = args.flag("--dry-run")
            if let older {
                let removed = dry ? try spool.purgeCandidates(states: states, olderThanNanos: older)
                                  : try spool.purge(states: states, olderThanNanos: older, keepKeysNanos: keep)
                if dry || args.flag("--verbose") { for k in removed { ctx.console.out("\(dry ? "would purge" : "purged") \(logSafe(k))") } }
                ctx.console.out("\(dry ? "would purge" : "purged") \(plural(removed.count, "item"))")
                return 0
            }
            return forEachKey(args.positionals, ctx) { k in
                let kept = spool.keptKeyUntil(k) != nil
                if dry { _ = try spool.finishedState(key: k) } else { try spool.purge(key: k) }
                return kept ? "\(dry ? "would forget" : "forgot") the kept key \(logSafe(k.value))" : "\(dry ? "would purge" : "purged") \(logSafe(k.value))"
            }
        })

    static let replayCommand = Command(
        name: "replay", summary: "send finished items back to be delivered again",
        synopsis: "[QUEUE] [--since TIME] [--until TIME] [--match COND]... [--key KEY]... [--state done|failed]... [--dry-run]",
        description: """
        Moves finished items of QUEUE (default: --queue, else default) back to new/, due now, attempts
        reset, their attempt history kept; consumers deliver them again. Selects items that arrived at
        or after --since and before --until (TIME: RFC 3339, 2026-12-07T10:00:00Z, or a duration
        meaning that long ago, 2h), whose payload and recorded headers satisfy every --match (the
        syntax of a queue's match: PATH=VALUE, PATH=V1|V2, PATH, !PATH, header:NAME), and whose key is
        one of --key. Prints each item it moves, or with --dry-run would move, then the count.
        """,
        options: [
            .value("--since", "TIME", help: "items that arrived at or after TIME"),
            .value("--until", "TIME", help: "items that arrived before TIME"),
            .repeated("--match", "COND", help: "only items this condition holds for; repeat: all must hold"),
            .repeated("--key", "KEY", help: "only these keys; repeat for several"),
            .repeated("--state", "done|failed", default: "done and failed", help: "the finished state to take items from; repeat for both"),
            .flag("--dry-run", help: "print what would be moved, move nothing"),
            .flag("--json", help: """
                print {"queue":Q,"dry_run":B,"replayed":[{"key":K,"state":S,"received_at":T}],
                "skipped":[{"key":K,"reason":R}]}
                """),
        ],
        run: { args, ctx in try replay(args, ctx) })

    static func replay(_ args: ParsedArguments, _ ctx: Context) throws -> Int32 {
        let c = try withQueueArgument(args, ctx)
        let now = SystemClock().nowNanos()
        var sel = ReplaySelection()
        sel.sinceNanos = try args.value("--since").map { try Parse.pointInTime($0, name: "--since", now: now) }
        sel.untilNanos = try args.value("--until").map { try Parse.pointInTime($0, name: "--until", now: now) }
        if let s = sel.sinceNanos, let u = sel.untilNanos, u <= s { throw UsageError("--until must be later than --since") }
        sel.states = try finishedStates(args, otherwise: sel.states)
        if !args.all("--key").isEmpty { sel.keys = Set(try args.all("--key").map { try SpoolKey($0).value }) }
        let conditions = try args.all("--match").map { text -> MatchCondition in
            switch MatchCondition.parse(text) {
            case .success(let m): return m
            case .failure(let e): throw UsageError("--match \(text): \(e)")
            }
        }
        let spool = try c.openSpool()
        let candidates = try spool.replayCandidates(sel) { info in
            guard !conditions.isEmpty else { return true }
            let needsBody = conditions.contains { if case .json = $0.subject { true } else { false } }
            let headers = info.meta?.headers ?? []
            let body = needsBody ? ((try? spool.payload(of: info)) ?? []) : []
            let subject = MatchSubject(body: body, contentType: info.meta?.header("content-type"), headers: HTTPHeaders(headers))
            return conditions.allSatisfy(subject.holds)
        }
        let dry = args.flag("--dry-run")
        let report = dry ? ReplayReport(items: candidates) : try spool.replay(candidates)
        if args.flag("--json") {
            let items = report.items.map { i in
                "{\"key\":\(JSONWriter.quote(i.key)),\"state\":\"\(i.state.rawValue)\",\"received_at\":\(JSONWriter.quote(RFC3339.format(nanos: i.receivedAtNanos)))}"
            }
            let skipped = report.skipped.map { "{\"key\":\(JSONWriter.quote($0.key)),\"reason\":\(JSONWriter.quote($0.reason))}" }
            ctx.console.out("{\"queue\":\(JSONWriter.quote(spool.queue)),\"dry_run\":\(dry),\"replayed\":[\(items.joined(separator: ","))],\"skipped\":[\(skipped.joined(separator: ","))]}")
        } else {
            var lines = report.items.map { "\(dry ? "would replay" : "replayed") \(logSafe($0.key)) (\($0.state.rawValue), received \(RFC3339.format(nanos: $0.receivedAtNanos)))" }
            lines += report.skipped.map { "skipped \(logSafe($0.key)): \($0.reason)" }
            lines.append("\(report.items.count) item(s) \(dry ? "would be replayed" : "replayed") in queue \(spool.queue)" + (report.skipped.isEmpty ? "" : ", \(report.skipped.count) skipped"))
            ctx.console.out(lines.joined(separator: "\n"))
        }
        return report.skipped.isEmpty ? 0 : 1
    }

    static let recoverCommand = Command(
        name: "recover", summary: "repair what crashed processes left behind",
        description: """
        Returns items of dead consumers to new/, finishes or removes interrupted writes in tmp/,
        removes key markers without an item and restores missing ones. Safe while everything runs.
        Exits 1 if a problem remains.
        """,
        options: [
            .flag("--json", help: "print what was done as one object"),
            .value("--tmp-grace", "DURATION", default: "2s", help: """
                spare tmp/ entries that young which have no payload yet (a write that
                has just begun); use 0s when no process is running
                """),
        ],
        run: { args, ctx in
            guard args.positionals.isEmpty else { throw UsageError("unexpected argument \(args.positionals[0])") }
            let grace = try args.value("--tmp-grace").map { try Parse.duration($0, name: "--tmp-grace") } ?? 2_000_000_000
            let spool = try ctx.openSpool()
            let r = spool.recover(tmpGraceNanos: grace)
            if args.flag("--json") {
                func arr(_ a: [String]) -> String { "[" + a.map(JSONWriter.quote).joined(separator: ",") + "]" }
                ctx.console.out("{\"requeued\":\(arr(r.requeuedClaims)),\"completed_writes\":\(arr(r.completedWrites)),\"removed_tmp\":\(arr(r.removedTmp)),\"removed_orphan_markers\":\(arr(r.removedOrphanMarkers)),\"relinked_markers\":\(arr(r.relinkedMarkers)),\"problems\":\(arr(r.problems))}")
            } else {
                // Names found in tmp/ and elsewhere come from the disk: escaped like everything else shown.
                ctx.console.out(r.isEmpty ? "nothing to recover" : r.lines.map { logSafe($0) }.joined(separator: "\n"))
            }
            return r.problems.isEmpty ? 0 : 1
        })
}

extension CLI {
    /// The context of a command that takes one QUEUE as its argument (pause, resume, replay): the positional, else
    /// --queue, else default; both given must agree.
    static func withQueueArgument(_ args: ParsedArguments, _ ctx: Context) throws -> Context {
        guard args.positionals.count <= 1 else { throw UsageError("at most one QUEUE") }
        var c = ctx
        if let q = args.positionals.first {
            guard QueueName.isValid(q) else { throw UsageError("\(SpoolError.invalidQueue(q))") }
            if !ctx.queues.isEmpty && ctx.queues != [q] { throw UsageError("QUEUE and --queue disagree") }
            c.queues = [q]
        }
        return c
    }

    /// `pause` and `resume`: one QUEUE (positional, else --queue, else default).
    static func pauseResume(_ args: ParsedArguments, _ ctx: Context, pause: Bool) throws -> Int32 {
        let c = try withQueueArgument(args, ctx)
        let spool = try c.openSpool()
        if pause { try spool.pause() } else { try spool.resume() }
        ctx.console.out("\(pause ? "paused" : "resumed") \(spool.queue)")
        return 0
    }

    static let initCommand = Command(
        name: "init", summary: "create a spool directory (and a queue's directories)",
        description: """
        Creates the spool directory (mode 0700) in the current format, and the directories of --queue.
        Does nothing to a spool that exists. serve, enqueue, pull and reconcile create the spool on first
        use; every other command refuses a directory that is not a spool, so a mistyped --dir is an error.
        """,
        options: [],
        examples: [("sudo -u spool spool init --dir /var/lib/spool", "what the Debian package's postinst does")],
        run: { args, ctx in
            guard args.positionals.isEmpty else { throw UsageError("unexpected argument \(args.positionals[0])") }
            let spool = try ctx.openSpool(create: true)
            ctx.console.out("spool directory \(ctx.dir) is ready (format \(Spool.formatVersion), queue \(spool.queue))")
            return 0
        })

    static let pauseCommand = Command(
        name: "pause", summary: "stop a queue's consumers from starting attempts",
        synopsis: "[QUEUE]",
        description: """
        Every consumer of QUEUE (default: --queue, else default) stops starting attempts within a second;
        running attempts finish; webhooks keep being accepted. The pause survives restarts (the file
        paused in the queue's directory) until 'spool resume QUEUE'.
        """,
        options: [],
        run: { args, ctx in try pauseResume(args, ctx, pause: true) })

    static let resumeCommand = Command(
        name: "resume", summary: "let a paused queue's consumers start attempts again",
        synopsis: "[QUEUE]",
        description: "Undoes 'spool pause QUEUE': its consumers start attempts again within a second.",
        options: [],
        run: { args, ctx in try pauseResume(args, ctx, pause: false) })

    static let migrateCommand = Command(
        name: "migrate", summary: "upgrade a format 1 spool directory in place",
        description: """
        Rewrites every item of a format 1 spool as a format 2 item file (header, then the payload), moves its
        attempts and errors into state/, returns items of dead claimants to new/, and records the format.
        Stop every spool process first. Safe to interrupt: run it again and it finishes the job. A format 2
        spool is left alone (exit 0). docs/spool-format.md, "Upgrading from format 1".
        """,
        options: [
            .flag("--dry-run", help: "say what would be done, change nothing"),
            .flag("--json", help: "print what was done as one object"),
        ],
        run: { args, ctx in
            guard args.positionals.isEmpty else { throw UsageError("unexpected argument \(args.positionals[0])") }
            let r = try SpoolMigration.migrate(path: ctx.dir, dryRun: args.flag("--dry-run"))
            if args.flag("--json") {
                func arr(_ a: [String]) -> String { "[" + a.map(JSONWriter.quote).joined(separator: ",") + "]" }
                ctx.console.out("{\"from\":\(r.from),\"dry_run\":\(r.dryRun),\"converted\":\(r.converted.count),\"already_converted\":\(r.alreadyConverted),\"requeued\":\(arr(r.requeued)),\"completed_writes\":\(arr(r.completedWrites)),\"removed_tmp\":\(arr(r.removedTmp)),\"removed_orphan_markers\":\(arr(r.removedOrphanMarkers)),\"problems\":\(arr(r.problems))}")
            } else {
                ctx.console.out(r.lines.map { logSafe($0) }.joined(separator: "\n"))
            }
            return r.problems.isEmpty ? 0 : 1
        })
}

extension String {
    var trimmingTrailingSpaces: String {
        var s = self[...]
        while s.last == " " { s = s.dropLast() }
        return String(s)
    }
}
