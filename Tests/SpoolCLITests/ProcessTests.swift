import Foundation
import SpoolTestSupport
import Testing
import SpoolWire
import SpoolCore

/// Guarantees checked through real processes: several enqueuers and consumers at once, SIGKILL at random
/// moments, handler exit codes and signals, graceful shutdown.
@Suite(.serialized) struct ProcessTests {
    @Test func racingEnqueuersAcceptEachKeyExactlyOnceWhileConsumersRun() throws {
        let dir = makeTempDir() + "/s"
        _ = try spool("init", dir: dir)
        let log = dir + ".log"
        let consumers = try (0..<2).map { _ in
            try Child(spoolBin, ["--dir", dir, "consume", "--exec", "echo $SPOOL_KEY >> \(log)", "--concurrency", "2"])
        }
        let enqueuers = try (0..<6).map { _ in try Child(testkitBin, ["enqueue-range", dir, "k", "0", "200"]) }
        let outputs = enqueuers.map { $0.wait() }
        var accepted: [String: Int] = [:]
        for o in outputs {
            #expect(o.status == 0)
            #expect(o.lines.count == 200, "every enqueue answered")
            for l in o.lines where l.hasPrefix("accepted ") { accepted[String(l.dropFirst(9)), default: 0] += 1 }
            #expect(!o.stdout.contains("error"))
        }
        #expect(accepted.count == 200 && accepted.values.allSatisfy { $0 == 1 }, "each key accepted exactly once")
        #expect(waitUntil(timeout: 30) { entries(dir + "/done").count == 200 })
        for c in consumers { c.signal(SIGTERM); #expect(c.wait().status == 0) }
        let handled = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n")
        #expect(handled.count == 200 && Set(handled).count == 200, "each key handled exactly once")
        for d in ["new", "claimed", "failed", "tmp"] { #expect(entries(dir + "/" + d).isEmpty, "\(d)") }
        #expect(entries(dir + "/keys").count == 200)
    }

    @Test func fourConsumerProcessesProcessTwoThousandItemsExactlyOnce() throws {
        let dir = makeTempDir() + "/s"
        let e = try run(testkitBin, ["enqueue-range", dir, "item", "0", "2000", "128"])
        #expect(e.lines.filter { $0.hasPrefix("accepted ") }.count == 2000)
        let log = dir + ".log"
        // The handler checks it was given exactly the stored bytes (the item file's payload, after its header).
        let handler = "cmp -s - \"$SPOOL_FILE\" 0 \"$SPOOL_PAYLOAD_OFFSET\" && echo \"$SPOOL_KEY $SPOOL_ATTEMPT\" >> \(log)"
        let consumers = try (0..<4).map { _ in
            try Child(spoolBin, ["--dir", dir, "consume", "--exec", handler, "--concurrency", "4", "--drain"])
        }
        for c in consumers { let r = c.wait(timeout: 120); #expect(r.status == 0, "\(r.stderr.suffix(500))") }
        let lines = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(lines.count == 2000, "each handler ran exactly once per item")
        #expect(Set(lines).count == 2000)
        #expect(lines.allSatisfy { $0.hasSuffix(" 1") }, "first attempt for every item")
        #expect(entries(dir + "/done").count == 2000 && entries(dir + "/new").isEmpty && entries(dir + "/claimed").isEmpty)
    }

    @Test func enqueuerKilledAtRandomMomentsNeverLeavesAPartialItem() throws {
        let dir = makeTempDir() + "/s"
        var acknowledged: Set<String> = []
        for round in 0..<15 {
            let c = try Child(testkitBin, ["enqueue-range", dir, "r\(round)-", "0", "100000", "4096"])
            // Kill it at a random moment once it is really enqueuing (start-up time varies on a loaded machine).
            _ = c.waitFor(timeout: 10) { c.stdout.contains("accepted") }
            usleep(UInt32.random(in: 1_000...60_000))
            c.signal(SIGKILL)
            let r = c.wait()
            for l in r.lines where l.hasPrefix("accepted ") { acknowledged.insert(String(l.dropFirst(9))) }
            let rec = try spool("recover", "--tmp-grace", "0s", dir: dir)
            #expect(rec.status == 0, "\(rec.stdout)")
            #expect(entries(dir + "/tmp").isEmpty, "no tmp/ entry outlives a recover")
        }
        #expect(acknowledged.count > 50, "the load was real")
        // Every visible item is complete, and every acknowledged one is visible.
        var visible: Set<String> = []
        for name in entries(dir + "/new") {
            let data = Data(try #require(storedPayload(atPath: dir + "/new/" + name)))
            let expected = try expectedPayload(name, size: 4096)
            #expect(data == expected, """
                \(name) is intact: \(data.count) bytes, begins \(String(decoding: data.prefix(40), as: UTF8.self)), \
                ends \(String(decoding: data.suffix(10), as: UTF8.self)), links \(linkCount(dir + "/new/" + name))
                """)
            visible.insert(name)
        }
        #expect(acknowledged.isSubset(of: visible), "lost: \(acknowledged.subtracting(visible).prefix(5))")
        #expect(entries(dir + "/keys").count == visible.count, "one marker per item")
    }

    @Test func killedClaimantIsRecoveredImmediately() throws {
        let dir = makeTempDir() + "/s"
        _ = try run(testkitBin, ["enqueue", dir, "held"])
        let holder = try Child(testkitBin, ["claim-loop", dir, "--hold"])
        #expect(holder.waitFor { holder.stdout.contains("claimed held") })
        // Alive: recover leaves it alone.
        #expect(try spool("recover", dir: dir).stdout == "nothing to recover\n")
        #expect(entries(dir + "/claimed") == ["held"])
        holder.signal(SIGKILL)
        holder.wait()
        let t0 = Date()
        let r = try spool("recover", dir: dir)
        #expect(r.stdout.contains("requeued held"))
        #expect(Date().timeIntervalSince(t0) < 2, "no timeout wait")
        #expect(entries(dir + "/new") == ["held"])
    }
}

/// The number of hard links of a file (-1 if it cannot be read): a payload in new/ has 2 (itself and its marker).
func linkCount(_ path: String) -> Int {
    var st = stat()
    return stat(path, &st) == 0 ? Int(st.st_nlink) : -1
}
