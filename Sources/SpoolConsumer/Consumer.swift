import Synchronization
import SpoolCore
import SpoolSystem
import SpoolWire

/// How long a consumer runs.
public enum ConsumerMode: Sendable, Equatable {
    /// Until stopped (SIGTERM, SIGINT or `stop()`).
    case forever
    /// Until no item is due and nothing is in flight.
    case drain
    /// At most one item.
    case once
}

public struct ConsumerConfiguration: Sendable {
    public var concurrency = 1
    public var policy = RetryPolicy()
    public var mode = ConsumerMode.forever
    /// How long running attempts may finish after a stop request before they are cancelled and released.
    public var graceNanos: Int64 = 30_000_000_000
    /// Fallback wake-up interval when inotify is unavailable (or as a safety net).
    public var pollIntervalNanos: Int64 = 1_000_000_000
    /// How often to look for items whose claimant died (their kernel lock is free).
    public var claimCheckIntervalNanos: Int64 = 1_000_000_000
    /// Use inotify on `new/` to pick up items within milliseconds.
    public var useInotify = true
    /// The queue's `delay`: a first attempt starts no earlier than the item's arrival plus this.
    public var delayNanos: Int64 = 0
    /// The queue's `rate`: attempts started across every consumer process of the queue (`Spool.reservePace`).
    public var pace: PaceRate?
    /// Called (on the attempt thread, so it must not block: `FailureHook.notify` queues) for each item this consumer
    /// moves to `failed/`.
    public var onFailed: (@Sendable (FailedItem) -> Void)?
    /// `--retain-done`: done items that finished longer ago than this are purged by the loop, in slices.
    public var retainDoneNanos: Int64?
    /// `--keep-keys`: the key of an item purged for retention stays a duplicate until this long after it finished.
    public var keepKeysNanos: Int64?
    /// `--metrics-listen`: counted into by the attempt threads.
    public var metrics: ConsumerMetrics?
    /// Called once the startup recovery is done and the consumer begins claiming (systemd's READY=1).
    public var onReady: (@Sendable () -> Void)?
    /// Called once when a stop is requested (systemd's STOPPING=1).
    public var onStopping: (@Sendable () -> Void)?
    public init() {}
}

/// Summary of a consumer run.
public struct ConsumerResult: Sendable, Equatable {
    public var processed = 0
    public var done = 0
    public var retried = 0
    public var failed = 0
    public var released = 0
    /// Attempts that waited for the queue's rate before starting.
    public var pacedWaits = 0

    mutating func add(_ o: ConsumerResult) {
        processed += o.processed; done += o.done; retried += o.retried; failed += o.failed; released += o.released
        pacedWaits += o.pacedWaits
    }
}

/// One line per attempt (and per notable event), for the consumer's log on stderr. One call may carry several
/// lines separated by `\n` (the attempts of one batch, written at once).
public typealias ConsumerLog = @Sendable (String) -> Void

/// Claims items from a spool and hands each to an `ItemProcessor` on its own thread, at most `concurrency`
/// at a time. One loop thread does all claiming, waiting (inotify, timers, stop requests) and bookkeeping.
public final class Consumer: Sendable {
    public let spool: Spool
    let processor: any ItemProcessor
    let config: ConsumerConfiguration
    let log: ConsumerLog
    let wake: Wakeup
    let state = Mutex(LoopState())
    let cancellation = CancellationFlag()
    /// Set by a failed claim, cleared (with a log line) by the next claim that works.
    let claimFailing = Atomic<Bool>(false)
    /// Items one attempt thread takes at a time: 1, or for a pipelining processor `pipelineBatch`.
    let perThread: Int

    struct LoopState {
        var inFlight = 0
        var stopRequested = false
        var stopRequestedAt: Int64 = 0
        var result = ConsumerResult()
        var started = 0
        /// While the handler cannot run (exit 126/127): when to try again, and the current backoff.
        var cannotRunUntil: Int64?
        var cannotRunBackoff: Int64 = 500_000_000
        var fatal: String?
        /// The last claim error while claims keep failing (a read-only or failing file system), and when it was logged.
        var claimError: String?
        var claimErrorLoggedAt: Int64 = 0
    }

    public init(spool: Spool, processor: any ItemProcessor, configuration: ConsumerConfiguration, log: @escaping ConsumerLog) throws {
        self.spool = spool
        self.processor = processor
        self.config = configuration
        self.log = log
        self.wake = try Wakeup()
        // A paced queue starts attempts one at a time, each at its reserved moment.
        self.perThread = processor.pipelines && configuration.mode != .once && configuration.pace == nil
            ? Consumer.pipelineBatch(concurrency: configuration.concurrency) : 1
    }

