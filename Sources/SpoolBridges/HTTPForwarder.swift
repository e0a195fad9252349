#if canImport(Glibc)
import Glibc
#endif
import SpoolConsumer
import SpoolCore
import SpoolSystem

/// Where to POST, with which extra headers, and the time limit of one attempt.
public struct HTTPForwardConfiguration: Sendable {
    public var endpoint: Endpoint
    public var extraHeaders: [(String, String)]
    /// One deadline per attempt for connecting, sending the request and reading the response.
    public var timeoutNanos: Int64 = 10_000_000_000
    public var responseLimits = HTTPResponseParser.Limits()

    /// Headers spool sets itself (framing, routing, its own metadata): an extra header may not replace them.
    static let reserved: Set<String> = ["host", "content-length", "transfer-encoding", "connection", "content-type", "expect",
                                        "te", "upgrade", "trailer", "keep-alive", "x-spool-key", "x-spool-attempt", "x-spool-received-at"]

    /// Parses the URL (`http://` only) and `Name: value` header strings, refusing anything that could smuggle
    /// a header line or change the framing.
    public init(url: String, headers: [String] = []) throws(BridgeError) {
        endpoint = try Endpoint.http(url)
        var extra: [(String, String)] = []
        for h in headers {
            guard let colon = h.firstIndex(of: ":") else { throw BridgeError(.configuration, "--header '\(h)' is not 'Name: value'") }
            let name = String(h[..<colon])
            let value = String(String.UnicodeScalarView(h[h.index(after: colon)...].unicodeScalars.drop { $0 == " " || $0 == "\t" }))
            guard NATSHeaders.isValidField(name: name, value: value), !value.hasSuffix(" "), !value.hasSuffix("\t") else {
                throw BridgeError(.configuration, "--header '\(h)': the name must be a token and the value free of control characters")
            }
            guard !HTTPForwardConfiguration.reserved.contains(name.lowercased()) else {
                throw BridgeError(.configuration, "--header \(name) is set by spool itself")
            }
            extra.append((name, value))
        }
        extraHeaders = extra
    }
}

/// POSTs each payload, byte for byte, to an HTTP/1.1 endpoint with its original Content-Type plus
/// `X-Spool-Key` and `X-Spool-Attempt`; the status decides: 2xx done, 408/429/5xx retry (after Retry-After),
/// other 4xx and 3xx (redirects are not followed) failed. One connection per attempt, closed after it.
public struct HTTPForwarder: ItemProcessor {
    public let configuration: HTTPForwardConfiguration
    let clock: any WallClock

    public init(configuration: HTTPForwardConfiguration, clock: any WallClock = SystemClock()) {
        self.configuration = configuration
        self.clock = clock
    }

    public func process(_ item: ClaimedItem, cancellation: CancellationFlag) -> ProcessOutcome {
        if cancellation.isCancelled { return .released }
        do throws(BridgeError) {
            let payload: [UInt8]
            do { payload = try item.readPayload() } catch { throw BridgeError(.serverError, "cannot read the payload: \(error)", status: "read error") }
            let parser = try exchange(request(for: item, payload: payload))
            return HTTPForwarder.outcome(head: parser.head!, body: parser.body, nowNanos: clock.nowNanos())
        } catch {
            return error.outcome
        }
    }

    /// The request bytes: head and exact payload.
    public func request(for item: ClaimedItem, payload: [UInt8]) -> [UInt8] {
        let ep = configuration.endpoint
        var contentType = item.meta.header("content-type") ?? "application/octet-stream"
        if !NATSHeaders.isValidField(name: "Content-Type", value: contentType) { contentType = "application/octet-stream" }
        var head = "POST \(ep.target) HTTP/1.1\r\nHost: \(ep.authority(defaultPort: 80))\r\n"
        head += "Content-Type: \(contentType)\r\nContent-Length: \(payload.count)\r\n"
        if NATSHeaders.isValidField(name: "X-Spool-Key", value: item.key.value) { head += "X-Spool-Key: \(item.key.value)\r\n" }
        head += "X-Spool-Attempt: \(item.attempt)\r\n"
        head += "X-Spool-Received-At: \(RFC3339.format(nanos: item.meta.receivedAtNanos))\r\n"
        head += "User-Agent: spool\r\nConnection: close\r\n"
        for (n, v) in configuration.extraHeaders { head += "\(n): \(v)\r\n" }
        head += "\r\n"
        return Array(head.utf8) + payload
    }

