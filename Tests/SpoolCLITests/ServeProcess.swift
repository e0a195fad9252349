import Foundation
import SpoolTestSupport
import Glibc

/// A running `spool serve` on a free port.
final class Server: @unchecked Sendable {
    // @unchecked: every stored property is immutable after init.
    let child: Child
    let port: UInt16
    let dir: String

    /// `fdLimit`: run under `ulimit -n` (soft and hard, so the server cannot raise it) to exhaust descriptors.
    init(dir: String, extra: [String] = [], env: [String: String] = [:], fdLimit: Int? = nil) throws {
        self.dir = dir
        let args = ["--dir", dir, "serve", "--listen", "127.0.0.1:0"] + extra
        let c = try fdLimit.map { try Child("/bin/sh", ["-c", "ulimit -n \($0) && exec \"$0\" \"$@\"", spoolBin] + args, env: env) }
            ?? Child(spoolBin, args, env: env)
        child = c
        port = try bannerPort(of: c)
    }

    var url: String { "http://127.0.0.1:\(port)" }
    /// With `--tls-cert`: the name the test certificates are issued for.
    var httpsURL: String { "https://localhost:\(port)" }

    func stop() -> ProcessResult {
        child.signal(SIGTERM)
        return child.wait(timeout: 20)
    }
}

