import Synchronization
import SpoolCore
import SpoolHTTP
import SpoolSignatures
import SpoolSystem
import SpoolWire

public struct IngressConfiguration: Sendable {
    /// The webhook path (`POST` only).
    public var path = "/json2video/done"
    /// Where JSON2Video puts the render's project id: `movie.project` in the envelope, `project` in the flat shape.
    public static let json2videoKeyPaths = ["movie.project", "project"]
    /// Dotted JSON paths tried in order for the key (form bodies: the last component as field name).
    public var keyPaths = IngressConfiguration.json2videoKeyPaths
    /// Take the key from this request header instead of the body (for example `webhook-id`).
    public var keyHeader: String? = nil
    /// Where `keyHeader` is absent, this header instead (`svix-id` beside `webhook-id`, for Svix's branded names).
    public var keyHeaderAlias: String? = nil
    /// If set, required as `?token=` or `Authorization: Bearer`.
    public var token: String? = nil
    /// If set, every webhook must carry a valid signature of this scheme (checked once the body is complete,
    /// before the key is read; with a token, both must pass).
    public var signature: SignatureVerifier? = nil
    /// The clock signed timestamps are compared with.
    public var clock: any WallClock = SystemClock()
    /// Request headers kept in the item's metadata.
    public var recordedHeaders = ["content-type", "x-request-id", "user-agent"]
    /// Seconds to put in `Retry-After` when the spool cannot write.
    public var retryAfterSeconds = 5
    /// Threads doing durable writes. One gathers every waiting request into one batch; a second overlaps
    /// one batch's flush with the next batch's writes.
    public var committers = 2
    /// False when `/metrics` has an address of its own (`--metrics-listen`): the webhook port then answers 404
    /// for it, so a proxy that forwards every path cannot publish it.
    public var metricsOnWebhookPort = true
    /// The routes of a configuration file (docs/configuration.md). Empty: one route made of `path`, `keyPaths`,
    /// `keyHeader`, `token` and `signature` above, into the spool's own queue.
    public var routes: [IngressRoute] = []
    public init() {}

    /// The routes served: `routes`, or the one route of the fields above.
    var effectiveRoutes: [IngressRoute] {
        if !routes.isEmpty { return routes }
        var r = IngressRoute(path: path)
        r.keyPaths = keyPaths; r.keyHeader = keyHeader; r.keyHeaderAlias = keyHeaderAlias; r.token = token; r.signature = signature
        return [r]
    }
}

/// The webhook ingress: the `HTTPHandler` behind `spool serve`. It answers 2xx only after the spool has made
/// the item (or the existing item of its key) durable.
public final class IngressHandler: HTTPHandler {
    let config: IngressConfiguration
    let spool: Spool
    let committer: GroupCommitter
    /// Every route by its path, with its key extractor, and the token that guards /metrics on the webhook port:
    /// replaced whole by `reload` (SIGHUP), read once per request.
    struct Table: Sendable {
        var routes: [String: (route: IngressRoute, extractor: KeyExtractor)]
        var metricsToken: String?
    }
    let table: Mutex<Table>
    var routes: [String: (route: IngressRoute, extractor: KeyExtractor)] { table.withLock { $0.routes } }
    let metrics = IngressMetrics()
    /// Supplied after the server exists (for the open-connections gauge).
    let connectionGauge = Mutex<@Sendable () -> Int>({ 0 })
    /// More Prometheus text for `/metrics` from what runs in the same process (reconcile's counters).
    let extraMetrics = Mutex<@Sendable () -> String>({ "" })
    public func setExtraMetrics(_ f: @escaping @Sendable () -> String) { extraMetrics.withLock { $0 = f } }
    public func setConnectionGauge(_ f: @escaping @Sendable () -> Int) { connectionGauge.withLock { $0 = f } }
    var openConnections: Int { connectionGauge.withLock { $0 }() }

    public init(spool: Spool, configuration: IngressConfiguration) throws {
        self.spool = spool
        self.config = configuration
        self.table = Mutex(IngressHandler.table(configuration))
        let m = metrics
        self.committer = try GroupCommitter(spool: spool, committers: configuration.committers) { n, seconds in
            m.durableWriteLatency.observe(seconds)
            m.batchSize.observe(Double(n))
        }
    }

    public func stop() { committer.stop() }