    /// Items per attempt thread for a pipelining processor: two threads (one waits for its batch's answers while
    /// the other finishes and claims the next) up to 32 in flight, then batches of 16 over up to four threads.
    static func pipelineBatch(concurrency: Int) -> Int {
        let threads = min(4, max(2, concurrency / 16))
        return max(1, (concurrency + threads - 1) / threads)
    }

    /// Asks the loop to stop claiming; running attempts get the grace period. Safe from any thread.
    public func stop() {
        let first = state.withLock { st -> Bool in
            if st.stopRequested { return false }
            st.stopRequested = true; st.stopRequestedAt = monotonicNanos()
            return true
        }
        if first { config.onStopping?() }
        wake.signal()
    }

    /// Runs until the mode says to stop. Returns what was done. `stopFD` (for example a signal eventfd) stops
    /// the loop when readable.
    public func run(stopFD: FileDescriptor? = nil) -> ConsumerResult {
        let report = spool.recover()
        for line in report.lines { log("recover: \(line)") }
        let watch = config.useInotify ? watchNew() : nil
        defer { watch?.close() }
        config.onReady?()
        var lastClaimCheck = monotonicNanos()
        var lastTmpCheck = monotonicNanos()
        var nextRetention = monotonicNanos()
        var cancelled = false
        /// Set while the downstream is known to be unreachable: when its gate lets us try again.
        var blockedUntil: Int64? = nil
        while true {
            let (stopping, stopAt) = state.withLock { ($0.stopRequested, $0.stopRequestedAt) }
            if stopping {
                if state.withLock({ $0.inFlight }) == 0 { break }
                if !cancelled && monotonicNanos() - stopAt >= config.graceNanos {
                    cancelled = true
                    cancellation.cancel()
                    log("grace period over: cancelling running attempts")
                }
            } else {
                let claimedAny: Bool
                (claimedAny, blockedUntil) = claimWhileCapacity()
                let (inFlight, started) = state.withLock { ($0.inFlight, $0.started) }
                switch config.mode {
                case .once where started >= 1:
                    if inFlight == 0 { return finish() }
                    state.withLock { $0.stopRequested = true; $0.stopRequestedAt = monotonicNanos() }
                    continue
                case .once, .drain:
                    // A finite job on a paused queue has nothing it may do: it ends (saying so) rather than wait.
                    if inFlight == 0 && !claimedAny && spool.isPaused {
                        log("queue \(spool.queue) is paused: nothing started")
                        return finish()
                    }
                    if inFlight == 0 && !claimedAny && !isDueNow() { return finish() }
                default: break
                }
            }
            // Sleep until something can change: an inotify event, a finished attempt, a stop, a retry
            // falling due, the next claim check.
            let now = monotonicNanos()
            var timeout = config.claimCheckIntervalNanos - (now - lastClaimCheck)
            if watch == nil { timeout = min(timeout, config.pollIntervalNanos) }
            // A due retry matters only when it can be started: with every slot busy a finishing attempt wakes
            // us, and while the downstream is unreachable its gate says when to look again (never a busy wait).
            let full = state.withLock { $0.inFlight >= config.concurrency }
            if !stopping && !full {
                if let until = blockedUntil {
                    timeout = min(timeout, until - now)
                } else if let due = spool.nextDueTime() {
                    timeout = min(timeout, due - spool.now())
                }
            }
            if stopping && !cancelled { timeout = min(timeout, config.graceNanos) }
            timeout = max(0, min(timeout, 5_000_000_000))
            var fds = [wake.fd]
            if let watch { fds.append(watch.descriptor) }
            if let stopFD { fds.append(stopFD) }
            let ready = (try? pollReadable(fds, timeoutMillis: Int32((timeout + 999_999) / 1_000_000))) ?? fds.map { _ in false }
            if ready[0] { wake.drain() }
            if let watch, ready[1] { spool.noteNewItems(names: watch.readNames()) }
            if stopFD != nil, ready.last == true, !stopping {
                log("stop requested: finishing running attempts (grace \(config.graceNanos / 1_000_000_000)s)")
                stop()
            }
            if monotonicNanos() - lastClaimCheck >= config.claimCheckIntervalNanos {
                lastClaimCheck = monotonicNanos()
                let requeued = spool.recoverDeadClaims()
                for k in requeued { log("key=\(k) requeued: its claimant died") }
                if lastClaimCheck - lastTmpCheck >= 30_000_000_000 {
                    // Enqueues whose writer died after linking the marker are finished here, so their keys (already
                    // answered "duplicate" to later deliveries) do not wait for the next restart.
                    lastTmpCheck = lastClaimCheck
                    for line in spool.recoverInterruptedWrites().lines { log("recover: \(line)") }
                }
                if watch == nil || !requeued.isEmpty { spool.noteNewItems() }
                if let retain = config.retainDoneNanos, lastClaimCheck >= nextRetention {
                    nextRetention = lastClaimCheck + retainDone(retain)
                }
            } else if watch == nil {
                spool.noteNewItems()
            }
        }
        return finish()
    }

