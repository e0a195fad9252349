import Foundation
import SpoolTestSupport
import Glibc

/// A minimal blocking HTTP/1.1 client on a raw socket, for load and crash tests (curl is used elsewhere).
final class RawClient {
    let fd: Int32
    var buffer: [UInt8] = []

    init(port: UInt16) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = port.bigEndian
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var tv = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        if rc != 0 { close(fd); throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
    }
    deinit { close(fd) }

    func send(_ bytes: [UInt8]) throws {
        var off = 0
        while off < bytes.count {
            let n = bytes[off...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { throw POSIXError(.EPIPE) }
            off += n
        }
    }

    /// Reads one response (status, headers lowercased, body) framed by Content-Length.
    func readResponse() throws -> (status: Int, headers: [String: String], body: String) {
        while true {
            if let end = find([13, 10, 13, 10]) {
                let head = String(decoding: buffer[0..<end], as: UTF8.self)
                var lines = head.components(separatedBy: "\r\n")
                let statusLine = lines.removeFirst().split(separator: " ")
                var headers: [String: String] = [:]
                for l in lines { if let c = l.firstIndex(of: ":") { headers[l[..<c].lowercased()] = l[l.index(after: c)...].trimmingCharacters(in: .whitespaces) } }
                let len = Int(headers["content-length"] ?? "0") ?? 0
                while buffer.count < end + 4 + len { try fill() }
                let body = String(decoding: buffer[(end + 4)..<(end + 4 + len)], as: UTF8.self)
                buffer.removeFirst(end + 4 + len)
                return (Int(statusLine[1]) ?? 0, headers, body)
            }
            try fill()
        }
    }

    private func fill() throws {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n <= 0 { throw POSIXError(.ECONNRESET) }
        buffer += chunk[0..<n]
    }

    private func find(_ pattern: [UInt8]) -> Int? {
        guard buffer.count >= pattern.count else { return nil }
        for i in 0...(buffer.count - pattern.count) where buffer[i] == pattern[0] && Array(buffer[i..<(i + pattern.count)]) == pattern { return i }
        return nil
    }

    func post(path: String = "/json2video/done", body: [UInt8], headers: [String] = []) throws -> (status: Int, headers: [String: String], body: String) {
        var req = "POST \(path) HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: \(body.count)\r\n"
        for h in headers { req += h + "\r\n" }
        try send(Array((req + "\r\n").utf8) + body)
        return try readResponse()
    }
}

/// A running `spool serve` on a free port.
final class Server: @unchecked Sendable {
    // @unchecked: every stored property is immutable after init.
    let child: Child
    let port: UInt16
    let dir: String

    /// `fdLimit`: run under `ulimit -n` (soft and hard, so the server cannot raise it) to exhaust descriptors.
    init(dir: String, extra: [String] = [], env: [String: String] = [:], fdLimit: Int? = nil) throws {
        self.dir = dir
        let args = ["--dir", dir, "serve", "--listen", "127.0.0.1:0"] + extra
        let c = try fdLimit.map { try Child("/bin/sh", ["-c", "ulimit -n \($0) && exec \"$0\" \"$@\"", spoolBin] + args, env: env) }
            ?? Child(spoolBin, args, env: env)
        var found: UInt16? = nil
        _ = c.waitFor(timeout: 20) {
            if let r = c.stdout.range(of: "127.0.0.1:"), let end = c.stdout[r.upperBound...].firstIndex(of: " ") {
                found = UInt16(c.stdout[r.upperBound..<end])
            }
            return found != nil
        }
        child = c
        guard let found else { c.signal(SIGKILL); throw POSIXError(.ETIMEDOUT) }
        port = found
    }

    var url: String { "http://127.0.0.1:\(port)" }

    func stop() -> ProcessResult {
        child.signal(SIGTERM)
        return child.wait(timeout: 20)
    }
}

