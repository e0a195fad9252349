import Foundation
import SpoolTestSupport
import Testing
import SpoolCore
import SpoolSystem

/// Format 2 has no extended attributes: ordinary copies keep every item's state, attempts and history, and
/// `spool recover` makes each copy whole (docs/operations.md, "Backing up a spool").
@Suite struct BackupTests {
    /// A spool with items in every state of two queues, with failures (attempts, errors, history).
    func makeSpool(_ dir: String) throws -> [String] {
        let clock = TestClock()
        let d = try Spool(path: dir, clock: clock)
        let b = try Spool(path: dir, queue: "billing", clock: clock)
        let policy = RetryPolicy(maxAttempts: 2, baseNanos: 1_000_000_000, maxNanos: 1_000_000_000, random: { $0 })
        var keys: [String] = []
        for i in 0..<12 {
            let k = "item\(i)"
            keys.append(k)
            _ = try d.enqueue(key: SpoolKey(k), payload: Array("{\"project\":\"\(k)\",\"n\":\(i)}".utf8) + [0, 0xFF],
                              headers: [("content-type", "application/json")], queues: i % 3 == 0 ? ["default", "billing"] : ["default"])
        }
        // default: 3 done, 3 failed after two attempts, 2 waiting for a retry, the rest new.
        for _ in 0..<3 { try d.complete(try #require(try d.claimSoon(policy: policy))) }
        for _ in 0..<3 {
            let i = try #require(try d.claimSoon(policy: policy))
            try d.fail(i, error: "first failure of \(i.key.value)", status: "exit 1", retryable: true, policy: policy)
        }
        clock.advance(seconds: 5)
        for _ in 0..<3 {
            let i = try #require(try d.claimSoon(policy: policy))
            try d.fail(i, error: "second failure of \(i.key.value)", status: "exit 2", retryable: true, policy: policy)
        }
        for _ in 0..<2 {
            let i = try #require(try d.claimSoon(policy: policy))
            try d.fail(i, error: "later", status: "http 503", retryable: true, policy: RetryPolicy(maxAttempts: 9, baseNanos: 3_600_000_000_000, random: { $0 }))
        }
        // billing: one done after a failure, one failed for good.
        let f = try #require(try b.claimSoon(policy: policy))
        try b.fail(f, error: "billing down", status: "http 500", retryable: true, policy: policy)
        clock.advance(seconds: 5)
        try b.complete(try #require(try b.claimSoon(policy: policy)))
        try b.fail(try #require(try b.claimSoon(policy: policy)), error: "refused", status: "http 400", retryable: false, policy: policy)
        return keys
    }

    /// Everything the operator sees of every item in both queues. Except one thing no copy keeps: the time an item
    /// that succeeded at its first attempt reached done/ is its file's ctime (nothing else is written on that path),
    /// and copies get new ctimes (docs/spool-format.md, "Backups"). An item with history keeps its own.
    func view(_ dir: String, _ keys: [String]) throws -> [String] {
        func normalized(_ line: Substring) -> String {
            var l = line.replacingOccurrences(of: dir, with: "DIR")
            if l.contains("\"state\":\"done\""), !l.contains("\"history\":[{"), let r = l.range(of: #","finished_at":"[^"]*""#, options: .regularExpression) {
                l.removeSubrange(r)
            }
            return l
        }
        var out: [String] = []
        for q in ["default", "billing"] {
            let ls = try spool("ls", "--json", "--queue", q, dir: dir)
            #expect(ls.status == 0, "\(ls.stderr)")
            // Paths differ between copies: compare everything else.
            out += ls.stdout.split(separator: "\n").map(normalized).sorted()
            for k in keys {
                let s = try spool("show", k, "--json", "--queue", q, dir: dir)
                out.append(s.status == 0 ? normalized(s.stdout[...]) : "\(q) \(k) absent")
            }
        }
        return out
    }

    @Test(arguments: ["tar", "cp -a", "rsync -a"])
    func aCopyWithOrdinaryToolsKeepsEverything(tool: String) throws {
        if tool.hasPrefix("rsync") && !FileManager.default.isExecutableFile(atPath: "/usr/bin/rsync") {
            print("SKIPPED: rsync is not installed"); return
        }
        let base = makeTempDir("backup")
        let dir = base + "/spool"
        let keys = try makeSpool(dir)
        let original = try view(dir, keys)
        #expect(original.contains { $0.contains("\"history\":[{") && $0.contains("exit 2") }, "the fixture has history")
        let copy = base + "/copy"
        let cmd: String
        switch tool {
        case "tar": cmd = "cd \(base) && tar cf spool.tar spool && mkdir copyroot && cd copyroot && tar xf ../spool.tar && mv spool ../copy"
        case "cp -a": cmd = "cp -a \(dir) \(copy)"
        default: cmd = "rsync -a \(dir)/ \(copy)/"
        }
        let r = try run("/bin/sh", ["-c", cmd])
        #expect(r.status == 0, "\(r.stderr)")
        let rec = try spool("recover", dir: copy)
        #expect(rec.status == 0, "\(rec.stdout) \(rec.stderr)")
        if tool.hasPrefix("rsync") {
            #expect(rec.stdout.contains("linked the copy of"), "rsync -a turned links into copies: recover links them again")
        }
        #expect(try spool("recover", dir: copy).stdout.contains("nothing to recover"))
        let copied = try view(copy, keys)
        for (a, b) in zip(original, copied) where a != b { Issue.record("differs:\n\(a)\n\(b)") }
        #expect(copied.count == original.count)
        // Every queue entry is a link to its marker again: one file per item.
        for k in keys { #expect(linkCount(copy + "/keys/" + k) >= 2, "\(k)") }
        // The copy works: duplicates are recognised, a consumer drains what is due.
        #expect(try spool("enqueue", "--key", "item0", "-", dir: copy, stdin: Data("x".utf8)).stdout.hasPrefix("duplicate"))
        #expect(try spool("consume", "--exec", "cat >/dev/null", "--drain", dir: copy).status == 0)
    }
}
