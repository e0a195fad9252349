import SpoolHTTP
import SpoolSystem
import SpoolWire

/// How a long-running command logs (docs/operations.md, "Logs"): logfmt or JSON lines on stderr, from a level up.
/// Declared once, shared by serve, consume, pull, reconcile and ui.
struct LogSettings: Sendable {
    var format = LogLine.Format.logfmt
    var minimum = LogLine.Level.info
    /// serve's access log (one line a request); `--access-log off` keeps only the metrics it feeds.
    var accessLog = true
    /// `--trusted-proxy CIDR` (serve): peers whose X-Forwarded-For names the client in the access log.
    var trustedProxies = TrustedProxies.none

    static let options: [Option] = [
        .value("--log-format", "logfmt|json", default: "logfmt", help: """
            log lines on stderr as logfmt (ts=... level=info component=... msg="..." and
            fields) or as one JSON object each; values are quoted and escaped, one record a line
            """),
        .value("--log-level", "debug|info|warn|error", default: "info", help: "log records of this level and above"),
    ]
    static let trustedProxyOption = Option.repeated("--trusted-proxy", "CIDR", help: """
        a reverse proxy's address or range (10.0.0.0/8, ::1): for requests from it, the access
        log's remote is the client named by X-Forwarded-For (peer= keeps the proxy); repeat
        """)
    static let accessLogOption = Option.value("--access-log", "on|off", default: "on", help: """
        one record per request: remote, method, path, status, outcome (accepted, duplicate,
        rejected with its reason: token, signature, timestamp, body, key ...), key, duration
        """)

    /// `accessLog`: the command declares `--access-log` (serve, ui).
    static func parse(_ args: ParsedArguments, accessLog: Bool = false, trustedProxy: Bool = false) throws(UsageError) -> LogSettings {
        var s = LogSettings()
        if let f = args.value("--log-format") {
            guard let v = LogLine.Format(rawValue: f) else { throw UsageError("--log-format takes logfmt or json, got '\(logSafe(f, maxScalars: 32))'") }
            s.format = v
        }
        if let l = args.value("--log-level") {
            guard let v = LogLine.Level(name: l) else { throw UsageError("--log-level takes debug, info, warn or error, got '\(logSafe(l, maxScalars: 32))'") }
            s.minimum = v
        }
        if trustedProxy {
            let cidrs = args.all("--trusted-proxy")
            guard let t = TrustedProxies(cidrs) else {
                throw UsageError("--trusted-proxy takes an IPv4 or IPv6 address or CIDR range (10.0.0.0/8, ::1), got '\(logSafe(cidrs.joined(separator: " "), maxScalars: 64))'")
            }
            s.trustedProxies = t
        }
        if accessLog, let a = args.value("--access-log") {
            guard a == "on" || a == "off" else { throw UsageError("--access-log takes on or off") }
            s.accessLog = a == "on"
        }
        return s
    }

    /// A free-text log function: each line of a call is one record (the call is one write, so the attempts of a
    /// batch stay together); `error: ` and `warning: ` prefixes set the level.
    func logger(_ console: Console, component: String) -> @Sendable (String) -> Void {
        let clock = SystemClock()
        let settings = self
        return { text in
            var out: [UInt8] = []
            let time = RFC3339.format(nanos: clock.nowNanos())
            for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
                let (level, message) = LogLine.classify(String(line))
                guard level >= settings.minimum else { continue }
                out += LogLine(time: time, level: level, component: component, message: message).encoded(settings.format)
            }
            if !out.isEmpty { console.writeErr(out) }
        }
    }

    /// serve's access log: one `request` record with the request's facts as fields. The path is without its query, so
    /// a `?token=` never reaches the log. A refusal of the HTTP layer itself (400, 408, 413 ...) is `rejected`, `http`.
    /// `webhooks`: the server takes webhooks, so every request has an outcome (the HTTP layer's own refusals are
    /// `rejected`, `http`); the UI's requests have none.
    func accessLogger(_ console: Console, component: String, webhooks: Bool = false,
                      record: (@Sendable (AccessLogEntry) -> Void)? = nil) -> @Sendable (AccessLogEntry) -> Void {
        let settings = self
        return { e in
            record?(e)
            guard settings.accessLog, settings.minimum <= .info else { return }
            console.writeErr(LogSettings.accessLine(e, component: component, webhooks: webhooks, trusted: settings.trustedProxies).encoded(settings.format))
        }
    }

    static func accessLine(_ e: AccessLogEntry, component: String, webhooks: Bool, trusted: TrustedProxies = .none) -> LogLine {
        let byHTTPLayer = webhooks && e.outcome == nil && e.status.code >= 400
        let outcome = e.outcome ?? (byHTTPLayer ? "rejected" : nil)
        let reason = e.reason ?? (byHTTPLayer ? "http" : nil)
        let client = trusted.client(peer: e.remote, forwardedFor: e.forwardedFor)
        var fields: [(String, String)] = [("remote", client ?? e.remote)]
        if client != nil { fields.append(("peer", e.remote)) }
        fields += [("method", e.method), ("path", e.path), ("status", "\(e.status.code)")]
        if let outcome { fields.append(("outcome", outcome)) }
        if let reason { fields.append(("reason", reason)) }
        if let k = e.logKey { fields.append(("key", k)) }
        fields.append(("duration_ms", format3(e.durationMilliseconds)))
        if let rid = e.requestID { fields.append(("rid", rid)) }
        return LogLine(time: RFC3339.format(nanos: e.timeNanos), level: .info, component: component, message: "request", fields: fields)
    }
}
