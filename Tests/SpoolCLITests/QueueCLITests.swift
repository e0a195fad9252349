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
