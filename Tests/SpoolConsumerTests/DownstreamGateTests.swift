import Testing
import SpoolConsumer

/// The circuit breaker that lets a consumer sleep through an outage: instants in, decisions out.
@Suite struct DownstreamGateTests {
    @Test func openUntilTheDownstreamCannotBeReached() {
        let g = DownstreamGate(minBackoffNanos: 1_000, maxBackoffNanos: 8_000, probeTimeoutNanos: 50_000)
        #expect(g.unavailableUntil(now: 0) == nil && g.unavailableUntil(now: 0) == nil && !g.isClosed)
        g.unreachable(now: 100)
        let until = g.unavailableUntil(now: 100)
        #expect(until != nil && until! >= 100 + 500 && until! <= 100 + 1_000, "\(String(describing: until))")
        #expect(g.unavailableUntil(now: until! - 1) == until)
    }

    @Test func oneProbeAtATimeAfterTheBackoffAndSuccessOpensForAll() {
        let g = DownstreamGate(minBackoffNanos: 1_000, maxBackoffNanos: 8_000, probeTimeoutNanos: 50_000)
        g.unreachable(now: 0)
        #expect(g.unavailableUntil(now: 1_000) == nil, "the first caller after the backoff is the probe")
        #expect(g.unavailableUntil(now: 1_001) == 51_000, "others wait for the probe (at most its time limit)")
        #expect(g.unavailableUntil(now: 51_000) == nil, "a probe that never reported lets another go")
        g.reached()
        #expect(g.unavailableUntil(now: 51_001) == nil && g.unavailableUntil(now: 51_001) == nil && !g.isClosed)
    }

    @Test func backoffDoublesPerFailureInARowAndIsCapped() {
        let g = DownstreamGate(minBackoffNanos: 1_000, maxBackoffNanos: 8_000, probeTimeoutNanos: 50_000)
        var maxima: [Int64] = []
        for _ in 0..<6 {
            g.unreachable(now: 0)
            maxima.append(g.unavailableUntil(now: 0)!)
        }
        let bounds: [ClosedRange<Int64>] = [500...1_000, 1_000...2_000, 2_000...4_000, 4_000...8_000, 4_000...8_000, 4_000...8_000]
        for (v, b) in zip(maxima, bounds) { #expect(b.contains(v), "\(maxima)") }
        // Thousands of failures in a row do not overflow the shift.
        for _ in 0..<5_000 { g.unreachable(now: 0) }
        #expect((4_000...8_000).contains(g.unavailableUntil(now: 0)!))
    }
}

extension DownstreamGateTests {
    @Test func backingOffOnlyWhileTheBackoffRuns() {
        let g = DownstreamGate(minBackoffNanos: 1_000, maxBackoffNanos: 8_000, probeTimeoutNanos: 50_000)
        #expect(!g.isBackingOff(now: 0), "open")
        g.unreachable(now: 0)
        let until = g.unavailableUntil(now: 0)!
        #expect(g.isBackingOff(now: 0) && g.isBackingOff(now: until - 1))
        #expect(g.unavailableUntil(now: until) == nil && !g.isBackingOff(now: until), "the probe is not held back")
        g.reached()
        #expect(!g.isBackingOff(now: until))
    }
}
