import Foundation
import Glibc
import SpoolCore
import SpoolHTTP
import SpoolSystem
import SpoolTestSupport
import SpoolWire
@testable import SpoolUI

let packageRoot: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.path
}()
let spoolBin = packageRoot + "/.build/debug/spool"

/// Text meant to break out of HTML wherever it lands.
enum Hostile {
    /// A key (keys may not hold C0 controls, but C1 ones are valid UTF-8).
    static let key = "<script>document.title='pwned-key'</script>\"><img src=x onerror=\"document.title='pwned-img'\">\u{85}\u{9b}"
    static let error = "</textarea><script>document.title='pwned-error'</script>\"><img src=x onerror=\"document.title='pwned-err-img'\">\u{1b}[31m\u{0}\u{7}\r\nsecond line"
    static let payload = Array("<html><script>document.title='pwned-payload'</script></textarea>\"><img src=x onerror=alert(1)>\u{1}\u{1b}\u{9b}".utf8)
    static let header = ("x-evil", "<script>document.title='pwned-header'</script>")
}

/// A spool with items in every state, made through the library: 2 failed (one hostile), 1 done, 1 waiting for a
/// retry, 1 claimed, 3 waiting. Returns the claimed item so that its lock lives as long as the caller wants.
@discardableResult
func makeFixture(_ spool: Spool) throws -> ClaimedItem {
    let permanent = RetryPolicy(maxAttempts: 1)
    func claimOne() throws -> ClaimedItem {
        guard let c = try spool.claim() else { throw POSIXError(.ENOENT) }
        return c
    }
    _ = try spool.enqueue(key: SpoolKey("failed-1"), payload: Array("{\"movie\":{\"project\":\"failed-1\"},\"n\":[1,2]}".utf8),
                          headers: [("content-type", "application/json")])
    try spool.fail(try claimOne(), error: "handler exited 1: connection refused", status: "exit 1", retryable: false, policy: permanent)
    _ = try spool.enqueue(key: SpoolKey(Hostile.key), payload: Hostile.payload, headers: [Hostile.header])
    try spool.fail(try claimOne(), error: Hostile.error, status: "<b>500</b>", retryable: false, policy: permanent)
    _ = try spool.enqueue(key: SpoolKey("done-1"), payload: Array("{\"ok\":true}".utf8))
    try spool.complete(try claimOne())
    _ = try spool.enqueue(key: SpoolKey("retrying-1"), payload: Array("retry me".utf8))
    try spool.fail(try claimOne(), error: "HTTP 503", status: "503", retryable: true,
                   policy: RetryPolicy(maxAttempts: 5, baseNanos: 600_000_000_000, maxNanos: 600_000_000_000))
    _ = try spool.enqueue(key: SpoolKey("claimed-1"), payload: Array("working".utf8))
    let claimed = try claimOne()
    for k in ["waiting-1", "waiting-2", "waiting-3"] { _ = try spool.enqueue(key: SpoolKey(k), payload: Array(k.utf8)) }
    return claimed
}

extension UIHandler {
    /// One request straight into the handler, as the server would deliver it.
    func get(_ target: String, headers: [(String, String)] = [("Host", "127.0.0.1:8081")]) -> HTTPResponse {
        request("GET", target, headers: headers)
    }

    func request(_ method: String, _ target: String, headers: [(String, String)] = [("Host", "127.0.0.1:8081")], body: [UInt8] = []) -> HTTPResponse {
        let q = target.firstIndex(of: "?")
        let head = HTTPRequestHead(method: method, target: target, path: q.map { String(target[..<$0]) } ?? target,
                                   query: q.map { String(target[target.index(after: $0)...]) }, version: .http1_1,
                                   headers: HTTPHeaders(headers), framing: body.isEmpty ? .none : .length(body.count), keepAlive: true, expectation: .none)
        if let early = checkHead(head, remote: "127.0.0.1") { return early }
        return respond(to: HTTPRequest(head: head, body: body))
    }

    /// A POST as the page's own form sends it.
    func post(_ path: String, fields: [(String, String)], origin: String? = "http://127.0.0.1:8081", extra: [(String, String)] = []) -> HTTPResponse {
        var headers = [("Host", "127.0.0.1:8081"), ("Content-Type", "application/x-www-form-urlencoded")]
        if let origin { headers.append(("Origin", origin)) }
        let body = fields.map { "\(formEncode($0.0))=\(formEncode($0.1))" }.joined(separator: "&")
        return request("POST", path, headers: headers + extra, body: Array(body.utf8))
    }
}

func formEncode(_ s: String) -> String { percentEncoded(s) }

