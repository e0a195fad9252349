import Foundation
import SpoolTestSupport
import Testing
import SpoolCore
import SpoolSystem

/// `spool serve --config FILE`: several routes, each with its key rule and token, fanning out into the queues whose
/// match conditions hold, `unrouted` when none does; 404 for a path in no route (docs/configuration.md).
@Suite struct RouteCLITests {
    @Test func routesFanOutByMatchIntoQueues() throws {
        let base = makeTempDir()
        let dir = base + "/s"
        try Data("t0ken\n".utf8).write(to: URL(fileURLWithPath: base + "/token"))
        chmod(base + "/token", 0o600)
        let config = base + "/spool.toml"
        try Data("""
            [[route]]
            path = "/json2video/done"
            token_file = "\(base)/token"
            queues = ["video", "billing", "alerts"]

            [[route]]
            path = "/stripe"
            key_header = "stripe-event-id"
            queues = ["stripe-only"]

            [queue.video]
            match = ["movie.status=done"]
            [queue.billing]
            match = ["movie.status"]
            [queue.alerts]
            match = ["movie.status=error|timeout", "!movie.retry"]
            [queue.stripe-only]
            match = ["header:x-env=prod"]
            """.utf8).write(to: URL(fileURLWithPath: config))
        let server = try Server(dir: dir, extra: ["--config", config])
        defer { _ = server.stop() }
        func post(_ path: String, _ body: String, headers: [String] = [], token: Bool = true) throws -> String {
            let h = headers.flatMap { ["-H", $0] } + ["-H", "Content-Type: application/json"]
            let url = server.url + path + (token ? "?token=t0ken" : "")
            return try run("/usr/bin/curl", ["-s", "-w", " %{http_code}", "--data-binary", body] + h + [url]).stdout
        }
        #expect(try post("/json2video/done", #"{"movie":{"project":"D1","status":"done"}}"#) == #"{"status":"accepted","key":"D1"} 200"#)
        #expect(try post("/json2video/done", #"{"movie":{"project":"E1","status":"error"}}"#).hasSuffix(" 200"))
        #expect(try post("/json2video/done", #"{"movie":{"project":"E2","status":"error","retry":true}}"#).hasSuffix(" 200"))
        #expect(try post("/json2video/done", #"{"project":"U1"}"#).hasSuffix(" 200"), "no queue takes it: stored in unrouted")
        #expect(try post("/json2video/done", #"{"movie":{"project":"D1","status":"error"}}"#) == #"{"status":"duplicate","key":"D1"} 200"#)
        #expect(try post("/json2video/done", #"{"project":"X"}"#, token: false).hasSuffix(" 401"), "the route's token")
        #expect(try post("/stripe", #"{"id":"evt_1"}"#, headers: ["stripe-event-id: evt_1", "x-env: prod"], token: false).hasSuffix(" 200"))
        #expect(try post("/stripe", #"{}"#, headers: ["stripe-event-id: evt_2", "x-env: test"], token: false).hasSuffix(" 200"))
        #expect(try post("/nowhere", "{}").hasSuffix(" 404"))
        func keys(_ queue: String) -> Set<String> {
            let prefix = queue == "default" ? dir : dir + "/queues/" + queue
            return Set(entries(prefix + "/new"))
        }
        #expect(keys("video") == ["D1"])
        #expect(keys("billing") == ["D1", "E1", "E2"])
        #expect(keys("alerts") == ["E1"])
        #expect(keys("unrouted") == ["U1", "evt_2"])
        #expect(keys("stripe-only") == ["evt_1"])
        #expect(keys("default").isEmpty)
        // One file per webhook, however many queues took it.
        #expect(linkCount(dir + "/keys/D1") == 3 && linkCount(dir + "/keys/E1") == 3)
        #expect(storedHeader(atPath: dir + "/queues/billing/new/E2")?.queues == ["billing"])
        let metrics = try run("/usr/bin/curl", ["-s", server.url + "/metrics"]).stdout
        #expect(metrics.contains("spool_webhooks_unrouted_total 2"), "\(metrics.prefix(300))")
        // Route settings on the command line would contradict the file.
        let clash = try run(spoolBin, ["--dir", dir, "serve", "--config", config, "--token-file", base + "/token", "--listen", "127.0.0.1:0"])
        #expect(clash.status == 64 && clash.stderr.contains("with --config, routes come from the file"))
    }
}

