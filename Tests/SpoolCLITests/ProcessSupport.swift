import Foundation
import Synchronization
@testable import SpoolCLI

/// The package root, found from this file's path (tests run the built `spool` and `spool-testkit`).
let packageRoot: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.path
}()

func binary(_ name: String) -> String { packageRoot + "/.build/debug/" + name }
let spoolBin = binary("spool")
let testkitBin = binary("spool-testkit")

func makeTempDir(_ tag: String = "cli") -> String {
    let base = FileManager.default.temporaryDirectory.path + "/spool-\(tag)-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
    try! FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    return base
}

struct ProcessResult {
    var status: Int32
    var stdout: String
    var stderr: String
    var lines: [String] { stdout.split(separator: "\n").map(String.init) }
}

/// A child process with its output collected in the background by reader threads (raw `read(2)`, not
/// FileHandle's readabilityHandler, which can trap on a racing close).
final class Child: @unchecked Sendable {
    // @unchecked: `process` is only mutated before run(); the buffers are lock-protected.
    let process = Process()
    final class DataBox: Sendable {
        let m = Mutex(Data())
        let finished = Mutex(false)
        func withLock<R>(_ f: (inout Data) -> R) -> R { m.withLock { f(&$0) } }
    }
    private let out = DataBox()
    private let err = DataBox()
    private let outPipe = Pipe(), errPipe = Pipe()

    init(_ exe: String, _ args: [String], env: [String: String] = [:], stdin: Data? = nil, cwd: String? = nil) throws {
        process.executableURL = URL(fileURLWithPath: exe)
        process.arguments = args
        var e = ProcessInfo.processInfo.environment
        e.removeValue(forKey: "SPOOL_DIR")
        for (k, v) in env { e[k] = v }
        process.environment = e
        if let cwd { process.currentDirectoryURL = URL(fileURLWithPath: cwd) }
        process.standardOutput = outPipe
        process.standardError = errPipe
        let inPipe = Pipe()
        process.standardInput = inPipe
        try process.run()
        try? outPipe.fileHandleForWriting.close()
        try? errPipe.fileHandleForWriting.close()
        for (pipe, box) in [(outPipe, out), (errPipe, err)] {
            let fd = pipe.fileHandleForReading.fileDescriptor
            Thread.detachNewThread {
                var buf = [UInt8](repeating: 0, count: 65536)
                while true {
                    let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                    if n < 0 && errno == EINTR { continue }
                    if n <= 0 { break }
                    box.withLock { $0.append(contentsOf: buf[0..<n]) }
                }
                box.finished.withLock { $0 = true }
            }
        }
        if let stdin { inPipe.fileHandleForWriting.write(stdin) }
        try? inPipe.fileHandleForWriting.close()
    }

    /// A child a test forgot (or lost track of after a failed expectation) must not outlive the test run.
    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }

    var pid: Int32 { process.processIdentifier }
    var stdout: String { out.withLock { String(decoding: $0, as: UTF8.self) } }
    var stderr: String { err.withLock { String(decoding: $0, as: UTF8.self) } }

    func signal(_ sig: Int32) { kill(process.processIdentifier, sig) }

    /// Waits for exit (killing the child after `timeout` seconds) and returns everything it printed.
    @discardableResult
    func wait(timeout: Double = 60) -> ProcessResult {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(5000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        // The readers finish at end of file; a grandchild still holding the pipe must not hang the test.
        let drainDeadline = Date().addingTimeInterval(5)
        while !(out.finished.withLock { $0 } && err.finished.withLock { $0 }) && Date() < drainDeadline { usleep(2000) }
        let status = process.terminationReason == .uncaughtSignal ? 128 + process.terminationStatus : process.terminationStatus
        return ProcessResult(status: status, stdout: stdout, stderr: stderr)
    }

    /// Polls until `condition` holds or `timeout` seconds pass.
    func waitFor(timeout: Double = 10, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline { if condition() { return true }; usleep(5000) }
        return condition()
    }
}

func run(_ exe: String, _ args: [String], env: [String: String] = [:], stdin: Data? = nil, timeout: Double = 60) throws -> ProcessResult {
    try Child(exe, args, env: env, stdin: stdin).wait(timeout: timeout)
}

func spool(_ args: String..., dir: String, stdin: Data? = nil) throws -> ProcessResult {
    try run(spoolBin, ["--dir", dir] + args, stdin: stdin)
}

func waitUntil(timeout: Double = 10, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline { if condition() { return true }; usleep(10000) }
    return condition()
}

func entries(_ path: String) -> [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted()
}

/// Runs the CLI in-process with captured output.
func cli(_ args: [String], env: [String: String] = [:], stdin: [UInt8] = []) -> (code: Int32, out: String, err: String) {
    let c = CapturedConsole(environment: env, stdin: stdin)
    let code = CLI.run(args, console: c.console)
    return (code, c.stdout, c.stderr)
}

/// The payload spool-testkit writes for a key (must match its `payloadFor`).
func expectedPayload(_ key: String, size: Int = 256) throws -> Data {
    let r = try run(testkitBin, ["payload", key, "\(size)"])
    // A helper that did not deliver its bytes must not look like a damaged item.
    guard r.status == 0, r.stdout.utf8.count == size else {
        throw HelperFailure(what: "spool-testkit payload \(key) \(size): status \(r.status), \(r.stdout.utf8.count) bytes, stderr \(r.stderr.prefix(200))")
    }
    return Data(r.stdout.utf8)
}

struct HelperFailure: Error, CustomStringConvertible {
    let what: String
    var description: String { what }
}