    private func finish() -> ConsumerResult { state.withLock { $0.result } }

    /// One slice of retention on the loop thread: at most `retentionSlice` done items purged. Returns when to look
    /// again: at the next claim check while a slice came back full, else after a tenth of the retention (1 s to 1 min).
    private func retainDone(_ retain: Int64) -> Int64 {
        do {
            let removed = try spool.purge(states: [.done], olderThanNanos: retain, keepKeysNanos: config.keepKeysNanos, limit: Consumer.retentionSlice)
            if !removed.isEmpty {
                log("retention: purged \(removed.count) done item\(removed.count == 1 ? "" : "s") finished more than \(retain / 1_000_000_000)s ago"
                    + (config.keepKeysNanos.map { ", their keys kept until \($0 / 1_000_000_000)s after they finished" } ?? ""))
            }
            if removed.count >= Consumer.retentionSlice { return 0 }
        } catch {
            log("retention: cannot purge: \(error)")
        }
        return min(60_000_000_000, max(1_000_000_000, retain / 10))
    }

    /// Items one retention pass purges at most, so that claiming never waits long behind it.
    static let retentionSlice = 1000

    /// A long-running consumer waits out a downstream outage without claiming; `--drain` and `--once` are
    /// finite jobs that give every item its attempts (and end), so they do not wait. A handler that cannot run
    /// holds every mode back until its backoff ends.
    private func downstreamBlockedUntil() -> Int64? {
        if let until = state.withLock({ $0.cannotRunUntil }), until > monotonicNanos() { return until }
        guard config.mode == .forever else { return nil }
        return processor.unavailableUntil(now: monotonicNanos())
    }

    /// The handler could not be run (exit 126 or 127: not executable, not found): a configuration error, never an
    /// attempt. If nothing has succeeded yet in this run, the consumer stops (the CLI exits 1 with the message); else it
    /// logs the error and starts nothing for a backoff that doubles from 1 s to 60 s.
    private func handlerCannotRun(_ error: String) {
        let (stopNow, wait) = state.withLock { st -> (Bool, Int64) in
            let stop = st.result.done == 0 && st.result.retried == 0 && st.result.failed == 0
            st.cannotRunBackoff = min(60_000_000_000, max(1_000_000_000, st.cannotRunBackoff * 2))
            st.cannotRunUntil = monotonicNanos() + st.cannotRunBackoff
            if stop { st.fatal = error }
            return (stop, st.cannotRunBackoff)
        }
        if stopNow { stop() }
        log(stopNow ? "error: \(error); stopping" : "error: \(error); starting nothing for \(wait / 1_000_000_000)s")
    }

    /// Set when the consumer stopped for a configuration error found by its first attempt (the CLI's exit 1).
    public var fatalError: String? { state.withLock { $0.fatal } }

    private func isDueNow() -> Bool {
        if let due = spool.nextDueTime(), due <= spool.now() { return true }
        return false
    }

    /// Claims and starts attempts while there is capacity. Returns whether it started any, and when to try
    /// again if the processor said its downstream is unreachable.
    private func claimWhileCapacity() -> (Bool, Int64?) {
        var startedAny = false
        while true {
            let canStart = state.withLock { st -> Bool in
                if st.stopRequested || st.inFlight >= config.concurrency { return false }
                if config.mode == .once && st.started >= 1 { return false }
                return true
            }
            guard canStart else { return (startedAny, nil) }
            if let until = downstreamBlockedUntil() { return (startedAny, until) }
            // A paused queue starts nothing; the loop looks again within half a second.
            if spool.isPaused { return (startedAny, monotonicNanos() + 500_000_000) }
            // A slot of up to `perThread` items, reserved whole so the thread can fill it later.
            let slot = state.withLock { min(perThread, config.concurrency - $0.inFlight) }
            let items = claim(upTo: slot)
            guard !items.isEmpty else { return (startedAny, nil) }
            state.withLock { $0.inFlight += slot; $0.started += items.count }
            startedAny = true
            startThread { [self, items] in self.work(first: items, slot: slot) }
        }
    }