/// `spool consume --config FILE --queue NAME`: the queue's handler and retries from its table; flags override.
@Suite struct QueueSettingsCLITests {
    @Test func consumeTakesItsQueuesSettingsFromTheFile() throws {
        let base = makeTempDir()
        let dir = base + "/s", config = base + "/spool.toml", log = base + "/handled"
        try Data("""
            [queue.video]
            exec = "echo \\"$SPOOL_QUEUE $SPOOL_KEY $SPOOL_ATTEMPT\\" >> \(log); exit 1"
            max_attempts = 2
            backoff = "1ms"
            max_backoff = "1ms"
            [queue.paced]
            exec = "true"
            rate = "10/s"
            """.utf8).write(to: URL(fileURLWithPath: config))
        _ = try spool("enqueue", "--key", "V1", "--queue", "video", "-", dir: dir, stdin: Data("{}".utf8))
        let r = try spool("consume", "--config", config, "--queue", "video", "--drain", dir: dir)
        #expect(r.status == 0, "\(r.stderr)")
        // Two attempts from the file's max_attempts, then failed/.
        #expect(try String(contentsOfFile: log, encoding: .utf8) == "video V1 1\nvideo V1 2\n")
        #expect(entries(dir + "/queues/video/failed") == ["V1"])
        // A flag overrides the file: the handler given here, one more attempt allowed after a retry by hand.
        _ = try spool("retry", "V1", "--queue", "video", dir: dir)
        let o = try spool("consume", "--config", config, "--queue", "video", "--exec", "cat >/dev/null", "--drain", dir: dir)
        #expect(o.status == 0 && entries(dir + "/queues/video/done") == ["V1"], "\(o.stderr)")
        // The file's rate applies: five items at 10/s start at least 0.4 s apart from first to last.
        for k in 1...5 { _ = try spool("enqueue", "--key", "P\(k)", "--queue", "paced", "-", dir: dir, stdin: Data("{}".utf8)) }
        let t0 = Date()
        let paced = try spool("consume", "--config", config, "--queue", "paced", "--concurrency", "5", "--drain", dir: dir)
        #expect(paced.status == 0 && entries(dir + "/queues/paced/done").count == 5, "\(paced.stderr)")
        #expect(Date().timeIntervalSince(t0) >= 0.4 && paced.stderr.contains("waited for the rate"), "\(paced.stderr)")
    }
}

/// `spool pause QUEUE` / `spool resume QUEUE` with a running consumer: nothing starts while paused (webhooks are
/// still accepted), everything waiting starts after the resume; the state survives a consumer restart.
@Suite struct PauseCLITests {
    @Test func pauseStopsStartsAndResumeRestartsThem() throws {
        let base = makeTempDir()
        let dir = base + "/s", log = base + "/handled"
        #expect(try spool("init", dir: dir).status == 0)
        #expect(try spool("pause", "video", dir: dir).stdout == "paused video\n")
        let consumer = try Child(spoolBin, ["--dir", dir, "consume", "--queue", "video", "--exec", "echo $SPOOL_KEY >> \(log)"])
        defer { consumer.signal(SIGKILL); _ = consumer.wait(timeout: 10) }
        #expect(consumer.waitFor { consumer.stderr.contains("started on") })
        for k in ["p1", "p2"] { _ = try spool("enqueue", "--key", k, "--queue", "video", "-", dir: dir, stdin: Data("{}".utf8)) }
        let stats = try JSONParser.parse(try spool("stats", "--json", "--queue", "video", dir: dir).stdout)
        #expect(stats["paused"]?.boolValue == true && stats["new"]?.intValue == 2)
        #expect(try spool("ls", "--queue", "video", dir: dir).stdout.hasPrefix("queue video is paused"))
        // The consumer looks at the pause at least every half second: in 1.5 s it would have started both.
        Thread.sleep(forTimeInterval: 1.5)
        #expect(!FileManager.default.fileExists(atPath: log), "nothing started while paused")
        #expect(try spool("resume", "video", dir: dir).stdout == "resumed video\n")
        #expect(waitUntil(timeout: 5) { ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n").count == 2 })
        // Paused again (the running consumer stopped first: it may look at the pause up to 0.75 s late, and would take
        // the next item meanwhile): a finite job on a paused queue ends at once, saying so; the default queue is not paused.
        consumer.signal(SIGTERM)
        #expect(consumer.wait(timeout: 20).status == 0)
        _ = try spool("pause", "--queue", "video", dir: dir)
        _ = try spool("enqueue", "--key", "p3", "--queue", "video", "-", dir: dir, stdin: Data("{}".utf8))
        let drain = try spool("consume", "--queue", "video", "--exec", "true", "--drain", dir: dir)
        #expect(drain.status == 0 && drain.stderr.contains("queue video is paused: nothing started"))
        #expect(entries(dir + "/queues/video/new") == ["p3"])
        #expect(try JSONParser.parse(try spool("stats", "--json", dir: dir).stdout)["paused"]?.boolValue == false)
        #expect(try spool("pause", "Bad", dir: dir).status == 64)
    }
}

