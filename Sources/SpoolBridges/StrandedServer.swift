/// Tells when a connected server is up but cannot reach JetStream: the minority side of a network partition
/// answers "no responders" (or nothing) for every stream request, and NATS never moves a client off a live
/// server by itself. After `threshold` failed rounds in a row the connection tries another server, at most once
/// per `interval`, which doubles while moving does not help (a stream missing everywhere) and resets on success.
/// Pure: the caller passes the clock.
public struct StrandedServer: Sendable {
    public var threshold = 3
    public var minIntervalNanos: Int64 = 5_000_000_000
    public var maxIntervalNanos: Int64 = 60_000_000_000
    private var failures = 0
    private var intervalNanos: Int64 = 0
    private var lastMove: Int64?

    public init() {}

    /// A round in which JetStream answered (an acknowledgement, even a negative one).
    public mutating func answered() {
        failures = 0
        intervalNanos = 0
        lastMove = nil
    }

    /// A round in which nothing reached JetStream (every request got "no responders" or timed out). True when
    /// the connection should now leave its server.
    public mutating func unanswered(now: Int64) -> Bool {
        failures += 1
        guard failures >= threshold else { return false }
        if let lastMove, now - lastMove < intervalNanos { return false }
        intervalNanos = intervalNanos == 0 ? minIntervalNanos : min(intervalNanos * 2, maxIntervalNanos)
        lastMove = now
        failures = 0
        return true
    }
}