    /// One attempt thread: runs `first`, then keeps its slot and claims the next due items itself, so a busy
    /// consumer neither starts a thread nor wakes the loop per item. It hands the slot back when nothing is due.
    private func work(first: [ClaimedItem], slot: Int) {
        var items = first
        while true {
            if config.pace != nil { items = waitForPace(items) }
            if !items.isEmpty { attempt(items) }
            let next = claimNextInSlot(max: slot)
            if next.isEmpty { break }
            items = next
        }
        state.withLock { $0.inFlight -= slot }
        wake.signal()
    }

    /// Waits for the moment the queue's rate gives these attempts (reserved in the shared `pace` file). A stop or a
    /// pause that comes meanwhile puts them back unattempted: no attempt starts on a paused queue. A failing
    /// reservation is logged and does not hold the attempt back (pacing is not worth losing deliveries over).
    private func waitForPace(_ items: [ClaimedItem]) -> [ClaimedItem] {
        guard let rate = config.pace else { return items }
        let startAt: Int64
        do { startAt = try spool.reservePace(rate, count: items.count) } catch {
            log("pace: \(error); starting without it")
            return items
        }
        if startAt > monotonicNanos() { state.withLock { $0.result.pacedWaits += items.count } }
        while true {
            let now = monotonicNanos()
            let stopping = state.withLock { $0.stopRequested }
            if stopping || spool.isPaused {
                for item in items { try? spool.release(item) }
                state.withLock { $0.result.released += items.count }
                return []
            }
            if now >= startAt { return items }
            // Short naps, so that a stop or a pause is seen within a tenth of a second.
            sleep(nanoseconds: min(startAt - now, 100_000_000))
        }
    }

    private func claimNextInSlot(max: Int) -> [ClaimedItem] {
        let go = state.withLock { st -> Bool in
            if st.stopRequested || config.mode == .once { return false }
            return true
        }
        guard go, downstreamBlockedUntil() == nil else { return [] }
        let items = claim(upTo: max)
        state.withLock { $0.started += items.count }
        return items
    }

    /// Up to `count` due items (fewer when fewer are due); a failing claim is logged and ends the batch.
    private func claim(upTo count: Int) -> [ClaimedItem] {
        if spool.isPaused { return [] }  // an attempt thread's next claim too
        var items: [ClaimedItem] = []
        do {
            while items.count < count, let item = try spool.claim(policy: config.policy, delayNanos: config.delayNanos) { items.append(item) }
        } catch {
            claimFailed(error)
            return items
        }
        // One relaxed load per claim while all is well: the loop state's lock is taken only after a failure.
        if claimFailing.load(ordering: .relaxed), claimFailing.exchange(false, ordering: .relaxed) {
            state.withLock { $0.claimError = nil }
            log("claims work again")
        }
        return items
    }

    /// A claim that failed (EROFS, EIO, EACCES ...): for `--drain` and `--once` an error (the CLI exits 1); a
    /// long-running consumer logs it (once a minute while it repeats) and looks at `new/` afresh at its next wake-up
    /// (within a second), so a due item is claimed as soon as the error clears, with no new webhook needed.
    private func claimFailed(_ error: SpoolError) {
        let text = "\(error)"
        let finite = config.mode != .forever
        let shouldLog = state.withLock { st -> Bool in
            let now = monotonicNanos()
            let repeated = st.claimError == text && now - st.claimErrorLoggedAt < 60_000_000_000
            st.claimError = text
            if !repeated { st.claimErrorLoggedAt = now }
            if finite && st.fatal == nil { st.fatal = "claim failed: \(text)" }
            return !repeated
        }
        claimFailing.store(true, ordering: .relaxed)
        spool.noteNewItems()
        if shouldLog { log("claim failed: \(text)" + (finite ? "; stopping" : "; trying again every second")) }
        if finite { stop() }
    }

