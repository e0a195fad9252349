import Synchronization
import SpoolCore
import SpoolSystem

/// How reconcile runs (the `spool reconcile` options).
public struct ReconcileConfiguration: Sendable {
    /// The window of each round: `now - since ... now` (`--since`). The API allows at most 93 days.
    public var sinceNanos: Int64 = 24 * 3_600_000_000_000
    /// Between the start of one round and the next (`--every`).
    public var everyNanos: Int64 = 5 * 60_000_000_000
    /// How long a finished render is given for its own webhook (`--grace`).
    public var graceNanos: Int64 = 10 * 60_000_000_000
    /// Requests start at least 60 s / this apart (`--max-requests-per-minute`).
    public var maxRequestsPerMinute = 30
    public var filter = MovieFilter()
    /// Page size asked for (the API's maximum).
    public var pageLimit = 100
    /// Attempts of one request that gets 429, 5xx or a network error before the round fails.
    public var attemptsPerRequest = 5
    /// First pause after such a failure (doubling, at most `maxBackoffNanos`) when the API does not say Retry-After.
    public var backoffNanos: Int64 = 1_000_000_000
    public var maxBackoffNanos: Int64 = 60_000_000_000
    /// Pages of one round, at most (a runaway cursor must end), and bytes of movie objects kept for one round.
    public var maxPages = 1000
    public var maxRoundBytes = 256 * 1024 * 1024
    public static let maxSinceNanos: Int64 = 93 * 86_400_000_000_000
    public init() {}
}

/// What one round did: the per-round log line and the metrics.
public struct RoundReport: Sendable {
    public var requests = 0
    public var pages = 0
    public var seen = 0
    public var final = 0
    public var enqueued = 0
    /// Final movies whose project already has an item (or enqueue answered duplicate): the webhook came first.
    public var known = 0
    /// Final movies still inside `--grace`.
    public var waiting = 0
    /// Movies left alone by `--match-webhook` / `--match-client-data`.
    public var filtered = 0
    /// Responses that were errors (429, 5xx, network, malformed, rejected key), retried or not.
    public var apiErrors = 0
    /// Why the round failed (nothing more is enqueued by a failed round).
    public var error: ReconcileError?
    /// The process was asked to stop while the round waited (it ends without deciding anything).
    public var stopped = false

    public var line: String {
        var s = "\(pages) pages, \(seen) movies seen, \(final) final, \(enqueued) enqueued, \(known) already in the spool, "
        s += "\(waiting) within grace, \(filtered) filtered out, \(requests) requests, \(apiErrors) API errors"
        if let error { s += "; failed: \(error.message)" }
        return s
    }
}

/// The reconcile loop: each round lists the window's movies (all pages) and enqueues, under the project as key and
/// through the spool's one enqueue path, every final movie past its grace whose project has no item. Runs one
/// request at a time, at most `maxRequestsPerMinute`; waits (interruptibly) through `pause`.
public final class Reconciler: @unchecked Sendable {
    let spool: Spool
    let pager: any MoviePager
    let configuration: ReconcileConfiguration
    let clock: any WallClock
    let log: @Sendable (String) -> Void
    /// Sleeps for the given nanoseconds; false when the process is asked to stop (then the round ends).
    let pause: (Int64) -> Bool
    /// When each project was first seen final here (for movies without a usable `ended_at`).
    private var firstSeenFinal: [String: Int64] = [:]
    private var lastRequestMono: Int64?
    /// Sums over all rounds, read by other threads (`/metrics` of `spool serve`).
    private let counters = Mutex<(totals: RoundReport, rounds: Int, failed: Int)>((RoundReport(), 0, 0))
    public var totals: RoundReport { counters.withLock { $0.totals } }
    public var rounds: Int { counters.withLock { $0.rounds } }
    public var failedRounds: Int { counters.withLock { $0.failed } }

    public init(spool: Spool, pager: any MoviePager, configuration: ReconcileConfiguration, clock: any WallClock = SystemClock(),
                log: @escaping @Sendable (String) -> Void, pause: @escaping (Int64) -> Bool) {
        self.spool = spool
        self.pager = pager
        self.configuration = configuration
        self.clock = clock
        self.log = log
        self.pause = pause
    }

    struct Stopped: Error {}

    /// One round. Lists every page first and enqueues only when all of them parsed, so a malformed page anywhere
    /// enqueues nothing.
    public func round() -> RoundReport {
        var r = RoundReport()
        defer { accumulate(r) }
        let now = clock.nowNanos()
        let from = now - min(configuration.sinceNanos, ReconcileConfiguration.maxSinceNanos)
        var movies: [Movie] = []
        var bytes = 0
        var query = PageQuery(fromNanos: from, toNanos: now, limit: configuration.pageLimit)
        do throws(ReconcileError) {
            while true {
                guard let page = try fetch(query, &r) else { r.stopped = true; return r }
                r.pages += 1
                bytes += page.movies.reduce(0) { $0 + $1.raw.count }
                guard bytes <= configuration.maxRoundBytes else {
                    throw ReconcileError(.malformed, "more than \(configuration.maxRoundBytes) bytes of movies in one round")
                }
                movies += page.movies
                guard page.hasNext, let token = page.nextToken else { break }
                guard r.pages < configuration.maxPages else {
                    throw ReconcileError(.malformed, "more than \(configuration.maxPages) pages in one round")
                }
                query.nextToken = token
            }
        } catch {
            r.error = error
            return r
        }
        decideAndEnqueue(movies, now: now, &r)
        return r
    }

