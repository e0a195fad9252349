#if canImport(Glibc)
import Glibc
#endif
import CSpoolShims
import SpoolCore
import SpoolSystem

/// Runs `/bin/sh -c COMMAND` once per item (the `--exec` handler contract, docs/consumers.md):
/// stdin is the stored payload, the environment carries SPOOL_KEY, SPOOL_ATTEMPT, SPOOL_FILE, SPOOL_DIR and
/// SPOOL_RECEIVED_AT; exit 0 is done, 65 (EX_DATAERR) is a permanent failure, anything else is retried.
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

    public init(command: String, spoolDir: String, timeoutNanos: Int64, killAfterNanos: Int64 = 5_000_000_000,
                environment: [String: String], log: @escaping ConsumerLog) {
        self.command = command
        self.spoolDir = spoolDir
        self.timeoutNanos = timeoutNanos
        self.killAfterNanos = killAfterNanos
        self.baseEnvironment = environment.filter { !$0.key.hasPrefix("SPOOL_") }.map { "\($0.key)=\($0.value)" }
        self.log = log
    }

    public func process(_ item: ClaimedItem, cancellation: CancellationFlag) -> ProcessOutcome {
        do { return try run(item, cancellation: cancellation) } catch {
            return .retry(error: "could not run handler: \(error)", status: "spawn error", retryAfterNanos: nil)
        }
    }

    private func run(_ item: ClaimedItem, cancellation: CancellationFlag) throws -> ProcessOutcome {
        // stdin is the claimed payload descriptor itself: the handler inherits the claim's lock, so if this
        // consumer is killed the item is not handed to another consumer while its handler is still running.
        let stdinFD = item.payloadDescriptor
        _ = lseek(stdinFD.rawValue, 0, SEEK_SET)
        var outPipe: [Int32] = [-1, -1]
        var errPipe: [Int32] = [-1, -1]
        _ = try retryingSyscall { spool_pipe_cloexec(&outPipe) }
        defer { for fd in outPipe where fd >= 0 { Glibc.close(fd) } }
        _ = try retryingSyscall { spool_pipe_cloexec(&errPipe) }
        defer { for fd in errPipe where fd >= 0 { Glibc.close(fd) } }

        let env = baseEnvironment + [
            "SPOOL_KEY=\(item.key.value)",
            "SPOOL_ATTEMPT=\(item.attempt)",
            "SPOOL_FILE=\(absolute(item.payloadPath))",
            "SPOOL_DIR=\(absolute(spoolDir))",
            "SPOOL_RECEIVED_AT=\(RFC3339.format(nanos: item.meta.receivedAtNanos))",
        ] + (item.meta.header("content-type").map { ["SPOOL_CONTENT_TYPE=\($0)"] } ?? [])
        var cEnv: [UnsafeMutablePointer<CChar>?] = env.map { strdup($0) } + [nil]
        defer { for p in cEnv { free(p) } }
        var pid: Int32 = 0
        let rc = spool_spawn_shell(&pid, command, stdinFD.rawValue, outPipe[1], errPipe[1], &cEnv)
        guard rc == 0 else { throw Errno(rawValue: rc) }
        Glibc.close(outPipe[1]); outPipe[1] = -1
        Glibc.close(errPipe[1]); errPipe[1] = -1
        // Readable once the handler has exited: waiting on it replaces sleeping between "pipes closed" and "reapable".
        let exitFD = spool_pidfd_open(pid)
        defer { if exitFD >= 0 { Glibc.close(exitFD) } }

        let prefix = "key=\(logSafe(item.key.value)) "
        var outLine = LineBuffer(), errLine = LineBuffer()
        var tail = TailBuffer(limit: ExecProcessor.stderrTailBytes)
        let start = monotonicNanos()
        var termSentAt: Int64? = nil
        var timedOut = false
        var openFDs = [FileDescriptor(rawValue: outPipe[0]), FileDescriptor(rawValue: errPipe[0])]
        var status: Int32 = 0
        var exited = false
        var buf = [UInt8](repeating: 0, count: 16384)
        var idleSleep: UInt32 = 20
        while true {
            if !exited, spool_exited_nowait(pid) == 1 {
                // The handler has exited but is not reaped yet, so its process group id cannot have been reused:
                // kill what it left running in its group (those hold the claim's lock through stdin), then reap.
                kill(-pid, SIGKILL)
                while waitpid(pid, &status, 0) == -1 && Errno.current == .interrupted {}
                exited = true
            }
            if exited && openFDs.isEmpty { break }
            let now = monotonicNanos()
            if !exited {
                if termSentAt == nil && (now - start >= timeoutNanos || cancellation.isCancelled) {
                    timedOut = !cancellation.isCancelled
                    kill(-pid, SIGTERM)
                    termSentAt = now
                } else if let t = termSentAt, now - t >= killAfterNanos {
                    kill(-pid, SIGKILL)
                }
            }
            if openFDs.isEmpty {
                // Both pipes closed: the handler is exiting (its pipes close a moment before it becomes reapable) or
                // closed them and runs on. Wait for its exit for up to 2 ms, then look again (timeouts, cancellation).
                // Without pidfd (Linux < 5.3), sleep instead, backing off from 20 µs to 2 ms.
                if exitFD >= 0 {
                    _ = try? pollReadable([FileDescriptor(rawValue: exitFD)], timeoutMillis: 2)
                } else {
                    usleep(idleSleep)
                    idleSleep = min(idleSleep * 2, 2000)
                }
                continue
            }
            let ready = (try? pollReadable(openFDs, timeoutMillis: exited ? 100 : 20)) ?? []
            for (i, isReady) in ready.enumerated().reversed() where isReady {
                let fd = openFDs[i]
                let n = buf.withUnsafeMutableBytes { Glibc.read(fd.rawValue, $0.baseAddress, $0.count) }
                if n <= 0 {
                    if n < 0 && Errno.current == .interrupted { continue }
                    openFDs.remove(at: i)
                    continue
                }
                let chunk = Array(buf[0..<n])
                if fd.rawValue == outPipe[0] {
                    for line in outLine.feed(chunk) { log(prefix + "stdout: " + logSafe(line)) }
                } else {
                    tail.append(chunk)
                    for line in errLine.feed(chunk) { log(prefix + "stderr: " + logSafe(line)) }
                }
            }
            // A handler that exited but left a background child holding the pipes: stop reading after a while.
            if exited, monotonicNanos() - start > timeoutNanos + killAfterNanos { break }
        }
        if let l = outLine.rest() { log(prefix + "stdout: " + logSafe(l)) }
        if let l = errLine.rest() { log(prefix + "stderr: " + logSafe(l)) }
        let stderrText = tail.text
        if cancellation.isCancelled && !timedOut { return .released }
        if timedOut {
            return .retry(error: "handler timed out after \(timeoutNanos / 1_000_000)ms" + (stderrText.isEmpty ? "" : "\n" + stderrText),
                          status: "timeout", retryAfterNanos: nil)
        }
        if spool_wifexited(status) != 0 {
            let code = spool_wexitstatus(status)
            if code == 0 { return .done(status: nil) }
            let msg = stderrText.isEmpty ? "handler exited with status \(code)" : stderrText
            if code == ExecProcessor.exDataErr { return .failed(error: msg, status: "exit \(code)") }
            return .retry(error: msg, status: "exit \(code)", retryAfterNanos: nil)
        }
        let sig = spool_wifsignaled(status) != 0 ? spool_wtermsig(status) : -1
        let msg = "handler killed by signal \(sig)" + (stderrText.isEmpty ? "" : "\n" + stderrText)
        return .retry(error: msg, status: "signal \(sig)", retryAfterNanos: nil)
    }

    private func absolute(_ p: String) -> String {
        if p.hasPrefix("/") { return p }
        var buf = [CChar](repeating: 0, count: 4096)
        guard getcwd(&buf, 4096) != nil else { return p }
        let cwd = String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
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
