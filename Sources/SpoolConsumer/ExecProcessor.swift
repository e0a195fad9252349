import SpoolCore
import SpoolSystem
import SpoolWire

/// Runs `/bin/sh -c COMMAND` once per item (the `--exec` handler contract, docs/consumers.md):
/// stdin is the stored payload, the environment carries SPOOL_KEY, SPOOL_ATTEMPT, SPOOL_FILE (the item file: header,
/// then the payload at SPOOL_PAYLOAD_OFFSET, SPOOL_PAYLOAD_SIZE bytes), SPOOL_QUEUE, SPOOL_DIR and SPOOL_RECEIVED_AT; exit 0 is done, 65 (EX_DATAERR) is a permanent failure, anything else is retried.
public struct ExecProcessor: ItemProcessor {
    public static let exDataErr: Int32 = 65
    /// Bytes of the handler's stderr kept with the item.
    public static let stderrTailBytes = 4096

    public let command: String
    public let spoolDir: String
    public let timeoutNanos: Int64
    /// After SIGTERM (timeout or cancellation), how long before SIGKILL.
    public let killAfterNanos: Int64
    let baseEnvironment: [String]
    let log: ConsumerLog
    /// Read once: spool never changes its directory, and `getcwd` twice per attempt showed in the profile.
    let workingDirectory: String?

    /// `--max-attempts`, for the handler's `SPOOL_MAX_ATTEMPTS` (and `SPOOL_LAST_ATTEMPT=1` on the last).
    public let maxAttempts: Int

    public init(command: String, spoolDir: String, timeoutNanos: Int64, killAfterNanos: Int64 = 5_000_000_000, maxAttempts: Int = RetryPolicy().maxAttempts,
                environment: [String: String], log: @escaping ConsumerLog) {
        self.command = command
        self.maxAttempts = maxAttempts
        self.spoolDir = spoolDir
        self.timeoutNanos = timeoutNanos
        self.killAfterNanos = killAfterNanos
        self.baseEnvironment = environment.filter { !$0.key.hasPrefix("SPOOL_") }.map { "\($0.key)=\($0.value)" }
        self.log = log
        self.workingDirectory = FS.currentDirectory
    }

    public func process(_ item: ClaimedItem, cancellation: CancellationFlag) -> ProcessOutcome {
        do { return try run(item, cancellation: cancellation) } catch {
            return .retry(error: "could not run handler: \(error)", status: "spawn error", retryAfterNanos: nil)
        }
    }

    private func run(_ item: ClaimedItem, cancellation: CancellationFlag) throws(Errno) -> ProcessOutcome {
        // stdin is the claimed item's descriptor itself, positioned at the payload (after the item header): the handler
        // inherits the claim's lock, so if this consumer is killed the item is not handed to another consumer while
        // its handler is still running. Reading stdin to its end gives exactly the payload.
        let stdinFD = item.payloadDescriptor
        try stdinFD.seek(to: item.payloadOffset)
        let out = try Spawn.pipe()
        defer { try? out.read.close() }
        let err: (read: FileDescriptor, write: FileDescriptor)
        do throws(Errno) { err = try Spawn.pipe() } catch { try? out.write.close(); throw error }
        defer { try? err.read.close() }
        let pid: Int32
        do throws(Errno) {
            pid = try Spawn.shell(command, environment: environment(for: item), stdin: stdinFD, stdout: out.write, stderr: err.write)
        } catch {
            try? out.write.close(); try? err.write.close()
            throw error
        }
        try? out.write.close()
        try? err.write.close()
        var run = HandlerRun(pid: pid, stdout: out.read, stderr: err.read, start: monotonicNanos(),
                             prefix: "key=\(logSafe(item.key.value)) ", tail: TailBuffer(limit: ExecProcessor.stderrTailBytes))
        defer { if let fd = run.exitFD { try? fd.close() } }
        supervise(&run, cancellation: cancellation)
        return outcome(of: run, cancellation: cancellation)
    }

