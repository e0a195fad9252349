import SpoolCore
import SpoolSystem
import SpoolWire

/// The HTML of every page. Everything that comes from an item goes through `htmlEscaped` (text) or
/// `percentEncoded` (URLs and hidden form values); nothing else is interpolated.
struct Pages {
    static let payloadCap = 256 * 1024
    static let tableRows = 20
    static let pageSize = 100

    let spoolPath: String
    let csrf: String
    let refreshSeconds: Int

    func layout(title: String, refresh: Bool, _ body: String) -> String {
        var s = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        s += "<title>\(htmlEscaped(title))</title>"
        s += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        if refresh { s += "<meta http-equiv=\"refresh\" content=\"\(refreshSeconds)\">" }
        s += "<link rel=\"stylesheet\" href=\"/ui.css\"></head><body>"
        s += "<header><a href=\"/\">spool</a> <span class=\"dir\">\(htmlEscaped(spoolPath))</span></header><main>"
        return s + body + "</main></body></html>\n"
    }

    func form(_ action: String, _ label: String, key: String? = nil, confirm: String? = nil, confirmed: Bool = false) -> String {
        var s = "<form method=\"post\" action=\"\(action)\" class=\"inline\">"
        s += "<input type=\"hidden\" name=\"csrf\" value=\"\(csrf)\">"
        if let key { s += "<input type=\"hidden\" name=\"key\" value=\"\(percentEncoded(key))\">" }
        if confirmed { s += "<input type=\"hidden\" name=\"confirm\" value=\"yes\">" }
        return s + "<button type=\"submit\"\(confirm.map { " title=\"\(htmlEscaped($0))\"" } ?? "")>\(htmlEscaped(label))</button></form>"
    }

    func keyLink(_ key: String) -> String { "<a class=\"key\" href=\"/items/\(percentEncoded(key))\">\(htmlEscaped(key))</a>" }

    static func duration(_ nanos: Int64) -> String {
        let s = max(0, nanos / 1_000_000_000)
        if nanos > 0 && nanos < 10_000_000_000 {
            let tenths = (nanos + 99_999_999) / 100_000_000
            return tenths % 10 == 0 ? "\(tenths / 10)s" : "\(tenths / 10).\(tenths % 10)s"
        }
        if s < 120 { return "\(s)s" }
        if s < 7200 { return "\(s / 60)m" }
        if s < 172_800 { return "\(s / 3600)h" }
        return "\(s / 86400)d"
    }

    static func since(_ t: Int64, now: Int64) -> String { duration(now.subtractingReportingOverflow(t).overflow ? Int64.max : now - t) }

    /// One line of an error text for a table cell (the item page shows all of it).
    static func firstLine(_ s: String) -> String {
        let line = s.split(whereSeparator: { $0 == "\n" || $0 == "\r" }).first.map(String.init) ?? ""
        return line.count > 120 ? String(line.prefix(117)) + "..." : line
    }

    func index(_ snap: Snapshot) -> String {
        let now = snap.takenAtNanos
        var b = "<h1>Queue</h1><table class=\"counts\"><tr>"
        for st in ItemState.allCases { b += "<th>\(st.rawValue)</th>" }
        b += "<th>oldest waiting</th></tr><tr>"
        for st in ItemState.allCases {
            b += "<td><a id=\"count-\(st.rawValue)\" href=\"/list?state=\(st.rawValue)\">\(snap.count(st))</a></td>"
        }
        if let oldest = snap.items[.new]?.first {
            b += "<td id=\"oldest\">\(Self.since(oldest.dueAtNanos, now: now)) <span class=\"small\">\(keyLink(oldest.key))</span></td></tr></table>"
        } else {
            b += "<td id=\"oldest\">none</td></tr></table>"
        }
        b += "<h2>Last hour, per minute</h2><p class=\"legend\"><span class=\"arrivals\">arrivals \(snap.arrivals.reduce(0, +))</span> "
        b += "<span class=\"completions\">completions \(snap.completions.reduce(0, +))</span> <span class=\"failures\">failures \(snap.failures.reduce(0, +))</span></p>"
        b += Chart.svg(arrivals: snap.arrivals, completions: snap.completions, failures: snap.failures)

        let failed = Array((snap.items[.failed] ?? []).reversed())
        b += "<h2>Failed (\(failed.count))</h2>"
        if !failed.isEmpty { b += "<p>" + form("/actions/retry-all", "retry all failed") + "</p>" }
        b += failedTable(Array(failed.prefix(Self.tableRows)), now: now)
        if failed.count > Self.tableRows { b += "<p><a href=\"/list?state=failed\">all \(failed.count) failed items</a></p>" }

        let claimed = snap.items[.claimed] ?? []
        b += "<h2>Claimed (\(claimed.count))</h2>" + claimedTable(Array(claimed.prefix(Self.tableRows)), now: now)
        if claimed.count > Self.tableRows { b += "<p><a href=\"/list?state=claimed\">all \(claimed.count) claimed items</a></p>" }

        let waiting = snap.items[.new] ?? []
        b += "<h2>Next waiting (\(waiting.count))</h2>" + waitingTable(Array(waiting.prefix(Self.tableRows)), now: now)
        if waiting.count > Self.tableRows { b += "<p><a href=\"/list?state=new\">all \(waiting.count) waiting items</a></p>" }

        let done = snap.items[.done] ?? []
        b += "<h2>Done (\(done.count))</h2>" + doneTable(Array(done.reversed().prefix(Self.tableRows)), now: now)
        if done.count > Self.tableRows { b += "<p><a href=\"/list?state=done\">all \(done.count) done items</a></p>" }
        b += "<p class=\"foot\">scanned \(RFC3339.format(nanos: now)) in \(snap.scanNanos / 1_000_000) ms; refreshes every \(refreshSeconds) s</p>"
        return layout(title: "spool: \(snap.count(.new)) waiting, \(snap.count(.failed)) failed", refresh: true, b)
    }

    func failedTable(_ items: [ItemInfo], now: Int64) -> String {
        var b = "<table class=\"items failed\"><tr><th>key</th><th>attempts</th><th>last status</th><th>last error</th><th>failed</th><th></th></tr>"
        for i in items {
            b += "<tr><td>\(keyLink(i.key))</td><td>\(i.meta?.attempts ?? 0)</td><td>\(htmlEscaped(i.meta?.lastStatus ?? ""))</td>"
            b += "<td class=\"error\">\(htmlEscaped(Self.firstLine(i.meta?.lastError ?? "")))</td>"
            b += "<td>\(i.finishedAtNanos.map { Self.since($0, now: now) + " ago" } ?? "")</td><td>\(form("/actions/retry", "retry", key: i.key))</td></tr>"
        }
        return b + "</table>"
    }

    func claimedTable(_ items: [ItemInfo], now: Int64) -> String {
        var b = "<table class=\"items claimed\"><tr><th>key</th><th>claimant</th><th>for</th><th>attempt</th></tr>"
        for i in items {
            let since = i.meta?.lastAttemptAtNanos ?? i.changedAtNanos
            b += "<tr><td>\(keyLink(i.key))</td><td>\(htmlEscaped(i.meta?.claimedBy ?? "?"))</td><td>\(Self.since(since, now: now))</td><td>\(i.meta?.attempts ?? 0)</td></tr>"
        }
        return b + "</table>"
    }

    func waitingTable(_ items: [ItemInfo], now: Int64) -> String {
        var b = "<table class=\"items new\"><tr><th>key</th><th>due</th><th>attempts</th><th>waiting for</th><th>last error</th></tr>"
        for i in items {
            let due = i.dueAtNanos > now ? "in " + Self.duration(i.dueAtNanos - now) : "now"
            b += "<tr><td>\(keyLink(i.key))</td><td>\(due)</td><td>\(i.meta?.attempts ?? 0)</td><td>\(Self.since(i.receivedAtNanos, now: now))</td>"
            b += "<td class=\"error\">\(htmlEscaped(Self.firstLine(i.meta?.lastError ?? "")))</td></tr>"
        }
        return b + "</table>"
    }

    func doneTable(_ items: [ItemInfo], now: Int64) -> String {
        var b = "<table class=\"items done\"><tr><th>key</th><th>finished</th><th>attempts</th><th>size</th></tr>"
        for i in items {
            b += "<tr><td>\(keyLink(i.key))</td><td>\(i.finishedAtNanos.map { Self.since($0, now: now) + " ago" } ?? "")</td><td>\(i.meta?.attempts ?? 0)</td><td>\(i.size)</td></tr>"
        }
        return b + "</table>"
    }

    func list(_ snap: Snapshot, state: ItemState, page: Int) -> String {
        var all = snap.items[state] ?? []
        if state == .failed || state == .done { all.reverse() }
        let pages = max(1, (all.count + Self.pageSize - 1) / Self.pageSize)
        let p = min(max(1, page), pages)
        let slice = Array(all.dropFirst((p - 1) * Self.pageSize).prefix(Self.pageSize))
        let now = snap.takenAtNanos
        var b = "<h1>\(state.rawValue): \(all.count) items</h1>"
        switch state {
        case .failed: b += failedTable(slice, now: now)
        case .claimed: b += claimedTable(slice, now: now)
        case .new: b += waitingTable(slice, now: now)
        case .done: b += doneTable(slice, now: now)
        }
        b += "<p class=\"pager\">page \(p) of \(pages)"
        if p > 1 { b += " <a rel=\"prev\" href=\"/list?state=\(state.rawValue)&amp;page=\(p - 1)\">previous</a>" }
        if p < pages { b += " <a rel=\"next\" href=\"/list?state=\(state.rawValue)&amp;page=\(p + 1)\">next</a>" }
        return layout(title: "spool: \(state.rawValue)", refresh: false, b + "</p>")
    }

    func item(_ i: ItemInfo, payload: [UInt8], truncated: Bool, now: Int64) -> String {
        var rows: [(String, String)] = [("queue", i.queue), ("state", i.state.rawValue), ("size", "\(i.size) bytes"),
                                        ("received", RFC3339.format(nanos: i.receivedAtNanos) + " (" + Self.since(i.receivedAtNanos, now: now) + " ago)"),
                                        ("attempts", "\(i.meta?.attempts ?? 0)")]
        if i.state == .new { rows.append(("due", i.dueAtNanos > now ? "in " + Self.duration(i.dueAtNanos - now) : "now")) }
        if i.state == .claimed, let c = i.meta?.claimedBy { rows.append(("claimed by", c)) }
        if let f = i.finishedAtNanos { rows.append(("finished", RFC3339.format(nanos: f))) }
        if let s = i.meta?.lastStatus { rows.append(("last status", s)) }
        if i.meta == nil { rows.append(("metadata", "unreadable")) }
        var b = "<h1>item <span class=\"key\">\(htmlEscaped(i.key))</span></h1><table class=\"meta\">"
        for (k, v) in rows { b += "<tr><th>\(htmlEscaped(k))</th><td>\(htmlEscaped(v))</td></tr>" }
        for (n, v) in i.meta?.headers ?? [] { b += "<tr><th>header</th><td>\(htmlEscaped(n)): \(htmlEscaped(v))</td></tr>" }
        b += "</table>"
        if let e = i.meta?.lastError { b += "<h2>Last error</h2><pre class=\"error\">\(htmlEscaped(e))</pre>" }
        if let h = i.meta?.history, !h.isEmpty {
            // The last attempts in this queue (format 2 keeps 10), newest first; errors from handlers, escaped.
            b += "<h2>Attempts</h2><table class=\"history\"><tr><th>started</th><th>took</th><th>outcome</th><th>status</th><th>error</th></tr>"
            for a in h.reversed() {
                b += "<tr><td>\(htmlEscaped(RFC3339.format(nanos: a.startedAtNanos)))</td><td>\(htmlEscaped(Self.duration(a.durationNanos)))</td>"
                    + "<td>\(htmlEscaped(a.outcome.rawValue))</td><td>\(htmlEscaped(a.status ?? ""))</td><td>\(htmlEscaped(a.error ?? ""))</td></tr>"
            }
            b += "</table>"
        }
        b += "<p class=\"actions\">"
        if i.state == .failed || i.state == .new { b += form("/actions/retry", i.state == .failed ? "retry" : "make due now", key: i.key) }
        if i.state == .done || i.state == .failed { b += " " + form("/actions/purge", "purge", key: i.key) }
        b += "</p><h2>Payload</h2><p><a href=\"/items/\(percentEncoded(i.key))/body\">raw bytes</a> (application/octet-stream)</p>"
        if truncated { b += "<p class=\"note\">first \(Self.payloadCap / 1024) KiB of \(i.size) bytes shown</p>" }
        b += "<pre class=\"payload\">\(htmlEscaped(Self.displayText(payload, complete: !truncated)))</pre>"
        return layout(title: "spool: item \(i.key)", refresh: false, b)
    }

    /// JSON pretty-printed; anything else as text (invalid UTF-8 replaced, controls made visible by the escaper).
    static func displayText(_ payload: [UInt8], complete: Bool) -> String {
        if complete, let v = try? JSONParser.parse(payload) {
            var out = ""
            pretty(v, indent: 0, into: &out)
            return out
        }
        return String(decoding: payload, as: UTF8.self)
    }

    static func pretty(_ v: JSONValue, indent: Int, into out: inout String) {
        let pad = String(repeating: "  ", count: indent + 1), close = String(repeating: "  ", count: indent)
        switch v {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .number(let n): out += n
        case .string(let s): out += JSONWriter.quote(s)
        case .array(let a):
            if a.isEmpty { out += "[]"; return }
            out += "[\n"
            for (k, e) in a.enumerated() {
                out += pad; pretty(e, indent: indent + 1, into: &out); out += k == a.count - 1 ? "\n" : ",\n"
            }
            out += close + "]"
        case .object(let o):
            if o.isEmpty { out += "{}"; return }
            out += "{\n"
            for (k, (name, e)) in o.enumerated() {
                out += pad + JSONWriter.quote(name) + ": "; pretty(e, indent: indent + 1, into: &out); out += k == o.count - 1 ? "\n" : ",\n"
            }
            out += close + "}"
        }
    }

    /// The second step of a purge (no script may run on these pages, so the confirmation is a page of its own).
    func confirmPurge(_ key: String) -> String {
        layout(title: "spool: purge \(key)?", refresh: false,
               "<h1>Purge \(htmlEscaped(key))?</h1><p class=\"message\">Its payload and delivery history are deleted, and its key "
               + "is forgotten: a redelivery of the same key would be accepted and delivered again.</p><p>"
               + form("/actions/purge", "purge it", key: key, confirmed: true)
               + " <a href=\"/items/\(percentEncoded(key))\">cancel</a></p>")
    }

    func message(_ title: String, _ text: String) -> String {
        layout(title: "spool: \(title)", refresh: false, "<h1>\(htmlEscaped(title))</h1><p class=\"message\">\(htmlEscaped(text))</p><p><a href=\"/\">back to the queue</a></p>")
    }

    static let css = """
    body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1f2328;background:#fff}
    header{background:#24292f;color:#fff;padding:8px 16px}header a{color:#fff;font-weight:bold;text-decoration:none}
    .dir{color:#bbb;margin-left:8px;font-family:monospace}main{padding:8px 16px;max-width:1200px}
    h1{font-size:20px}h2{font-size:16px;margin-top:24px}
    table{border-collapse:collapse;margin:4px 0}th,td{border:1px solid #d0d7de;padding:3px 8px;text-align:left;vertical-align:top}
    th{background:#f6f8fa}.counts td{font-size:20px;text-align:center}.key{font-family:monospace;word-break:break-all}
    .error{color:#cf222e;font-family:monospace;white-space:pre-wrap;word-break:break-all}
    pre{background:#f6f8fa;padding:8px;overflow:auto;max-height:600px;white-space:pre-wrap;word-break:break-all}
    form.inline{display:inline;margin:0}button{cursor:pointer}
    .legend .arrivals{color:#1f6feb}.legend .completions{color:#2da44e}.legend .failures{color:#cf222e}
    .foot,.note{color:#57606a;font-size:12px}.small{font-size:12px;display:block}
    """
}
