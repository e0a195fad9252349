#if canImport(Glibc)
import Glibc
#endif
import CSpoolShims

/// How a child process ended.
public enum ProcessExit: Equatable, Sendable {
    case exited(Int32)
    case signaled(Int32)

    /// The shell's convention: the exit code, or 128 + the signal number.
    public var shellCode: Int32 {
        switch self {
        case .exited(let c): return c
        case .signaled(let s): return 128 + s
        }
    }

    init(waitStatus s: Int32) {
        self = spool_wifsignaled(s) != 0 ? .signaled(spool_wtermsig(s)) : .exited(spool_wexitstatus(s))
    }
}

/// The signals spool sends.
public struct Signal: Sendable, Hashable {
    public let rawValue: Int32
    public static let terminate = Signal(rawValue: SIGTERM)
    public static let kill = Signal(rawValue: SIGKILL)
}

/// Starting and reaping child processes with `posix_spawn` and `waitpid` on a known pid only, so nothing
/// else in the process (a library's SIGCHLD handler, another thread's child) is disturbed.
public enum Spawn {
    /// Starts `path` (not searched in PATH) with `arguments` (argv[1...]) and `environment` ("K=V" entries).
    /// The child gets `stdin`/`stdout`/`stderr` as 0/1/2 and no other descriptor of ours.
    public static func start(_ path: String, _ arguments: [String], environment: [String], directory: String? = nil,
                             stdin: FileDescriptor, stdout: FileDescriptor, stderr: FileDescriptor) throws(Errno) -> pid_t {
        var argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup($0) } + [nil]
        defer { for p in envp { free(p) } }
        var pid: Int32 = 0
        let rc: Int32
        if let directory {
            rc = directory.withCString { spool_spawn(&pid, path, &argv, &envp, $0, stdin.rawValue, stdout.rawValue, stderr.rawValue) }
        } else {
            rc = spool_spawn(&pid, path, &argv, &envp, nil, stdin.rawValue, stdout.rawValue, stderr.rawValue)
        }
        guard rc == 0 else { throw Errno(rawValue: rc) }
        return pid
    }

    /// Starts `/bin/sh -c command` as the leader of a new process group (so the whole handler, children included,
    /// can be signalled at once), with 0/1/2 on the given descriptors and no other descriptor of ours, registered
    /// with this process's `HandlerGuard` before it runs. Call `HandlerGuard.shared.finished(pid)` after it has
    /// exited and its group was killed, before reaping it.
    public static func shell(_ command: String, environment: [String],
                             stdin: FileDescriptor, stdout: FileDescriptor, stderr: FileDescriptor) throws(Errno) -> pid_t {
        guard let guardian = HandlerGuard.shared else { throw Errno.wouldBlock }
        var envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup($0) } + [nil]
        defer { for p in envp { free(p) } }
        var pid: Int32 = 0
        let rc = spool_spawn_shell(&pid, command, stdin.rawValue, stdout.rawValue, stderr.rawValue, &envp, guardian.writeFD)
        guard rc == 0 else { throw Errno(rawValue: rc) }
        return pid
    }

    /// True once child `pid` has exited, without reaping it: until it is reaped its pid and process group id
    /// cannot be reused, so signalling its group is still safe.
    public static func hasExited(_ pid: pid_t) -> Bool { spool_exited_nowait(pid) == 1 }

    /// Sends `signal` to every process in the group led by `pid` (errors ignored: the group may be gone).
    public static func signalGroup(_ pid: pid_t, _ signal: Signal) { _ = Glibc.kill(-pid, signal.rawValue) }

    /// A descriptor that becomes readable when `pid` exits (`pidfd_open`, Linux 5.3+); nil where unavailable.
    public static func exitDescriptor(_ pid: pid_t) -> FileDescriptor? {
        let fd = spool_pidfd_open(pid)
        return fd >= 0 ? FileDescriptor(rawValue: fd) : nil
    }

    /// `waitpid` on `pid`: its status once it has ended (and is reaped), or nil if `block` is false and it
    /// is still running. A pid may be reaped once; callers that share one must serialise.
    public static func reap(_ pid: pid_t, block: Bool) throws(Errno) -> ProcessExit? {
        var status: Int32 = 0
        let r = try retryingSyscall { waitpid(pid, &status, block ? 0 : WNOHANG) }
        return r == 0 ? nil : ProcessExit(waitStatus: status)
    }

    /// A pipe whose both ends are close-on-exec (a child gets an end only through `start`'s dup2).
    public static func pipe() throws(Errno) -> (read: FileDescriptor, write: FileDescriptor) {
        var fds: [Int32] = [-1, -1]
        _ = try retryingSyscall { spool_pipe_cloexec(&fds) }
        return (FileDescriptor(rawValue: fds[0]), FileDescriptor(rawValue: fds[1]))
    }

    /// The environment of this process as "K=V" entries.
    public static var currentEnvironment: [String] {
        var out: [String] = []
        var p = environ
        while let e = p.pointee { out.append(String(cString: e)); p += 1 }
        return out
    }
}

/// Process-wide signal dispositions.
public enum TerminationSignals {
    /// Makes SIGTERM and SIGINT signal `wakeup` instead of ending the process (so a stop is a readable descriptor
    /// in the caller's poll), and ignores SIGPIPE. Call before starting threads.
    public static func deliver(to wakeup: Wakeup) throws(Errno) {
        guard spool_install_termination_pipe(wakeup.fd.rawValue) == 0 else { throw Errno.current }
    }

    /// Ignores SIGPIPE, so a peer that went away is an EPIPE, not the end of the process.
    public static func ignoreBrokenPipe() { spool_ignore_sigpipe() }
}

/// SIGHUP, the conventional "reload your files" signal (certificates for `serve`).
public enum HangUpSignal {
    /// Makes SIGHUP signal `wakeup` instead of ending the process. Call before starting threads.
    public static func deliver(to wakeup: Wakeup) throws(Errno) {
        guard spool_install_hangup_pipe(wakeup.fd.rawValue) == 0 else { throw Errno.current }
    }
}

/// The guard of this process's handlers (`spool_start_guard` in the C shim): one forked process, started the first
/// time a handler is spawned, that kills every handler process group still registered when this process dies,
/// however it dies. Handlers register themselves as they start (`Spawn.shell`); `finished` unregisters one.
/// Thread-safe: each message is one 4-byte `write` to a pipe, which the kernel never interleaves.
public final class HandlerGuard: Sendable {
    public static let shared: HandlerGuard? = try? HandlerGuard()

    let writeFD: Int32
    public let pid: pid_t

    init() throws(Errno) {
        var p: Int32 = 0, w: Int32 = -1
        let rc = spool_start_guard(&p, &w)
        guard rc == 0 else { throw Errno(rawValue: rc) }
        pid = p
        writeFD = w
    }

    /// The handler led by `pgid` has exited and its group was killed: the guard forgets it. Call before reaping it,
    /// so its id cannot have been reused by then.
    public func finished(_ pgid: pid_t) {
        let v = UInt32(bitPattern: -pgid)
        var msg: (UInt8, UInt8, UInt8, UInt8) = (UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v >> 16 & 0xFF), UInt8(v >> 24))
        _ = try? retryingSyscall { withUnsafeBytes(of: &msg) { Glibc.write(writeFD, $0.baseAddress, 4) } }
    }
}
