import SpoolConsumer
import SpoolCore
import SpoolSystem
import SpoolTLS
import SpoolWire

/// Where to POST, with which extra headers, and the time limit of one attempt.
public struct HTTPForwardConfiguration: Sendable {
    public var endpoint: Endpoint
    public var extraHeaders: [(String, String)]
    /// One deadline per attempt for connecting, sending the request and reading the response.
    public var timeoutNanos: Int64 = 10_000_000_000
    public var responseLimits = HTTPResponseParser.Limits()
    /// Whom to trust and what to present for `https://` (nil: the system's roots, no client certificate).
    public var tls: TLSClientProfile?

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
            guard HTTPField.isValid(name: name, value: value), !value.hasSuffix(" "), !value.hasSuffix("\t") else {
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
    /// Closed while the endpoint cannot be reached (connection refused, no route, connect timeout), so an
    /// outage is waited out by one probe at a time instead of failing every item.
    let gate: DownstreamGate

    /// The configuration's TLS profile, or the system's roots.
    let tlsProfile: TLSClientProfile

    public init(configuration: HTTPForwardConfiguration, clock: any WallClock = SystemClock()) {
        self.configuration = configuration
        self.clock = clock
        self.gate = DownstreamGate(probeTimeoutNanos: configuration.timeoutNanos)
        self.tlsProfile = configuration.tls ?? TLSClientProfile(alpnProtocols: ["http/1.1"])
    }

    public func unavailableUntil(now: Int64) -> Int64? { gate.unavailableUntil(now: now) }
    public func isBackingOff(now: Int64) -> Bool { gate.isBackingOff(now: now) }

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
        if !HTTPField.isValid(name: "Content-Type", value: contentType) { contentType = "application/octet-stream" }
        var head = "POST \(ep.target) HTTP/1.1\r\nHost: \(ep.authority)\r\n"
        head += "Content-Type: \(contentType)\r\nContent-Length: \(payload.count)\r\n"
        if HTTPField.isValid(name: "X-Spool-Key", value: item.key.value) { head += "X-Spool-Key: \(item.key.value)\r\n" }
        head += "X-Spool-Attempt: \(item.attempt)\r\n"
        head += "X-Spool-Received-At: \(RFC3339.format(nanos: item.meta.receivedAtNanos))\r\n"
        head += "User-Agent: spool\r\nConnection: close\r\n"
        for (n, v) in configuration.extraHeaders { head += "\(n): \(v)\r\n" }
        head += "\r\n"
        return Array(head.utf8) + payload
    }

    /// The edge mapping from a response to what becomes of the item.
    public static func outcome(head: HTTPResponseHead, body: [UInt8], nowNanos: Int64) -> ProcessOutcome {
        let code = head.status.code
        let status = "http \(code)"
        var text = "HTTP \(code)"
        if !head.reason.isEmpty { text += " " + logSafe(head.reason, maxScalars: 512) }
        let excerpt = logSafe(String(decoding: body.prefix(1024), as: UTF8.self), maxScalars: 512)
        switch code {
        case 200...299:
            return .done(status: status)
        case 408, 429, 500...599:
            let after = head.value("retry-after").flatMap { RetryAfter.parse($0, nowNanos: nowNanos) }
            return .retry(error: excerpt.isEmpty ? text : text + ": " + excerpt, status: status, retryAfterNanos: after)
        case 300...399:
            let location = head.value("location").map { " to " + logSafe($0, maxScalars: 512) } ?? ""
            return .failed(error: "\(text): redirect\(location) not followed; fix the --post URL", status: status)
        case 400...499:
            return .failed(error: excerpt.isEmpty ? text : text + ": " + excerpt, status: status)
        default:
            return .retry(error: "\(text): not a status code spool understands", status: status, retryAfterNanos: nil)
        }
    }

    /// One exchange through the shared `HTTPExchange`, with the outage gate told whether the endpoint was reached.
    func exchange(_ request: [UInt8]) throws(BridgeError) -> HTTPResponseParser {
        try HTTPExchange.perform(request, endpoint: configuration.endpoint, tls: tlsProfile, timeoutNanos: configuration.timeoutNanos,
                                 limits: configuration.responseLimits,
                                 reached: { gate.reached() }, unreachable: { gate.unreachable(now: monotonicNanos()) })
    }
}

