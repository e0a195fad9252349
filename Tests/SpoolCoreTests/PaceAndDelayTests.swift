import Testing
import SpoolSystem
import SpoolTestSupport
@testable import SpoolCore

/// A queue's `rate` (the shared GCRA record in `pace`) and `delay` (a first attempt waits for arrival + delay).
@Suite struct PaceAndDelayTests {
    let boot = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"

    @Test func rateSyntax() {
        #expect(PaceRate("10/s")?.intervalNanos == 100_000_000)
        #expect(PaceRate("600/m")?.intervalNanos == 100_000_000)
        #expect(PaceRate("5/h")?.intervalNanos == 720_000_000_000)
        #expect(PaceRate("1000000/s")?.intervalNanos == 1_000)
        #expect(PaceRate("3/s")?.description == "3/s")
        for bad in ["", "10", "/s", "10/", "0/s", "-1/s", "+1/s", "1.5/s", "10/d", "10/S", "10 /s", "10/s ", "1000001/s", "٣/s", "10/s/s", "99999999/s"] {
            #expect(PaceRate(bad) == nil, "\(bad)")
        }
    }

    @Test func recordIsFixedWidthAndParsedStrictly() {
        let r = Pace.record(boot: boot, tat: 1_234_567_890)
        #expect(r == Array("\(boot) 0000000001234567890\n".utf8) && r.count == Pace.recordBytes)
        #expect(Pace.parse(r, boot: boot) == 1_234_567_890)
        #expect(Pace.record(boot: boot, tat: Int64.max).count == Pace.recordBytes)
        #expect(Pace.parse(Pace.record(boot: boot, tat: Int64.max), boot: boot) == Int64.max)
        // Another boot's monotonic time means nothing now: the pace starts again.
        #expect(Pace.parse(r, boot: "ffffffff-4b5a-6978-8796-a5b4c3d2e1f0") == nil)
        var torn = r; torn[50] = 0x78
        #expect(Pace.parse(torn, boot: boot) == nil)
        #expect(Pace.parse(Array(r.dropLast()), boot: boot) == nil)
        #expect(Pace.parse(r + [0x0A], boot: boot) == nil)
        #expect(Pace.parse([], boot: boot) == nil)
        var noSpace = r; noSpace[36] = 0x30
        #expect(Pace.parse(noSpace, boot: boot) == nil)
        #expect(Pace.parse(Array("\(boot) 9999999999999999999\n".utf8), boot: boot) == nil, "over Int64.max")
    }

    @Test func gcraSpacesStartsWithoutBurst() {
        // An idle pace starts now; a busy one one interval after the last start.
        #expect(Pace.reserve(tat: nil, now: 1000, interval: 50, count: 1) == (1000, 1050))
        #expect(Pace.reserve(tat: 900, now: 1000, interval: 50, count: 1) == (1000, 1050))
        #expect(Pace.reserve(tat: 1050, now: 1000, interval: 50, count: 1) == (1050, 1100))
        #expect(Pace.reserve(tat: 1050, now: 1000, interval: 50, count: 3) == (1150, 1200))
    }

    /// Reservations through the file, from several handles (as from several processes): one interval apart, in
    /// order, and a record from another boot is ignored.
    @Test func reservationsThroughTheFileAreShared() throws {
        let dir = makeTempDir() + "/s"
        let a = try Spool(path: dir, queue: "billing"), b = try Spool(path: dir, queue: "billing")
        let rate = try #require(PaceRate("20/s"))
        let t0: Int64 = 5_000_000_000
        #expect(try a.reservePace(rate, now: t0, boot: boot) == t0)
        #expect(try b.reservePace(rate, now: t0, boot: boot) == t0 + 50_000_000)
        #expect(try a.reservePace(rate, count: 2, now: t0 + 10_000_000, boot: boot) == t0 + 150_000_000)
        #expect(try b.reservePace(rate, now: t0 + 1_000_000_000, boot: boot) == t0 + 1_000_000_000, "idle since: no debt, no burst credit")
        let path = dir + "/queues/billing/pace"
        #expect(String(decoding: try readFileBytes(path), as: UTF8.self) == "\(boot) \(String(t0 + 1_050_000_000).leftPadded(19))\n")
        #expect(try a.reservePace(rate, now: 7, boot: "ffffffff-4b5a-6978-8796-a5b4c3d2e1f0") == 7, "after a reboot the pace starts from now")
        // The default queue's pace is its own file at the root; other queues are not slowed by it.
        let d = try Spool(path: dir)
        #expect(try d.reservePace(rate, now: t0, boot: boot) == t0)
    }

