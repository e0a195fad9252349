import Foundation
import Testing
import SpoolSystem
@testable import SpoolCore
import SpoolTestSupport

/// The library calls behind `spool ui`: one-item purge and the incremental listing.
@Suite struct InspectTests {
    @Test func purgeOneFinishedItem() throws {
        let dir = makeTempDir("purge-key")
        let spool = try Spool(path: dir)
        _ = try spool.enqueue(key: SpoolKey("a"), payload: [1])
        try spool.complete(try #require(try spool.claimSoon()))
        _ = try spool.enqueue(key: SpoolKey("b"), payload: [2])
        try spool.purge(key: SpoolKey("a"))
        #expect(entries(dir + "/done").isEmpty && !entries(dir + "/keys").contains("a"))
        // The key is free again.
        #expect(try spool.enqueue(key: SpoolKey("a"), payload: [3]) == .accepted)
        #expect(throws: SpoolError.self) { try spool.purge(key: SpoolKey("b")) }  // waiting: not finished
        #expect(entries(dir + "/new").contains("b"))
        do { try spool.purge(key: SpoolKey("nope")); Issue.record("purged a missing item") } catch .notFound {} catch { Issue.record("\(error)") }
    }

    @Test func incrementalListingReusesOnlyUnchangedMetadata() throws {
        let dir = makeTempDir("list-reuse")
        let spool = try Spool(path: dir)
        for k in ["a", "b", "c"] { _ = try spool.enqueue(key: SpoolKey(k), payload: Array(k.utf8)) }
        // b fails once, so that it has a delivery state a retry rewrites.
        while let item = try spool.claimSoon() {
            if item.key.value == "b" { try spool.fail(item, error: "boom", retryable: true, policy: RetryPolicy()) } else { try spool.release(item) }
            if item.key.value == "b" { break }
        }
        let first = try spool.list(state: .new, reusing: [:])
        #expect(first.map(\.key).sorted() == ["a", "b", "c"] && first.allSatisfy { $0.meta != nil })
        var previous = Dictionary(uniqueKeysWithValues: first.map { ($0.fileName, $0) })
        // A planted wrong metadata for an unchanged item is reused (that is the point: no read)...
        previous["a"]!.meta!.lastError = "from the cache"
        // ...but a changed item (here: made due again, which rewrites its metadata) is read afresh.
        previous["b"]!.meta!.lastError = "stale"
        Thread.sleep(forTimeInterval: 0.01)
        try spool.retry(key: SpoolKey("b"))
        let second = try spool.list(state: .new, reusing: previous)
        #expect(second.first { $0.key == "a" }?.meta?.lastError == "from the cache")
        #expect(second.first { $0.key == "b" }?.meta?.lastError == "boom")
        #expect(second.count == 3)
    }
}