extension HTTPResponse {
    var text: String { String(decoding: body, as: UTF8.self) }
    func header(_ name: String) -> String? { headers[name] }
}

/// Every header the issue pins, on a response.
func hasSecurityHeaders(_ r: HTTPResponse) -> Bool {
    guard let csp = r.header("Content-Security-Policy") else { return false }
    return csp.hasPrefix("default-src 'self'") && csp.contains("script-src 'none'") && !csp.contains("unsafe-inline")
        && r.header("X-Frame-Options") == "DENY" && r.header("X-Content-Type-Options") == "nosniff"
        && r.header("Referrer-Policy") == "same-origin" && r.header("Cache-Control") == "no-store"
}

/// The names in `dir/state`.
func names(_ dir: String, _ state: String) -> [String] { entries(dir + "/" + state) }

/// A running `spool ui` on a free port.
final class UIProcess: @unchecked Sendable {
    let child: Child
    let port: UInt16

    init(dir: String, extra: [String] = []) throws {
        let c = try Child(spoolBin, ["--dir", dir, "ui", "--listen", "127.0.0.1:0"] + extra)
        child = c
        port = try bannerPort(of: c)
    }

    var url: String { "http://127.0.0.1:\(port)" }

    func stop() -> ProcessResult {
        child.signal(SIGTERM)
        return child.wait(timeout: 20)
    }
}

/// The hidden fields of the first form whose action is `action` in a page.
func formFields(in html: String, action: String) -> [(String, String)]? {
    guard let start = html.range(of: "<form method=\"post\" action=\"\(action)\"") else { return nil }
    guard let end = html[start.upperBound...].range(of: "</form>") else { return nil }
    let form = html[start.upperBound..<end.lowerBound]
    var out: [(String, String)] = []
    var rest = form[...]
    while let r = rest.range(of: "<input type=\"hidden\" name=\"") {
        let afterName = rest[r.upperBound...]
        guard let q = afterName.firstIndex(of: "\"") else { break }
        let name = String(afterName[..<q])
        guard let v = afterName.range(of: "value=\"") else { break }
        let afterValue = afterName[v.upperBound...]
        guard let q2 = afterValue.firstIndex(of: "\"") else { break }
        out.append((name, String(afterValue[..<q2])))
        rest = afterValue[q2...]
    }
    return out
}

/// A wall clock the test moves.
final class ManualClock: WallClock, @unchecked Sendable {
    private let lock = NSLock()
    private var now: Int64
    init(_ start: Int64) { now = start }
    func nowNanos() -> Int64 { lock.lock(); defer { lock.unlock() }; return now }
    func set(_ t: Int64) { lock.lock(); now = t; lock.unlock() }
}

/// An hour of history for the chart: items that arrived over the last 55 minutes in bursts, most of them done a
/// little later, a few failed (through the library, on a clock set into the past).
func makeHistory(_ dir: String) throws {
    let real = SystemClock().nowNanos()
    let clock = ManualClock(real - 55 * 60_000_000_000)
    let past = try Spool(path: dir, clock: clock)
    let minute: Int64 = 60_000_000_000
    for m in 0..<55 {
        let t = real - Int64(55 - m) * minute
        let burst = 2 + (m * 7 % 11) + (m > 30 && m < 40 ? 12 : 0)
        for j in 0..<burst {
            clock.set(t + Int64(j) * 1_000_000_000)
            _ = try past.enqueue(key: SpoolKey("hist-\(m)-\(j)"), payload: Array("{\"project\":\"hist-\(m)-\(j)\"}".utf8))
        }
        // The payloads' mtimes are the real time of writing: claim on the real clock, finish in the past.
        clock.set(SystemClock().nowNanos())
        // A first-attempt success records nothing (its finish time is the ctime of the move, which cannot be set in
        // the past), so each done item fails once first: its delivery state then records when it finished.
        var failedOnce = Set<String>()
        while let c = try past.claim() {
            clock.set(t + 40_000_000_000)
            defer { clock.set(SystemClock().nowNanos()) }
            if c.key.value.hasSuffix("-3") && m % 4 == 0 {
                try past.fail(c, error: "HTTP 422 from downstream", status: "422", retryable: false, policy: RetryPolicy(maxAttempts: 1))
            } else if failedOnce.insert(c.key.value).inserted {
                try past.fail(c, error: "HTTP 503", status: "503", retryable: true,
                              policy: RetryPolicy(maxAttempts: 5, baseNanos: 1_000_000, maxNanos: 1_000_000))
            } else {
                try past.complete(c, status: "200")
            }
        }
    }
}
