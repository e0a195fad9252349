import Foundation

// Files and directories for tests, shared by every test target (they used to be copied into three of them).

/// A fresh private (0700) directory per test (tests run in parallel), named for the test target and `tag`.
public func makeTempDir(_ tag: String = "t") -> String {
    let base = FileManager.default.temporaryDirectory.path + "/spool-\(tag)-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
    try! FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    return base
}

/// The names in a directory, sorted (empty when it does not exist).
public func entries(_ path: String) -> [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted()
}

/// Every file and directory below `root`, relative, sorted.
public func tree(_ root: String) -> [String] {
    guard let e = FileManager.default.enumerator(atPath: root) else { return [] }
    return (e.allObjects as! [String]).sorted()
}

/// Runs curl (silent, errors shown, 10 s limit) and returns its exit status and output.
public func curl(_ args: [String], timeout: Double = 30) throws -> ProcessResult {
    try runProcess("/usr/bin/curl", ["-sS", "--max-time", "10"] + args, timeout: timeout)
}

extension ProcessResult {
    /// (exit status, stdout, stderr), for destructuring.
    public var parts: (Int32, String, String) { (status, stdout, stderr) }
}