    static func table(_ configuration: IngressConfiguration) -> Table {
        var routes: [String: (route: IngressRoute, extractor: KeyExtractor)] = [:]
        for r in configuration.effectiveRoutes { routes[r.path] = (r, KeyExtractor(paths: r.keyPaths)) }
        return Table(routes: routes, metricsToken: configuration.token)
    }

    /// Serves the routes, tokens and secrets of `configuration` from the next request on (SIGHUP: rotated secrets,
    /// a changed configuration file). Requests already past their route check keep what they had. The spool, the
    /// committers and the other settings stay.
    public func reload(_ configuration: IngressConfiguration) {
        let fresh = IngressHandler.table(configuration)
        table.withLock { $0 = fresh }
    }

    /// The paths served now, for the log line of a reload.
    public var routePaths: [String] { routes.keys.sorted() }

    /// Records one finished request (called from the server's access log hook).
    public func record(_ entry: AccessLogEntry) {
        metrics.countResponse(status: entry.status.code)
        // Every refusal is counted here, once, including those the server decided alone (413 from Content-Length,
        // 400 from the parser, 408), which never reach the handler.
        if entry.status.code >= 400 && entry.path != "/healthz" && entry.path != "/metrics" {
            metrics.rejected.add(1, ordering: .relaxed)
        }
        if routes[entry.path] != nil && entry.method == "POST" && entry.status == 200 {
            metrics.ackLatency.observe(entry.durationMilliseconds / 1000)
        }
    }

