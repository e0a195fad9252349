import SpoolSystem

// The one raw HTTP/1.1 test client (the HTTP server's live tests and the `spool serve` tests each had their own).

/// One response as `RawHTTPClient` read it.
public struct RawHTTPResponse: Sendable, CustomStringConvertible {
    public var status: Int
    /// The fields in the order received, names as sent, values without surrounding whitespace.
    public var headers: [(String, String)]
    public var body: [UInt8]

    /// The first field called `name` (any case).
    public func header(_ name: String) -> String? {
        let n = name.lowercased()
        return headers.first { $0.0.lowercased() == n }?.1
    }

    /// The body as UTF-8 text.
    public var text: String { String(decoding: body, as: UTF8.self) }

    public var description: String { "\(status) \(headers.map { "\($0.0): \($0.1)" }) \(text)" }
}

/// A small blocking client on a raw socket to 127.0.0.1, for tests that need exact bytes on the wire (curl is used
/// elsewhere). Sends and receives give up after `timeoutMs`, so a broken server fails a test instead of hanging it.
public final class RawHTTPClient {
    public let fd: FileDescriptor
    /// Bytes received and not yet taken by `readResponse`.
    public private(set) var buffer: [UInt8] = []

    /// Connects to 127.0.0.1:`port` (a refused connection throws at once).
    public init(port: UInt16, timeoutMs: Int = 5000) throws(Errno) {
        fd = try Socket.connect(Socket.Address(host: "127.0.0.1", port: port)!)
        try fd.setTimeouts(milliseconds: timeoutMs)  // on failure, deinit closes fd
    }

    deinit { try? fd.close() }

    public func send(_ bytes: [UInt8]) throws(Errno) { try fd.sendAll(bytes) }
    public func send(_ text: String) throws(Errno) { try fd.sendAll(Array(text.utf8)) }

    /// Sends a POST (JSON, with `headers` as whole field lines) and reads its response; throws when none comes.
    public func post(path: String = "/json2video/done", body: [UInt8], headers: [String] = []) throws -> RawHTTPResponse {
        var request = "POST \(path) HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: \(body.count)\r\n"
        for h in headers { request += h + "\r\n" }
        try send(Array((request + "\r\n").utf8) + body)
        guard let r = readResponse() else { throw NoResponse() }
        return r
    }

    /// The connection ended (or timed out) before a whole response arrived.
    public struct NoResponse: Error, CustomStringConvertible {
        public var description: String { "no response: the connection ended or timed out first" }
    }

    /// Reads more bytes into `buffer`; false on end of file, reset or timeout.
    @discardableResult
    public func fill() -> Bool { (receive() ?? 0) > 0 }

    /// Reads one response: the status line, the fields, then a body framed by Content-Length or, without one, by
    /// the server closing the connection (1xx, 204 and 304 have no body). Nil if the connection ends or times out
    /// first, or the status line is not one.
    public func readResponse() -> RawHTTPResponse? {
        let end: Int
        while true {
            if let e = findHeadEnd() { end = e; break }
            if !fill() { return nil }
        }
        let lines = String(decoding: buffer[..<end], as: UTF8.self).split(separator: "\r\n", omittingEmptySubsequences: false)
        let statusLine = lines[0].split(separator: " ")
        guard statusLine.count >= 2, let status = Int(statusLine[1]) else { return nil }
        let headers = lines.dropFirst().compactMap { l -> (String, String)? in
            guard let c = l.firstIndex(of: ":") else { return nil }
            return (String(l[..<c]), Self.trimmed(l[l.index(after: c)...]))
        }
        let start = end + 4
        let bodyEnd: Int
        if let length = headers.first(where: { $0.0.lowercased() == "content-length" }).map({ Int($0.1) ?? 0 }) {
            while buffer.count < start + length { if !fill() { return nil } }
            bodyEnd = start + length
        } else if status < 200 || status == 204 || status == 304 {
            bodyEnd = start
        } else {
            while true {
                guard let n = receive() else { return nil }
                if n == 0 { break }
            }
            bodyEnd = buffer.count
        }
        let body = Array(buffer[start..<bodyEnd])
        buffer.removeSubrange(0..<bodyEnd)
        return RawHTTPResponse(status: status, headers: headers, body: body)
    }

    /// True when the server closed the connection (end of file or reset) with no further bytes.
    public func isClosedByPeer() -> Bool {
        var tmp = [UInt8](repeating: 0, count: 1024)
        do {
            let n = try tmp.withUnsafeMutableBytes { try fd.recv(into: $0) }
            return n == 0
        } catch let e as Errno {
            return e == .connectionReset
        } catch { return false }
    }

    /// One `recv` appended to `buffer`: the byte count, 0 at end of file, nil on reset or timeout.
    private func receive() -> Int? {
        var chunk = [UInt8](repeating: 0, count: 65536)
        guard let n = try? chunk.withUnsafeMutableBytes({ try fd.recv(into: $0) }) else { return nil }
        buffer += chunk[0..<n]
        return n
    }

    private func findHeadEnd() -> Int? {
        guard buffer.count >= 4 else { return nil }
        for i in 0...(buffer.count - 4) where buffer[i] == 13 && buffer[i + 1] == 10 && buffer[i + 2] == 13 && buffer[i + 3] == 10 {
            return i
        }
        return nil
    }

    private static func trimmed(_ s: Substring) -> String {
        var t = s
        while let c = t.first, c == " " || c == "\t" { t = t.dropFirst() }
        while let c = t.last, c == " " || c == "\t" { t = t.dropLast() }
        return String(t)
    }
}
