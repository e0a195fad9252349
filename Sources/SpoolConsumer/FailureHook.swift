import Synchronization
import SpoolCore
import SpoolSystem
import SpoolWire

/// An item that has just been moved to `failed/` (attempts used up, or a permanent failure).
public struct FailedItem: Sendable {
    public var key: String
    public var queue: String
    public var attempts: Int
    public var lastStatus: String?
    public var lastError: String?
    /// The item file in `failed/` (header, then the payload from `payloadOffset`).
    public var path: String
    public var payloadOffset: Int
}

/// `consume --on-failed CMD` (docs/consumers.md): runs `/bin/sh -c CMD` once for each item that lands in `failed/`, with
/// SPOOL_KEY, SPOOL_QUEUE, SPOOL_ATTEMPTS, SPOOL_LAST_STATUS and SPOOL_LAST_ERROR in its environment and the payload on
/// stdin; its output goes to the consumer's stderr. Its failure (exit status, signal, time limit, a spawn error) is
/// logged and changes nothing: the item stays in `failed/` and is never retried because of it.
///
/// Concurrency: attempt threads call `notify`, which only appends to a bounded queue; one thread of its own (started
/// on the first notification) runs the commands one at a time, so a slow command never holds an attempt slot.
/// `finish` waits for the queue to drain (up to a deadline) and joins that thread.
public final class FailureHook: Sendable {
    public let command: String
    public let timeoutNanos: Int64
    public static let maxPending = 10_000
    let baseEnvironment: [String]
    let spoolDir: String
    let log: ConsumerLog
    private let state = Mutex(State())
    private let wake: Wakeup
    /// Signalled by the runner thread when it ends (`finish` waits on it).
    private let ended: Wakeup

    struct State {
        var pending: [FailedItem] = []
        var running = false
        var finishing = false
        var threadDone = false
        var dropped = 0
        var ran = 0
    }

    public init(command: String, spoolDir: String, timeoutNanos: Int64 = 60_000_000_000, environment: [String: String],
                log: @escaping ConsumerLog) throws(Errno) {
        self.command = command
        self.timeoutNanos = timeoutNanos
        self.spoolDir = spoolDir
        self.log = log
        self.baseEnvironment = environment.filter { !$0.key.hasPrefix("SPOOL_") }.map { "\($0.key)=\($0.value)" }
        self.wake = try Wakeup()
        self.ended = try Wakeup()
    }

    /// Queues a run for `item`; never blocks. Beyond `maxPending` waiting runs, the item is logged and skipped.
    public func notify(_ item: FailedItem) {
        let start = state.withLock { st -> Bool? in
            guard st.pending.count < FailureHook.maxPending else { st.dropped += 1; return nil }
            st.pending.append(item)
            if st.running { return false }
            st.running = true
            return true
        }
        guard let start else {
            log("on-failed: key=\(logSafe(item.key)) not run: \(FailureHook.maxPending) runs already waiting")
            return
        }
        if start { startThread { [self] in self.drain() } } else { wake.signal() }
    }

    /// Runs what is queued (up to `deadlineNanos` from now), then joins the runner. Returns how many ran.
    @discardableResult
    public func finish(deadlineNanos: Int64 = 60_000_000_000) -> Int {
        let until = monotonicNanos() + deadlineNanos
        state.withLock { $0.finishing = true }
        wake.signal()
        while state.withLock({ $0.running && !$0.threadDone }) {
            let left = until - monotonicNanos()
            if left <= 0 { break }
            _ = try? pollReadable([ended.fd], timeoutMillis: Int32(min(left / 1_000_000 + 1, 1000)))
        }
        let left = state.withLock { $0.pending.count }
        if left > 0 { log("on-failed: \(left) run(s) not made before the consumer stopped") }
        return state.withLock { $0.ran }
    }

    private func drain() {
        while true {
            let next = state.withLock { st -> FailedItem? in st.pending.isEmpty ? nil : st.pending.removeFirst() }
            if let next { run(next); state.withLock { $0.ran += 1 }; continue }
            let finishing = state.withLock { st -> Bool in
                if st.finishing && st.pending.isEmpty { st.threadDone = true; st.running = false; return true }
                return false
            }
            if finishing { ended.signal(); return }
            _ = try? pollReadable([wake.fd], timeoutMillis: 1000)
            wake.drain()
        }
    }

    /// The command's environment: ours without SPOOL_*, plus the item's.
    func environment(for item: FailedItem) -> [String] {
        baseEnvironment + [
            "SPOOL_KEY=\(item.key)",
            "SPOOL_QUEUE=\(item.queue)",
            "SPOOL_ATTEMPTS=\(item.attempts)",
            "SPOOL_LAST_STATUS=\(item.lastStatus ?? "")",
            "SPOOL_LAST_ERROR=\(item.lastError ?? "")",
            "SPOOL_FILE=\(item.path)",
            "SPOOL_DIR=\(spoolDir)",
        ]
    }

    /// The item file, positioned at its payload; nil when it is gone (retried or purged meanwhile).
    static func openPayload(_ item: FailedItem) -> FileDescriptor? {
        guard let fd = try? FileDescriptor.open(item.path, [.readOnly, .noFollow, .nonBlocking]) else { return nil }
        do throws(Errno) { try fd.seek(to: item.payloadOffset); return fd } catch { try? fd.close(); return nil }
    }

    private func run(_ item: FailedItem) {
        let prefix = "on-failed: key=\(logSafe(item.key)) queue=\(item.queue)"
        do throws(Errno) {
            // stdin: the item file in failed/, from its payload (an empty stdin if it moved on meanwhile).
            let input: FileDescriptor
            if let fd = FailureHook.openPayload(item) { input = fd } else { input = try FileDescriptor.open("/dev/null", [.readOnly]) }
            defer { try? input.close() }
            let pid = try Spawn.shell(command, environment: environment(for: item), stdin: input,
                                      stdout: FileDescriptor(rawValue: 2), stderr: FileDescriptor(rawValue: 2))
            let exited = Spawn.exitDescriptor(pid)
            defer { if let exited { try? exited.close() } }
            let deadline = monotonicNanos() + timeoutNanos
            // Until it is reaped its group id cannot be reused: kill what it left in its group, tell the guard, reap.
            while !Spawn.hasExited(pid) {
                let left = deadline - monotonicNanos()
                if left <= 0 {
                    Spawn.signalGroup(pid, .kill)
                    HandlerGuard.shared?.finished(pid)
                    _ = try? Spawn.reap(pid, block: true)
                    log("\(prefix) failed: killed after \(timeoutNanos / 1_000_000_000)s")
                    return
                }
                if let exited { _ = try? pollReadable([exited], timeoutMillis: Int32(min(left / 1_000_000 + 1, 1000))) }
                else { sleep(nanoseconds: min(left, 10_000_000)) }
            }
            Spawn.signalGroup(pid, .kill)
            HandlerGuard.shared?.finished(pid)
            let status = try Spawn.reap(pid, block: true) ?? .exited(-1)
            switch status {
            case .exited(0): return
            case .exited(let code): log("\(prefix) failed: exit \(code)")
            case .signaled(let sig): log("\(prefix) failed: signal \(sig)")
            }
        } catch {
            log("\(prefix) could not run: \(error)")
        }
    }
}
