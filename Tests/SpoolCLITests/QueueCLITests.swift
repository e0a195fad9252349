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
        #expect(try spool("purge", "--older-than", "0s", "--queue", "video", dir: dir).stdout == "purged 1 item(s)\n")
        #expect(try spool("enqueue", "--queue", "video", "-", dir: dir, stdin: body).stdout == "duplicate Q1\n")
        #expect(try spool("purge", "--older-than", "0s", "--queue", "billing", dir: dir).stdout == "purged 1 item(s)\n")
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
