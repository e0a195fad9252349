import Foundation
import Testing
import SpoolSystem

/// `Spawn` underlies every child process of the test suite; what it promises is checked on real children.
@Suite struct SpawnTests {
    /// Runs `/bin/sh -c script` with stdout on a pipe and returns (status, stdout).
    func sh(_ script: String, environment: [String] = ["PATH=/usr/bin:/bin"], directory: String? = nil) throws -> (ProcessExit, String) {
        let out = try Spawn.pipe()
        let null = try FileDescriptor.open("/dev/null", .readWrite)
        defer { try? null.close() }
        let pid: pid_t
        do {
            pid = try Spawn.start("/bin/sh", ["-c", script], environment: environment, directory: directory,
                                  stdin: null, stdout: out.write, stderr: null)
        } catch { try? out.read.close(); try? out.write.close(); throw error }
        try out.write.close()
        let bytes = try out.read.readAll(limit: 1 << 20)
        try out.read.close()
        let status = try #require(try Spawn.reap(pid, block: true))
        return (status, String(decoding: bytes, as: UTF8.self))
    }

    @Test func childGetsOnlyItsThreeStandardDescriptors() throws {
        // A descriptor opened without O_CLOEXEC, as libraries and test helpers sometimes do.
        let leaky = Glibc.open("/dev/null", O_RDONLY)
        #expect(leaky > 2)
        defer { Glibc.close(leaky) }
        let (status, out) = try sh("ls /proc/$$/fd")
        #expect(status == .exited(0))
        #expect(out.split(separator: "\n").sorted() == ["0", "1", "2"], "the child inherited: \(out)")
    }

    @Test func exitCodesSignalsEnvironmentAndDirectoryArePassed() throws {
        #expect(try sh("exit 7").0 == .exited(7))
        #expect(try sh("kill -TERM $$").0 == .signaled(SIGTERM))
        #expect(ProcessExit.signaled(SIGKILL).shellCode == 137 && ProcessExit.exited(3).shellCode == 3)
        #expect(try sh("echo \"$A\"", environment: ["A=b c"]).1 == "b c\n")
        #expect(try sh("pwd", directory: "/usr").1 == "/usr\n")
    }

    @Test func aMissingProgramIsAnErrorNotAChild() {
        let null = try? FileDescriptor.open("/dev/null", .readWrite)
        defer { try? null?.close() }
        #expect(throws: Errno.noEntry) {
            try Spawn.start("/nonexistent/program", [], environment: [], stdin: null!, stdout: null!, stderr: null!)
        }
    }

    @Test func stillRunningIsNilThenTheStatusOnce() throws {
        let null = try FileDescriptor.open("/dev/null", .readWrite)
        defer { try? null.close() }
        let pid = try Spawn.start("/bin/sleep", ["5"], environment: [], stdin: null, stdout: null, stderr: null)
        #expect(try Spawn.reap(pid, block: false) == nil)
        kill(pid, SIGKILL)
        #expect(try Spawn.reap(pid, block: true) == .signaled(SIGKILL))
        #expect(throws: Errno.noChildProcess) { try Spawn.reap(pid, block: false) }
    }
}
