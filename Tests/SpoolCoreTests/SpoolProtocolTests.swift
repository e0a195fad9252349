import Foundation
import Testing
import SpoolWire
import Synchronization
import SpoolSystem
@testable import SpoolCore
import SpoolTestSupport

@Suite struct SpoolProtocolTests {
    let payload = Array(#"{"movie":{"project":"P1"},"bytes":"\u00e9 exact"}"#.utf8) + [0x0A, 0x00, 0xFF]

    @Test func layoutModesAndExactBytes() throws {
        let root = makeTempDir() + "/spool"
        let s = try Spool(path: root)
        #expect(try s.enqueue(key: SpoolKey("P1"), payload: payload, headers: [("Content-Type", "application/json")]) == .accepted)
        for d in ["tmp", "keys", "new", "claimed", "done", "failed", "state", "queues"] {
            let st = try FS.stat(root + "/" + d)
            #expect(st.isDirectory && st.permissions == 0o700, "\(d)")
        }
        #expect(FileManager.default.contents(atPath: root + "/format") == Data("2\n".utf8))
        #expect(try FS.stat(root + "/meta").isRegular, "meta is a file, so that format 1 binaries refuse the spool")
        #expect(try FS.stat(root + "/new/P1").permissions == 0o600)
        // The item file: the header, then exactly the payload.
        let file = try #require(FileManager.default.contents(atPath: root + "/new/P1")).map { $0 }
        let (header, offset) = try ItemHeader.parse(file)
        #expect(Array(file[offset...]) == payload)
        #expect(header.key == "P1" && header.size == Int64(payload.count) && header.queues == ["default"] && header.source == .webhook)
        #expect(header.header("content-type") == "application/json")
        // No extended attribute, no state file for an item that never failed.
        let attr = try FileDescriptor.open(root + "/new/P1", [.readOnly]).closeAfter { try $0.attribute("user.spool.meta", limit: 65536) }
        #expect(attr == nil)
        #expect(entries(root + "/state").isEmpty)
        // The marker is the same file as the item (a hard link), so it survives every move.
        #expect(try FS.stat(root + "/keys/P1").sameFile(as: FS.stat(root + "/new/P1")))
        #expect(entries(root + "/tmp").isEmpty)
        let info = try s.find(key: SpoolKey("P1"))
        #expect(info.meta?.header("content-type") == "application/json")
        #expect(info.meta?.size == Int64(payload.count) && info.size == Int64(payload.count))
        #expect(try s.payload(of: info) == payload)
        let item = try #require(try s.claimSoon())
        #expect(item.meta.header("content-type") == "application/json" && item.attempt == 1)
        #expect(try item.readPayload() == payload)
        try s.complete(item)
        #expect(try s.find(key: SpoolKey("P1")).meta?.attempts == 1)
        #expect(entries(root + "/state").isEmpty, "accept, claim, done wrote no state")
    }

    @Test func aOneKiBWebhookTakesOneBlockInEveryState() throws {
        let root = makeTempDir() + "/spool"
        let s = try Spool(path: root)
        let body = [UInt8](repeating: 0x61, count: 1024)
        _ = try s.enqueue(key: SpoolKey("K"), payload: body, headers: [("content-type", "application/json"),
                                                                       ("user-agent", "JSON2Video-Webhook/1.0 (+https://json2video.com)")])
        func blocks(_ state: String) throws -> Int64 {
            var st = Glibc.stat()
            #expect(lstat(root + "/" + state + "/K", &st) == 0)
            return Int64(st.st_blocks)
        }
        #expect(try blocks("new") <= 8)
        let item = try #require(try s.claimSoon())
        #expect(try blocks("claimed") <= 8)
        try s.complete(item)
        #expect(try blocks("done") <= 8)
    }

    @Test func longErrorsGoToTheStateFileClippedWithHistory() throws {
        let clock = ManualClock()
        let root = makeTempDir() + "/spool"
        let s = try Spool(path: root, clock: clock)
        _ = try s.enqueue(key: SpoolKey("BIG"), payload: [1])
        let policy = RetryPolicy(maxAttempts: 30, baseNanos: 1_000_000_000, maxNanos: 1_000_000_000, random: { $0 })
        let longError = String(repeating: "stderr line with detail\n", count: 500) // about 12 KiB
        for _ in 0..<12 {
            let item = try #require(try s.claimSoon(policy: policy))
            try s.fail(item, error: longError, status: "exit 1", retryable: true, policy: policy)
            clock.advance(seconds: 2)
        }
        #expect(entries(root + "/state") == ["BIG"])
        let info = try s.find(key: SpoolKey("BIG"))
        #expect(info.meta?.lastError == ItemMeta.clipError(longError))
        #expect(info.meta?.attempts == 12)
        let history = try #require(info.meta?.history)
        #expect(history.count == 10, "the last 10 attempts")
        #expect(history.allSatisfy { $0.outcome == .retry && $0.status == "exit 1" && ($0.error?.utf8.count ?? 0) <= 1024 + 3 })
        let again = try #require(try s.claimSoon(policy: policy))
        #expect(again.attempt == 13)
        try s.complete(again)
        let done = try s.find(key: SpoolKey("BIG"))
        #expect(done.meta?.lastError == nil, "a done item does not present an old error as its state")
        #expect(done.meta?.history.last?.outcome == .done && done.meta?.attempts == 13)
        #expect(try s.purge(states: [.done], olderThanNanos: 0) == ["BIG"])
        #expect(entries(root + "/state").isEmpty, "purge removes the state file too")
    }

    @Test func namedFallbackWithoutTmpfile() throws {
        let root = makeTempDir() + "/spool"
        let s = try Spool(path: root, unnamedFiles: false)
        #expect(try s.enqueue(key: SpoolKey("F1"), payload: payload, headers: [("Content-Type", "text/plain")]) == .accepted)
        #expect(try s.find(key: SpoolKey("F1")).meta?.header("content-type") == "text/plain")
        #expect(try s.payload(of: s.find(key: SpoolKey("F1"))) == payload)
        #expect(entries(root + "/tmp").isEmpty)
        #expect(try FS.stat(root + "/keys/F1").linkCount == 2)
    }

    @Test func staleStateFileNeverDescribesANewItem() throws {
        let root = makeTempDir() + "/spool"
        let s = try Spool(path: root)
        _ = try s.enqueue(key: SpoolKey("S"), payload: [1])
        let item = try #require(try s.claimSoon())
        try s.fail(item, error: "old incarnation", retryable: false, policy: RetryPolicy())
        // The operator deletes the item and its marker by hand; its state file stays behind.
        try FileManager.default.removeItem(atPath: root + "/failed/S")
        try FileManager.default.removeItem(atPath: root + "/keys/S")
        #expect(entries(root + "/state") == ["S"])
        #expect(try s.enqueue(key: SpoolKey("S"), payload: [2]) == .accepted)
        let fresh = try s.find(key: SpoolKey("S"))
        #expect(fresh.meta?.attempts == 0 && fresh.meta?.lastError == nil, "stale state must not describe the new item")
        let claimed = try #require(try s.claimSoon())
        #expect(claimed.attempt == 1 && claimed.meta.lastError == nil)
        try s.complete(claimed)
    }

    /// One item in two queues: claimed in both at once (the claim locks are different bytes of one file), retried
    /// and completed in each independently, each with its own delivery state.
    @Test func oneItemInTwoQueuesIsDeliveredInEachIndependently() throws {
        let clock = ManualClock()
        let root = makeTempDir() + "/spool"
        let a = try Spool(path: root, queue: "a", clock: clock)
        let b = try Spool(path: root, queue: "b", clock: clock)
        #expect(try a.enqueue(key: SpoolKey("T"), payload: payload, queues: ["a", "b"]) == .accepted)
        #expect(try b.enqueue(key: SpoolKey("T"), payload: [0], queues: ["b"]) == .duplicate)
        #expect(try FS.stat(root + "/keys/T").linkCount == 3, "one file: the marker and an entry per queue")
        #expect(try FS.stat(root + "/queues/a/new/T").sameFile(as: FS.stat(root + "/queues/b/new/T")))
        let policy = RetryPolicy(maxAttempts: 3, baseNanos: 1_000_000_000, maxNanos: 1_000_000_000, random: { $0 })
        let inA = try #require(try a.claimSoon(policy: policy))
        let inB = try #require(try b.claimSoon(policy: policy), "a claim in queue a does not block queue b")
        #expect(try inA.readPayload() == payload && inB.readPayload() == payload)
        // Another handle on queue a sees a's claim as alive, b's too.
        #expect(try Spool(path: root, queue: "a").recover().requeuedClaims.isEmpty)
        try a.complete(inA)
        #expect(try b.fail(inB, error: "b is down", status: "http 503", retryable: true, policy: policy) == .retry(atNanos: clock.nowNanos() + 1_000_000_000))
        #expect(entries(root + "/queues/a/state").isEmpty && entries(root + "/queues/b/state") == ["T"])
        #expect(try a.find(key: SpoolKey("T")).state == .done)
        #expect(try b.find(key: SpoolKey("T")).state == .new)
        #expect(try b.claim(policy: policy) == nil, "b waits for its retry time")
        clock.advance(seconds: 2)
        let again = try #require(try b.claimSoon(policy: policy))
        #expect(again.attempt == 2 && again.meta.lastError == "b is down")
        try b.complete(again)
        #expect(try b.find(key: SpoolKey("T")).meta?.history.map(\.outcome) == [.retry, .done])
        #expect(try a.find(key: SpoolKey("T")).meta?.history.isEmpty == true)
        // Purge in one queue keeps the item (and its key) for the other; the last purge forgets the key.
        #expect(try a.purge(states: [.done], olderThanNanos: 0) == ["T"])
        #expect(try a.enqueue(key: SpoolKey("T"), payload: [1], queues: ["a"]) == .duplicate)
        #expect(try b.purge(states: [.done], olderThanNanos: 0) == ["T"])
        #expect(entries(root + "/keys").isEmpty && entries(root + "/tmp").isEmpty)
        #expect(try a.enqueue(key: SpoolKey("T"), payload: [1], queues: ["a"]) == .accepted)
        #expect(Set(a.queueNames()) == ["default", "a", "b"])
    }

    @Test(arguments: [true, false])
    func duplicateInEveryState(unnamed: Bool) throws {
        let clock = ManualClock()
        let s = try Spool(path: makeTempDir() + "/s", clock: clock, unnamedFiles: unnamed)
        let k = try SpoolKey("K")
        #expect(try s.enqueue(key: k, payload: [1]) == .accepted)
        #expect(try s.enqueue(key: k, payload: [2]) == .duplicate)
        let item = try #require(try s.claimSoon())
        #expect(try s.enqueue(key: k, payload: [3]) == .duplicate)
        try s.fail(item, error: "boom", retryable: true, policy: RetryPolicy(maxAttempts: 3, random: { _ in 0 }))
        #expect(try s.enqueue(key: k, payload: [4]) == .duplicate)
        clock.advance(seconds: 10)
        let again = try #require(try s.claimSoon())
        #expect(again.attempt == 2)
        try s.complete(again)
        #expect(try s.enqueue(key: k, payload: [5]) == .duplicate)
        #expect(try s.payload(of: s.find(key: k)) == [1], "the first payload is the one kept")
        #expect(try s.list().map(\.state) == [.done])
    }

    @Test func purgeForgetsTheKey() throws {
        let clock = ManualClock()
        let root = makeTempDir() + "/s"
        let s = try Spool(path: root, clock: clock)
        let k = try SpoolKey("gone")
        _ = try s.enqueue(key: k, payload: [1])
        try s.complete(try #require(try s.claimSoon()))
        #expect(try s.purge(states: [.done], olderThanNanos: 60_000_000_000).isEmpty, "too young to purge")
        clock.advance(seconds: 61)
        #expect(try s.purge(states: [.done], olderThanNanos: 60_000_000_000) == ["gone"])
        #expect(entries(root + "/keys").isEmpty && entries(root + "/done").isEmpty && entries(root + "/tmp").isEmpty)
        #expect(entries(root + "/state").isEmpty, "purge removes the delivery state too")
        #expect(try s.enqueue(key: k, payload: [2]) == .accepted)
    }

    @Test(arguments: [true, false])
    func backoffWithInjectedClock(unnamed: Bool) throws {
        let clock = ManualClock()
        let s = try Spool(path: makeTempDir() + "/s", clock: clock, unnamedFiles: unnamed)
        _ = try s.enqueue(key: SpoolKey("B"), payload: [1])
        let policy = RetryPolicy(maxAttempts: 3, baseNanos: 10_000_000_000, maxNanos: 100_000_000_000, random: { $0 })
        let item = try #require(try s.claimSoon(policy: policy))
        let outcome = try s.fail(item, error: "try later", retryable: true, policy: policy)
        #expect(outcome == .retry(atNanos: clock.nowNanos() + 10_000_000_000))
        #expect(try s.claim(policy: policy) == nil, "not claimable before its not-before time")
        clock.advance(seconds: 9.9)
        #expect(try s.claim(policy: policy) == nil)
        clock.advance(seconds: 0.2)
        let second = try #require(try s.claimSoon(policy: policy), "claimable once due")
        #expect(second.attempt == 2)
        #expect(second.meta.lastError == "try later")
        // Second failure doubles the delay; the third attempt's failure dead-letters.
        #expect(try s.fail(second, error: "again", retryable: true, policy: policy) == .retry(atNanos: clock.nowNanos() + 20_000_000_000))
        clock.advance(seconds: 21)
        let third = try #require(try s.claimSoon(policy: policy))
        #expect(try s.fail(third, error: "last", status: "exit 1", retryable: true, policy: policy) == .failed)
        let info = try s.find(key: SpoolKey("B"))
        #expect(info.state == .failed && info.meta?.attempts == 3 && info.meta?.lastStatus == "exit 1")
        try s.retry(key: SpoolKey("B"))
        let back = try #require(try s.claimSoon(policy: policy))
        #expect(back.attempt == 1)
        try s.complete(back)
    }

    @Test func retryPolicyBounds() {
        let p = RetryPolicy(maxAttempts: 10, baseNanos: 1_000, maxNanos: 10_000, random: { $0 })
        #expect(p.delay(afterAttempt: 1) == 1_000)
        #expect(p.delay(afterAttempt: 2) == 2_000)
        #expect(p.delay(afterAttempt: 4) == 8_000)
        #expect(p.delay(afterAttempt: 5) == 10_000)
        #expect(p.delay(afterAttempt: 1000) == 10_000)
        let low = RetryPolicy(baseNanos: 1_000, maxNanos: 10_000, random: { _ in 0 })
        #expect(low.delay(afterAttempt: 3) == 2_000, "jitter never goes below half")
    }

    @Test func permanentFailureAndRelease() throws {
        let s = try Spool(path: makeTempDir() + "/s")
        _ = try s.enqueue(key: SpoolKey("P"), payload: [1])
        _ = try s.enqueue(key: SpoolKey("R"), payload: [1])
        var a = try #require(try s.claimSoon())
        var b = try #require(try s.claimSoon())
        if a.key.value != "P" { swap(&a, &b) }
        #expect(try s.fail(a, error: "poison", status: "exit 65", retryable: false, policy: RetryPolicy()) == .failed)
        try s.release(b)
        let again = try #require(try s.claimSoon())
        #expect(again.key.value == "R" && again.attempt == 1, "release does not use up an attempt")
        try s.release(again)
        #expect(try s.list(states: [.failed]).map(\.key) == ["P"])
    }

    @Test func deadClaimantIsRecoveredAtOnce() throws {
        let root = makeTempDir() + "/s"
        let s = try Spool(path: root)
        _ = try s.enqueue(key: SpoolKey("D"), payload: [1])
        let item = try #require(try s.claimSoon())
        // A second handle (another open file description) sees the live lock: nothing to do.
        let other = try Spool(path: root)
        #expect(other.recover().requeuedClaims.isEmpty)
        #expect(try other.claim() == nil)
        // The claimant "dies": its descriptors close without finishing.
        item.close(); item.finished = true
        // At once: no grace period (`recoverSoon` only covers a spawning child's copy of the dead claimant's lock).
        let r = other.recoverSoon { !$0.requeuedClaims.isEmpty }
        #expect(r.requeuedClaims == ["D"])
        let again = try #require(try other.claimSoon())
        #expect(again.attempt == 2, "the dead attempt stays counted")
        #expect(again.meta.lastStatus == nil || again.meta.lastStatus == "abandoned")
    }

    @Test func crashLoopingItemIsDeadLettered() throws {
        let root = makeTempDir() + "/s"
        let s = try Spool(path: root)
        _ = try s.enqueue(key: SpoolKey("X"), payload: [1])
        let policy = RetryPolicy(maxAttempts: 2)
        for _ in 0..<2 {
            let item = try #require(try s.claimSoon(policy: policy))
            item.close(); item.finished = true // dies mid-attempt
            _ = s.recover()
        }
        #expect(try s.claim(policy: policy) == nil)
        #expect(try s.find(key: SpoolKey("X")).state == .failed)
    }

    @Test func recoverRepairsMarkersAndTmp() throws {
        let root = makeTempDir() + "/s"
        let s = try Spool(path: root)
        _ = try s.enqueue(key: SpoolKey("A"), payload: [1])
        _ = try s.enqueue(key: SpoolKey("B"), payload: [2])
        // An operator deletes an item by hand from its only queue: its marker is then indistinguishable from an
        // enqueue interrupted before its queue, so recover delivers it again (documented: use spool purge).
        try FileManager.default.removeItem(atPath: root + "/new/A")
        // A marker lost (for example by hand): the item gets it back.
        try FileManager.default.removeItem(atPath: root + "/keys/B")
        // A named write (the fallback) that died before linking its marker, and a state file being written.
        _ = FileManager.default.createFile(atPath: root + "/tmp/C.1-1-1.w", contents: Data([3]))
        _ = FileManager.default.createFile(atPath: root + "/tmp/C.1-1-1.s", contents: Data([3]))
        // A marker whose file is not an item at all.
        _ = FileManager.default.createFile(atPath: root + "/keys/D", contents: Data("junk".utf8))
        let r = s.recover(tmpGraceNanos: 0)
        #expect(r.completedWrites == ["A"])
        #expect(r.relinkedMarkers == ["B"])
        #expect(r.removedOrphanMarkers == ["D"])
        #expect(Set(r.removedTmp) == ["C.1-1-1.w", "C.1-1-1.s"])
        #expect(r.problems.isEmpty, "\(r.problems)")
        #expect(entries(root + "/tmp").isEmpty)
        #expect(try s.enqueue(key: SpoolKey("A"), payload: [9]) == .duplicate)
        #expect(try s.payload(of: s.find(key: SpoolKey("A"))) == [1])
        #expect(try s.enqueue(key: SpoolKey("B"), payload: [9]) == .duplicate)
        #expect(try s.enqueue(key: SpoolKey("D"), payload: [9]) == .accepted)
        #expect(s.recover().isEmpty, "a second recover finds nothing")
    }

    /// A copy that did not keep hard links (`cp -r`, `rsync` without `-H`) has markers that are separate files
    /// under the right names: recover must not take a marker for healthy because its name is there.
    @Test func recoverRepairsMarkersThatAreNoLongerLinks() throws {
        let root = makeTempDir() + "/s"
        let s = try Spool(path: root)
        for k in ["A", "B", "C"] { _ = try s.enqueue(key: SpoolKey(k), payload: Array(k.utf8)) }
        let done = try #require(try s.claimSoon())
        try s.complete(done)
        for k in ["A", "B", "C"] {
            let state = k == done.key.value ? "done" : "new"
            // Break the link: the marker becomes a copy with its own inode.
            try FileManager.default.removeItem(atPath: "\(root)/keys/\(k)")
            try FileManager.default.copyItem(atPath: "\(root)/\(state)/\(k)", toPath: "\(root)/keys/\(k)")
        }
        let before = try FileManager.default.contentsOfDirectory(atPath: root + "/keys").count
        #expect(before == 3)
        let r = s.recover()
        #expect(Set(r.relinkedCopies) == ["A", "B", "C"], "\(r)")
        #expect(r.problems.isEmpty && r.removedOrphanMarkers.isEmpty, "\(r)")
        for k in ["A", "B", "C"] {
            let item = try FileManager.default.attributesOfItem(atPath: root + "/keys/" + k)
            #expect((item[.referenceCount] as? Int) == 2, "keys/\(k) is a link to its item again")
            #expect(try s.enqueue(key: SpoolKey(k), payload: [9]) == .duplicate)
        }
        #expect(s.recover().isEmpty, "a second recover finds nothing")
    }

    @Test func publishFailureAfterTheMarkerKeepsTheWriteForRecover() throws {
        // A request links the marker, then its link into new/ fails. A racing request for the key is answered
        // "duplicate", so the write must survive: the racer finishes it (the writer's lock is free).
        let root = makeTempDir() + "/s"
        let links = Box(0)
        let failing = try Spool(path: root, faults: FaultHooks { p in
            p == .queueLink && links.update({ $0 += 1; return $0 }) == 1 ? Errno.noSpace : nil
        })
        #expect(throws: SpoolError.self) { try failing.enqueue(key: SpoolKey("R"), payload: Array("kept".utf8)) }
        #expect(entries(root + "/new").isEmpty && entries(root + "/keys") == ["R"] && entries(root + "/tmp").isEmpty)
        let other = try Spool(path: root)
        #expect(try other.enqueue(key: SpoolKey("R"), payload: Array("second".utf8)) == .duplicate)
        #expect(entries(root + "/new") == ["R"])
        #expect(try other.payload(of: other.find(key: SpoolKey("R"))) == Array("kept".utf8))
        // Without a racer, recover finishes it: the same fault for an item for two queues, staged under a tmp/ name.
        links.update { $0 = 0 }
        #expect(throws: SpoolError.self) { try failing.enqueue(key: SpoolKey("Q"), payload: Array("two".utf8), queues: ["x", "y"]) }
        #expect(entries(root + "/tmp").count == 1)
        let r = other.recoverInterruptedWrites(tmpGraceNanos: 0)
        #expect(r.completedWrites == ["Q"], "\(r)")
        #expect(entries(root + "/queues/x/new") == ["Q"] && entries(root + "/queues/y/new") == ["Q"] && entries(root + "/tmp").isEmpty)
    }

    @Test func aClaimThatCannotOpenTheItemSaysWhyRatherThanFindingNothing() throws {
        // Out of descriptors looked like an empty queue: the claim returned nil and the consumer idled.
        let root = makeTempDir() + "/s"
        let openFails = Box<Errno?>(nil)
        let s = try Spool(path: root, faults: FaultHooks { p in p == .open ? openFails.value : nil })
        _ = try s.enqueue(key: SpoolKey("E"), payload: [1])
        openFails.update { $0 = .tooManyOpenFiles }
        #expect(throws: SpoolError.system(operation: "claim E", errno: .tooManyOpenFiles)) { try s.claim() }
        #expect(entries(root + "/new") == ["E"], "the item stays waiting")
        // A lost race (another claimant renamed the name away before our open) is still "nothing to claim".
        openFails.update { $0 = .noEntry }
        s.noteNewItems()
        #expect(try s.claim() == nil)
        openFails.update { $0 = nil }
        s.noteNewItems()
        let item = try #require(try s.claimSoon())
        #expect(item.key.value == "E")
        try s.complete(item)
    }

    @Test func hostileStateAndHeadersNeverTrap() throws {
        let root = makeTempDir() + "/s"
        let s = try Spool(path: root)
        _ = try s.enqueue(key: SpoolKey("H"), payload: [1])
        let evil = Array(#"{"v":2,"attempts":0,"next_attempt_at_ns":-9223372036854775807,"history":[]}"#.utf8)
        _ = FileManager.default.createFile(atPath: root + "/state/H", contents: Data(evil))
        #expect(try s.list().first?.meta == nil, "out-of-range state is reported as unreadable")
        let item = try #require(try s.claimSoon())
        #expect(item.meta.lastError?.contains("reset") == true)
        #expect(try item.readPayload() == [1])
        try s.complete(item)
        // A header that lies about the size, or is not a header: the item is dead-lettered, never read past its end.
        for (k, bytes) in [("L", Array("spool/2 2\n{}\nx".utf8)), ("G", Array("garbage".utf8)),
                           ("Z", Array(#"spool/2 90\n{"key":"Z","received_at_ns":1,"size":9223372036854775807,"source":"webhook","queues":["default"]}"#.utf8))] {
            _ = FileManager.default.createFile(atPath: root + "/new/" + k, contents: Data(bytes))
            try FS.link(root + "/new/" + k, in: .cwd, to: root + "/keys/" + k, in: .cwd)
        }
        s.noteNewItems()
        #expect(try s.claimSoon() == nil)
        #expect(Set(try s.list(states: [.failed]).map(\.key)) == ["L", "G", "Z"])
        // A payload timestamp far in the future is clamped, not trapped on.
        _ = try s.enqueue(key: SpoolKey("T"), payload: [2])
        try FileDescriptor.open(root + "/new/T", [.readOnly]).closeAfter { try $0.setModificationTime(nanos: Int64.max / 2) }
        _ = try s.stats()
        _ = try s.list()
    }

    @Test func interruptedEnqueueAfterMarkerIsCompleted() throws {
        // A writer died between link(marker) and its queues: a racing request may already have been told
        // "duplicate", so recover must finish the enqueue rather than drop it.
        let root = makeTempDir() + "/s"
        let s = try Spool(path: root)
        let t = root + "/tmp/M.9-9-9"
        let header = ItemHeader(key: "M", receivedAtNanos: 1, size: 4, headers: [("content-type", "text/plain")])
        _ = FileManager.default.createFile(atPath: t + ".w", contents: Data(header.encoded() + Array("body".utf8)))
        try FS.link(t + ".w", in: .cwd, to: root + "/keys/M", in: .cwd)
        let r = s.recover(tmpGraceNanos: 0)
        #expect(r.completedWrites == ["M"])
        let item = try #require(try s.claimSoon())
        #expect(try item.readPayload() == Array("body".utf8))
        #expect(item.meta.header("content-type") == "text/plain", "the header written before the crash is kept")
        #expect(entries(root + "/tmp").isEmpty)
    }

    @Test func anItemDeletedByHandIsDeliveredAgainByTheNextEnqueue() throws {
        let root = makeTempDir() + "/s"
        let s = try Spool(path: root)
        _ = try s.enqueue(key: SpoolKey("O"), payload: [1])
        try FileManager.default.removeItem(atPath: root + "/new/O")
        #expect(try s.enqueue(key: SpoolKey("O"), payload: [2]) == .duplicate)
        #expect(try s.payload(of: s.find(key: SpoolKey("O"))) == [1])
    }

    @Test func unsafeDirectoriesAreRefused() throws {
        let base = makeTempDir()
        try FileManager.default.createDirectory(atPath: base + "/real", withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        try FileManager.default.createSymbolicLink(atPath: base + "/link", withDestinationPath: base + "/real")
        #expect { try Spool(path: base + "/link") } throws: { "\($0)".contains("symlink") }
        try FileManager.default.createDirectory(atPath: base + "/open", withIntermediateDirectories: false, attributes: [.posixPermissions: 0o777])
        chmod(base + "/open", 0o777)
        #expect { try Spool(path: base + "/open") } throws: { "\($0)".contains("writable by group or others") }
        // A state directory replaced by a symlink is refused too.
        _ = try Spool(path: base + "/real")
        try FileManager.default.removeItem(atPath: base + "/real/done")
        try FileManager.default.createSymbolicLink(atPath: base + "/real/done", withDestinationPath: "/tmp")
        #expect { try Spool(path: base + "/real") } throws: { "\($0)".contains("symlink") }
    }

    @Test func hostileKeysStayInsideTheSpool() throws {
        let base = makeTempDir()
        let root = base + "/s"
        let s = try Spool(path: root)
        let hostile = ["../escape", "../../escape", "/abs", "..", ".", "a/../../b", "new/../x", "~7e", "\\..\\x", " ", "日本/語"]
        for (i, k) in hostile.enumerated() {
            #expect(try s.enqueue(key: SpoolKey(k), payload: [UInt8(i)]) == .accepted)
        }
        #expect(entries(base) == ["s"], "nothing written beside the spool")
        #expect(Set(try s.list().map(\.key)) == Set(hostile))
        for k in hostile { #expect(try s.find(key: SpoolKey(k)).path.hasPrefix(root + "/new/~")) }
        for d in ["new", "keys"] { #expect(entries(root + "/" + d).allSatisfy { $0.hasPrefix("~") }) }
    }

    @Test func everyInjectedFaultLeavesAllOrNothing() throws {
        // For each fault point and each position of that call within one enqueue: the enqueue either
        // returns (and the item is complete) or throws (and nothing is visible: no marker, no item, no tmp).
        for point in FaultPoint.allCases {
            for position in 1...6 {
                let root = makeTempDir("fault") + "/s"
                let calls = Box(0)
                let hooks = FaultHooks { p in
                    guard p == point else { return nil }
                    let n = calls.update { $0 += 1; return $0 }
                    return n == position ? (point == .fsync ? Errno.ioError : Errno.noSpace) : nil
                }
                let s = try Spool(path: root, faults: hooks)
                let result = Result { try s.enqueue(key: SpoolKey("F"), payload: payload) }
                let clean = try Spool(path: root)
                switch result {
                case .success(let o):
                    #expect(o == .accepted)
                    #expect(try clean.payload(of: clean.find(key: SpoolKey("F"))) == payload)
                case .failure(let e):
                    #expect((e as? SpoolError)?.isStorageUnavailable == true, "\(point)#\(position): \(e)")
                    // A write whose marker was linked is kept in tmp/ (another request may have been told
                    // "duplicate") and finished by recover; anything else is gone already.
                    let linkedBeforeFailure = !entries(root + "/keys").isEmpty && entries(root + "/new").isEmpty
                    let r = clean.recoverSoon(tmpGraceNanos: 0) { _ in entries(root + "/tmp").isEmpty }
                    if linkedBeforeFailure { #expect(r.completedWrites == ["F"], "\(point)#\(position): \(r.lines)") }
                    #expect(entries(root + "/tmp").isEmpty, "\(point)#\(position) left tmp files")
                    if entries(root + "/new").isEmpty {
                        #expect(entries(root + "/keys").isEmpty, "\(point)#\(position) left a marker without an item")
                        // The spool keeps working once the fault is gone; the sender's retry is accepted.
                        #expect(try clean.enqueue(key: SpoolKey("F"), payload: payload) == .accepted)
                    } else {
                        // The failure came after the rename (a directory flush): the item is complete but was
                        // not acknowledged; the sender's retry is acknowledged as a duplicate once flushes work.
                        #expect(try clean.payload(of: clean.find(key: SpoolKey("F"))) == payload, "\(point)#\(position) partial item")
                        #expect(try clean.enqueue(key: SpoolKey("F"), payload: payload) == .duplicate)
                    }
                }
            }
        }
    }

    @Test(arguments: FlushMode.allCases)
    func fsyncFailureInABatchAcksNothing(mode: FlushMode) throws {
        let root = makeTempDir() + "/s"
        let fail = Box(false)
        let s = try Spool(path: root, faults: FaultHooks { p in p == .fsync && fail.value ? Errno.ioError : nil }, flush: mode)
        fail.value = true
        let reqs = try (0..<8).map { EnqueueRequest(key: try SpoolKey("k\($0)"), payload: [UInt8($0)]) }
        let results = s.enqueueBatch(reqs)
        #expect(results.allSatisfy { if case .failure = $0 { return true } else { return false } })
        #expect(entries(root + "/new").isEmpty && entries(root + "/keys").isEmpty && entries(root + "/tmp").isEmpty)
        fail.value = false
        #expect(s.enqueueBatch(reqs).allSatisfy { (try? $0.get()) == .accepted })
        // Known duplicates are answered without writing, but still only after a flush succeeded.
        fail.value = true
        #expect(s.enqueueBatch(reqs).allSatisfy { if case .failure = $0 { return true } else { return false } })
        fail.value = false
        #expect(s.enqueueBatch(reqs).allSatisfy { (try? $0.get()) == .duplicate })
        #expect(entries(root + "/tmp").isEmpty, "duplicates write nothing")
    }

    @Test(arguments: [1, 2])
    func eitherSyncfsOfABatchFailingAcksNothing(position: Int) throws {
        // With syncfs, one flush covers the data of the whole batch and a second its names: whichever fails,
        // no request of the batch is answered, and the senders' retries find the spool consistent.
        let root = makeTempDir() + "/s"
        let calls = Box(0)
        let s = try Spool(path: root, faults: FaultHooks { p in
            guard p == .fsync else { return nil }
            return calls.update { $0 += 1; return $0 } == position ? Errno.ioError : nil
        }, flush: .syncfs)
        let reqs = try (0..<8).map { EnqueueRequest(key: try SpoolKey("k\($0)"), payload: [UInt8($0), 7]) }
        #expect(s.enqueueBatch(reqs).allSatisfy { if case .failure = $0 { return true } else { return false } })
        #expect(calls.value == position, "a failed flush stops the batch")
        let retry = s.enqueueBatch(reqs)
        // Data flush failed: nothing was published. Names flush failed: the items are complete but were never
        // acknowledged, so the retries are duplicates.
        let expected: EnqueueOutcome = position == 1 ? .accepted : .duplicate
        #expect(retry.allSatisfy { (try? $0.get()) == expected }, "\(retry)")
        for (i, r) in reqs.enumerated() { #expect(try s.payload(of: s.find(key: r.key)) == [UInt8(i), 7]) }
        #expect(entries(root + "/tmp").isEmpty)
    }

    @Test func autoFlushMeasuresBothWaysAndBatchesOfOneUseFsync() throws {
        let root = makeTempDir() + "/s"
        let flushes = Box(0)
        let s = try Spool(path: root, faults: FaultHooks { p in
            if p == .fsync { flushes.update { $0 += 1 } }
            return nil
        }, flush: .auto)
        func batch(_ prefix: String, _ n: Int) throws -> Int {
            flushes.value = 0
            let reqs = try (0..<n).map { EnqueueRequest(key: try SpoolKey("\(prefix)\($0)"), payload: [1]) }
            #expect(s.enqueueBatch(reqs).allSatisfy { (try? $0.get()) == .accepted })
            return flushes.value
        }
        // Nothing measured yet: file by file (8 files, keys/, new/).
        #expect(try batch("a", 8) == 10)
        // syncfs not measured yet: tried once (data, names), where the kernel reports its errors.
        #expect(try batch("b", 8) == (syncfsReportsErrors ? 2 : 10))
        // A lone item never pays for the whole file system.
        #expect(try batch("c", 1) == 3)
        let m = s.flushCosts.withLock { $0 }
        #expect(m.perFile != nil && m.perDirectory != nil)
        #expect((m.perSyncfs != nil) == syncfsReportsErrors)
    }

    @Test func concurrentEnqueuesOfOneKeyAcceptExactlyOnce() async throws {
        let root = makeTempDir() + "/s"
        let s = try Spool(path: root)
        let accepted = Box(0)
        await withTaskGroup(of: Void.self) { g in
            for t in 0..<16 {
                g.addTask {
                    for i in 0..<50 {
                        let k = try! SpoolKey("key\(i)")
                        if try! s.enqueue(key: k, payload: [UInt8(t)]) == .accepted { accepted.update { $0 += 1 } }
                    }
                }
            }
        }
        #expect(accepted.value == 50)
        #expect(entries(root + "/new").count == 50 && entries(root + "/keys").count == 50 && entries(root + "/tmp").isEmpty)
    }
}

extension Result where Failure == any Error {
    init(catching body: () throws -> Success) {
        do { self = .success(try body()) } catch { self = .failure(error) }
    }
}

/// tmp/ names carry their writer's pid and start time, so `recover` removes a dead writer's leftovers at once.
@Suite struct TmpWriterIdentityTests {
    @Test func deadReusedAndAliveWriters() {
        #expect(Spool.writerIsDead("123-456-789-5", alive: { _ in nil }), "no such process")
        #expect(Spool.writerIsDead("123-456-789-5", alive: { _ in 999 }), "the pid was reused by a later process")
        #expect(!Spool.writerIsDead("123-456-789-5", alive: { $0 == 123 ? 456 : nil }), "the writer is alive")
        // Names of format 0 (no start time) and anything unreadable cannot tell: the grace period decides.
        for unknown in ["123-789-5", "0-456-789-5", "x-456-789-5", "123-0-789-5", "", "123-456-789-5-6"] {
            #expect(!Spool.writerIsDead(Substring(unknown), alive: { _ in nil }), "\(unknown)")
        }
    }

    @Test func ourOwnStartTimeIsReadable() {
        let mine = FS.processStartTicks(FS.processID)
        #expect(mine != nil && mine! > 0)
        #expect(FS.processStartTicks(FS.processID) == mine)
        #expect(FS.processStartTicks(-1) == nil)
    }
}
