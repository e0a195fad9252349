#if canImport(Glibc)
import Glibc
#endif
import CSpoolShims

/// TCP socket calls for the HTTP server and its tests: thin raw calls, EINTR retried, failures thrown as `Errno`.
public enum Socket {
    /// An IPv4 or IPv6 socket address, resolved from a numeric host (or `localhost`) without DNS.
    public enum Address: Sendable, Hashable {
        case v4(in_addr_t, UInt16)
        case v6([UInt8], UInt16)

        /// Parses `127.0.0.1`, `0.0.0.0`, `::1`, `::`, `[::1]` or `localhost`; nil for anything else (names need DNS).
        public init?(host: String, port: UInt16) {
            var h = host
            if h == "localhost" { h = "127.0.0.1" }
            if h.hasPrefix("[") && h.hasSuffix("]") { h = String(h.dropFirst().dropLast()) }
            var a4 = in_addr()
            if inet_pton(AF_INET, h, &a4) == 1 {
                self = .v4(a4.s_addr, port)
                return
            }
            var a6 = in6_addr()
            if inet_pton(AF_INET6, h, &a6) == 1 {
                self = .v6(withUnsafeBytes(of: &a6) { Array($0) }, port)
                return
            }
            return nil
        }

        var family: Int32 { if case .v4 = self { return AF_INET } else { return AF_INET6 } }

        /// Calls `body` with a `sockaddr` pointer and length for this address.
        func withSockAddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
            switch self {
            case .v4(let addr, let port):
                var sa = sockaddr_in()
                sa.sin_family = sa_family_t(AF_INET)
                sa.sin_port = port.bigEndian
                sa.sin_addr.s_addr = addr
                return withUnsafePointer(to: &sa) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
                }
            case .v6(let bytes, let port):
                var sa = sockaddr_in6()
                sa.sin6_family = sa_family_t(AF_INET6)
                sa.sin6_port = port.bigEndian
                withUnsafeMutableBytes(of: &sa.sin6_addr) { $0.copyBytes(from: bytes) }
                return withUnsafePointer(to: &sa) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
                }
            }
        }
    }

    /// `socket(2)` for TCP, close-on-exec, optionally nonblocking.
    public static func tcp(family: Int32, nonBlocking: Bool) throws(Errno) -> FileDescriptor {
        var type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        if nonBlocking { type |= Int32(SOCK_NONBLOCK.rawValue) }
        let fd = try retryingSyscall { Glibc.socket(family, type, 0) }
        return FileDescriptor(rawValue: fd)
    }

    /// A nonblocking listening socket with SO_REUSEADDR, bound to `address`; closed again if any step fails.
    public static func listen(_ address: Address, backlog: Int32) throws(Errno) -> FileDescriptor {
        let fd = try tcp(family: address.family, nonBlocking: true)
        do throws(Errno) {
            try fd.setSocketOption(SOL_SOCKET, SO_REUSEADDR, 1)
            try fd.bind(address)
            _ = try retryingSyscall { Glibc.listen(fd.rawValue, backlog) }
            return fd
        } catch {
            try? fd.close()
            throw error
        }
    }

    /// A blocking connected socket (for tests and tools, not the server).
    public static func connect(_ address: Address) throws(Errno) -> FileDescriptor {
        let fd = try tcp(family: address.family, nonBlocking: false)
        do throws(Errno) {
            _ = try retryingSyscall { address.withSockAddr { sa, len in Glibc.connect(fd.rawValue, sa, len) } }
            return fd
        } catch {
            try? fd.close()
            throw error
        }
    }

    /// `accept4(2)` (nonblocking, close-on-exec); nil when no connection is pending.
    public static func accept(_ listener: FileDescriptor) throws(Errno) -> FileDescriptor? {
        while true {
            let r = spool_accept4(listener.rawValue)
            if r >= 0 { return FileDescriptor(rawValue: r) }
            let e = Errno.current
            switch e.rawValue {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: return nil
            // The connection died in the backlog: not the listener's fault; try the next one.
            case ECONNABORTED, EPROTO: continue
            default: throw e
            }
        }
    }

    /// Raises the soft RLIMIT_NOFILE to the hard limit (many idle keep-alive clients need many descriptors).
    /// Returns the new soft limit.
    @discardableResult
    public static func raiseOpenFileLimit() throws(Errno) -> Int {
        var rl = rlimit()
        _ = try retryingSyscall { getrlimit(Int32(RLIMIT_NOFILE.rawValue), &rl) }
        if rl.rlim_cur < rl.rlim_max {
            rl.rlim_cur = rl.rlim_max
            _ = try retryingSyscall { setrlimit(Int32(RLIMIT_NOFILE.rawValue), &rl) }
        }
        return Int(clamping: rl.rlim_cur)
    }
}