    /// The edge mapping from a response to what becomes of the item.
    public static func outcome(head: HTTPResponseHead, body: [UInt8], nowNanos: Int64) -> ProcessOutcome {
        let code = head.status
        let status = "http \(code)"
        var text = "HTTP \(code)"
        if !head.reason.isEmpty { text += " " + logSafeText(head.reason) }
        let excerpt = logSafeText(String(decoding: body.prefix(1024), as: UTF8.self))
        switch code {
        case 200...299:
            return .done(status: status)
        case 408, 429, 500...599:
            let after = head.value("retry-after").flatMap { RetryAfter.parse($0, nowNanos: nowNanos) }
            return .retry(error: excerpt.isEmpty ? text : text + ": " + excerpt, status: status, retryAfterNanos: after)
        case 300...399:
            let location = head.value("location").map { " to " + logSafeText($0) } ?? ""
            return .failed(error: "\(text): redirect\(location) not followed; fix the --post URL", status: status)
        case 400...499:
            return .failed(error: excerpt.isEmpty ? text : text + ": " + excerpt, status: status)
        default:
            return .retry(error: "\(text): not a status code spool understands", status: status, retryAfterNanos: nil)
        }
    }

    /// Connects, sends, and reads the response until it is complete (or enough of its body is kept), all
    /// before one deadline.
    func exchange(_ request: [UInt8]) throws(BridgeError) -> HTTPResponseParser {
        let ep = configuration.endpoint
        let deadline = monotonicNanos() + configuration.timeoutNanos
        let limitMs = configuration.timeoutNanos / 1_000_000
        let addresses = Socket.resolve(host: ep.host, port: ep.port)
        guard !addresses.isEmpty else { throw BridgeError(.connect, "cannot resolve \(ep.host)") }
        var fd: FileDescriptor? = nil
        var lastError = ""
        for a in addresses {
            let left = (deadline - monotonicNanos()) / 1_000_000
            guard left > 0 else { break }
            do { fd = try Socket.connect(a, timeoutMillis: Int(left)); break } catch { lastError = "\(error)" }
        }
        guard let fd else {
            if lastError == "\(Errno.timedOut)" || lastError.isEmpty { throw BridgeError(.timeout, "connecting to \(ep.authority(defaultPort: 80)) timed out after \(limitMs)ms") }
            throw BridgeError(.connect, "cannot connect to \(ep.authority(defaultPort: 80)): \(lastError)")
        }
        defer { try? fd.close() }
        do {
            try fd.setSendTimeout(milliseconds: Int(max(1, (deadline - monotonicNanos()) / 1_000_000)))
            try fd.sendAll(request)
        } catch let e as Errno where e == .wouldBlock {
            throw BridgeError(.timeout, "sending to \(ep.authority(defaultPort: 80)) timed out after \(limitMs)ms")
        } catch {
            throw BridgeError(.connectionLost, "sending to \(ep.authority(defaultPort: 80)) failed: \(error)")
        }
        var parser = HTTPResponseParser(limits: configuration.responseLimits)
        var buf = [UInt8](repeating: 0, count: 16384)
        while !(parser.isComplete || (parser.head != nil && parser.bodyTruncated)) {
            let left = deadline - monotonicNanos()
            guard left > 0 else {
                throw BridgeError(.timeout, "no \(parser.head == nil ? "response" : "complete response") from \(ep.authority(defaultPort: 80)) within \(limitMs)ms")
            }
            let ready = (try? pollReadable([fd], timeoutMillis: Int32(clamping: (left + 999_999) / 1_000_000))) ?? [false]
            guard ready[0] else { continue }
            let n: Int
            do { n = try buf.withUnsafeMutableBytes { try fd.recv(into: $0) } } catch {
                throw BridgeError(.connectionLost, "reading the response failed: \(error)")
            }
            do throws(HTTPResponseError) {
                if n == 0 { try parser.finish() } else { try parser.feed(buf[0..<n]) }
            } catch {
                throw BridgeError(.protocolViolation, "bad response from \(ep.authority(defaultPort: 80)): \(error.message)", status: "bad response")
            }
        }
        return parser
    }
}