    /// One page, retried after 429/5xx/network errors (honouring Retry-After) up to `attemptsPerRequest` times.
    /// Nil when asked to stop while waiting.
    private func fetch(_ q: PageQuery, _ r: inout RoundReport) throws(ReconcileError) -> MovieListPage? {
        var backoff = configuration.backoffNanos
        var attempt = 0
        while true {
            attempt += 1
            guard waitForRateLimit() else { return nil }
            lastRequestMono = monotonicNanos()
            r.requests += 1
            do throws(ReconcileError) {
                return try pager.page(q)
            } catch {
                r.apiErrors += 1
                guard error.isRetryable, attempt < configuration.attemptsPerRequest else { throw error }
                let wait = max(error.retryAfterNanos ?? backoff, 0)
                log("API: \(error.message); request \(attempt) of \(configuration.attemptsPerRequest), next in \(Reconciler.seconds(wait))")
                guard pause(wait) else { return nil }
                backoff = min(backoff * 2, configuration.maxBackoffNanos)
            }
        }
    }

    /// Waits until the next request is allowed (requests start 60 s / N apart).
    private func waitForRateLimit() -> Bool {
        guard let last = lastRequestMono else { return true }
        let spacing = 60_000_000_000 / Int64(max(1, configuration.maxRequestsPerMinute))
        let wait = last + spacing - monotonicNanos()
        return wait <= 0 || pause(wait)
    }

    private func decideAndEnqueue(_ movies: [Movie], now: Int64, _ r: inout RoundReport) {
        var batch: [EnqueueRequest] = []
        var seenNow: [String: Int64] = [:]
        var inBatch = Set<String>()
        for m in movies {
            r.seen += 1
            guard m.isFinal else { continue }
            r.final += 1
            let firstSeen = firstSeenFinal[m.project] ?? now
            seenNow[m.project] = firstSeen
            guard configuration.filter.matches(m) else { r.filtered += 1; continue }
            let finishedAt = m.endedAtNanos ?? firstSeen
            guard now - finishedAt >= configuration.graceNanos else { r.waiting += 1; continue }
            // Validated by the page parser.
            guard let key = try? SpoolKey(m.project) else { continue }
            if spool.hasMarker(key: key) || inBatch.contains(m.project) { r.known += 1; continue }
            inBatch.insert(m.project)
            batch.append(EnqueueRequest(key: key, payload: m.webhookPayload, headers: [("content-type", "application/json")],
                                        source: .reconcile))
        }
        firstSeenFinal = seenNow
        var start = 0
        while start < batch.count {
            let chunk = Array(batch[start..<min(start + 100, batch.count)])
            start += chunk.count
            for (req, result) in zip(chunk, spool.enqueueBatch(chunk)) {
                switch result {
                case .success(.accepted): r.enqueued += 1; log("enqueued \(req.key.value) (no webhook within the grace)")
                case .success(.duplicate): r.known += 1
                case .failure(let e): r.error = ReconcileError(.spool, "cannot enqueue \(req.key.value): \(e)")
                }
            }
        }
    }

    private func accumulate(_ r: RoundReport) {
        counters.withLock { c in
            c.rounds += 1
            if r.error != nil { c.failed += 1 }
            c.totals.requests += r.requests; c.totals.pages += r.pages; c.totals.seen += r.seen; c.totals.final += r.final
            c.totals.enqueued += r.enqueued; c.totals.known += r.known; c.totals.waiting += r.waiting
            c.totals.filtered += r.filtered; c.totals.apiErrors += r.apiErrors
        }
    }

    /// The counters in Prometheus text format (appended to `spool serve`'s `/metrics` when the loop runs inside it).
    public func metricsText() -> String {
        let c = counters.withLock { $0 }
        var out = ""
        func counter(_ name: String, _ help: String, _ v: Int) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) counter\n\(name) \(v)\n"
        }
        counter("spool_reconcile_rounds_total", "Reconcile rounds run.", c.rounds)
        counter("spool_reconcile_rounds_failed_total", "Reconcile rounds that failed (API, network, malformed response).", c.failed)
        counter("spool_reconcile_movies_seen_total", "Movies listed by the API over all rounds.", c.totals.seen)
        counter("spool_reconcile_enqueued_total", "Items enqueued by reconcile (no webhook within the grace).", c.totals.enqueued)
        counter("spool_reconcile_api_errors_total", "API responses that were errors (429, 5xx, 401/403, network, malformed).", c.totals.apiErrors)
        return out
    }

    static func seconds(_ n: Int64) -> String {
        let ms = n / 1_000_000
        return ms % 1000 == 0 ? "\(ms / 1000)s" : "\(ms / 1000).\(String(ms % 1000 + 1000).dropFirst())s"
    }
}
