import Glibc
import Synchronization

/// systemd's service protocols, without libsystemd: the notification datagram (sd_notify(3): `READY=1`,
/// `STOPPING=1`, `STATUS=...`, `WATCHDOG=1` sent to the AF_UNIX socket in `$NOTIFY_SOCKET`) and socket activation
/// (sd_listen_fds(3): descriptors from 3 on, `$LISTEN_FDS`, `$LISTEN_PID`, `$LISTEN_FDNAMES`).
public enum Systemd {
    /// The first passed descriptor (`SD_LISTEN_FDS_START`).
    public static let listenFDsStart: Int32 = 3

    public enum ListenError: Error, Equatable, CustomStringConvertible {
        /// `LISTEN_FDS` or `LISTEN_PID` is not a number, or too large.
        case malformed(String)
        /// A passed descriptor is not a listening stream socket.
        case notAListeningSocket(fd: Int32)
        public var description: String {
            switch self {
            case .malformed(let what): return "malformed socket activation variables: \(what)"
            case .notAListeningSocket(let fd): return "descriptor \(fd) passed by systemd is not a listening stream socket"
            }
        }
    }

    /// The sockets systemd passed to this process, with their names (`LISTEN_FDNAMES`; nil when unnamed), or none
    /// when the variables are absent or meant for another process (`LISTEN_PID`). Each is checked to be a listening
    /// stream socket and made close-on-exec; the variables are removed from the environment, so no child sees them.
    public static func takeListenFDs(environment: [String: String]) throws(ListenError) -> [(name: String?, fd: FileDescriptor)] {
        defer { for v in ["LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"] { unsetenv(v) } }
        guard let countText = environment["LISTEN_FDS"], let pidText = environment["LISTEN_PID"] else { return [] }
        guard let pid = Int32(pidText), pid > 0 else { throw .malformed("LISTEN_PID=\(pidText.prefix(20))") }
        guard pid == getpid() else { return [] }
        guard let count = Int32(countText), count >= 0, count <= 64 else { throw .malformed("LISTEN_FDS=\(countText.prefix(20))") }
        let names = environment["LISTEN_FDNAMES"].map { $0.split(separator: ":", omittingEmptySubsequences: false).map(String.init) }
        var out: [(name: String?, fd: FileDescriptor)] = []
        for i in 0..<count {
            let raw = listenFDsStart + i
            var accepting: Int32 = 0, type: Int32 = 0
            var len = socklen_t(MemoryLayout<Int32>.size)
            guard getsockopt(raw, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len) == 0, accepting == 1 else { throw .notAListeningSocket(fd: raw) }
            len = socklen_t(MemoryLayout<Int32>.size)
            guard getsockopt(raw, SOL_SOCKET, SO_TYPE, &type, &len) == 0, type == Int32(SOCK_STREAM.rawValue) else { throw .notAListeningSocket(fd: raw) }
            _ = fcntl(raw, F_SETFD, FD_CLOEXEC)
            let name = names.flatMap { Int(i) < $0.count ? $0[Int(i)] : nil }.flatMap { $0.isEmpty || $0 == "unknown" ? nil : $0 }
            out.append((name, FileDescriptor(rawValue: raw)))
        }
        return out
    }
}

/// A client of systemd's notification socket (`Type=notify`). Absent `$NOTIFY_SOCKET`, `init` returns nil and
/// callers do nothing. Each message is one datagram; a failed send is ignored (systemd may have gone away).
///
/// Concurrency: `send` may be called from any thread (one socket, datagrams are atomic). `startWatchdog` starts one
/// thread that pings at half of `$WATCHDOG_USEC`; `stopWatchdog` stops and joins it.
public final class SystemdNotifier: Sendable {
    private let socket: FileDescriptor
    private let address: [UInt8]
    /// Half of `$WATCHDOG_USEC` (for this process: `$WATCHDOG_PID` unset or ours), in nanoseconds; nil: no watchdog.
    public let watchdogIntervalNanos: Int64?
    private let watchdog = Mutex<(stop: Wakeup, done: Wakeup)?>(nil)

    public init?(environment: [String: String]) {
        guard let path = environment["NOTIFY_SOCKET"], !path.isEmpty, path.utf8.count < 108,
              path.hasPrefix("/") || path.hasPrefix("@") else { return nil }
        let fd = Glibc.socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        socket = FileDescriptor(rawValue: fd)
        var a = Array(path.utf8)
        if a.first == 0x40 { a[0] = 0 }  // "@name": an abstract socket
        address = a
        if let usec = environment["WATCHDOG_USEC"].flatMap({ Int64($0) }), usec > 0,
           environment["WATCHDOG_PID"].map({ Int32($0) == getpid() }) ?? true {
            watchdogIntervalNanos = usec * 1000 / 2
        } else {
            watchdogIntervalNanos = nil
        }
    }

    deinit { stopWatchdog(); try? socket.close() }

    /// Sends one notification, for example `"READY=1\nSTATUS=listening on ..."`. Newlines inside a `STATUS=` value
    /// would start a new assignment: callers pass one line.
    public func send(_ message: String) {
        var sun = sockaddr_un()
        sun.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &sun.sun_path) { p in for (i, b) in address.enumerated() { p[i] = b } }
        let len = socklen_t(MemoryLayout<sa_family_t>.size + address.count)
        let bytes = Array(message.utf8)
        _ = bytes.withUnsafeBytes { buf in
            withUnsafePointer(to: &sun) { p in
                p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                    sendto(socket.rawValue, buf.baseAddress, buf.count, Int32(MSG_NOSIGNAL), sa, len)
                }
            }
        }
    }

    /// Starts pinging `WATCHDOG=1` (with `status()` as `STATUS=` when it returns one) at half of `$WATCHDOG_USEC`.
    public func startWatchdog(status: @escaping @Sendable () -> String? = { nil }) {
        guard let interval = watchdogIntervalNanos, let stop = try? Wakeup(), let done = try? Wakeup() else { return }
        let started = watchdog.withLock { w -> Bool in
            if w != nil { return false }
            w = (stop, done)
            return true
        }
        guard started else { return }
        startThread { [self] in
            while true {
                send("WATCHDOG=1" + (status().map { "\nSTATUS=" + $0 } ?? ""))
                let r = (try? pollReadable([stop.fd], timeoutMillis: Int32(clamping: max(1, interval / 1_000_000)))) ?? [false]
                if r[0] { break }
            }
            done.signal()
        }
    }

    /// Stops the watchdog thread and waits for it to end.
    public func stopWatchdog() {
        guard let w = watchdog.withLock({ w -> (stop: Wakeup, done: Wakeup)? in defer { w = nil }; return w }) else { return }
        w.stop.signal()
        _ = try? pollReadable([w.done.fd], timeoutMillis: 5_000)
    }
}