    @Test func delayHoldsFirstAttemptsUntilArrivalPlusDelay() throws {
        let dir = makeTempDir() + "/s"
        let clock = ManualClock()
        let s = try Spool(path: dir, clock: clock)
        #expect(try s.enqueue(key: SpoolKey("d1"), payload: Array("{}".utf8)) == .accepted)
        #expect(try s.claim(delayNanos: 30_000_000_000) == nil)
        #expect(s.nextDueTime() != nil, "the loop learns when to look again")
        clock.advance(seconds: 29)
        #expect(try s.claim(delayNanos: 30_000_000_000) == nil)
        clock.advance(seconds: 1.5)
        let item = try #require(try s.claim(delayNanos: 30_000_000_000))
        #expect(item.key.value == "d1")
        // A retry waits for its own time only, not the delay again.
        _ = try s.fail(item, error: "x", retryable: true, policy: RetryPolicy(maxAttempts: 5, baseNanos: 1_000_000_000, maxNanos: 1_000_000_000, random: { $0 }))
        clock.advance(seconds: 1.1)
        #expect(try s.claim(delayNanos: 30_000_000_000)?.key.value == "d1")
        // Without a delay nothing waits.
        #expect(try s.enqueue(key: SpoolKey("d2"), payload: Array("{}".utf8)) == .accepted)
        #expect(try s.claim()?.key.value == "d2")
    }
}

private func readFileBytes(_ path: String) throws -> [UInt8] {
    try FileDescriptor.open(path, [.readOnly]).closeAfter { (fd) throws(Errno) in try fd.readAll(limit: 1 << 16) }
}

private extension String {
    func leftPadded(_ n: Int) -> String { String(repeating: "0", count: max(0, n - count)) + self }
}

/// The default number of attempts (issue 25): retries spanning 24 hours even when the jitter picks every shortest delay.
@Suite struct DefaultScheduleTests {
    func minimumSpan(_ p: RetryPolicy, attempts: Int) -> Int64 {
        var q = p; q.random = { _ in 0 }
        return (1..<attempts).reduce(Int64(0)) { $0 + q.delay(afterAttempt: $1) }
    }

    @Test func attemptsSpanADayAtTheShortestJitter() {
        let exec = RetryPolicy(baseNanos: 1_000_000_000, maxNanos: 3_600_000_000_000)
        let bridge = RetryPolicy(baseNanos: 1_000_000_000, maxNanos: 300_000_000_000)
        let day = RetryPolicy.defaultSpanNanos
        for (p, expected) in [(exec, 60), (bridge, 585)] {
            let n = p.attempts(spanning: day)
            #expect(n == expected, "\(n)")
            // The fewest: one attempt less would not span the day.
            #expect(minimumSpan(p, attempts: n) >= day && minimumSpan(p, attempts: n - 1) < day)
        }
        #expect(RetryPolicy(baseNanos: 0, maxNanos: 0).attempts(spanning: day) == 1_000_000, "no backoff: the limit")
        #expect(RetryPolicy(baseNanos: 2_000_000, maxNanos: 2_000_000).attempts(spanning: day) == 1_000_000)
        #expect(RetryPolicy(baseNanos: 86_400_000_000_000 * 4, maxNanos: 86_400_000_000_000 * 4).attempts(spanning: day) == 2)
    }
}
