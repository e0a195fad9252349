/// The two protocol versions we speak; anything else is refused with 505 by the parser.
public enum HTTPVersion: Sendable, Hashable, CustomStringConvertible {
    case http1_0, http1_1
    public var description: String { self == .http1_0 ? "HTTP/1.0" : "HTTP/1.1" }
}

/// How the body is delimited (RFC 9112 section 6.3); `.none` lets the server answer 411 where a body is required.
public enum HTTPFraming: Sendable, Hashable {
    case none
    case length(Int)
    case chunked
}

/// What the `Expect` field asked for: the server sends `100 Continue`, or answers 417 to anything else.
public enum HTTPExpectation: Sendable, Hashable {
    case none
    case continue100
    case unsupported
}

/// A parsed request head: request line, ordered fields and the framing decisions derived from them.
public struct HTTPRequestHead: Sendable, Hashable {
    public var method: String
    /// The request-target exactly as sent (`/a/b?x=1` or `*`).
    public var target: String
    /// The target up to the first `?`.
    public var path: String
    /// The raw query after the first `?` (not percent-decoded), or nil when the target has no `?`.
    public var query: String?
    public var version: HTTPVersion
    public var headers: HTTPHeaders
    public var framing: HTTPFraming
    /// True when the connection may be reused after this exchange (1.1 unless `close`; 1.0 only with `keep-alive`).
    public var keepAlive: Bool
    public var expectation: HTTPExpectation

    public init(method: String, target: String, path: String, query: String?, version: HTTPVersion,
                headers: HTTPHeaders, framing: HTTPFraming, keepAlive: Bool, expectation: HTTPExpectation) {
        self.method = method
        self.target = target
        self.path = path
        self.query = query
        self.version = version
        self.headers = headers
        self.framing = framing
        self.keepAlive = keepAlive
        self.expectation = expectation
    }

    /// The client sent `Expect: 100-continue` on HTTP/1.1 and waits for an interim response before the body.
    public var expectContinue: Bool { expectation == .continue100 }
    /// The client sent an `Expect` we do not implement: answer 417.
    public var expectationUnsupported: Bool { expectation == .unsupported }
    /// `X-Request-Id` if the client (or a proxy) sent one, for the access log.
    public var requestID: String? { headers["x-request-id"] }
    /// True when the request carries a body (any framing other than none or length 0).
    public var hasBody: Bool {
        switch framing {
        case .none, .length(0): return false
        default: return true
        }
    }
}

/// A complete request, as handed to `HTTPHandler.handle`.
public struct HTTPRequest: Sendable, Hashable {
    public var head: HTTPRequestHead
    public var body: [UInt8]
    /// Chunked trailer fields; never merged into `head.headers` (RFC 9110 section 6.5).
    public var trailers: HTTPHeaders

    public init(head: HTTPRequestHead, body: [UInt8] = [], trailers: HTTPHeaders = HTTPHeaders()) {
        self.head = head
        self.body = body
        self.trailers = trailers
    }
}
