import SpoolSystem
import SpoolWire

/// A response from a handler. The server adds `Content-Length`, `Connection` and `Date`; any such fields given here are dropped.
public struct HTTPResponse: Sendable, Hashable {
    public var status: HTTPStatus
    public var headers: HTTPHeaders
    public var body: [UInt8]
    /// Close the connection after this response, whatever the client asked.
    public var close: Bool
    /// A short key for the access log (for example the spool item it created).
    public var logKey: String?
    /// What the request came to, for the access log (`accepted`, `duplicate`, `rejected` ...), and for a refusal why
    /// (`token`, `signature`, `key` ...). Never sent to the client.
    public var logOutcome: String?
    public var logReason: String?

    public init(status: HTTPStatus, headers: HTTPHeaders = HTTPHeaders(), body: [UInt8] = [], close: Bool = false, logKey: String? = nil) {
        self.status = status
        self.headers = headers
        self.body = body
        self.close = close
        self.logKey = logKey
    }

    public init(status: HTTPStatus, headers: [(String, String)], body: [UInt8] = [], close: Bool = false, logKey: String? = nil) {
        self.init(status: status, headers: HTTPHeaders(headers), body: body, close: close, logKey: logKey)
    }

    /// A JSON body with `Content-Type: application/json`.
    public static func json(status: HTTPStatus, _ json: String, close: Bool = false, logKey: String? = nil) -> HTTPResponse {
        HTTPResponse(status: status, headers: ["Content-Type": "application/json"], body: Array(json.utf8), close: close, logKey: logKey)
    }

    /// This response with its access-log outcome (and reason).
    public func logged(_ outcome: String, reason: String? = nil) -> HTTPResponse {
        var r = self
        r.logOutcome = outcome; r.logReason = reason
        return r
    }

    /// `{"error":"message"}`, the shape of every error the server itself produces.
    public static func error(status: HTTPStatus, _ message: String, close: Bool = false) -> HTTPResponse {
        json(status: status, "{\"error\":\"\(jsonEscaped(message))\"}", close: close)
    }
}
