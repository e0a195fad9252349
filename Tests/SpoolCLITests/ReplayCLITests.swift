import Foundation
import SpoolTestSupport
import SpoolSystem
import Testing
import SpoolCore

/// `spool replay` (issue 24): finished items go back to new/ by arrival time, match, key and state; `--dry-run`
/// moves nothing; the history stays and attempts start again. `purge KEY...` and `purge --dry-run`.
@Suite struct ReplayCLITests {
    /// 10,000 done items that arrived one second apart in batches of 100 (a clock moved by hand), then a replay of
    /// a time range through the binary: exactly the items of the range move, the count printed is theirs, and a dry
    /// run first moves none.
    @Test func replayByTimeRangeOnTenThousandDoneItems() throws {
        let dir = makeTempDir() + "/s"
        let clock = TestClock()
        let s = try Spool(path: dir, clock: clock, flush: .syncfs)
        var arrival: [String: Int64] = [:]
        for batch in 0..<100 {
            let reqs = (0..<100).map { i in EnqueueRequest(key: try! SpoolKey("r\(batch * 100 + i)"), payload: Array("{\"n\":\(i)}".utf8)) }
            for r in s.enqueueBatch(reqs) { #expect((try? r.get()) == .accepted) }
            for r in reqs { arrival[r.key.value] = clock.nowNanos() }
            clock.advance(seconds: 1)
        }
        var done = 0
        while let item = try s.claim() { try s.complete(item); done += 1 }
        #expect(done == 10_000)
        // The header's arrival is what the range compares: read one back to pin the clock's values.
        let t = arrival["r3000"]!, u = arrival["r5500"]!
        let expected = Set(arrival.filter { $0.value >= t && $0.value < u }.keys)
        #expect(expected.count == 2_500)
        let since = RFC3339.format(nanos: t), until = RFC3339.format(nanos: u)
        let dry = try spool("replay", "--since", since, "--until", until, "--dry-run", "--json", dir: dir)
        #expect(dry.status == 0, "\(dry.stderr)")
        let dj = try JSONParser.parse(dry.stdout)
        guard case .array(let would)? = dj["replayed"] else { Issue.record("no replayed array"); return }
        #expect(Set(would.compactMap { $0["key"]?.stringValue }) == expected && dj["dry_run"]?.boolValue == true)
        #expect(entries(dir + "/new").isEmpty && entries(dir + "/done").count == 10_000, "a dry run moves nothing")
        let real = try spool("replay", "--since", since, "--until", until, dir: dir)
        #expect(real.status == 0 && real.stdout.hasSuffix("2500 item(s) replayed in queue default\n"), "\(real.stdout.suffix(200)) \(real.stderr)")
        #expect(Set(entries(dir + "/new")) == expected)
        #expect(Set(entries(dir + "/done")) == Set(arrival.keys).subtracting(expected))
        // They are delivered again: a consumer completes exactly those.
        let c = try spool("consume", "--exec", "cat >/dev/null", "--drain", "--concurrency", "4", dir: dir)
        #expect(c.status == 0 && c.stderr.contains("2500 attempts, 2500 done"), "\(c.stderr.suffix(300))")
    }

    /// Match, key and state selection, attempts reset with the history kept, and a duration as --since.
    @Test func replaySelectsByMatchKeyAndStateAndKeepsHistory() throws {
        let dir = makeTempDir() + "/s"
        for (k, ok) in [("a", true), ("b", false), ("c", true)] {
            let body = Data(#"{"movie":{"project":"\#(k)","success":\#(ok)}}"#.utf8)
            #expect(try spool("enqueue", "-", dir: dir, stdin: body).status == 0)
        }
        // b fails for good (one attempt); a and c succeed.
        let c = try spool("consume", "--exec", "grep -q '\"success\":true'", "--max-attempts", "1", "--drain", dir: dir)
        #expect(c.status == 0, "\(c.stderr)")
        #expect(Set(entries(dir + "/done")) == ["a", "c"] && entries(dir + "/failed") == ["b"])
        let m = try spool("replay", "--match", "movie.success=true", "--since", "1h", "--dry-run", dir: dir)
        #expect(m.stdout.contains("would replay a ") && m.stdout.contains("would replay c ") && !m.stdout.contains(" b "), "\(m.stdout)")
        #expect(try spool("replay", "--state", "done", "--key", "b", dir: dir).stdout == "0 item(s) replayed in queue default\n")
        let f = try spool("replay", "--state", "failed", "--json", dir: dir)
        #expect(f.status == 0 && f.stdout.contains(#""key":"b","state":"failed""#), "\(f.stdout)")
        let show = try JSONParser.parse(try spool("show", "b", "--json", dir: dir).stdout)
        #expect(show["state"]?.stringValue == "new" && show["attempts"]?.intValue == 0)
        if case .array(let h)? = show["history"] { #expect(h.count == 1 && h[0]["outcome"]?.stringValue == "failed") } else { Issue.record("history lost") }
        // Usage errors: a bad time, an empty range, a bad condition, a bad state.
        for bad in [["--since", "yesterday"], ["--since", "1h", "--until", "2h"], ["--match", "a=b=c|"], ["--state", "new"]] {
            let r = try spool(["replay"] + bad, dir: dir)
            #expect(r.status == 64, "\(bad): \(r.status) \(r.stderr)")
        }
    }

    @Test func purgeByKeyAndDryRun() throws {
        let dir = makeTempDir() + "/s"
        for k in ["p1", "p2", "p3"] { #expect(try spool("enqueue", "--key", k, "-", dir: dir, stdin: Data("{}".utf8)).status == 0) }
        #expect(try spool("consume", "--exec", "cat >/dev/null", "--drain", dir: dir).status == 0)
        let d = try spool("purge", "--older-than", "0s", "--dry-run", dir: dir)
        #expect(d.stdout.hasSuffix("would purge 3 items\n") && entries(dir + "/done").count == 3, "\(d.stdout)")
        let k = try spool("purge", "p2", "nope", dir: dir)
        #expect(k.status == 1 && k.stdout == "purged p2\n" && k.stderr.contains("nope"), "\(k.stdout) \(k.stderr)")
        #expect(Set(entries(dir + "/done")) == ["p1", "p3"] && !entries(dir + "/keys").contains("p2"))
        #expect(try spool("purge", "--older-than", "0s", "p1", dir: dir).status == 64, "KEYs or --older-than, not both")
    }
}
