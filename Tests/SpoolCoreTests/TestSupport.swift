import Foundation
import Synchronization
import SpoolSystem
@testable import SpoolCore


/// A clock tests move by hand.
final class ManualClock: WallClock {
    // Starts a second after the real time: timestamps the kernel sets (a fresh payload's mtime, a move's ctime)
    // must compare with it as with a real clock, which is never behind the file system's coarse clock.
    let nanos = Box<Int64>(SystemClock().nowNanos() + 1_000_000_000)
    func nowNanos() -> Int64 { nanos.value }
    func advance(seconds: Double) { nanos.update { $0 += Int64(seconds * 1e9) } }
}


/// A lock-protected value that closures can share across threads.
final class Box<T: Sendable>: Sendable {
    private let m: Mutex<T>
    init(_ v: T) { m = Mutex(v) }
    var value: T {
        get { m.withLock { $0 } }
        set { m.withLock { $0 = newValue } }
    }
    @discardableResult
    func update<R: Sendable>(_ f: (inout T) -> R) -> R { m.withLock { f(&$0) } }
}
