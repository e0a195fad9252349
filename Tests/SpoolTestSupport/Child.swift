#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import SpoolSystem

// Child processes for the tests, on our own posix_spawn/waitpid instead of Foundation's Process: on Linux,
// Process.run() trapped once in CI (its close-descriptors-in-the-child range came out empty), taking the
// whole test run down; and Process's pipes could be closed by a deinit while a reader still used the number.

public struct ProcessResult: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String
    public var lines: [String] { stdout.split(separator: "\n").map(String.init) }
}

/// A child process with its output collected by two reader threads, each owning and closing its pipe end.
public final class Child: Sendable {
    public let pid: pid_t
    /// The exit status once reaped; the lock also makes sure the pid is reaped once and never signalled after
    /// (a reaped pid may belong to someone else).
    private let ended = Mutex<ProcessExit?>(nil)
    private let out = Collected()
    private let err = Collected()

    final class Collected: Sendable {
        let bytes = Mutex<[UInt8]>([])
        let finished = Atomic<Bool>(false)
    }

    /// Starts `exe` with `args`. The environment is this process's, without `SPOOL_DIR` (a test names its
    /// spool explicitly), plus `env`. `stdin` is written in full and then closed (nil: an empty stdin).
    public init(_ exe: String, _ args: [String], env: [String: String] = [:], stdin: [UInt8]? = nil, cwd: String? = nil) throws {
        ignoreSIGPIPEOnce
        var environment = Spawn.currentEnvironment.filter { e in
            let name = e.split(separator: "=", maxSplits: 1).first.map(String.init) ?? e
            return name != "SPOOL_DIR" && env[name] == nil
        }
        for (k, v) in env { environment.append("\(k)=\(v)") }
        let input = try Spawn.pipe()
        let output: (read: FileDescriptor, write: FileDescriptor)
        let errors: (read: FileDescriptor, write: FileDescriptor)
        do { output = try Spawn.pipe() } catch { try? input.read.close(); try? input.write.close(); throw error }
        do { errors = try Spawn.pipe() } catch {
            for fd in [input.read, input.write, output.read, output.write] { try? fd.close() }
            throw error
        }
        do {
            pid = try Spawn.start(exe, args, environment: environment, directory: cwd,
                                  stdin: input.read, stdout: output.write, stderr: errors.write)
        } catch {
            for fd in [input.read, input.write, output.read, output.write, errors.read, errors.write] { try? fd.close() }
            throw error
        }
        for fd in [input.read, output.write, errors.write] { try? fd.close() }
        for (fd, box) in [(output.read, out), (errors.read, err)] {
            startThread {
                var buf = [UInt8](repeating: 0, count: 65536)
                while true {
                    let n = (try? buf.withUnsafeMutableBytes { try fd.read(into: $0) }) ?? 0
                    if n <= 0 { break }
                    box.bytes.withLock { $0.append(contentsOf: buf[0..<n]) }
                }
                try? fd.close()
                box.finished.store(true, ordering: .releasing)
            }
        }
        if let stdin, !stdin.isEmpty { try? input.write.writeAll(stdin) }
        try? input.write.close()
    }

    /// A child a test forgot (or lost track of after a failed expectation) must not outlive the test run.
    deinit {
        signal(SIGKILL)
        _ = reap(block: true)
    }

    public var stdout: String { out.bytes.withLock { String(decoding: $0, as: UTF8.self) } }
    public var stderr: String { err.bytes.withLock { String(decoding: $0, as: UTF8.self) } }

    /// Sends `sig` unless the child has already been reaped.
    public func signal(_ sig: Int32) {
        ended.withLock { if $0 == nil { _ = kill(pid, sig) } }
    }

    public var isRunning: Bool { reap(block: false) == nil }

    /// The exit status, reaping the child if it has ended (or waiting for it to end if `block`).
    private func reap(block: Bool) -> ProcessExit? {
        ended.withLock { status in
            if status == nil, let s = try? Spawn.reap(pid, block: block) { status = s }
            return status
        }
    }

    /// Waits for exit (killing the child after `timeout` seconds) and returns everything it printed.
    @discardableResult
    public func wait(timeout: Double = 60) -> ProcessResult {
        let deadline = monotonicNanos() + Int64(timeout * 1e9)
        while isRunning && monotonicNanos() < deadline { usleep(5000) }
        signal(SIGKILL)
        let status = reap(block: true)
        // The readers finish at end of file; a grandchild still holding the pipe must not hang the test.
        let drainDeadline = monotonicNanos() + 5_000_000_000
        while !(out.finished.load(ordering: .acquiring) && err.finished.load(ordering: .acquiring)) && monotonicNanos() < drainDeadline {
            usleep(2000)
        }
        return ProcessResult(status: status?.shellCode ?? -1, stdout: stdout, stderr: stderr)
    }

    /// Polls until `condition` holds or `timeout` seconds pass.
    public func waitFor(timeout: Double = 10, _ condition: () -> Bool) -> Bool {
        let deadline = monotonicNanos() + Int64(timeout * 1e9)
        while monotonicNanos() < deadline { if condition() { return true }; usleep(5000) }
        return condition()
    }
}

/// Writing stdin to a child that already exited must be an error, not a SIGPIPE that kills the test run.
private let ignoreSIGPIPEOnce: Void = { _ = Glibc.signal(SIGPIPE, SIG_IGN) }()

/// Runs `exe` to completion and returns its status and output.
public func runProcess(_ exe: String, _ args: [String], env: [String: String] = [:], stdin: [UInt8]? = nil, timeout: Double = 60) throws -> ProcessResult {
    try Child(exe, args, env: env, stdin: stdin).wait(timeout: timeout)
}

/// A peer written in Python (Tests/Fixtures/peers/*.py) that prints `port N` once it listens: started, and its
/// port read, or an error with what it printed. The caller keeps the child and kills it.
public func startPythonPeer(_ script: String, _ arguments: [String]) throws -> (child: Child, port: UInt16) {
    let c = try Child("/usr/bin/env", ["python3", script] + arguments)
    var found: UInt16? = nil
    _ = c.waitFor(timeout: 20) {
        if let r = c.stdout.range(of: "port "), let end = c.stdout[r.upperBound...].firstIndex(of: "\n") {
            found = UInt16(c.stdout[r.upperBound..<end])
        }
        return found != nil
    }
    guard let found else {
        c.signal(SIGKILL)
        throw TestCertificates.ToolFailure(description: "\(script) did not start: \(c.stderr)")
    }
    return (c, found)
}

/// The port in a server child's banner (`listening on http://127.0.0.1:PORT ...`), once it printed it; the child
/// is killed (and an error thrown) when it does not within `timeout` seconds.
public func bannerPort(of c: Child, timeout: Double = 20) throws -> UInt16 {
    var found: UInt16? = nil
    _ = c.waitFor(timeout: timeout) {
        if let r = c.stdout.range(of: "127.0.0.1:"), let end = c.stdout[r.upperBound...].firstIndex(where: { $0 == " " || $0 == "\n" }) {
            found = UInt16(c.stdout[r.upperBound..<end])
        }
        return found != nil
    }
    guard let found else {
        c.signal(SIGKILL)
        _ = c.wait(timeout: 5)
        throw TestCertificates.ToolFailure(description: "no listening banner: \(c.stdout) \(c.stderr)")
    }
    return found
}
