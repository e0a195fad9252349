import Foundation
import Testing
import SpoolSystem
import SpoolTestSupport
import Synchronization

/// The payload read of a claim: one pread for a file of the size seen at claim time, the offset left alone.
@Suite struct FileDescriptorTests {
    func file(_ bytes: [UInt8]) throws -> String {
        let path = makeTempDir("fd") + "/f"
        FileManager.default.createFile(atPath: path, contents: Data(bytes))
        return path
    }

    @Test func readFromStartReadsTheWholeFileWhateverTheOffset() throws {
        for size in [0, 1, 4095, 4096, 70_000, 200_000] {
            let bytes = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
            let fd = try FileDescriptor.open(try file(bytes), .readOnly)
            defer { try? fd.close() }
            _ = try fd.read(upTo: 3)  // the offset moved: pread does not care, and does not move it
            #expect(try fd.readFromStart(size: size) == bytes, "size \(size)")
            #expect(try fd.readFromStart(size: size) == bytes, "again, size \(size)")
            #expect(try fd.read(upTo: 2) == Array(bytes.dropFirst(3).prefix(2)), "offset untouched, size \(size)")
        }
    }

    @Test func aFileThatGrewOrShrankSinceItsSizeWasTaken() throws {
        let fd = try FileDescriptor.open(try file(Array(repeating: 7, count: 100)), .readOnly)
        defer { try? fd.close() }
        #expect(throws: Errno.fileTooLarge) { try fd.readFromStart(size: 99) }
        #expect(try fd.readFromStart(size: 150) == Array(repeating: 7, count: 100), "shorter than expected: what is there")
    }
}

/// Directory listings through one shared descriptor, as a spool's threads make them (claim scans, recover, `ls`).
@Suite struct DirectoryListingTests {
    @Test func concurrentListingsOfOneDirectoryDescriptorEachSeeEveryEntry() throws {
        let path = makeTempDir("ls")
        let names = (0..<2000).map { "item-\($0)" }
        for n in names { FileManager.default.createFile(atPath: path + "/" + n, contents: nil) }
        let dir = try FileDescriptor.open(path, [.readOnly, .directory])
        defer { try? dir.close() }
        // A listing through a dup of `dir` shared its read position with every other one: two threads listing
        // at once skipped and repeated each other's entries.
        let wrong = Mutex(0)
        DispatchQueue.concurrentPerform(iterations: 4) { _ in
            for _ in 0..<50 {
                let seen = (try? FS.listNames(in: dir)) ?? []
                if seen.count != names.count || Set(seen).count != names.count { wrong.withLock { $0 += 1 } }
            }
        }
        #expect(wrong.withLock { $0 } == 0, "listings that missed or repeated entries")
        #expect(Set(try FS.listNames(in: dir)) == Set(names))
        #expect(try FS.listEntries(in: dir).allSatisfy { $0.isRegular == true && $0.inode != 0 })
    }
}