    /// The handler's environment: ours without SPOOL_*, plus the item's.
    private func environment(for item: ClaimedItem) -> [String] {
        baseEnvironment + [
            "SPOOL_KEY=\(item.key.value)",
            "SPOOL_ATTEMPT=\(item.attempt)",
            "SPOOL_MAX_ATTEMPTS=\(maxAttempts)",
            "SPOOL_FILE=\(absolute(item.payloadPath))",
            // Format 2: SPOOL_FILE starts with the item header; the payload is SIZE bytes from OFFSET.
            "SPOOL_PAYLOAD_OFFSET=\(item.payloadOffset)",
            "SPOOL_PAYLOAD_SIZE=\(item.payloadSize)",
            "SPOOL_QUEUE=\(item.queueName)",
            "SPOOL_DIR=\(absolute(spoolDir))",
            "SPOOL_RECEIVED_AT=\(RFC3339.format(nanos: item.meta.receivedAtNanos))",
        ] + (item.meta.header("content-type").map { ["SPOOL_CONTENT_TYPE=\($0)"] } ?? [])
          + (item.attempt >= maxAttempts ? ["SPOOL_LAST_ATTEMPT=1"] : [])
    }

    /// One running handler: its pid, its output pipes still open, and what has been seen of it.
    struct HandlerRun {
        let pid: Int32
        var open: [FileDescriptor]
        let stdoutFD: FileDescriptor
        /// Readable once the handler has exited: waiting on it replaces sleeping between "pipes closed" and "reapable".
        let exitFD: FileDescriptor?
        let start: Int64
        let prefix: String
        var outLine = LineBuffer(), errLine = LineBuffer()
        var tail: TailBuffer
        var termSentAt: Int64? = nil
        var timedOut = false
        var exit: ProcessExit? = nil
        var idleSleep: Int64 = 20_000

        init(pid: Int32, stdout: FileDescriptor, stderr: FileDescriptor, start: Int64, prefix: String, tail: TailBuffer) {
            self.pid = pid
            open = [stdout, stderr]
            stdoutFD = stdout
            exitFD = Spawn.exitDescriptor(pid)
            self.start = start
            self.prefix = prefix
            self.tail = tail
        }
    }

    /// Runs until the handler has exited and its pipes are drained: reaps it, enforces the timeout and
    /// cancellation (SIGTERM to its group, SIGKILL after `killAfterNanos`), relays its output to the log.
    private func supervise(_ run: inout HandlerRun, cancellation: CancellationFlag) {
        var buf = [UInt8](repeating: 0, count: 16384)
        while true {
            reapIfExited(&run)
            if run.exit != nil && run.open.isEmpty { break }
            if run.exit == nil { enforceDeadlines(&run, cancellation: cancellation) }
            if run.open.isEmpty {
                waitForExit(&run)
                continue
            }
            relayOutput(&run, &buf)
            // A handler that exited but left a background child holding the pipes: stop reading after a while.
            if run.exit != nil, monotonicNanos() - run.start > timeoutNanos + killAfterNanos { break }
        }
        if let l = run.outLine.rest() { log(run.prefix + "stdout: " + logSafe(l)) }
        if let l = run.errLine.rest() { log(run.prefix + "stderr: " + logSafe(l)) }
    }

    /// The handler has exited but is not reaped yet, so its process group id cannot have been reused: kill what it
    /// left running in its group (those hold the claim's lock through stdin), then reap it.
    private func reapIfExited(_ run: inout HandlerRun) {
        guard run.exit == nil, Spawn.hasExited(run.pid) else { return }
        Spawn.signalGroup(run.pid, .kill)
        HandlerGuard.shared?.finished(run.pid)
        run.exit = (try? Spawn.reap(run.pid, block: true)) ?? .exited(-1)
    }

    private func enforceDeadlines(_ run: inout HandlerRun, cancellation: CancellationFlag) {
        let now = monotonicNanos()
        if run.termSentAt == nil && (now - run.start >= timeoutNanos || cancellation.isCancelled) {
            run.timedOut = !cancellation.isCancelled
            Spawn.signalGroup(run.pid, .terminate)
            run.termSentAt = now
        } else if let t = run.termSentAt, now - t >= killAfterNanos {
            Spawn.signalGroup(run.pid, .kill)
        }
    }

    /// Both pipes closed: the handler is exiting (its pipes close a moment before it becomes reapable) or closed
    /// them and runs on. Wait for its exit for up to 2 ms, then look again (timeouts, cancellation). Without pidfd
    /// (Linux < 5.3), sleep instead, backing off from 20 µs to 2 ms.
    private func waitForExit(_ run: inout HandlerRun) {
        if let fd = run.exitFD {
            _ = try? pollReadable([fd], timeoutMillis: 2)
        } else {
            sleep(nanoseconds: run.idleSleep)
            run.idleSleep = min(run.idleSleep * 2, 2_000_000)
        }
    }

