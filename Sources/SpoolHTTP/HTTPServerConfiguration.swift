import SpoolWire
/// Server limits and timeouts. Every timeout is an absolute deadline, so trickling bytes never extends it.
public struct HTTPServerConfiguration: Sendable {
    public var maxRequestLine = 8192
    public var maxHeaderBytes = 32768
    public var maxHeaderCount = 100
    public var maxBody = 1 << 20
    /// Connections beyond this are accepted and closed at once (never queued, never a crash).
    public var maxConnections = 10_000
    /// Deadline for a whole request head, from the accept (first request) or from its first byte (later ones): slowloris.
    public var headerTimeout: Duration = .seconds(10)
    /// Deadline for a whole request body, from the end of its head.
    public var bodyTimeout: Duration = .seconds(30)
    /// How long a keep-alive connection may sit between requests; it is then closed without a response.
    public var idleTimeout: Duration = .seconds(15)
    /// How long a response may take to drain to a slow reader before the connection is dropped.
    public var writeTimeout: Duration = .seconds(10)
    /// How long to keep draining input after a final response with `Connection: close`, so the client sees it (not a reset).
    public var lingerTimeout: Duration = .seconds(2)
    /// Bytes read per `recv`. Reading stops while a request is being handled, so this bounds the unparsed
    /// pipelined bytes kept per connection: at most one request is ever in flight (strict backpressure).
    public var readChunkSize = 16384
    /// Methods that must carry a body: without Content-Length or Transfer-Encoding they get 411.
    public var bodyRequiredMethods: Set<String> = ["POST", "PUT", "PATCH"]
    public var listenBacklog: Int32 = 4096
    /// How often deadlines are checked; timeouts fire up to this late.
    public var sweepInterval: Duration = .milliseconds(100)
    /// Send a `Date` field (RFC 9110 6.6.1 asks origin servers with a clock to).
    public var sendDate = true

    public init() {}

    /// The parser's view of these limits (chunk/trailer bounds keep the parser defaults).
    public var parserLimits: HTTPParserLimits {
        HTTPParserLimits(maxRequestLine: maxRequestLine, maxHeaderBytes: maxHeaderBytes, maxHeaderCount: maxHeaderCount, maxBody: maxBody)
    }
}

extension Duration {
    /// Whole nanoseconds (saturating), for comparisons against `monotonicNanos()`.
    var nanoseconds: Int64 {
        let (s, a) = components
        let (m, o) = s.multipliedReportingOverflow(by: 1_000_000_000)
        if o { return s < 0 ? .min : .max }
        return m &+ a / 1_000_000_000
    }
}
