import SpoolSystem

// Polling and ports for tests, shared by every test target (they used to be copied into two of them).

/// Polls `condition` every 10 ms until it holds or `timeout` seconds pass; returns its last answer.
public func waitUntil(timeout: Double = 10, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = monotonicNanos() + Int64(timeout * 1e9)
    while monotonicNanos() < deadline {
        if try condition() { return true }
        sleep(nanoseconds: 10_000_000)
    }
    return try condition()
}

/// A free loopback TCP port (bound and released; the race with other programs is acceptable in tests).
public func freePort() throws(Errno) -> UInt16 {
    let fd = try Socket.listen(Socket.Address(host: "127.0.0.1", port: 0)!, backlog: 1)
    defer { try? fd.close() }
    return try fd.localPort()
}