    private func relayOutput(_ run: inout HandlerRun, _ buf: inout [UInt8]) {
        let ready = (try? pollReadable(run.open, timeoutMillis: run.exit != nil ? 100 : 20)) ?? []
        for (i, isReady) in ready.enumerated().reversed() where isReady {
            let fd = run.open[i]
            let n = buf.withUnsafeMutableBytes { p in (try? fd.read(into: p)) ?? 0 }
            if n <= 0 {
                run.open.remove(at: i)
                continue
            }
            let chunk = Array(buf[0..<n])
            if fd == run.stdoutFD {
                for line in run.outLine.feed(chunk) { log(run.prefix + "stdout: " + logSafe(line)) }
            } else {
                run.tail.append(chunk)
                for line in run.errLine.feed(chunk) { log(run.prefix + "stderr: " + logSafe(line)) }
            }
        }
    }

    /// The edge mapping from how the handler ended to what becomes of the item (the handler contract).
    private func outcome(of run: HandlerRun, cancellation: CancellationFlag) -> ProcessOutcome {
        let stderrText = run.tail.text
        if cancellation.isCancelled && !run.timedOut { return .released }
        if run.timedOut {
            return .retry(error: "handler timed out after \(timeoutNanos / 1_000_000)ms" + (stderrText.isEmpty ? "" : "\n" + stderrText),
                          status: "timeout", retryAfterNanos: nil)
        }
        switch run.exit ?? .exited(-1) {
        case .exited(0):
            return .done(status: nil)
        case .exited(let code):
            let msg = stderrText.isEmpty ? "handler exited with status \(code)" : stderrText
            if code == ExecProcessor.exDataErr { return .failed(error: msg, status: "exit \(code)") }
            // The shell's own codes for a command it could not run (POSIX: 126 found but not executable, 127 not
            // found): the Quickstart's './my-handler.sh' typed as written must not walk the queue into failed/.
            if code == 126 || code == 127 {
                return .cannotRun(error: "handler '\(command)' cannot run (exit \(code): \(code == 127 ? "command not found" : "not executable"))"
                                  + (stderrText.isEmpty ? "" : ": " + stderrText))
            }
            return .retry(error: msg, status: "exit \(code)", retryAfterNanos: nil)
        case .signaled(let sig):
            let msg = "handler killed by signal \(sig)" + (stderrText.isEmpty ? "" : "\n" + stderrText)
            return .retry(error: msg, status: "signal \(sig)", retryAfterNanos: nil)
        }
    }

    private func absolute(_ p: String) -> String {
        if p.hasPrefix("/") { return p }
        guard let cwd = workingDirectory else { return p }
        return cwd + "/" + (p.hasPrefix("./") ? String(p.dropFirst(2)) : p)
    }
}

/// Splits a byte stream into lines, bounding the length of one line.
struct LineBuffer {
    var pending: [UInt8] = []
    static let maxLine = 8192
    mutating func feed(_ bytes: [UInt8]) -> [String] {
        var lines: [String] = []
        for b in bytes {
            if b == 0x0A {
                lines.append(String(decoding: pending, as: UTF8.self)); pending.removeAll(keepingCapacity: true)
            } else if pending.count < LineBuffer.maxLine {
                pending.append(b)
            }
        }
        return lines
    }
    mutating func rest() -> String? {
        guard !pending.isEmpty else { return nil }
        defer { pending = [] }
        return String(decoding: pending, as: UTF8.self)
    }
}

/// Keeps the last `limit` bytes written to it.
struct TailBuffer {
    let limit: Int
    var bytes: [UInt8] = []
    mutating func append(_ b: [UInt8]) {
        bytes.append(contentsOf: b)
        if bytes.count > limit * 2 { bytes.removeFirst(bytes.count - limit) }
    }
    var text: String {
        var t = bytes.suffix(limit)
        while let f = t.first, f & 0xC0 == 0x80 { t = t.dropFirst() }
        var s = String(decoding: t, as: UTF8.self)
        while s.last == "\n" { s.removeLast() }
        return s
    }
}
