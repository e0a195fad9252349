import Foundation
import SpoolTestSupport
import Testing
import SpoolCore

/// Named queues through the command line (docs/spool-format.md, "Layout"): one item enqueued into two queues is
/// claimed, retried and completed in each independently; every command takes `--queue`.
@Suite struct QueueCLITests {
    @Test func oneItemInTwoQueuesThroughTheCommandLine() throws {
        let dir = makeTempDir() + "/s"
        let body = Data(#"{"movie":{"project":"Q1"}}"#.utf8)
        let e = try spool("enqueue", "--queue", "video", "--queue", "billing", "-", dir: dir, stdin: body)
        #expect(e.status == 0 && e.stdout == "accepted Q1\n", "\(e.stderr)")
        #expect(try spool("enqueue", "--queue", "billing", "-", dir: dir, stdin: body).stdout == "duplicate Q1\n")
        #expect(try spool("ls", dir: dir).stdout.contains("Q1") == false, "the default queue does not have it")
        // video succeeds at once; billing fails once, then (retried by hand) succeeds.
        let v = try spool("consume", "--queue", "video", "--exec", "cat > /dev/null", "--drain", dir: dir)
        #expect(v.status == 0, "\(v.stderr)")
        let b1 = try spool("consume", "--queue", "billing", "--exec", "echo billing down >&2; exit 1", "--max-attempts", "1", "--drain", dir: dir)
        #expect(b1.status == 0, "\(b1.stderr)")
        let video = try JSONParser.parse(try spool("show", "Q1", "--json", "--queue", "video", dir: dir).stdout)
        let billing = try JSONParser.parse(try spool("show", "Q1", "--json", "--queue", "billing", dir: dir).stdout)
        #expect(video["state"]?.stringValue == "done" && video["queue"]?.stringValue == "video")
        #expect(billing["state"]?.stringValue == "failed" && billing["last_error"]?.stringValue == "billing down")
        if case .array(let h)? = billing["history"] { #expect(h.count == 1 && h[0]["outcome"]?.stringValue == "failed") } else { Issue.record("no history") }
        #expect(try spool("retry", "Q1", "--queue", "billing", dir: dir).status == 0)
        #expect(try spool("retry", "Q1", "--queue", "video", dir: dir).status == 1, "done in video: nothing to retry there")
        let b2 = try spool("consume", "--queue", "billing", "--exec", "cat - \"$SPOOL_FILE\" >/dev/null; test \"$SPOOL_QUEUE\" = billing && test \"$SPOOL_ATTEMPT\" = 1",
                           "--drain", dir: dir)
        #expect(b2.status == 0, "\(b2.stderr)")
        let after = try JSONParser.parse(try spool("show", "Q1", "--json", "--queue", "billing", dir: dir).stdout)
        #expect(after["state"]?.stringValue == "done" && after["last_error"] == nil)
        // The payload is the same bytes in both queues, and stored once.
        #expect(try spool("show", "Q1", "--body", "--queue", "billing", dir: dir).stdout == String(decoding: body, as: UTF8.self))
        #expect(linkCount(dir + "/keys/Q1") == 3)
        // Purging one queue keeps the key; purging the last forgets it.
        #expect(try spool("purge", "--older-than", "0s", "--queue", "video", dir: dir).stdout == "purged 1 item\n")
        #expect(try spool("enqueue", "--queue", "video", "-", dir: dir, stdin: body).stdout == "duplicate Q1\n")
        #expect(try spool("purge", "--older-than", "0s", "--queue", "billing", dir: dir).stdout == "purged 1 item\n")
        #expect(try spool("enqueue", "--queue", "video", "-", dir: dir, stdin: body).stdout == "accepted Q1\n")
        // A queue name that could escape or confuse is a usage error.
        for bad in ["../x", "A", "", "a/b", "-x"] {
            let r = try spool("ls", "--queue", bad, dir: dir)
            #expect(r.status == 64, "\(bad): \(r.status) \(r.stderr)")
        }
        #expect(try spool("ls", "--queue", "a", "--queue", "b", dir: dir).status == 64, "one queue per command but enqueue")
    }

    @Test func formatOneSpoolIsRefusedWithTheCommandToRun() throws {
        let dir = makeTempDir() + "/s"
        for d in ["", "/tmp", "/keys", "/meta", "/new", "/claimed", "/done", "/failed"] {
            try FileManager.default.createDirectory(atPath: dir + d, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        }
        let r = try spool("stats", dir: dir)
        #expect(r.status == 1 && r.stderr.contains("is in format 1") && r.stderr.contains("run 'spool migrate --dir \(dir)'"), "\(r.stderr)")
        let m = try spool("migrate", dir: dir)
        #expect(m.status == 0 && m.stdout.contains("convert 0 item(s) to format 2"), "\(m.stdout) \(m.stderr)")
        #expect(try spool("stats", dir: dir).status == 0)
        #expect(try spool("migrate", dir: dir).stdout.contains("nothing to do"))
        // A format this release does not know.
        try Data("3\n".utf8).write(to: URL(fileURLWithPath: dir + "/format"))
        let newer = try spool("ls", dir: dir)
        #expect(newer.status == 1 && newer.stderr.contains("newer than this release"))
    }
}

/// `spool validate`: every error with FILE:LINE:COLUMN on stderr and exit 1; a valid file exits 0.
@Suite struct ValidateCLITests {
    @Test func validAndInvalidFiles() throws {
        let dir = makeTempDir()
        let good = dir + "/good.toml", bad = dir + "/bad.toml"
        try Data("[[route]]\npath = \"/a\"\nqueues = [\"video\"]\n[queue.video]\nexec = \"true\"\n".utf8).write(to: URL(fileURLWithPath: good))
        try Data("[[route]]\npath = \"/a\"\ncolour = 1\n[queue.video]\nconcurrency = \"4\"\n".utf8).write(to: URL(fileURLWithPath: bad))
        let ok = try run(spoolBin, ["validate", "--config", good])
        #expect(ok.status == 0 && ok.stdout == "\(good): ok (1 route(s), queues: video)\n", "\(ok.stdout) \(ok.stderr)")
        let fromEnv = try run(spoolBin, ["validate"], env: ["SPOOL_CONFIG": good])
        #expect(fromEnv.status == 0)
        let r = try run(spoolBin, ["validate", "--config", bad])
        #expect(r.status == 1)
        #expect(r.stderr.contains("\(bad):3:1: unknown key 'colour' in a [[route]]"), "\(r.stderr)")
        #expect(r.stderr.contains("\(bad):5:15: 'concurrency' must be an integer, not a string"), "\(r.stderr)")
        let missing = try run(spoolBin, ["validate", "--config", dir + "/nope.toml"])
        #expect(missing.status == 1 && missing.stderr.hasPrefix("error: cannot read configuration"))
        #expect(try run(spoolBin, ["validate"], env: ["SPOOL_CONFIG": ""]).status == 64, "no file: a usage error")
        #expect(try run(spoolBin, ["validate", "--config", dir]).stderr.contains("not a regular file"))
    }
}

/// Fan-out's promise to consumers (issue 24): two consumer processes on each of two queues that share every item
/// file; each queue completes each item exactly once, independently of the other; a poison item fails in one queue
/// and completes in the other.
@Suite struct SharedPayloadConsumersTests {
    @Test func twoConsumersOnEachOfTwoQueues() throws {
        let base = makeTempDir()
        let dir = base + "/s", log = base + "/handled"
        let s = try Spool(path: dir, queue: "video", flush: .syncfs)
        let keys = (0..<300).map { "k\($0)" } + ["poison"]
        let reqs = keys.map { k in EnqueueRequest(key: try! SpoolKey(k), payload: Array("{\"k\":\"\(k)\"}".utf8), queues: ["video", "billing"]) }
        for r in s.enqueueBatch(reqs) { #expect((try? r.get()) == .accepted) }
        // Each handler reads its payload (the same bytes in both queues) and logs "queue key"; video refuses the poison.
        let handler = "p=$(cat); test \"$p\" = \"{\\\"k\\\":\\\"$SPOOL_KEY\\\"}\" || exit 3; "
            + "echo \"$SPOOL_QUEUE $SPOOL_KEY\" >> \(log); "
            + "if [ \"$SPOOL_QUEUE\" = video ] && [ \"$SPOOL_KEY\" = poison ]; then exit 1; fi"
        let consumers = try ["video", "video", "billing", "billing"].map { q in
            try Child(spoolBin, ["--dir", dir, "consume", "--queue", q, "--exec", handler, "--concurrency", "3", "--max-attempts", "2", "--backoff", "10ms", "--max-backoff", "10ms"])
        }
        defer { for c in consumers { c.signal(SIGKILL); _ = c.wait(timeout: 10) } }
        #expect(waitUntil(timeout: 60) {
            entries(dir + "/queues/video/done").count == 300 && entries(dir + "/queues/video/failed").count == 1
                && entries(dir + "/queues/billing/done").count == 301
        })
        for c in consumers { c.signal(SIGTERM) }
        for c in consumers { #expect(c.wait(timeout: 30).status == 0) }
        let lines = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").map(String.init)
        var count: [String: Int] = [:]
        for l in lines { count[l, default: 0] += 1 }
        for k in keys where k != "poison" {
            #expect(count["video \(k)"] == 1 && count["billing \(k)"] == 1, "\(k): \(count["video \(k)"] ?? 0) in video, \(count["billing \(k)"] ?? 0) in billing")
        }
        #expect(count["video poison"] == 2 && count["billing poison"] == 1, "two attempts then failed/ in video; done once in billing")
        #expect(entries(dir + "/queues/video/failed") == ["poison"] && entries(dir + "/queues/billing/done").contains("poison"))
        #expect(linkCount(dir + "/keys/poison") == 3, "one item file: the marker and one entry per queue")
    }
}
