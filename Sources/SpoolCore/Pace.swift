import SpoolSystem

/// A queue's pace: at most `count` attempts started per `perNanos`, across every consumer process of the queue on
/// the machine (`rate = "10/s"` in a queue's table, `consume --rate`).
public struct PaceRate: Sendable, Equatable, CustomStringConvertible {
    public let count: Int
    public let perNanos: Int64

    /// `N/s`, `N/m` or `N/h`, N from 1 to 1,000,000.
    public init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, parts[0].utf8.count <= 7, parts[0].utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
              let n = Int(parts[0]), n >= 1, n <= 1_000_000 else { return nil }
        switch parts[1] {
        case "s": perNanos = 1_000_000_000
        case "m": perNanos = 60_000_000_000
        case "h": perNanos = 3_600_000_000_000
        default: return nil
        }
        count = n
    }

    /// The spacing between two starts (GCRA's emission interval).
    public var intervalNanos: Int64 { max(1, perNanos / Int64(count)) }

    public var description: String { "\(count)/\(perNanos == 1_000_000_000 ? "s" : perNanos == 60_000_000_000 ? "m" : "h")" }
}

/// The shared pace of a queue (docs/spool-format.md, "Pace"): the file `pace` in the queue's directory holds the
/// theoretical arrival time of the generic cell rate algorithm (GCRA): the earliest moment the next attempt may
/// start, in `CLOCK_MONOTONIC` nanoseconds of the boot named beside it. A consumer that wants to start attempts
/// takes the file's `flock`, reads it, moves the time on by one interval per attempt, writes it back and drops
/// the lock: starts are spaced `interval` apart across every process, with no burst. Not flushed: it is a pace,
/// not data; after a crash or a reboot (another boot id) it starts again from now.
public enum Pace {
    public static let fileName = "pace"
    /// `<boot id, 36 characters> <19 digits>\n`: fixed width, written in place with one `pwrite`.
    static let recordBytes = 36 + 1 + 19 + 1

    /// The record for `boot` and `tat`.
    static func record(boot: String, tat: Int64) -> [UInt8] {
        let digits = String(max(0, tat))
        return Array((boot + " " + String(repeating: "0", count: max(0, 19 - digits.count)) + digits + "\n").utf8)
    }

    /// The time a record holds, when it is well formed and of boot `boot`; nil for anything else (a fresh file, a
    /// reboot, a torn or foreign write), which restarts the pace from now.
    static func parse(_ bytes: [UInt8], boot: String) -> Int64? {
        guard bytes.count == recordBytes, bytes[36] == 0x20, bytes[recordBytes - 1] == 0x0A,
              bytes[0..<36].elementsEqual(boot.utf8) else { return nil }
        let digits = bytes[37..<(recordBytes - 1)]
        guard digits.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        return Int64(String(decoding: digits, as: UTF8.self))
    }

    /// GCRA without burst: the first of `count` starts is at the later of `tat` and `now`, the others one interval
    /// apart. Returns the last start and the new theoretical arrival time.
    static func reserve(tat: Int64?, now: Int64, interval: Int64, count: Int) -> (lastStart: Int64, newTat: Int64) {
        let first = max(tat ?? now, now)
        let last = first + interval * Int64(count - 1)
        return (last, last + interval)
    }

    /// This boot's id (`/proc/sys/kernel/random/boot_id`), or a fixed placeholder where it cannot be read.
    public static let bootID: String = {
        let fallback = String(repeating: "0", count: 36)
        guard let bytes = try? FileDescriptor.open("/proc/sys/kernel/random/boot_id", [.readOnly]).closeAfter({ (fd) throws(Errno) in try fd.readAll(limit: 64) }) else { return fallback }
        let id = bytes.prefix { $0 != 0x0A }
        guard id.count == 36, id.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) || $0 == 0x2D }) else { return fallback }
        return String(decoding: id, as: UTF8.self)
    }()
}

extension Spool {
    /// Reserves the starts of `count` attempts of this queue under `rate`, shared with every process pacing it.
    /// Returns the `monotonicNanos()` time at which the last of them may start (now or later): the caller waits
    /// until then. `now` and `boot` are for tests.
    public func reservePace(_ rate: PaceRate, count: Int = 1, now: Int64? = nil, boot: String = Pace.bootID) throws(SpoolError) -> Int64 {
        precondition(count >= 1)
        return try sys("pace queue \(queue)") { () throws(Errno) in
            let fd = try FileDescriptor.open(Pace.fileName, in: q.base, [.readWrite, .create, .noFollow, .nonBlocking], mode: 0o600)
            return try fd.closeAfter { (fd) throws(Errno) -> Int64 in
                guard try fd.stat().isRegular else { throw Errno.invalidArgument }  // a FIFO or device put there
                try fd.lockExclusive()
                // Bytes past the record (written by something else) are ignored; the record is rewritten in place.
                let old = Pace.parse(try fd.read(at: 0, upTo: Pace.recordBytes), boot: boot)
                let t = now ?? monotonicNanos()
                let (last, tat) = Pace.reserve(tat: old, now: t, interval: rate.intervalNanos, count: count)
                try fd.writeAll(Pace.record(boot: boot, tat: tat), at: 0)
                return last
            }
        }
    }
}