    public func checkHead(_ head: HTTPRequestHead, remote: String) -> HTTPResponse? {
        if let route = routes[head.path]?.route {
            guard head.method == "POST" else {
                return HTTPResponse(status: 405, headers: ["Allow": "POST", "Content-Type": "application/json"],
                                    body: Array(#"{"error":"method not allowed; use POST"}"#.utf8)).logged("rejected", reason: "method")
            }
            // The token is checked before a single body byte is read.
            if let token = route.token, !authorized(head, token: token) {
                return HTTPResponse.error(status: 401, "missing or wrong token", close: head.hasBody).logged("rejected", reason: "token")
            }
            // RFC 9110 15.5.16: a content coding we do not decode is 415, naming what is accepted. Storing the
            // compressed bytes would hand handlers something they did not ask for, and the key cannot be read.
            if let coding = head.headers["content-encoding"], coding.lowercased() != "identity" {
                var r = HTTPResponse.error(status: 415, "Content-Encoding '\(logSafe(coding, maxScalars: 64))' is not accepted; send the body uncompressed",
                                           close: head.hasBody)
                r.headers.add(name: "Accept-Encoding", value: "identity")
                return r.logged("rejected", reason: "encoding")
            }
            return nil
        }
        switch head.path {
        case "/healthz", "/metrics":
            if let refused = checkProbeMethod(head) { return refused }
            // Queue depth, error rates and latencies are nobody else's business: on the webhook port they need
            // the webhook token (when one is set), or live on their own address. /healthz says only "ok".
            if head.path == "/metrics" {
                if !config.metricsOnWebhookPort { return .error(status: 404, "not found") }
                if let token = table.withLock({ $0.metricsToken }), !authorized(head, token: token) {
                    return .error(status: 401, "missing or wrong token")
                }
            }
            return nil
        default:
            return HTTPResponse.error(status: 404, "not found").logged("rejected", reason: "path")
        }
    }

    func checkProbeMethod(_ head: HTTPRequestHead) -> HTTPResponse? {
        guard head.method == "GET" else {
            return HTTPResponse(status: 405, headers: ["Allow": "GET", "Content-Type": "application/json"],
                                body: Array(#"{"error":"method not allowed; use GET"}"#.utf8), close: head.hasBody)
        }
        return nil
    }

    /// The handler of the `--metrics-listen` address: /metrics and /healthz of this ingress, without the token
    /// (that address is for the monitoring network), and nothing else.
    public var probeHandler: some HTTPHandler { ProbeHandler(ingress: self) }

    /// /healthz and /metrics run off the loop, at most this many at once (they touch the disk); beyond it, 503.
    static let maxProbes = 4
    let probes = Atomic<Int>(0)

    public func handle(_ request: HTTPRequest, remote: String, respond: @escaping @Sendable (HTTPResponse) -> Void) {
        if request.head.path == "/healthz" || request.head.path == "/metrics" {
            guard probes.add(1, ordering: .relaxed).newValue <= IngressHandler.maxProbes else {
                probes.subtract(1, ordering: .relaxed)
                var r = HTTPResponse.error(status: 503, "too many health or metrics requests at once")
                r.headers.add(name: "Retry-After", value: "1")
                respond(r)
                return
            }
            let inner = respond
            let done: @Sendable (HTTPResponse) -> Void = { [self] r in probes.subtract(1, ordering: .relaxed); inner(r) }
            handleProbe(request, respond: done)
            return
        }
        handleWebhook(request, respond: respond)
    }

    private func handleProbe(_ request: HTTPRequest, respond: @escaping @Sendable (HTTPResponse) -> Void) {
        switch request.head.path {
        case "/healthz":
            startThread { [spool] in
                respond(spool.probeWritable()
                    ? HTTPResponse(status: 200, headers: ["Content-Type": "text/plain"], body: Array("ok\n".utf8))
                    : HTTPResponse(status: 503, headers: ["Content-Type": "text/plain", "Retry-After": "\(self.config.retryAfterSeconds)"],
                                   body: Array("spool not writable\n".utf8)))
            }
        case "/metrics":
            startThread { [self] in
                let stats = try? spool.stats()
                let extra = extraMetrics.withLock { $0 }
                let text = metrics.render(stats: stats, queue: spool.queue, paused: spool.pausedNow(), nowNanos: spool.now(),
                                          openConnections: openConnections, flushedBatches: spool.flushedBatches) + extra()
                respond(HTTPResponse(status: 200, headers: ["Content-Type": "text/plain; version=0.0.4"], body: Array(text.utf8)))
            }
        default:
            respond(.error(status: 404, "not found"))
        }
    }

    private func handleWebhook(_ request: HTTPRequest, respond: @escaping @Sendable (HTTPResponse) -> Void) {
        metrics.bytesReceived.add(UInt64(request.body.count), ordering: .relaxed)
        guard let (route, extractor) = routes[request.head.path] else { respond(HTTPResponse.error(status: 404, "not found").logged("rejected", reason: "path")); return }
        let key: SpoolKey
        do throws(IngressError) {
            try verifySignature(request, route)
            key = try extractKey(request, route, extractor)
        } catch {
            if case .signature(let failure) = error { metrics.countSignatureRejection(failure) }
            respond(error.response.logged("rejected", reason: error.logReason))
            return
        }
        var headers: [(String, String)] = []
        for name in config.recordedHeaders {
            if let v = request.head.headers[name] { headers.append((name, v)) }
        }
        let m = metrics
        let retryAfter = config.retryAfterSeconds
        // Fan-out: every queue of the route whose match holds, in the same durable write (the 2xx means durable in all).
        let queues = route.queues(for: request.body, contentType: request.head.headers["content-type"], headers: request.head.headers)
        let unrouted = queues == [unroutedQueue]
        committer.submit(EnqueueRequest(key: key, payload: request.body, headers: headers, queues: queues)) { result in
            switch result {
            case .success(let outcome):
                if outcome == .accepted { m.accepted.add(1, ordering: .relaxed) } else { m.duplicates.add(1, ordering: .relaxed) }
                if outcome == .accepted && unrouted { m.unrouted.add(1, ordering: .relaxed) }
                respond(HTTPResponse.json(status: 200, "{\"status\":\"\(outcome.rawValue)\",\"key\":\(JSONWriter.quote(key.value))}", logKey: key.value)
                    .logged(outcome.rawValue))
            case .failure(let e):
                if e.isStorageUnavailable || { if case .system = e { return true } else { return false } }() {
                    var r = HTTPResponse.error(status: 503, "spool cannot store the webhook right now: \(e)")
                    r.headers.add(name: "Retry-After", value: "\(retryAfter)")
                    r.logKey = key.value
                    respond(r.logged("unavailable", reason: "storage"))
                } else {
                    var r = HTTPResponse.error(status: 500, "\(e)")
                    r.logKey = key.value
                    respond(r.logged("error", reason: "storage"))
                }
            }
        }
    }

    /// The signature over the complete request, when `--verify` asked for one. Nothing is stored on failure.
    func verifySignature(_ request: HTTPRequest, _ route: IngressRoute) throws(IngressError) {
        guard let verifier = route.signature else { return }
        let now = config.clock.nowNanos()
        do throws(SignatureFailure) {
            try verifier.verify(body: request.body, nowNanos: now) { request.head.headers.values(for: $0) }
        } catch { throw .signature(error) }
    }

    /// The key, from the configured header or the body.
    func extractKey(_ request: HTTPRequest, _ route: IngressRoute, _ extractor: KeyExtractor) throws(IngressError) -> SpoolKey {
        if var name = route.keyHeader {
            if let alias = route.keyHeaderAlias, !request.head.headers.contains(name), request.head.headers.contains(alias) { name = alias }
            let values = request.head.headers.values(for: name)
            guard values.count == 1 else {
                throw values.isEmpty ? .missingKeyHeader(name) : .repeatedKeyHeader(name)
            }
            do { return try SpoolKey(values[0]) } catch { throw .badKeyHeader(name, "\(error)") }
        }
        do {
            return try extractor.extract(body: request.body, contentType: request.head.headers["content-type"])
        } catch { throw .key(error) }
    }

    private func authorized(_ head: HTTPRequestHead, token: String) -> Bool {
        var candidates: [String] = []
        if let auth = head.headers["authorization"], auth.count > 7, auth.prefix(7).lowercased() == "bearer " {
            candidates.append(String(auth.dropFirst(7)))
        }
        if let q = head.query {
            for pair in q.split(separator: "&") where pair.hasPrefix("token=") {
                candidates.append(String(decoding: KeyExtractor.decodeFormComponent(Array(pair.dropFirst(6).utf8)), as: UTF8.self))
            }
        }
        var ok = false
        for c in candidates { ok = constantTimeEquals(c, token) || ok }
        return ok
    }
}

/// Compares two secrets in time that depends only on their lengths, not on where they differ.
public func constantTimeEquals(_ a: String, _ b: String) -> Bool {
    constantTimeEqual(Array(a.utf8), Array(b.utf8))
}

/// Why the ingress refused a webhook before storing it: the ingress's one error type, mapped to a response here.
enum IngressError: Error {
    case missingKeyHeader(String)
    case repeatedKeyHeader(String)
    case badKeyHeader(String, String)
    case key(KeyExtractor.Failure)
    case signature(SignatureFailure)

    /// The access log's reason for the refusal.
    var logReason: String {
        switch self {
        case .signature(.timestampOutsideTolerance): return "timestamp"
        case .signature: return "signature"
        case .key(.malformedBody): return "body"
        case .missingKeyHeader, .repeatedKeyHeader, .badKeyHeader, .key: return "key"
        }
    }

    var response: HTTPResponse {
        switch self {
        // A missing signature is a wrong one: the sender learns only that it did not verify. A malformed header
        // is the sender's bug, said precisely (the message names the header, never echoes its value).
        case .signature(.missing), .signature(.invalidSignature): return .error(status: .unauthorized, "invalid signature")
        case .signature(.timestampOutsideTolerance): return .error(status: .unauthorized, "timestamp outside tolerance")
        case .signature(.malformed(let why)): return .error(status: .badRequest, "malformed signature: \(why)")
        case .missingKeyHeader(let name): return .error(status: .unprocessableContent, "no key: header \(name) is missing")
        case .repeatedKeyHeader(let name): return .error(status: .badRequest, "header \(name) appears more than once")
        case .badKeyHeader(let name, let why): return .error(status: .unprocessableContent, "header \(name): \(why)")
        case .key(.malformedBody(let m)): return .error(status: .badRequest, m)
        case .key(let e): return .error(status: .unprocessableContent, e.description)
        }
    }
}

/// /metrics and /healthz on an address of their own (the Prometheus convention), never a webhook.
struct ProbeHandler: HTTPHandler {
    let ingress: IngressHandler

    func checkHead(_ head: HTTPRequestHead, remote: String) -> HTTPResponse? {
        guard head.path == "/metrics" || head.path == "/healthz" else { return .error(status: 404, "not found", close: head.hasBody) }
        return ingress.checkProbeMethod(head)
    }

    func handle(_ request: HTTPRequest, remote: String, respond: @escaping @Sendable (HTTPResponse) -> Void) {
        ingress.handle(request, remote: remote, respond: respond)
    }
}