/// A handler that cannot run (exit 126/127) is a configuration error, never an attempt: the consumer stops with
/// exit 1 when nothing ran yet, else backs off; items keep their attempts. Handlers see SPOOL_MAX_ATTEMPTS and
/// SPOOL_LAST_ATTEMPT.
@Suite struct HandlerCannotRunCLITests {
    @Test func notFoundStopsAFreshConsumerAndLosesNoAttempt() throws {
        let dir = makeTempDir() + "/s"
        for k in ["a", "b", "c"] { _ = try spool("enqueue", "--key", k, "-", dir: dir, stdin: Data("{}".utf8)) }
        let r = try spool("consume", "--exec", "./my-handler.sh", "--drain", dir: dir)
        #expect(r.status == 1, "\(r.stderr)")
        #expect(r.stderr.contains("error: handler './my-handler.sh' cannot run (exit 127: command not found)"), "\(r.stderr)")
        #expect(entries(dir + "/new").sorted() == ["a", "b", "c"] && entries(dir + "/failed").isEmpty)
        #expect(entries(dir + "/state").isEmpty, "no attempt was recorded")
        let ls = try spool("ls", "--json", dir: dir).stdout
        #expect(ls.split(separator: "\n").allSatisfy { $0.contains("\"attempts\":0") })
    }

    @Test func aHandlerThatDisappearsMidRunIsWaitedForAndTheEnvironmentSaysTheLastAttempt() throws {
        let base = makeTempDir()
        let dir = base + "/s", handler = base + "/h.sh", log = base + "/log"
        let script = "#!/bin/sh\necho \"$SPOOL_KEY $SPOOL_ATTEMPT $SPOOL_MAX_ATTEMPTS ${SPOOL_LAST_ATTEMPT:-0}\" >> \(log)\nrm -f \"$0\"\n"
        try Data(script.utf8).write(to: URL(fileURLWithPath: handler))
        chmod(handler, 0o755)
        for k in ["k1", "k2"] { _ = try spool("enqueue", "--key", k, "-", dir: dir, stdin: Data("{}".utf8)) }
        let c = try Child(spoolBin, ["--dir", dir, "consume", "--exec", handler, "--max-attempts", "3"])
        defer { c.signal(SIGKILL); _ = c.wait(timeout: 10) }
        // The first item runs (and the script removes itself); the second finds no handler: the consumer waits.
        #expect(c.waitFor(timeout: 10) { c.stderr.contains("cannot run (exit 127") && c.stderr.contains("starting nothing for") })
        #expect(entries(dir + "/done").count == 1 && entries(dir + "/new").count == 1)
        try Data(script.utf8).write(to: URL(fileURLWithPath: handler))
        chmod(handler, 0o755)
        #expect(waitUntil(timeout: 10) { entries(dir + "/done").count == 2 })
        let lines = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(lines.count == 2 && lines.allSatisfy { $0.hasSuffix(" 1 3 0") }, "\(lines): the unrun attempt was not counted")
        c.signal(SIGTERM)
        #expect(c.wait(timeout: 20).status == 0)
        // The last allowed attempt is marked.
        _ = try spool("enqueue", "--key", "k3", "-", dir: dir, stdin: Data("{}".utf8))
        // --drain leaves a retry that is not due yet (1 ms later) for the next run: run it until k3 is a dead letter.
        for _ in 0..<20 where !entries(dir + "/failed").contains("k3") {
            let last = try spool("consume", "--exec", "echo \"$SPOOL_ATTEMPT ${SPOOL_LAST_ATTEMPT:-0}\" >> \(log); exit 1", "--max-attempts", "2",
                                 "--backoff", "1ms", "--max-backoff", "1ms", "--drain", dir: dir)
            #expect(last.status == 0)
        }
        #expect(try String(contentsOfFile: log, encoding: .utf8).hasSuffix("1 0\n2 1\n"))
    }
}


