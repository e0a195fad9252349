import Dispatch
import SpoolCore
import SpoolSignatures
import SpoolHTTP
import SpoolSystem
import SpoolWire

public struct UIConfiguration: Sendable {
    /// With a token, a browser gets in once with `/?token=T` (an HttpOnly SameSite=Strict cookie holding a
    /// per-process session secret, never the token) and scripts send `Authorization: Bearer T`.
    public var token: String?
    /// Seconds between the overview's automatic reloads.
    public var refreshSeconds = 5
    /// How old the cached directory scan may get.
    public var scanMaxAgeNanos: Int64 = 2_000_000_000

    public init(token: String? = nil) { self.token = token }
}

/// The pages and JSON API of `spool ui` on the HTTP server. Read-only except the three POST actions, which
/// need the per-process CSRF token and a same-origin `Origin` (or, without one, `Referer`).
public final class UIHandler: HTTPHandler {
    public let cache: ScanCache
    public let configuration: UIConfiguration
    /// Random per process: the hidden form field of every action.
    public let csrfToken: String
    /// Random per process: the cookie value a correct `?token=` buys.
    let sessionSecret: String
    let pages: Pages
    private let queue = DispatchQueue(label: "spool.ui")

    public static let cookieName = "spool_ui_session"

    /// Headers on every response the handler makes.
    public static let securityHeaders: [(String, String)] = [
        ("Content-Security-Policy", "default-src 'self'; script-src 'none'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"),
        ("X-Frame-Options", "DENY"),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "same-origin"),
        ("Cache-Control", "no-store"),
    ]

    public init(spool: Spool, configuration: UIConfiguration = UIConfiguration()) {
        self.configuration = configuration
        cache = ScanCache(spool: spool, maxAgeNanos: configuration.scanMaxAgeNanos)
        csrfToken = Self.randomToken()
        sessionSecret = Self.randomToken()
        pages = Pages(spoolPath: spool.path, csrf: csrfToken, refreshSeconds: configuration.refreshSeconds)
    }

    static func randomToken() -> String {
        var g = SystemRandomNumberGenerator()
        let hex = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for _ in 0..<4 {
            let v = g.next()
            for s in stride(from: 60, through: 0, by: -4) { out.append(hex[Int(v >> UInt64(s) & 15)]) }
        }
        return String(decoding: out, as: UTF8.self)
    }

    public func checkHead(_ head: HTTPRequestHead, remote: String) -> HTTPResponse? {
        if head.method != "GET" && head.method != "HEAD" && head.method != "POST" {
            return response(for: .methodNotAllowed(allow: "GET, HEAD, POST"))
        }
        if head.method == "POST" && !head.path.hasPrefix("/actions/") { return response(for: .methodNotAllowed(allow: "GET")) }
        return nil
    }

    public func handle(_ request: HTTPRequest, remote: String, respond: @escaping @Sendable (HTTPResponse) -> Void) {
        queue.async {
            respond(self.respond(to: request))
        }
    }

    /// The whole request → response mapping, synchronously (tests drive it directly).
    public func respond(to request: HTTPRequest) -> HTTPResponse {
        do throws(UIError) {
            var r = try route(request)
            for (n, v) in Self.securityHeaders { r.headers.replaceOrAdd(name: n, value: v) }
            if request.head.method == "HEAD" { r.body = [] }
            return r
        } catch {
            return response(for: error, api: request.head.path.hasPrefix("/api/"))
        }
    }

    /// The one place a `UIError` becomes a response: JSON under `/api/`, a page elsewhere.
    func response(for error: UIError, api: Bool = false) -> HTTPResponse {
        var r: HTTPResponse
        if api {
            r = HTTPResponse.error(status: error.status, error.message)
        } else {
            r = html(pages.message("\(error.status)", error.message), status: error.status)
        }
        if case .methodNotAllowed(let allow) = error { r.headers.replaceOrAdd(name: "Allow", value: allow) }
        if case .unauthorized = error { r.headers.replaceOrAdd(name: "WWW-Authenticate", value: "Bearer") }
        for (n, v) in Self.securityHeaders { r.headers.replaceOrAdd(name: n, value: v) }
        return r
    }

    func html(_ page: String, status: HTTPStatus = 200) -> HTTPResponse {
        HTTPResponse(status: status, headers: ["Content-Type": "text/html; charset=utf-8"], body: Array(page.utf8))
    }

    func route(_ request: HTTPRequest) throws(UIError) -> HTTPResponse {
        let head = request.head
        try checkHost(head)
        if let login = try login(head) { return login }
        try checkAuthorized(head)
        if head.method == "POST" { return try action(request) }
        return try page(head)
    }

    // MARK: access

    /// Without a token the UI trusts whoever can reach the loopback address, so the `Host` must name a loopback
    /// host: a page of another site whose name was made to resolve to 127.0.0.1 (DNS rebinding) is refused.
    func checkHost(_ head: HTTPRequestHead) throws(UIError) {
        guard configuration.token == nil else { return }
        guard let host = head.headers["host"], Self.isLoopbackHost(Self.hostName(host)) else {
            throw .forbidden("this address is only for loopback host names (localhost, 127.0.0.1, [::1])")
        }
    }

    static func hostName(_ host: String) -> String {
        if host.hasPrefix("["), let end = host.firstIndex(of: "]") { return String(host[host.index(after: host.startIndex)..<end]) }
        if let colon = host.lastIndex(of: ":") { return String(host[..<colon]) }
        return host
    }

    public static func isLoopbackHost(_ name: String) -> Bool {
        let n = name.lowercased()
        if n == "localhost" || n == "::1" { return true }
        let parts = n.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts[0] == "127" && parts.allSatisfy { p in !p.isEmpty && p.count <= 3 && p.allSatisfy(\.isASCII) && UInt8(p) != nil }
    }

    /// `GET ...?token=T`: a correct token sets the session cookie and redirects to the same path without the query.
    func login(_ head: HTTPRequestHead) throws(UIError) -> HTTPResponse? {
        guard let token = configuration.token, head.method == "GET", let given = Self.queryValue(head.query, "token") else { return nil }
        guard constantTimeEquals(given, token) else { throw .unauthorized }
        // Back to the page asked for, if its path is plainly local: never `//host` or `/\host` (which browsers
        // read as another site), never anything that needs escaping in a header.
        let safe = head.path.utf8.allSatisfy { b in
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || "/-._~%".utf8.contains(b)
        }
        let path = safe && head.path.hasPrefix("/") && !head.path.hasPrefix("//") ? head.path : "/"
        return HTTPResponse(status: .seeOther, headers: [
            ("Location", path),
            ("Set-Cookie", "\(Self.cookieName)=\(sessionSecret); Path=/; HttpOnly; SameSite=Strict"),
            ("Content-Type", "text/plain; charset=utf-8"),
        ], body: Array("signed in\n".utf8))
    }

    func checkAuthorized(_ head: HTTPRequestHead) throws(UIError) {
        guard let token = configuration.token else { return }
        var ok = false
        if let auth = head.headers["authorization"], auth.count > 7, auth.prefix(7).lowercased() == "bearer " {
            ok = constantTimeEquals(String(auth.dropFirst(7)), token) || ok
        }
        for cookies in head.headers.values(for: "cookie") {
            for c in cookies.split(separator: ";") {
                let pair = c.drop(while: { $0 == " " })
                if pair.hasPrefix(Self.cookieName + "=") {
                    ok = constantTimeEquals(String(pair.dropFirst(Self.cookieName.count + 1)), sessionSecret) || ok
                }
            }
        }
        if !ok { throw .unauthorized }
    }

    /// A POST must come from a page of this UI: its `Origin` (or, when a browser sends none, its `Referer`) is
    /// this host, and its form carries this process's CSRF token.
    func checkSameOrigin(_ head: HTTPRequestHead) throws(UIError) {
        guard let host = head.headers["host"], !host.isEmpty else { throw .forbidden("no Host") }
        let own = ["http://" + host, "https://" + host]
        if let site = head.headers["sec-fetch-site"], site != "same-origin", site != "none" {
            throw .forbidden("cross-site request refused (Sec-Fetch-Site: \(site))")
        }
        if let origin = head.headers["origin"] {
            guard own.contains(origin) else { throw .forbidden("cross-origin request refused (Origin is not this page's)") }
            return
        }
        guard let referer = head.headers["referer"], own.contains(where: { referer == $0 || referer.hasPrefix($0 + "/") }) else {
            throw .forbidden("request refused: neither Origin nor Referer names this page")
        }
    }

    // MARK: actions

    func action(_ request: HTTPRequest) throws(UIError) -> HTTPResponse {
        try checkSameOrigin(request.head)
        let form = try Self.formFields(request.body)
        guard let csrf = form["csrf"], constantTimeEquals(csrf, csrfToken) else {
            throw .forbidden("missing or wrong CSRF token: reload the page and try again")
        }
        let spool = cache.spool
        var back = "/"
        // The access log says what was done, to which key, from where (its remote field).
        var logKey: String?, outcome: String
        switch request.head.path {
        case "/actions/retry":
            let key = try formKey(form)
            do throws(SpoolError) { try spool.retry(key: key) } catch { throw .spool(error) }
            cache.update(fileName: key.fileName, moved: try? spool.find(key: key))
            back = "/items/" + percentEncoded(key.value)
            logKey = key.value; outcome = "retried"
        case "/actions/retry-all":
            let keys: [String]
            do throws(SpoolError) { keys = try spool.retryAllFailed() } catch { throw .spool(error) }
            cache.invalidate()
            outcome = keys.isEmpty ? "retried-none" : "retried-all"
        case "/actions/purge":
            let key = try formKey(form)
            // Two steps: the button on an item leads to a page that asks; only its form carries confirm=yes.
            guard form["confirm"] == "yes" else {
                do throws(SpoolError) { _ = try spool.finishedState(key: key) } catch { throw .spool(error) }
                return html(pages.confirmPurge(key.value))
            }
            do throws(SpoolError) { try spool.purge(key: key) } catch { throw .spool(error) }
            cache.update(fileName: key.fileName, moved: nil)
            logKey = key.value; outcome = "purged"
        default:
            throw .notFound("no such action")
        }
        var r = HTTPResponse(status: .seeOther, headers: [("Location", back), ("Content-Type", "text/plain; charset=utf-8")], body: Array("done\n".utf8))
        r.logKey = logKey
        return r.logged(outcome)
    }

    /// The hidden `key` field holds the key percent-encoded (so a form round-trip cannot alter it).
    func formKey(_ form: [String: String]) throws(UIError) -> SpoolKey {
        guard let k = form["key"], let bytes = percentDecoded(k[...]) else { throw .badRequest("missing key") }
        do throws(SpoolError) { return try SpoolKey(bytes: bytes) } catch { throw .spool(error) }
    }

    static func formFields(_ body: [UInt8]) throws(UIError) -> [String: String] {
        var out: [String: String] = [:]
        for pair in body.split(separator: 0x26) {
            let parts = pair.split(separator: 0x3D, maxSplits: 1, omittingEmptySubsequences: false)
            let n = KeyExtractor.decodeFormComponent(Array(parts[0]))
            let v = KeyExtractor.decodeFormComponent(parts.count > 1 ? Array(parts[1]) : [])
            let name = String(decoding: n, as: UTF8.self)
            if out[name] != nil { throw .badRequest("repeated form field") }
            out[name] = String(decoding: v, as: UTF8.self)
        }
        return out
    }

    static func queryValue(_ query: String?, _ name: String) -> String? {
        guard let query else { return nil }
        for pair in query.split(separator: "&") where pair.hasPrefix(name + "=") {
            return String(decoding: KeyExtractor.decodeFormComponent(Array(pair.dropFirst(name.count + 1).utf8)), as: UTF8.self)
        }
        return nil
    }

    // MARK: pages

    func page(_ head: HTTPRequestHead) throws(UIError) -> HTTPResponse {
        let path = head.path
        switch path {
        case "/":
            return html(pages.index(try cache.snapshot()))
        case "/ui.css":
            return HTTPResponse(status: 200, headers: ["Content-Type": "text/css; charset=utf-8"], body: Array(Pages.css.utf8))
        case "/list":
            let state = try Self.state(Self.queryValue(head.query, "state") ?? "failed")
            let page = try Self.number(Self.queryValue(head.query, "page"), name: "page", default: 1, max: 1_000_000)
            return html(pages.list(try cache.snapshot(), state: state, page: page))
        case "/api/stats":
            return try api { () throws(UIError) in
                let snap = try cache.snapshot()
                return .json(status: 200, snap.stats.json(now: snap.takenAtNanos))
            }
        case "/api/items":
            return try api { () throws(UIError) in
                let states = try Self.queryValue(head.query, "state").map { s throws(UIError) in [try Self.state(s)] } ?? ItemState.allCases
                let limit = try Self.number(Self.queryValue(head.query, "limit"), name: "limit", default: 100, max: 10_000)
                let offset = try Self.number(Self.queryValue(head.query, "offset"), name: "offset", default: 0, max: Int.max / 2)
                let snap = try cache.snapshot()
                var out: [UInt8] = [0x5B]
                var skipped = 0, written = 0
                outer: for st in states {
                    for i in snap.items[st] ?? [] {
                        if skipped < offset { skipped += 1; continue }
                        if written == limit { break outer }
                        if written > 0 { out.append(0x2C) }
                        i.appendJSON(now: snap.takenAtNanos, to: &out)
                        written += 1
                    }
                }
                out += [0x5D, 0x0A]
                return HTTPResponse(status: 200, headers: ["Content-Type": "application/json"], body: out)
            }
        default:
            guard path.hasPrefix("/items/") else {
                if path.hasPrefix("/api/") { throw .notFound("no such endpoint") }
                throw .notFound("no such page")
            }
            var rest = path.dropFirst("/items/".count)
            let raw = rest.hasSuffix("/body")
            if raw { rest = rest.dropLast("/body".count) }
            guard let bytes = percentDecoded(rest) else { throw .badRequest("malformed key in the path") }
            let key: SpoolKey
            do throws(SpoolError) { key = try SpoolKey(bytes: bytes) } catch { throw .spool(error) }
            let spool = cache.spool
            let info: ItemInfo
            do throws(SpoolError) { info = try spool.find(key: key) } catch { throw .spool(error) }
            if raw {
                let body: [UInt8]
                do throws(SpoolError) { body = try spool.payload(of: info) } catch { throw .spool(error) }
                return HTTPResponse(status: 200, headers: [
                    ("Content-Type", "application/octet-stream"),
                    ("Content-Disposition", "attachment; filename=\"payload.bin\""),
                ], body: body)
            }
            let (payload, truncated) = try Self.payloadHead(spool, info)
            return html(pages.item(info, payload: payload, truncated: truncated, now: spool.now()))
        }
    }

    func api(_ body: () throws(UIError) -> HTTPResponse) throws(UIError) -> HTTPResponse {
        do throws(UIError) { return try body() } catch { return response(for: error, api: true) }
    }

    /// The first 256 KiB of the payload, and whether there is more.
    static func payloadHead(_ spool: Spool, _ info: ItemInfo) throws(UIError) -> ([UInt8], Bool) {
        do throws(SpoolError) {
            return try spool.payloadHead(of: info, limit: Pages.payloadCap)
        } catch {
            if case .system(_, .noEntry) = error { throw .notFound("the item moved while it was read: reload") }
            throw .spool(error)
        }
    }

    static func state(_ s: String) throws(UIError) -> ItemState {
        guard let st = ItemState(rawValue: s) else { throw .badRequest("state must be new, claimed, done or failed") }
        return st
    }

    static func number(_ s: String?, name: String, default d: Int, max: Int) throws(UIError) -> Int {
        guard let s else { return d }
        guard !s.isEmpty, s.utf8.count <= 18, s.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let v = Int(s) else {
            throw .badRequest("\(name) must be a whole number")
        }
        return Swift.min(v, max)
    }
}

/// Compares two secrets in time that does not depend on where they differ (SpoolSignatures' comparison, the one
/// the ingress uses too).
func constantTimeEquals(_ a: String, _ b: String) -> Bool { constantTimeEqual(Array(a.utf8), Array(b.utf8)) }