/// One HTTP/1.1 request and its response over a fresh connection (TLS for `https://`), all before one deadline:
/// the forwarder's POSTs and reconcile's API calls. The request is sent as given (it should say
/// `Connection: close`); the response is read until complete, or until enough of its body is kept.
public enum HTTPExchange {
    /// `reached` is called once the TCP connection is made, `unreachable` when it could not be; a certificate the
    /// server cannot prove is an error after `reached` (the endpoint answered), not an outage.
    public static func perform(_ request: [UInt8], endpoint ep: Endpoint, tls: TLSClientProfile, timeoutNanos: Int64,
                               limits: HTTPResponseParser.Limits = HTTPResponseParser.Limits(),
                               reached: () -> Void = {}, unreachable: () -> Void = {}) throws(BridgeError) -> HTTPResponseParser {
        let deadline = monotonicNanos() + timeoutNanos
        var stream: any ByteStream
        do throws(BridgeError) {
            stream = try BridgeConnect.stream(to: ep, deadline: deadline, timeoutNanos: timeoutNanos)
            reached()
        } catch {
            unreachable()
            throw error
        }
        defer { stream.close() }
        if ep.secure {
            stream = try BridgeConnect.secure(stream, profile: tls, endpoint: ep, deadline: deadline, timeoutNanos: timeoutNanos)
        }
        let peer = ep.authority, limitMs = timeoutNanos / 1_000_000
        do throws(StreamError) { try stream.writeAll(request, deadline: deadline) } catch {
            if error == .timedOut { throw BridgeError(.timeout, "sending to \(peer) timed out after \(limitMs)ms") }
            throw BridgeError(.connectionLost, "sending to \(peer) failed: \(error)")
        }
        var parser = HTTPResponseParser(limits: limits)
        var buf = [UInt8](repeating: 0, count: 16384)
        while !(parser.isComplete || (parser.head != nil && parser.bodyTruncated)) {
            let n: Int
            do throws(StreamError) {
                n = try buf.withUnsafeMutableBytes { p in Result { () throws(StreamError) in try stream.read(into: p, deadline: deadline) } }.get()
            } catch {
                if error == .timedOut {
                    throw BridgeError(.timeout, "no \(parser.head == nil ? "response" : "complete response") from \(peer) within \(limitMs)ms")
                }
                throw BridgeError(.connectionLost, "reading the response failed: \(error)")
            }
            do throws(HTTPResponseError) {
                if n == 0 { try parser.finish() } else { try parser.feed(buf[0..<n]) }
            } catch {
                throw BridgeError(.protocolViolation, "bad response from \(peer): \(error.message)", status: "bad response")
            }
        }
        return parser
    }
}

/// The bridges' one way to open a connection: resolve, connect before the deadline, wrap as a byte stream
/// (TLS over it when asked), and say what went wrong in the bridges' own terms.
enum BridgeConnect {
    static func stream(to ep: Endpoint, deadline: Int64, timeoutNanos: Int64) throws(BridgeError) -> any ByteStream {
        do throws(Socket.ConnectFailure) {
            return SocketStream(try Socket.connect(host: ep.host, port: ep.port, deadline: deadline))
        } catch {
            let peer = ep.authority
            switch error {
            case .cannotResolve(let host): throw BridgeError(.connect, "cannot resolve \(host)")
            case .timedOut: throw BridgeError(.timeout, "connecting to \(peer) timed out after \(timeoutNanos / 1_000_000)ms")
            case .failed(let e): throw BridgeError(.connect, "cannot connect to \(peer): \(e)")
            }
        }
    }

    /// TLS over a connected socket, handshake included, so a certificate the server cannot prove is reported
    /// as such (`certificate verify failed: hostname mismatch`) before anything is sent. The host name (or IP
    /// address) of the URL is what the certificate is checked against.
    static func secure(_ plain: any ByteStream, profile: TLSClientProfile, endpoint ep: Endpoint, deadline: Int64,
                       timeoutNanos: Int64) throws(BridgeError) -> any ByteStream {
        let tls: TLSStream
        do throws(TLSError) {
            tls = try TLSStream(descriptor: plain.descriptor, client: try profile.context(), serverName: ep.host)
        } catch {
            throw BridgeError(.connect, "TLS with \(ep.authority): \(error)", status: "tls error")
        }
        do throws(StreamError) { try tls.handshake(deadline: deadline) } catch {
            if error == .timedOut { throw BridgeError(.timeout, "TLS handshake with \(ep.authority) timed out after \(timeoutNanos / 1_000_000)ms") }
            throw BridgeError(.connect, "TLS with \(ep.authority): \(error)", status: "tls error")
        }
        return tls
    }
}
