import Foundation
import Testing
import SpoolWire
@testable import SpoolCore

@Suite struct FlushCostModelTests {
    let s: Int64 = 1_000_000_000

    @Test func measuresFsyncFirstThenSyncfsOnce() {
        var m = FlushCostModel()
        // Nothing known: file by file (it never flushes anything but our own files).
        #expect(!m.prefersSyncfs(files: 10, directories: 2, now: 0))
        m.recordFsync(files: 10, fileSeconds: 0.005, directories: 2, directorySeconds: 0.0004, now: 0)
        // fsync measured, syncfs not yet: try it once.
        #expect(m.prefersSyncfs(files: 10, directories: 2, now: 1))
    }

    @Test func aLoneFileNeverUsesSyncfs() {
        var m = FlushCostModel()
        m.recordFsync(files: 1, fileSeconds: 0.010, directories: 2, directorySeconds: 0.010, now: 0)
        m.recordSyncfs(calls: 2, seconds: 0.0001, now: 0)
        #expect(!m.prefersSyncfs(files: 1, directories: 2, now: 1))
        #expect(m.prefersSyncfs(files: 2, directories: 2, now: 1))
    }

    @Test func picksTheCheaperForTheBatchSize() {
        var m = FlushCostModel()
        // 0.5 ms per file, 0.2 ms per directory, 1 ms per syncfs: syncfs costs 2 ms a batch.
        m.recordFsync(files: 4, fileSeconds: 0.002, directories: 2, directorySeconds: 0.0004, now: 0)
        m.recordSyncfs(calls: 2, seconds: 0.002, now: 0)
        #expect(m.perFile == 0.0005 && m.perSyncfs == 0.001)
        // 2 files: 1.4 ms file by file, cheaper than 2 ms.
        #expect(!m.prefersSyncfs(files: 2, directories: 2, now: 1))
        // 4 files: 2.4 ms, dearer.
        #expect(m.prefersSyncfs(files: 4, directories: 2, now: 1))
    }

    @Test func theLoserIsRevisitedAfterTheInterval() {
        var m = FlushCostModel()
        m.recordFsync(files: 10, fileSeconds: 0.010, directories: 2, directorySeconds: 0.001, now: 0)
        m.recordSyncfs(calls: 2, seconds: 0.001, now: 0)
        #expect(m.prefersSyncfs(files: 10, directories: 2, now: FlushCostModel.revisitNanos - 1))
        // fsync, the loser, was last used at 0: once the interval passes it gets one batch to measure again.
        #expect(!m.prefersSyncfs(files: 10, directories: 2, now: FlushCostModel.revisitNanos))
        m.recordFsync(files: 10, fileSeconds: 0.010, directories: 2, directorySeconds: 0.001, now: FlushCostModel.revisitNanos)
        #expect(m.prefersSyncfs(files: 10, directories: 2, now: FlushCostModel.revisitNanos + 1))
    }

    @Test func aNeighbourMakingSyncfsSlowTurnsItOff() {
        var m = FlushCostModel()
        m.recordFsync(files: 8, fileSeconds: 0.004, directories: 2, directorySeconds: 0.0004, now: 0)
        m.recordSyncfs(calls: 2, seconds: 0.001, now: 0)
        #expect(m.prefersSyncfs(files: 8, directories: 2, now: 1))
        // Another writer dirties gigabytes: each syncfs now waits for it. A few slow batches move the average.
        var t: Int64 = 1
        while m.prefersSyncfs(files: 8, directories: 2, now: t) {
            m.recordSyncfs(calls: 2, seconds: 1.0, now: t)
            t += 1
            #expect(t < 10, "still choosing syncfs after \(t) slow batches")
            if t >= 10 { break }
        }
        #expect(!m.prefersSyncfs(files: 8, directories: 2, now: t))
    }

    @Test func gateMatchesThisKernel() throws {
        // On Linux the gate is the running kernel's version; anywhere else syncfs is never chosen.
        let release = (try? String(contentsOfFile: "/proc/sys/kernel/osrelease", encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(syncfsReportsErrors == (release.map { kernelAtLeast($0, major: 5, minor: 8) } ?? false))
    }

    @Test(arguments: [("6.18.44-fc-v782", true), ("5.8.0", true), ("5.10", true), ("5.7.19-generic", false),
                      ("4.19.0", false), ("10.0", true), ("5", false), ("", false), ("x.y", false)])
    func kernelVersionGate(_ release: String, _ expected: Bool) {
        #expect(kernelAtLeast(release, major: 5, minor: 8) == expected)
    }
}