/// A queue's rate holds across consumer processes (the shared `pace` file), and its delay holds first attempts.
@Suite struct RateAndDelayCLITests {
    /// Three consumer processes on a queue with `rate = "20/s"`, each with four slots, over 10 s: 200 starts ± 10%
    /// (counted from the handlers' own timestamps, in the 10 s after the first start).
    @Test func threeProcessesShareOneRate() throws {
        let base = makeTempDir()
        let dir = base + "/s", config = base + "/spool.toml", log = base + "/starts"
        try Data("""
            [queue.billing]
            exec = "date +%s%N >> \(log)"
            rate = "20/s"
            concurrency = 4
            """.utf8).write(to: URL(fileURLWithPath: config))
        let s = try Spool(path: dir, queue: "billing", flush: .syncfs)
        let reqs = (0..<400).map { EnqueueRequest(key: try! SpoolKey("k\($0)"), payload: Array("{}".utf8)) }
        for r in s.enqueueBatch(reqs) { #expect((try? r.get()) == .accepted) }
        let consumers = try (0..<3).map { _ in try Child(spoolBin, ["--dir", dir, "consume", "--config", config, "--queue", "billing"]) }
        defer { for c in consumers { c.signal(SIGKILL); _ = c.wait(timeout: 10) } }
        func starts() -> [Int64] {
            ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n").compactMap { Int64($0) }.sorted()
        }
        // Wait until some handler started more than 10 s after the first one did.
        #expect(waitUntil(timeout: 40) { let t = starts(); return t.count > 1 && t.last! - t.first! > 10_500_000_000 })
        for c in consumers { c.signal(SIGTERM) }
        for c in consumers { #expect(c.wait(timeout: 30).status == 0) }
        let t = starts()
        let inWindow = t.filter { $0 < t[0] + 10_000_000_000 }.count
        #expect(inWindow >= 180 && inWindow <= 220, "\(inWindow) starts in 10 s at 20/s")
        #expect(consumers.allSatisfy { $0.stderr.contains("waited for the rate") }, "every process was paced")
    }

    @Test func delayHoldsTheFirstAttempt() throws {
        let base = makeTempDir()
        let dir = base + "/s", log = base + "/starts"
        #expect(try spool("init", dir: dir).status == 0)
        let consumer = try Child(spoolBin, ["--dir", dir, "consume", "--delay", "2s", "--exec", "date +%s%N >> \(log)"])
        defer { consumer.signal(SIGKILL); _ = consumer.wait(timeout: 10) }
        #expect(consumer.waitFor { consumer.stderr.contains("started on") })
        _ = try spool("enqueue", "--key", "late", "-", dir: dir, stdin: Data("{}".utf8))
        let received = try #require(JSONParser.parse(try spool("show", "late", "--json", dir: dir).stdout)["received_at"]?.stringValue)
        // The shell creates the file (`>>`) before `date` writes its line: wait for a whole line.
        func firstLine() -> Int64? {
            guard let text = try? String(contentsOfFile: log, encoding: .utf8), let nl = text.firstIndex(of: "\n") else { return nil }
            return Int64(text[..<nl])
        }
        #expect(waitUntil(timeout: 10) { firstLine() != nil })
        let started = try #require(firstLine())
        let arrival = try #require(RFC3339.parse(received))
        #expect(started - arrival >= 2_000_000_000 && started - arrival < 4_000_000_000, "started \(started - arrival) ns after arrival")
        #expect(try spool("consume", "--rate", "10/x", "--exec", "true", "--drain", dir: dir).status == 64)
        #expect(try spool("consume", "--delay", "soon", "--exec", "true", "--drain", dir: dir).status == 64)
    }
}

/// `consume --on-failed CMD` (issue 25): once per item that lands in failed/, with the item's facts in the
/// environment and its payload on stdin; a hook that fails is logged and changes nothing.
@Suite struct OnFailedCLITests {
    @Test func theHookRunsOncePerDeadLetterWithPayloadAndFacts() throws {
        let base = makeTempDir()
        let dir = base + "/s", log = base + "/hook"
        for (k, body) in [("perm", #"{"p":1}"#), ("tries", #"{"p":2}"#), ("fine", #"{"p":3}"#)] {
            _ = try spool("enqueue", "--key", k, "-", dir: dir, stdin: Data(body.utf8))
        }
        let handler = "case $SPOOL_KEY in perm) echo refused >&2; exit 65;; tries) echo busy >&2; exit 1;; esac; cat >/dev/null"
        let hook = "printf '%s|%s|%s|%s|%s|' \"$SPOOL_KEY\" \"$SPOOL_QUEUE\" \"$SPOOL_ATTEMPTS\" \"$SPOOL_LAST_STATUS\" \"$SPOOL_LAST_ERROR\" >> \(log); cat >> \(log); echo >> \(log)"
        // --drain leaves a retry that is not due yet (1 ms later) for the next run: run it until both are dead letters.
        for _ in 0..<20 where entries(dir + "/failed").count < 2 {
            let r = try spool("consume", "--exec", handler, "--on-failed", hook, "--max-attempts", "2", "--backoff", "1ms", "--max-backoff", "1ms", "--drain", dir: dir)
            #expect(r.status == 0, "\(r.stderr)")
        }
        let lines = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").map(String.init).sorted()
        #expect(lines == [#"perm|default|1|exit 65|refused|{"p":1}"#, #"tries|default|2|exit 1|busy|{"p":2}"#], "\(lines)")
        #expect(Set(entries(dir + "/failed")) == ["perm", "tries"] && entries(dir + "/done") == ["fine"])
    }

    @Test func aFailingHookIsLoggedAndChangesNothing() throws {
        let base = makeTempDir()
        let dir = base + "/s"
        _ = try spool("enqueue", "--key", "bad", "-", dir: dir, stdin: Data("{}".utf8))
        _ = try spool("enqueue", "--key", "good", "-", dir: dir, stdin: Data("{}".utf8))
        let r = try spool("consume", "--exec", "test $SPOOL_KEY = good", "--on-failed", "exit 3", "--max-attempts", "1", "--drain", dir: dir)
        #expect(r.status == 0 && r.stderr.contains("on-failed: key=bad queue=default failed: exit 3"), "\(r.stderr)")
        #expect(entries(dir + "/failed") == ["bad"] && entries(dir + "/done") == ["good"])
        let show = try JSONParser.parse(try spool("show", "bad", "--json", dir: dir).stdout)
        #expect(show["attempts"]?.intValue == 1, "the hook's failure is not an attempt")
        #expect(try spool("consume", "--exec", "true", "--on-failed", "", "--drain", dir: dir).status == 64)
    }
}

/// Retention (issue 25): `consume --retain-done D` purges done items continuously; `--keep-keys K` keeps their keys
/// answering "duplicate" until K after they finished; `purge --keep-keys` does the same by hand.
@Suite struct RetentionCLITests {
    @Test func aConsumerPurgesDoneItemsAndKeepsTheirKeys() throws {
        let base = makeTempDir()
        let dir = base + "/s"
        for k in ["r1", "r2", "r3"] { _ = try spool("enqueue", "--key", k, "-", dir: dir, stdin: Data("{}".utf8)) }
        let consumer = try Child(spoolBin, ["--dir", dir, "consume", "--exec", "cat > /dev/null", "--retain-done", "1s", "--keep-keys", "1h"])
        defer { consumer.signal(SIGKILL); _ = consumer.wait(timeout: 10) }
        #expect(consumer.waitFor(timeout: 20) { consumer.stderr.contains("retention: purged") })
        #expect(waitUntil(timeout: 20) { entries(dir + "/done").isEmpty && entries(dir + "/new").isEmpty })
        #expect(entries(dir + "/keys").count == 3, "the keys stay")
        for k in ["r1", "r2", "r3"] {
            #expect(try spool("enqueue", "--key", k, "-", dir: dir, stdin: Data("{}".utf8)).stdout == "duplicate \(k)\n")
        }
        // A new key is delivered and purged too; the purged count is logged.
        _ = try spool("enqueue", "--key", "r4", "-", dir: dir, stdin: Data("{}".utf8))
        #expect(waitUntil(timeout: 20) { entries(dir + "/keys").count == 4 && entries(dir + "/done").isEmpty && entries(dir + "/new").isEmpty })
        consumer.signal(SIGTERM)
        #expect(consumer.wait(timeout: 30).status == 0)
        // `purge KEY` forgets a kept key: the key is accepted again.
        let forgot = try spool("purge", "r1", dir: dir)
        #expect(forgot.status == 0 && forgot.stdout == "forgot the kept key r1\n", "\(forgot.stdout)\(forgot.stderr)")
        #expect(try spool("enqueue", "--key", "r1", "-", dir: dir, stdin: Data("{}".utf8)).stdout == "accepted r1\n")
    }

    @Test func purgeKeepsKeysOnRequestAndSaysWhatItRemoved() throws {
        let dir = makeTempDir() + "/s"
        for k in ["a", "b"] { _ = try spool("enqueue", "--key", k, "-", dir: dir, stdin: Data("{}".utf8)) }
        #expect(try spool("consume", "--exec", "true", "--drain", dir: dir).status == 0)
        #expect(try spool("show", "a", dir: dir).stdout.contains("\nfinished_at: 20"), "show's text has finished_at, as --json does")
        let r = try spool("purge", "--older-than", "0s", "--keep-keys", "1d", "--verbose", dir: dir)
        #expect(r.status == 0)
        #expect(Set(r.stdout.split(separator: "\n").dropLast()) == ["purged a", "purged b"] && r.stdout.hasSuffix("purged 2 items\n"), "\(r.stdout)")
        #expect(try spool("enqueue", "--key", "a", "-", dir: dir, stdin: Data("{}".utf8)).stdout == "duplicate a\n")
        #expect(try spool("show", "a", dir: dir).status == 1)
        // Usage errors.
        for bad in [["purge", "--keep-keys", "1d", "a"], ["purge", "--older-than", "2d", "--keep-keys", "1d"],
                    ["consume", "--exec", "true", "--keep-keys", "1d"], ["consume", "--exec", "true", "--retain-done", "2d", "--keep-keys", "1d"],
                    ["consume", "--exec", "true", "--retain-done", "0s"]] {
            let u = try spool(bad, dir: dir)
            #expect(u.status == 64 && u.stderr.hasPrefix("spool: --"), "\(bad): \(u.stderr)")
        }
    }

    @Test func theQueueTableCarriesRetention() throws {
        let base = makeTempDir()
        let dir = base + "/s", config = base + "/spool.toml"
        try Data("""
            [queue.default]
            exec = "true"
            retain_done = "1s"
            keep_keys = "1h"
            """.utf8).write(to: URL(fileURLWithPath: config))
        _ = try spool("enqueue", "--key", "t1", "-", dir: dir, stdin: Data("{}".utf8))
        let consumer = try Child(spoolBin, ["--dir", dir, "consume", "--config", config])
        defer { consumer.signal(SIGKILL); _ = consumer.wait(timeout: 10) }
        #expect(consumer.waitFor(timeout: 20) { consumer.stderr.contains("retention: purged 1 done item") })
        #expect(try spool("enqueue", "--key", "t1", "-", dir: dir, stdin: Data("{}".utf8)).stdout == "duplicate t1\n")
        try Data("[queue.default]\nexec = \"true\"\nkeep_keys = \"1h\"\n".utf8).write(to: URL(fileURLWithPath: config))
        let r = try spool("consume", "--config", config, "--drain", dir: dir)
        #expect(r.status == 1 && r.stderr.contains("3:1") && r.stderr.contains("'keep_keys' needs 'retain_done'"), "\(r.stderr)")
    }
}
