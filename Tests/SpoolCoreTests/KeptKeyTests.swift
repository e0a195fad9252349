import Foundation
import Testing
import SpoolWire
import SpoolSystem
@testable import SpoolCore
import SpoolTestSupport

/// Retention that keeps keys (issue 25, "Retention"): `purge --keep-keys` and `consume --retain-done --keep-keys`
/// replace the marker of an item purged from its last queue with a kept key, which answers "duplicate" until its
/// forget time and is then removed by `recover` or by the next enqueue of the key.
@Suite struct KeptKeyTests {
    let hour: Int64 = 3_600_000_000_000

    @Test func theKeptKeyHeaderIsStrict() throws {
        let item = ItemHeader(key: "P1", receivedAtNanos: 1_700_000_000_123_456_789, size: 5, headers: [("content-type", "x")], source: .pull, queues: ["a", "b"])
        let kept = ItemHeader.keptKey(of: item, until: 1_800_000_000_000_000_000)
        let bytes = kept.encoded()
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(text.contains(#""size":0,"headers":{},"source":"pull","queues":[],"forget_at":"2027-01-15T08:00:00.000Z","forget_at_ns":1800000000000000000}"#), "\(text)")
        let (parsed, offset) = try ItemHeader.parse(bytes)
        #expect(offset == bytes.count && parsed == kept && parsed.forgetAtNanos == 1_800_000_000_000_000_000 && parsed.key == "P1")
        #expect(try ItemHeader.parse(item.encoded()).header.forgetAtNanos == nil)
        // A kept key has no queues and no payload; an item always has queues. Anything else is corrupt.
        func object(_ body: String) -> [UInt8] { Array("spool/2 \(body.utf8.count)\n\(body)\n".utf8) }
        let base = #""key":"k","received_at_ns":1,"source":"webhook""#
        #expect(throws: SpoolError.self) { try ItemHeader.parse(object("{\(base),\"size\":0,\"queues\":[\"a\"],\"forget_at_ns\":5}")) }
        #expect(throws: SpoolError.self) { try ItemHeader.parse(object("{\(base),\"size\":3,\"queues\":[],\"forget_at_ns\":5}")) }
        #expect(throws: SpoolError.self) { try ItemHeader.parse(object("{\(base),\"size\":0,\"queues\":[]}")) }
        #expect(throws: SpoolError.self) { try ItemHeader.parse(object("{\(base),\"size\":0,\"forget_at_ns\":5}")) }
        #expect(throws: SpoolError.self) { try ItemHeader.parse(object("{\(base),\"size\":0,\"queues\":[],\"forget_at_ns\":\"5\"}")) }
        #expect(try ItemHeader.parse(object("{\(base),\"size\":0,\"queues\":[],\"forget_at_ns\":5}")).header.forgetAtNanos == 5)
    }

    /// A done item purged with its key kept: a duplicate until the key's time is over, accepted after it; the
    /// kept key holds no payload, and recover leaves it alone until then and removes it after.
    @Test func aKeptKeyAnswersDuplicateUntilItsTimeThenRecoverForgetsIt() throws {
        let clock = ManualClock()
        let root = makeTempDir() + "/s"
        let s = try Spool(path: root, clock: clock)
        let k = try SpoolKey("render-1"), other = try SpoolKey("render-2")
        _ = try s.enqueue(key: k, payload: Array(repeating: 0x41, count: 10_000))
        _ = try s.enqueue(key: other, payload: [1])
        try s.complete(try #require(try s.claimSoon()))
        try s.complete(try #require(try s.claimSoon()))
        clock.advance(seconds: 3600)
        // Kept for 2 h from when they finished: 1 h is left.
        #expect(Set(try s.purge(states: [.done], olderThanNanos: hour - 1, keepKeysNanos: 2 * hour)) == ["render-1", "render-2"])
        #expect(entries(root + "/done").isEmpty && entries(root + "/tmp").isEmpty && entries(root + "/state").isEmpty)
        #expect(Set(entries(root + "/keys")) == [k.fileName, other.fileName])
        let st = try FS.stat(root + "/keys/" + k.fileName)
        #expect(st.linkCount == 1 && st.size < 300, "a small file of its own, without the payload")
        let until = try #require(s.keptKeyUntil(k))
        #expect(st.mtimeNanos == until, "its mtime is its forget time")
        #expect(try s.enqueue(key: k, payload: [9]) == .duplicate)
        #expect(entries(root + "/new").isEmpty)
        #expect(s.recover().forgottenKeys == 0)
        #expect(entries(root + "/keys").count == 2)
        clock.advance(seconds: 3601)
        // The next enqueue of a key whose time is over is accepted (the kept key goes first)...
        #expect(try s.enqueue(key: k, payload: [9]) == .accepted)
        #expect(try s.readHeader(name: k.fileName, state: .new).header.size == 1)
        // ...and recover removes the others.
        let report = s.recover()
        #expect(report.forgottenKeys == 1 && report.problems.isEmpty, "\(report.lines)")
        #expect(entries(root + "/keys") == [k.fileName])
        #expect(try s.enqueue(key: other, payload: [9]) == .accepted)
    }

    @Test func keysAreKeptOnlyWithTheLastQueueAndOnlyWhileTimeIsLeft() throws {
        let clock = ManualClock()
        let root = makeTempDir() + "/s"
        let a = try Spool(path: root, queue: "a", clock: clock), b = try Spool(path: root, queue: "b", clock: clock)
        let k = try SpoolKey("both")
        #expect(try a.enqueue(key: k, payload: [1], queues: ["a", "b"]) == .accepted)
        try a.complete(try #require(try a.claimSoon()))
        try b.complete(try #require(try b.claimSoon()))
        // Purged from a: b still holds the item, so the marker stays the item's.
        #expect(try a.purge(states: [.done], olderThanNanos: 0, keepKeysNanos: hour) == ["both"])
        #expect(try FS.stat(root + "/keys/" + k.fileName).linkCount == 2 && a.keptKeyUntil(k) == nil)
        // Purged from b, the last queue: the key is kept.
        #expect(try b.purge(states: [.done], olderThanNanos: 0, keepKeysNanos: hour) == ["both"])
        #expect(b.keptKeyUntil(k) != nil)
        #expect(try a.enqueue(key: k, payload: [2], queues: ["a", "b"]) == .duplicate)
        // `purge KEY` forgets a kept key.
        try b.purge(key: k)
        #expect(entries(root + "/keys").isEmpty)
        #expect(throws: SpoolError.notFound(key: "both")) { try b.purge(key: k) }
        // An item whose keep time is already over when purged keeps nothing.
        #expect(try a.enqueue(key: k, payload: [3], queues: ["a"]) == .accepted)
        try a.complete(try #require(try a.claimSoon()))
        clock.advance(seconds: 7200)
        #expect(try a.purge(states: [.done], olderThanNanos: 0, keepKeysNanos: hour) == ["both"])
        #expect(entries(root + "/keys").isEmpty)
    }

    /// The purge step between "kept key renamed over the marker" and "entry moved to the trash": the queue entry is
    /// alone, its marker a kept key. Recover finishes the purge; the key stays a duplicate throughout.
    @Test func recoverFinishesAPurgeStoppedAfterTheKeptKey() throws {
        let clock = ManualClock()
        let root = makeTempDir() + "/s"
        let s = try Spool(path: root, clock: clock)
        let k = try SpoolKey("half")
        _ = try s.enqueue(key: k, payload: [1, 2, 3])
        try s.complete(try #require(try s.claimSoon()))
        let header = try s.readHeader(name: k.fileName, state: .done).header
        let kept = ItemHeader.keptKey(of: header, until: clock.nowNanos() + hour).encoded()
        try Data(kept).write(to: URL(fileURLWithPath: root + "/tmp/x"))
        #expect(rename(root + "/tmp/x", root + "/keys/" + k.fileName) == 0)
        #expect(try s.enqueue(key: k, payload: [4]) == .duplicate)
        let report = s.recover()
        #expect(report.finishedPurges == ["half"] && report.problems.isEmpty, "\(report.lines)")
        #expect(entries(root + "/done").isEmpty && entries(root + "/tmp").isEmpty)
        #expect(s.keptKeyUntil(k) != nil)
        #expect(try s.enqueue(key: k, payload: [4]) == .duplicate)
        // A copy of an item in a queue whose marker is a kept key is not taken for a backup copy and relinked.
        #expect(s.recover().isEmpty)
    }
}
