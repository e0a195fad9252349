import Foundation
import Synchronization
@testable import SpoolCLI
import SpoolTestSupport

/// The package root, found from this file's path (tests run the built `spool` and `spool-testkit`).
let packageRoot: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.path
}()

func binary(_ name: String) -> String { packageRoot + "/.build/debug/" + name }
let spoolBin = binary("spool")
let testkitBin = binary("spool-testkit")


extension Child {
    convenience init(_ exe: String, _ args: [String], env: [String: String] = [:], stdin: Data?, cwd: String? = nil) throws {
        try self.init(exe, args, env: env, stdin: stdin.map { [UInt8]($0) }, cwd: cwd)
    }
}

func run(_ exe: String, _ args: [String], env: [String: String] = [:], stdin: Data? = nil, timeout: Double = 60) throws -> ProcessResult {
    try runProcess(exe, args, env: env, stdin: stdin.map { [UInt8]($0) }, timeout: timeout)
}

func spool(_ args: String..., dir: String, stdin: Data? = nil) throws -> ProcessResult {
    try run(spoolBin, ["--dir", dir] + args, stdin: stdin)
}

func spool(_ args: [String], dir: String, stdin: Data? = nil) throws -> ProcessResult {
    try run(spoolBin, ["--dir", dir] + args, stdin: stdin)
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
