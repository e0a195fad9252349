import Foundation
import Synchronization
import SpoolCore
import SpoolReconcile
import SpoolSystem
import SpoolTestSupport
import SpoolWire
import Testing

final class StepClock: WallClock, @unchecked Sendable {
    let now = Mutex<Int64>(SystemClock().nowNanos())
    func nowNanos() -> Int64 { now.withLock { $0 } }
    func advance(_ n: Int64) { now.withLock { $0 += n } }
}

final class Pauses: @unchecked Sendable {
    let m = Mutex<[Int64]>([])
    func withLock<R>(_ f: (inout [Int64]) -> R) -> R { m.withLock { f(&$0) } }
}

/// Pages (or errors) handed out in order; records every query.
final class ScriptedPager: MoviePager, @unchecked Sendable {
    let steps = Mutex<[Result<[UInt8], ReconcileError>]>([])
    let queries = Mutex<[PageQuery]>([])
    func push(_ s: Result<[UInt8], ReconcileError>) { steps.withLock { $0.append(s) } }
    func page(_ q: PageQuery) throws(ReconcileError) -> MovieListPage {
        queries.withLock { $0.append(q) }
        let next = steps.withLock { $0.isEmpty ? nil : $0.removeFirst() }
        guard let next else { throw ReconcileError(.malformed, "no page scripted") }
        return try MovieListPage.parse(try next.get())
    }
}

