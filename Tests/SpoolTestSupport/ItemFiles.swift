import SpoolCore
import SpoolSystem
import Foundation

/// The payload of an item file (format 2: after its header), read from a path; nil if unreadable.
public func storedPayload(atPath path: String) -> [UInt8]? {
    guard let bytes = try? FileDescriptor.open(path, [.readOnly, .noFollow]).closeAfter({ (fd) throws(Errno) in try fd.readAll(limit: 1 << 30) }),
          let (_, offset) = try? ItemHeader.parse(bytes) else { return nil }
    return Array(bytes[offset...])
}

/// The header of an item file read from a path; nil if unreadable.
public func storedHeader(atPath path: String) -> ItemHeader? {
    guard let bytes = try? FileDescriptor.open(path, [.readOnly, .noFollow]).closeAfter({ (fd) throws(Errno) in try fd.readAll(limit: 1 << 30) }) else { return nil }
    return (try? ItemHeader.parse(bytes))?.header
}

/// A wall clock a test moves by hand, starting a second after the real time (timestamps the kernel sets must
/// compare with it as with a real clock).
public final class TestClock: WallClock, @unchecked Sendable {
    private let lock = NSLock()
    private var now = SystemClock().nowNanos() + 1_000_000_000
    public init() {}
    public func nowNanos() -> Int64 { lock.lock(); defer { lock.unlock() }; return now }
    public func advance(seconds: Double) { lock.lock(); now += Int64(seconds * 1e9); lock.unlock() }
}
