import SpoolWire
/// The application side of the server.
public protocol HTTPHandler: Sendable {
    /// On the loop thread, right after the head parses and before any body byte is read: return a response to
    /// reject early (401, 404, 405, 413, ...) or nil to accept (the server then sends `100 Continue` if asked).
    /// Must not block: it runs on the only event-loop thread.
    func checkHead(_ head: HTTPRequestHead, remote: String) -> HTTPResponse?

    /// With the full request; call `respond` exactly once, from any thread (later calls are ignored).
    /// Runs on the loop thread: hand slow work to another thread and respond from there.
    func handle(_ request: HTTPRequest, remote: String, respond: @escaping @Sendable (HTTPResponse) -> Void)
}

extension HTTPHandler {
    public func checkHead(_ head: HTTPRequestHead, remote: String) -> HTTPResponse? { nil }
}

/// One line of the access log, produced when a response has been queued for writing.
public struct AccessLogEntry: Sendable, Hashable {
    /// Wall-clock nanoseconds since the Unix epoch when the request started.
    public var timeNanos: Int64
    public var remote: String
    /// `-` when the request failed before its request line parsed.
    public var method: String
    public var path: String
    public var status: HTTPStatus
    public var logKey: String?
    public var durationMilliseconds: Double
    /// The `X-Request-Id` field, if the request had one.
    public var requestID: String?
    /// The handler's `logOutcome` and `logReason` (nil for answers of the HTTP layer itself, such as a 400 or 413).
    public var outcome: String? = nil
    public var reason: String? = nil
    /// The request's `X-Forwarded-For` field values, in order (believed only for `TrustedProxies`).
    public var forwardedFor: [String] = []

    public init(timeNanos: Int64, remote: String, method: String, path: String, status: HTTPStatus, logKey: String?,
                durationMilliseconds: Double, requestID: String?) {
        self.timeNanos = timeNanos
        self.remote = remote
        self.method = method
        self.path = path
        self.status = status
        self.logKey = logKey
        self.durationMilliseconds = durationMilliseconds
        self.requestID = requestID
    }
}