/// The round loop against scripted pages: grace from first sight, all-or-nothing rounds, backoff and Retry-After.
@Suite struct ReconcilerTests {
    static func list(_ movies: [String], next: String? = nil) -> [UInt8] {
        Array("{\"success\":true,\"has_next\":\(next != nil),\"next_token\":\(next.map { "\"\($0)\"" } ?? "null"),\"movies\":[\(movies.joined(separator: ","))]}".utf8)
    }

    func make(_ config: ReconcileConfiguration = ReconcileConfiguration()) throws -> (Reconciler, ScriptedPager, StepClock, Spool, Pauses) {
        let spool = try Spool(path: makeTempDir("rec") + "/s")
        let pager = ScriptedPager(), clock = StepClock()
        let pauses = Pauses()
        var c = config
        c.maxRequestsPerMinute = 60_000
        let r = Reconciler(spool: spool, pager: pager, configuration: c, clock: clock, log: { _ in },
                           pause: { n in pauses.withLock { $0.append(n) }; return true })
        return (r, pager, clock, spool, pauses)
    }

    @Test func aMovieWithoutEndedAtWaitsTheGraceFromWhenItWasFirstSeenFinal() throws {
        var c = ReconcileConfiguration()
        c.graceNanos = 600_000_000_000
        let (r, pager, clock, spool, _) = try make(c)
        let m = "{\"project\":\"noend00000000001\",\"status\":\"done\"}"
        pager.push(.success(Self.list([m])))
        #expect(r.round().waiting == 1)
        clock.advance(599_000_000_000)
        pager.push(.success(Self.list([m])))
        #expect(r.round().waiting == 1)
        clock.advance(1_000_000_000)
        pager.push(.success(Self.list([m])))
        let third = r.round()
        #expect(third.enqueued == 1 && third.error == nil)
        let info = try spool.find(key: try SpoolKey("noend00000000001"))
        #expect(info.meta?.source == "reconcile" && info.meta?.header("content-type") == "application/json")
        #expect(try spool.payload(of: info) == Array("{\"success\":true,\"movie\":\(m)}".utf8))
        #expect(r.totals.enqueued == 1 && r.rounds == 3)
    }

    @Test func aMalformedLaterPageEnqueuesNothingFromTheRound() throws {
        var c = ReconcileConfiguration()
        c.graceNanos = 0
        let (r, pager, _, spool, _) = try make(c)
        pager.push(.success(Self.list(["{\"project\":\"page1movie000001\",\"status\":\"done\"}"], next: "t2")))
        pager.push(.success(Array("{\"success\":true,\"movies\":[{\"project\":\"p\"}]}".utf8)))
        let round = r.round()
        #expect(round.error?.kind == .malformed && round.enqueued == 0 && round.pages == 1)
        #expect(!spool.hasMarker(key: try SpoolKey("page1movie000001")))
        #expect(pager.queries.withLock { $0.map(\.nextToken) } == [nil, "t2"])
    }

    @Test func throttlingIsRetriedAfterRetryAfterThenBackoffAndGivesUpAfterFiveAttempts() throws {
        var c = ReconcileConfiguration()
        c.graceNanos = 0
        let (r, pager, _, _, pauses) = try make(c)
        pager.push(.failure(ReconcileError(.unavailable, "HTTP 429", retryAfterNanos: 7_000_000_000)))
        pager.push(.failure(ReconcileError(.network, "connection refused")))
        pager.push(.success(Self.list(["{\"project\":\"after429mov00001\",\"status\":\"error\"}"])))
        let ok = r.round()
        #expect(ok.enqueued == 1 && ok.apiErrors == 2 && ok.requests == 3, "\(ok.line)")
        let waits = pauses.withLock { $0 }.filter { $0 >= 1_000_000_000 }
        #expect(waits == [7_000_000_000, 2_000_000_000], "Retry-After first, then the doubled backoff: \(waits)")

        for _ in 0..<5 { pager.push(.failure(ReconcileError(.unavailable, "HTTP 503"))) }
        let failed = r.round()
        #expect(failed.error?.kind == .unavailable && failed.requests == 5)
        pager.push(.failure(ReconcileError(.rejectedKey, "the API rejected the key")))
        let rejected = r.round()
        #expect(rejected.error?.kind == .rejectedKey && rejected.requests == 1, "a rejected key is not retried")
    }

    @Test func statusMappingAndRequestTarget() throws {
        func head(_ code: Int, _ headers: [(String, String)] = []) -> HTTPResponseHead {
            HTTPResponseHead(minorVersion: 1, status: HTTPStatus(code), reason: "", headers: HTTPHeaders(headers))
        }
        func kind(_ code: Int, _ headers: [(String, String)] = []) -> ReconcileError? {
            do { _ = try JSON2VideoClient.check(head: head(code, headers), body: [], truncated: false, nowNanos: 0); return nil } catch { return error }
        }
        #expect(kind(200) == nil)
        #expect(kind(401)?.kind == .rejectedKey && kind(403)?.kind == .rejectedKey)
        #expect(kind(429, [("Retry-After", "3")])?.retryAfterNanos == 3_000_000_000)
        #expect(kind(502)?.kind == .unavailable && kind(404)?.kind == .malformed && kind(302)?.kind == .malformed)
        #expect(throws: ReconcileError.self) { try JSON2VideoClient.check(head: head(200), body: [], truncated: true, nowNanos: 0) }

        let client = try JSON2VideoClient(apiURL: "http://127.0.0.1:9/base/", apiKey: "secret", tls: nil)
        let t = client.target(PageQuery(fromNanos: 0, toNanos: 1_000_000_000, limit: 100, nextToken: "a b/+="))
        #expect(t == "/base/v2/movies?from=1970-01-01T00%3A00%3A00.000Z&to=1970-01-01T00%3A00%3A01.000Z&limit=100&next_token=a%20b%2F%2B%3D", "\(t)")
        let req = String(decoding: client.request(PageQuery(fromNanos: 0, toNanos: 0)), as: UTF8.self)
        #expect(req.hasPrefix("GET /base/v2/movies?") && req.contains("\r\nx-api-key: secret\r\n") && req.hasSuffix("Connection: close\r\n\r\n"))
        #expect(throws: Error.self) { try JSON2VideoClient(apiURL: "http://h/?q=1", apiKey: "k", tls: nil) }
        #expect(throws: Error.self) { try JSON2VideoClient(apiURL: "http://h/", apiKey: "k\r\nx: y", tls: nil) }
    }

    @Test func sourceIsAnOptionalMetadataMemberReadBothWays() throws {
        var m = ItemMeta(key: "k", receivedAtNanos: 1, size: 2)
        #expect(!m.json.contains("source"))
        m.source = "reconcile"
        #expect(m.json.contains("\"source\":\"reconcile\""))
        #expect(try ItemMeta.parse(m.jsonBytes).source == "reconcile")
        #expect(try ItemMeta._parseReference(m.jsonBytes).source == "reconcile")
        let twice = Array(m.json.replacingOccurrences(of: "}\n", with: ",\"source\":\"x\"}\n").utf8)
        #expect(try ItemMeta.parse(twice).source == nil, "a repeated member decides nothing")
    }
}