extension FileDescriptor {
    public func bind(_ address: Socket.Address) throws(Errno) {
        _ = try retryingSyscall { address.withSockAddr { sa, len in Glibc.bind(rawValue, sa, len) } }
    }

    public func setSocketOption(_ level: Int32, _ name: Int32, _ value: Int32) throws(Errno) {
        var v = value
        _ = try retryingSyscall { setsockopt(rawValue, level, name, &v, socklen_t(MemoryLayout<Int32>.size)) }
    }

    /// TCP_NODELAY: responses are written whole, so Nagle would only add latency.
    public func setNoDelay() throws(Errno) { try setSocketOption(Int32(IPPROTO_TCP), TCP_NODELAY, 1) }

    /// SO_RCVTIMEO / SO_SNDTIMEO for blocking sockets (tests), in milliseconds.
    public func setTimeouts(milliseconds: Int) throws(Errno) {
        var tv = timeval(tv_sec: milliseconds / 1000, tv_usec: (milliseconds % 1000) * 1000)
        for opt in [SO_RCVTIMEO, SO_SNDTIMEO] {
            _ = try retryingSyscall { setsockopt(rawValue, SOL_SOCKET, opt, &tv, socklen_t(MemoryLayout<timeval>.size)) }
        }
    }

    /// The locally bound port (after binding port 0).
    public func localPort() throws(Errno) -> UInt16 {
        var ss = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = try retryingSyscall {
            withUnsafeMutablePointer(to: &ss) { p in p.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(rawValue, $0, &len) } }
        }
        return Self.port(of: ss)
    }

    /// The local address as `ip:port` (`[v6]:port`), or `-` if it cannot be read.
    public func localName() -> String { name(getsockname) }

    /// The peer as `ip:port` (`[v6]:port`), or `-` if it cannot be read.
    public func peerName() -> String { name(getpeername) }

    private func name(_ call: (Int32, UnsafeMutablePointer<sockaddr>?, UnsafeMutablePointer<socklen_t>?) -> Int32) -> String {
        var ss = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let r = withUnsafeMutablePointer(to: &ss) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { call(rawValue, $0, &len) }
        }
        guard r == 0 else { return "-" }
        var buf = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        let port = Self.port(of: ss)
        if Int32(ss.ss_family) == AF_INET {
            return withUnsafePointer(to: &ss) { p in
                p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { sin in
                    var a = sin.pointee.sin_addr
                    guard inet_ntop(AF_INET, &a, &buf, socklen_t(buf.count)) != nil else { return "-" }
                    return "\(Self.string(buf)):\(port)"
                }
            }
        }
        return withUnsafePointer(to: &ss) { p in
            p.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { sin in
                var a = sin.pointee.sin6_addr
                guard inet_ntop(AF_INET6, &a, &buf, socklen_t(buf.count)) != nil else { return "-" }
                return "[\(Self.string(buf))]:\(port)"
            }
        }
    }

    private static func string(_ cs: [CChar]) -> String {
        String(decoding: cs.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    private static func port(of ss: sockaddr_storage) -> UInt16 {
        var s = ss
        return withUnsafePointer(to: &s) { p in
            if Int32(ss.ss_family) == AF_INET {
                return p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin_port) }
            }
            return p.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin6_port) }
        }
    }

    /// `send(2)` with MSG_NOSIGNAL, so a peer that went away yields EPIPE instead of killing the process.
    public func send(_ p: UnsafeRawBufferPointer) throws(Errno) -> Int {
        try retryingSyscall { Glibc.send(rawValue, p.baseAddress, p.count, Int32(MSG_NOSIGNAL)) }
    }

    /// Sends every byte on a blocking socket.
    public func sendAll(_ bytes: [UInt8]) throws(Errno) {
        try bytes.withUnsafeBytes { p in
            Result { () throws(Errno) in
                var off = 0
                while off < p.count { off += try send(UnsafeRawBufferPointer(rebasing: p[off...])) }
            }
        }.get()
    }

    /// `recv(2)`; 0 means the peer closed its side.
    public func recv(into p: UnsafeMutableRawBufferPointer) throws(Errno) -> Int {
        try retryingSyscall { Glibc.recv(rawValue, p.baseAddress, p.count, 0) }
    }

    /// `shutdown(SHUT_WR)`: sends FIN but keeps reading (lingering close after an error response).
    public func shutdownWrite() throws(Errno) {
        _ = try retryingSyscall { Glibc.shutdown(rawValue, Int32(SHUT_WR)) }
    }
}

