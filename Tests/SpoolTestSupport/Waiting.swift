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

/// CPU time (user + system, seconds) a process has used so far, from /proc/PID/stat; 0 if it is gone.
public func cpuSeconds(_ pid: Int32) -> Double {
    guard let bytes = try? FileDescriptor.open("/proc/\(pid)/stat", [.readOnly]).closeAfter({ (fd) throws(Errno) in try fd.readAll(limit: 4096) }),
          let close = bytes.lastIndex(of: UInt8(ascii: ")")) else { return 0 }
    let fields = bytes[(close + 1)...].split(separator: UInt8(ascii: " "))
    // utime and stime are fields 14 and 15 of the line: the 12th and 13th after the command name.
    guard fields.count > 12, let u = Int(String(decoding: fields[11], as: UTF8.self)), let k = Int(String(decoding: fields[12], as: UTF8.self)) else { return 0 }
    return Double(u + k) / Double(FS.clockTicksPerSecond)
}
