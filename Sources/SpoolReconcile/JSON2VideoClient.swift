import SpoolBridges
import SpoolSystem
import SpoolTLS
import SpoolWire

/// What reconcile asks the API for: one page of the movies of a time window.
public struct PageQuery: Sendable, Equatable {
    public var fromNanos: Int64
    public var toNanos: Int64
    public var limit: Int
    public var nextToken: String?
    public init(fromNanos: Int64, toNanos: Int64, limit: Int = 100, nextToken: String? = nil) {
        self.fromNanos = fromNanos; self.toNanos = toNanos; self.limit = limit; self.nextToken = nextToken
    }
}

/// Where pages come from: the API client, or a test's fake.
public protocol MoviePager: Sendable {
    func page(_ query: PageQuery) throws(ReconcileError) -> MovieListPage
}

/// `GET /v2/movies` in list mode over HTTP/1.1 (one connection per request, closed after it).
public struct JSON2VideoClient: MoviePager {
    public static let defaultURL = "https://api.json2video.com"
    /// A page of 100 movies with their original JSON is a few MB at most; more is refused as malformed.
    public static let maxBodyBytes = 32 * 1024 * 1024

    public let endpoint: Endpoint
    let apiKey: String
    let tls: TLSClientProfile
    let timeoutNanos: Int64

    /// `apiURL` is the API's base (`https://api.json2video.com`, or a test server); its path, if any, is a prefix.
    /// The key must be a valid header value (it is sent as `x-api-key` and appears in no message).
    public init(apiURL: String, apiKey: String, tls: TLSClientProfile?, timeoutNanos: Int64 = 30_000_000_000) throws(BridgeError) {
        let ep = try Endpoint.http(apiURL)
        guard !ep.target.contains("?") else { throw BridgeError(.configuration, "the API URL must not have a query") }
        guard !apiKey.isEmpty, HTTPField.isValid(name: "x-api-key", value: apiKey) else {
            throw BridgeError(.configuration, "the API key file must hold one line of visible characters")
        }
        endpoint = ep
        self.apiKey = apiKey
        self.tls = tls ?? TLSClientProfile(alpnProtocols: ["http/1.1"])
        self.timeoutNanos = timeoutNanos
    }

    /// The request target: the base path + `/v2/movies?from=...&to=...&limit=N[&next_token=T]`.
    public func target(_ q: PageQuery) -> String {
        var base = endpoint.target
        while base.hasSuffix("/") { base.removeLast() }
        var t = base + "/v2/movies?from=" + JSON2VideoClient.percentEncoded(RFC3339.format(nanos: q.fromNanos))
        t += "&to=" + JSON2VideoClient.percentEncoded(RFC3339.format(nanos: q.toNanos)) + "&limit=\(q.limit)"
        if let n = q.nextToken { t += "&next_token=" + JSON2VideoClient.percentEncoded(n) }
        return t
    }

    public func request(_ q: PageQuery) -> [UInt8] {
        var head = "GET \(target(q)) HTTP/1.1\r\nHost: \(endpoint.authority)\r\n"
        head += "x-api-key: \(apiKey)\r\nAccept: application/json\r\nUser-Agent: spool\r\nConnection: close\r\n\r\n"
        return Array(head.utf8)
    }

    public func page(_ q: PageQuery) throws(ReconcileError) -> MovieListPage {
        var limits = HTTPResponseParser.Limits()
        limits.maxBodyKept = JSON2VideoClient.maxBodyBytes
        let parser: HTTPResponseParser
        do throws(BridgeError) {
            parser = try HTTPExchange.perform(request(q), endpoint: endpoint, tls: tls, timeoutNanos: timeoutNanos, limits: limits)
        } catch {
            throw ReconcileError.from(error)
        }
        let body = try JSON2VideoClient.check(head: parser.head!, body: parser.body, truncated: parser.bodyTruncated,
                                              nowNanos: SystemClock().nowNanos())
        return try MovieListPage.parse(body)
    }

    /// The edge mapping from a status to reconcile's terms: 200 gives the body; 401/403 the key; 429/5xx wait.
    public static func check(head: HTTPResponseHead, body: [UInt8], truncated: Bool, nowNanos: Int64) throws(ReconcileError) -> [UInt8] {
        let code = head.status.code
        let excerpt = logSafe(String(decoding: body.prefix(512), as: UTF8.self), maxScalars: 256)
        let text = "HTTP \(code)" + (excerpt.isEmpty ? "" : ": " + excerpt)
        switch code {
        case 200:
            guard !truncated else { throw ReconcileError(.malformed, "the movie list is larger than \(maxBodyBytes) bytes") }
            return body
        case 401, 403:
            throw ReconcileError(.rejectedKey, "the API rejected the key (\(text))")
        case 429, 500...599:
            let after = head.value("retry-after").flatMap { RetryAfter.parse($0, nowNanos: nowNanos) }
            throw ReconcileError(.unavailable, text, retryAfterNanos: after)
        default:
            throw ReconcileError(.malformed, "unexpected answer \(text)")
        }
    }

    /// RFC 3986 unreserved characters as they are, everything else as %XX.
    static func percentEncoded(_ s: String) -> String {
        var out = ""
        for c in s.utf8 {
            switch c {
            case 0x30...0x39, 0x41...0x5A, 0x61...0x7A, 0x2D, 0x2E, 0x5F, 0x7E: out.unicodeScalars.append(Unicode.Scalar(c))
            default:
                let hex: [Character] = Array("0123456789ABCDEF")
                out += "%" + String(hex[Int(c >> 4)]) + String(hex[Int(c & 15)])
            }
        }
        return out
    }
}