// MARK: - Client helpers (outgoing connections of the bridges)

extension Socket {
    /// Resolves `host` (a numeric address, `localhost` or a DNS name) to addresses for TCP, numeric first
    /// without DNS. Empty when the name does not resolve; blocking (getaddrinfo), so call it off any event loop.
    public static func resolve(host: String, port: UInt16) -> [Address] {
        if let a = Address(host: host, port: port) { return [a] }
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var res: UnsafeMutablePointer<addrinfo>? = nil
        guard getaddrinfo(host, nil, &hints, &res) == 0, let first = res else { return [] }
        defer { freeaddrinfo(first) }
        var out: [Address] = []
        var p: UnsafeMutablePointer<addrinfo>? = first
        while let ai = p {
            if let sa = ai.pointee.ai_addr {
                if ai.pointee.ai_family == AF_INET {
                    let a = sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr.s_addr }
                    out.append(.v4(a, port))
                } else if ai.pointee.ai_family == AF_INET6 {
                    let b = sa.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { sin in
                        withUnsafeBytes(of: sin.pointee.sin6_addr) { Array($0) }
                    }
                    out.append(.v6(b, port))
                }
            }
            p = ai.pointee.ai_next
        }
        var seen = Set<Address>()
        return out.filter { seen.insert($0).inserted }
    }

    /// Why an outgoing connection could not be made.
    public enum ConnectFailure: Error, Sendable, Equatable, CustomStringConvertible {
        /// The name resolved to no address.
        case cannotResolve(String)
        /// The deadline passed before any address answered.
        case timedOut
        /// The last address tried failed with this error (refused, unreachable, ...).
        case failed(Errno)

        public var description: String {
            switch self {
            case .cannotResolve(let host): return "cannot resolve \(host)"
            case .timedOut: return "timed out"
            case .failed(let e): return "\(e)"
            }
        }
    }

    /// The one connect-with-deadline of the program: resolves `host`, tries each address in turn until
    /// `deadline` (monotonic nanoseconds), and returns a nonblocking, close-on-exec socket with TCP_NODELAY.
    /// A peer that drops SYNs cannot hang a caller for the kernel's two minutes. Blocking (getaddrinfo).
    public static func connect(host: String, port: UInt16, deadline: Int64) throws(ConnectFailure) -> FileDescriptor {
        let addresses = resolve(host: host, port: port)
        guard !addresses.isEmpty else { throw .cannotResolve(host) }
        var last: ConnectFailure = .timedOut
        for a in addresses {
            guard deadline - monotonicNanos() > 0 else { break }
            do throws(Errno) { return try connect(a, deadline: deadline) } catch {
                last = error == .timedOut ? .timedOut : .failed(error)
            }
        }
        throw last
    }

    /// Nonblocking connect to one address, waiting in poll until `deadline`.
    static func connect(_ address: Address, deadline: Int64) throws(Errno) -> FileDescriptor {
        let fd = try tcp(family: address.family, nonBlocking: true)
        do throws(Errno) {
            let r = address.withSockAddr { sa, len in Glibc.connect(fd.rawValue, sa, len) }
            if r != 0 {
                let e = Errno.current
                guard e == .inProgress || e == .interrupted else { throw e }
                guard try fd.poll(.write, deadline: deadline) else { throw Errno.timedOut }
                var err: Int32 = 0
                var len = socklen_t(MemoryLayout<Int32>.size)
                _ = try retryingSyscall { getsockopt(fd.rawValue, SOL_SOCKET, SO_ERROR, &err, &len) }
                if err != 0 { throw Errno(rawValue: err) }
            }
            try? fd.setNoDelay()
            return fd
        } catch {
            try? fd.close()
            throw error
        }
    }
}

extension FileDescriptor {
    /// SO_SNDTIMEO alone, in milliseconds: a blocking send gives up (EAGAIN) when the peer stops reading.
    public func setSendTimeout(milliseconds: Int) throws(Errno) {
        var tv = timeval(tv_sec: milliseconds / 1000, tv_usec: (milliseconds % 1000) * 1000)
        _ = try retryingSyscall { setsockopt(rawValue, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size)) }
    }

    /// `shutdown(SHUT_RDWR)`: wakes every thread blocked on this socket without closing the descriptor number.
    public func shutdownBoth() {
        _ = Glibc.shutdown(rawValue, Int32(SHUT_RDWR))
    }
}