    private func attempt(_ items: [ClaimedItem]) {
        let t0 = monotonicNanos()
        config.metrics?.inFlight.add(items.count, ordering: .relaxed)
        // Items claimed before another attempt found the downstream unreachable (the burst at start, or at the
        // onset of an outage) go back unattempted: the gate's probe finds out when it is back. Only a long-running
        // consumer waits on the gate; `--drain` and `--once` would claim them again at once.
        let outcomes: [ProcessOutcome]
        if config.mode == .forever && processor.isBackingOff(now: t0) {
            outcomes = items.map { _ in .released }
        } else {
            // One item, unless the processor pipelines (perThread); the default `process(batch:)` takes them one by one.
            outcomes = processor.process(batch: items, cancellation: cancellation)
        }
        precondition(outcomes.count == items.count, "a processor answered \(outcomes.count) outcomes for \(items.count) items")
        let elapsed = monotonicNanos() - t0
        let ms = elapsed / 1_000_000
        // One log write and one count update per batch: at 64 in flight these were a syscall and a contended
        // lock per item.
        var lines: [String] = []
        var counts = ConsumerResult()
        for (item, outcome) in zip(items, outcomes) { lines.append(settle(item, outcome, ms: ms, counts: &counts)) }
        if !lines.isEmpty { log(lines.joined(separator: "\n")) }
        state.withLock { $0.result.add(counts) }
        if let m = config.metrics {
            let errors = counts.processed - counts.done - counts.retried - counts.failed - counts.released
            m.attempts.withLock { a in
                for (o, n) in [("done", counts.done), ("retry", counts.retried), ("failed", counts.failed), ("released", counts.released), ("error", errors)] where n > 0 {
                    a[o, default: 0] += UInt64(n)
                }
            }
            for _ in items { m.duration.observe(Double(elapsed) / 1e9) }
            m.inFlight.subtract(items.count, ordering: .relaxed)
        }
    }

    /// Moves one item where its outcome says, counts it into `counts` and returns its log line.
    private func settle(_ item: ClaimedItem, _ outcome: ProcessOutcome, ms: Int64, counts: inout ConsumerResult) -> String {
        var line = "key=\(logSafe(item.key.value)) attempt=\(item.attempt) "
        counts.processed += 1
        do {
            switch outcome {
            case .done(let status):
                try spool.complete(item, status: status)
                line += "outcome=done"
                if let status { line += " status=\(logSafe(status))" }
                counts.done += 1
            case let .retry(error, status, retryAfter):
                switch try spool.fail(item, error: error, status: status, retryable: true, policy: config.policy, retryAfterNanos: retryAfter) {
                case .retry(let at):
                    line += "outcome=retry in \(max(0, (at - spool.now() + 500_000_000) / 1_000_000_000))s"
                    counts.retried += 1
                case .failed:
                    line += "outcome=failed (attempts used up)"
                    counts.failed += 1
                    notifyFailed(item)
                }
                if let status { line += " status=\(logSafe(status))" }
            case let .failed(error, status):
                _ = try spool.fail(item, error: error, status: status, retryable: false, policy: config.policy)
                line += "outcome=failed (permanent)"
                if let status { line += " status=\(logSafe(status))" }
                counts.failed += 1
                notifyFailed(item)
            case .released:
                try spool.release(item)
                line += "outcome=released"
                counts.released += 1
            case .cannotRun(let error):
                // Not the item's fault: put it back unattempted and wait (or stop, if nothing ever ran).
                try spool.release(item)
                line += "outcome=released (the handler cannot run)"
                counts.released += 1
                handlerCannotRun(error)
            }
        } catch {
            // The item stays in claimed/ with our lock until we drop it; recover returns it to new/.
            line += "outcome=error (\(error)); the item will be recovered"
        }
        line += " duration=\(ms)ms"
        return line
    }

    private func notifyFailed(_ item: ClaimedItem) {
        guard let onFailed = config.onFailed else { return }
        onFailed(FailedItem(key: item.key.value, queue: item.queueName, attempts: item.attempt, lastStatus: item.meta.lastStatus,
                            lastError: item.meta.lastError, path: spool.payloadPath(state: .failed, name: item.key.fileName),
                            payloadOffset: item.payloadOffset))
    }

    private func watchNew() -> DirectoryWatch? {
        // This queue's new/ (a named queue's is under queues/NAME/).
        do throws(Errno) { return try DirectoryWatch(path: spool.directoryPath(.new)) } catch {
            log("inotify unavailable (\(error)); polling every \(config.pollIntervalNanos / 1_000_000)ms")
            return nil
        }
    }
}
