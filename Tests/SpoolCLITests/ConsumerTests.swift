import Foundation
import SpoolTestSupport
import Testing
import SpoolWire
import SpoolCore
import SpoolSystem

/// `spool consume` through real processes: the handler contract, retries, dead letters, timeouts, signals.
@Suite(.serialized) struct ConsumerTests {
    func meta(_ dir: String, _ key: String) throws -> JSONValue {
        let r = try spool("show", key, "--json", dir: dir)
        return try JSONParser.parse(r.stdout)
    }

    @Test func handlerContractStdinAndEnvironment() throws {
        let dir = makeTempDir() + "/s"
        let payload = Data(#"{"project":"ENV1","x":"\u00e9"}"#.utf8) + Data([0x0A])
        _ = try spool("enqueue", "--content-type", "application/json", "-", dir: dir, stdin: payload)
        let out = dir + ".out"
        let handler = "cat > \(out).stdin; env | grep '^SPOOL_' | sort > \(out).env"
        let r = try spool("consume", "--exec", handler, "--once", dir: dir)
        #expect(r.status == 0)
        #expect(try Data(contentsOf: URL(fileURLWithPath: out + ".stdin")) == payload, "stdin is exactly the stored bytes")
        let env = try String(contentsOfFile: out + ".env", encoding: .utf8)
        #expect(env.contains("SPOOL_KEY=ENV1\n") && env.contains("SPOOL_ATTEMPT=1\n") && env.contains("SPOOL_CONTENT_TYPE=application/json\n"))
        #expect(env.contains("SPOOL_FILE=\(dir)/claimed/ENV1\n"))
        #expect(env.contains("SPOOL_DIR=\(dir)\n"))
        let received = try #require(env.split(separator: "\n").first { $0.hasPrefix("SPOOL_RECEIVED_AT=") })
        #expect(RFC3339.parse(String(received.dropFirst("SPOOL_RECEIVED_AT=".count))) != nil)
        #expect(try meta(dir, "ENV1")["state"]?.stringValue == "done")
        // Nothing left to do: --once exits 3.
        #expect(try spool("consume", "--exec", "true", "--once", dir: dir).status == 3)
    }

    /// A descriptor `spool consume` was started with (here fd 7, opened by the shell that starts it) is not the
    /// handler's: the handler has 0, 1 and 2 only (and `ls` its own directory handle).
    @Test func handlerGetsNoDescriptorBeyondItsStandardThree() throws {
        let dir = makeTempDir() + "/s"
        _ = try run(testkitBin, ["enqueue", dir, "fds"])
        let out = dir + ".fds"
        let c = try Child("/bin/sh", ["-c", "exec 7</dev/null; exec \"$0\" \"$@\"", spoolBin, "--dir", dir, "consume",
                                      "--exec", "ls /proc/self/fd > \(out)", "--once"])
        #expect(c.wait(timeout: 30).status == 0)
        let fds = Set(try String(contentsOfFile: out, encoding: .utf8).split(separator: "\n").map(String.init))
        #expect(fds == ["0", "1", "2", "3"], "the handler had \(fds.sorted())")
    }

    /// What a handler printed (kept as last_error) and what came from the network (the key) may hold terminal
    /// escape sequences: `ls` and `show` print them escaped, never raw (ESC, and C1 such as U+009B, CSI).
    @Test func lsAndShowNeverPrintRawControlCharacters() throws {
        let dir = makeTempDir() + "/s"
        let key = "k\u{9b}31m"
        _ = try spool("enqueue", "--key", key, "-", dir: dir, stdin: Data("{}".utf8))
        let r = try spool("consume", "--exec", "printf '\\033[2J\\302\\233red\\n' >&2; exit 65", "--once", dir: dir)
        #expect(r.status == 0)
        for out in [try spool("ls", dir: dir).stdout, try spool("show", key, dir: dir).stdout] {
            let bytes = Array(out.utf8)
            #expect(!bytes.contains(0x1B), "raw ESC in \(out.debugDescription)")
            #expect(!zip(bytes, bytes.dropFirst()).contains { $0 == 0xC2 && (0x80...0x9F).contains($1) }, "raw C1 in \(out.debugDescription)")
            #expect(out.contains("\\x1b[2J") && out.contains("\\x9bred") && out.contains("k\\x9b31m"), "\(out)")
        }
        // The stored text itself is unchanged: escaping is for display.
        #expect(try meta(dir, key)["last_error"]?.stringValue?.contains("\u{1b}[2J") == true)
    }

    @Test func exitStatusesLeadToTheRightState() throws {
        let dir = makeTempDir() + "/s"
        for k in ["ok", "poison", "flaky", "crash"] { _ = try run(testkitBin, ["enqueue", dir, k]) }
        let handler = """
        case "$SPOOL_KEY" in
          ok) exit 0;;
          poison) echo "bad payload: field x" >&2; exit 65;;
          flaky) echo "downstream 503 on attempt $SPOOL_ATTEMPT" >&2; exit 1;;
          crash) kill -9 $$;;
        esac
        """
        let r = try spool("consume", "--exec", handler, "--max-attempts", "3", "--backoff", "10ms", "--max-backoff", "20ms", "--drain", dir: dir)
        #expect(r.status == 0)
        // --drain stops once nothing is due; retries are due within 20ms, so run until both are dead-lettered.
        var rounds = 0
        while entries(dir + "/failed").count < 3 && rounds < 20 {
            usleep(30_000)
            _ = try spool("consume", "--exec", handler, "--max-attempts", "3", "--backoff", "10ms", "--max-backoff", "20ms", "--drain", dir: dir)
            rounds += 1
        }
        let ok = try meta(dir, "ok"), poison = try meta(dir, "poison"), flaky = try meta(dir, "flaky"), crash = try meta(dir, "crash")
        #expect(ok["state"]?.stringValue == "done" && ok["attempts"]?.intValue == 1)
        #expect(poison["state"]?.stringValue == "failed" && poison["attempts"]?.intValue == 1, "65 is not retried")
        #expect(poison["last_error"]?.stringValue == "bad payload: field x")
        #expect(poison["last_status"]?.stringValue == "exit 65")
        #expect(flaky["state"]?.stringValue == "failed" && flaky["attempts"]?.intValue == 3, "--max-attempts respected")
        #expect(flaky["last_error"]?.stringValue == "downstream 503 on attempt 3")
        #expect(flaky["last_status"]?.stringValue == "exit 1")
        #expect(crash["state"]?.stringValue == "failed" && crash["attempts"]?.intValue == 3)
        #expect(crash["last_status"]?.stringValue == "signal 9")
        // spool ls tells why.
        #expect(try spool("ls", "failed", dir: dir).stdout.contains("downstream 503 on attempt 3"))
        // spool retry brings a failed item back, and it is processed.
        #expect(try spool("retry", "flaky", dir: dir).status == 0)
        let again = try spool("consume", "--exec", "test $SPOOL_ATTEMPT = 1", "--drain", dir: dir)
        #expect(again.status == 0)
        #expect(try meta(dir, "flaky")["state"]?.stringValue == "done")
    }

    @Test func whatTheHandlerLeavesRunningIsKilledWithIt() throws {
        let dir = makeTempDir() + "/s"
        _ = try run(testkitBin, ["enqueue", dir, "bg"])
        let pidFile = dir + ".pid"
        let t0 = Date()
        let r = try spool("consume", "--exec", "sleep 30 < /dev/stdin & echo $! > \(pidFile)", "--once", dir: dir)
        #expect(r.status == 0)
        #expect(Date().timeIntervalSince(t0) < 10, "the consumer did not wait for the background process")
        let pid = try #require(Int32(try String(contentsOfFile: pidFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
        #expect(waitUntil(timeout: 5) { kill(pid, 0) != 0 }, "the background process holding the claim's lock was killed")
        #expect(try meta(dir, "bg")["state"]?.stringValue == "done")
    }

    /// A handler that closes its stdout and stderr and runs on: its exit status still decides (it is waited for,
    /// not taken as done when its pipes close), and the timeout still applies while nothing is left to read.
    @Test func handlerThatClosesItsOutputIsStillWaitedForAndTimed() throws {
        let dir = makeTempDir() + "/s"
        _ = try run(testkitBin, ["enqueue", dir, "quiet"])
        let r = try spool("consume", "--exec", "exec >&- 2>&-; sleep 0.3; exit 65", "--once", dir: dir)
        #expect(r.status == 0)
        let m = try meta(dir, "quiet")
        #expect(m["state"]?.stringValue == "failed" && m["last_status"]?.stringValue == "exit 65", "\(m)")

        _ = try run(testkitBin, ["enqueue", dir, "mute"])
        let t0 = Date()
        let t = try spool("consume", "--exec", "exec >&- 2>&-; sleep 30", "--timeout", "300ms", "--once", dir: dir)
        #expect(t.status == 0 && Date().timeIntervalSince(t0) < 10)
        let mm = try meta(dir, "mute")
        #expect(mm["state"]?.stringValue == "new" && mm["last_status"]?.stringValue == "timeout", "\(mm)")
    }

    @Test func handlerPastTimeoutIsKilledAndRetried() throws {
        let dir = makeTempDir() + "/s"
        _ = try run(testkitBin, ["enqueue", dir, "slow"])
        let t0 = Date()
        let r = try spool("consume", "--exec", "sleep 30", "--timeout", "300ms", "--once", dir: dir)
        #expect(r.status == 0)
        #expect(Date().timeIntervalSince(t0) < 10)
        let m = try meta(dir, "slow")
        #expect(m["state"]?.stringValue == "new" && m["attempts"]?.intValue == 1 && m["last_status"]?.stringValue == "timeout")
        #expect(m["next_attempt_at"] != nil)
        #expect(r.stderr.contains("outcome=retry"))
    }

    @Test func killedConsumerItemIsFinishedByAnotherWithTwoAttempts() throws {
        let dir = makeTempDir() + "/s"
        let log = dir + ".log"
        _ = try run(testkitBin, ["enqueue", dir, "victim"])
        // The handler outlives the kill by a wide margin even on a loaded machine.
        let handler = "echo \"$SPOOL_ATTEMPT\" >> \(log).started; sleep 3; echo \"$SPOOL_KEY $SPOOL_ATTEMPT\" >> \(log)"
        let a = try Child(spoolBin, ["--dir", dir, "consume", "--exec", handler])
        // Kill once the handler runs: a consumer killed between its claim's rename and its metadata write has not
        // made an attempt, and the next claim is (rightly) attempt 1 again.
        #expect(a.waitFor { (try? String(contentsOfFile: log + ".started", encoding: .utf8)) == "1\n" })
        a.signal(SIGKILL)
        a.wait()
        let b = try Child(spoolBin, ["--dir", dir, "consume", "--exec", handler])
        // B notices the dead claim (its kernel lock is released once the orphaned handler exits) and finishes it.
        #expect(waitUntil(timeout: 20) { entries(dir + "/done") == ["victim"] }, "\(b.stderr)")
        b.signal(SIGTERM)
        #expect(b.wait().status == 0)
        let m = try meta(dir, "victim")
        #expect(m["attempts"]?.intValue == 2)
        let lines = try String(contentsOfFile: log, encoding: .utf8)
        #expect(lines.contains("victim 2"))
        #expect(b.stderr.contains("requeued"))
    }

    /// PIDs of processes whose command line is exactly `sleep SECONDS` (the tests use unusual durations).
    func sleepers(_ seconds: String) -> [Int32] {
        let pids = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return pids.compactMap { Int32($0) }.filter { pid in
            guard let cmd = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
            return cmd == Data("sleep\u{0}\(seconds)\u{0}".utf8)
        }
    }

    /// A consumer killed alone with SIGKILL (not its process group, as the OOM killer does) takes its handler and
    /// everything the handler started with it, so a peer finishes the item at once (issue 17.1).
    @Test(arguments: [("31.25", "exec sleep 31.25"), ("32.25", "sleep 32.25 & sleep 32.25")])
    func aConsumerKilledAloneTakesItsHandlersWithIt(_ seconds: String, _ firstAttempt: String) throws {
        let dir = makeTempDir() + "/s"
        _ = try run(testkitBin, ["enqueue", dir, "hostage"])
        let handler = "if [ \"$SPOOL_ATTEMPT\" = 1 ]; then \(firstAttempt); fi; exit 0"
        let a = try Child(spoolBin, ["--dir", dir, "consume", "--exec", handler])
        #expect(waitUntil(timeout: 20) { !sleepers(seconds).isEmpty && entries(dir + "/claimed") == ["hostage"] })
        let b = try Child(spoolBin, ["--dir", dir, "consume", "--exec", handler])
        defer { b.signal(SIGKILL); _ = b.wait(timeout: 10) }
        _ = waitUntil(timeout: 1) { false }  // the peer is up and watching
        let t0 = Date()
        a.signal(SIGKILL)
        a.wait()
        #expect(waitUntil(timeout: 5) { entries(dir + "/done") == ["hostage"] }, "\(b.stderr)")
        #expect(Date().timeIntervalSince(t0) < 5)
        #expect(try meta(dir, "hostage")["attempts"]?.intValue == 2)
        #expect(waitUntil(timeout: 2) { sleepers(seconds).isEmpty }, "left running: \(sleepers(seconds))")
    }

    @Test func sigtermLetsTheRunningHandlerFinish() throws {
        let dir = makeTempDir() + "/s"
        _ = try run(testkitBin, ["enqueue", dir, "graceful"])
        let c = try Child(spoolBin, ["--dir", dir, "consume", "--exec", "sleep 1"])
        #expect(c.waitFor { entries(dir + "/claimed") == ["graceful"] })
        c.signal(SIGTERM)
        let r = c.wait(timeout: 20)
        #expect(r.status == 0)
        #expect(entries(dir + "/claimed").isEmpty)
        #expect(entries(dir + "/done") == ["graceful"])
    }

    @Test func sigtermPastGraceReleasesWithoutUsingAnAttempt() throws {
        let dir = makeTempDir() + "/s"
        _ = try run(testkitBin, ["enqueue", dir, "stuck"])
        let c = try Child(spoolBin, ["--dir", dir, "consume", "--exec", "sleep 30", "--grace", "300ms"])
        #expect(c.waitFor { entries(dir + "/claimed") == ["stuck"] })
        c.signal(SIGTERM)
        let r = c.wait(timeout: 20)
        #expect(r.status == 0)
        #expect(entries(dir + "/claimed").isEmpty)
        let m = try meta(dir, "stuck")
        #expect(m["state"]?.stringValue == "new" && m["attempts"]?.intValue == 0)
    }

    @Test func newItemsArePickedUpQuicklyWithoutPolling() throws {
        let dir = makeTempDir() + "/s"
        let log = dir + ".log"
        _ = try spool("init", dir: dir)
        let c = try Child(spoolBin, ["--dir", dir, "consume", "--exec", "date +%s%N >> \(log)", "--poll-interval", "1h"])
        #expect(c.waitFor { c.stderr.contains("started") })
        usleep(200_000)
        var delays: [Double] = []
        for i in 0..<5 {
            let t0 = Date()
            _ = try run(testkitBin, ["enqueue", dir, "fast\(i)"])
            #expect(waitUntil(timeout: 5) { entries(dir + "/done").count == i + 1 })
            delays.append(Date().timeIntervalSince(t0))
        }
        c.signal(SIGTERM)
        c.wait()
        // With a 1h poll interval, only inotify can explain pickups in well under a second.
        #expect(delays.sorted()[2] < 0.5, "median pickup \(delays)")
    }
}

/// Whether `chattr +i` works here (root with CAP_LINUX_IMMUTABLE on ext4, XFS or btrfs): an immutable `new/` makes
/// every claim's rename fail with EPERM, even for root, the way a read-only remount makes it fail with EROFS.
func immutableDirectoriesWork() -> Bool {
    let d = makeTempDir() + "/probe"
    guard (try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: false)) != nil,
          (try? runProcess("/usr/bin/chattr", ["+i", d]))?.status == 0 else { return false }
    let created = FileManager.default.createFile(atPath: d + "/f", contents: nil)
    _ = try? runProcess("/usr/bin/chattr", ["-i", d])
    return !created
}

/// Issue 25: on a spool whose `new/` cannot be changed, `--drain` and `--once` exit 1 (they used to exit 0 and 3);
/// a long-running consumer claims the due item within a second of the error clearing, without a new webhook.
@Suite struct ClaimErrorTests {
    @Test(.enabled(if: immutableDirectoriesWork(), "needs chattr +i (root on ext4)"))
    func claimErrorsAreErrorsAndAConsumerRecoversWithoutANewWebhook() throws {
        let dir = makeTempDir() + "/s"
        _ = try spool("enqueue", "--key", "k1", "-", dir: dir, stdin: Data("{}".utf8))
        #expect(try runProcess("/usr/bin/chattr", ["+i", dir + "/new"]).status == 0)
        var locked = true
        defer { if locked { _ = try? runProcess("/usr/bin/chattr", ["-i", dir + "/new"]) } }
        for mode in ["--drain", "--once"] {
            let r = try spool("consume", "--exec", "true", mode, dir: dir)
            #expect(r.status == 1 && r.stderr.contains("error: claim failed: ") && r.stderr.contains("Operation not permitted"), "\(mode): \(r.status) \(r.stderr)")
        }
        let consumer = try Child(spoolBin, ["--dir", dir, "consume", "--exec", "true"])
        defer { consumer.signal(SIGKILL); _ = consumer.wait(timeout: 10) }
        #expect(consumer.waitFor { consumer.stderr.contains("claim failed:") && consumer.stderr.contains("trying again every second") })
        // The error repeats every second; it is logged once.
        usleep(2_500_000)
        #expect(consumer.stderr.components(separatedBy: "claim failed:").count == 2, "\(consumer.stderr)")
        #expect(try runProcess("/usr/bin/chattr", ["-i", dir + "/new"]).status == 0)
        locked = false
        let cleared = Date()
        #expect(waitUntil(timeout: 10) { entries(dir + "/done") == ["k1"] })
        #expect(Date().timeIntervalSince(cleared) < 3, "claimed within a second or two of the error clearing")
        #expect(consumer.waitFor { consumer.stderr.contains("claims work again") })
        consumer.signal(SIGTERM)
        #expect(consumer.wait(timeout: 30).status == 0)
    }
}

/// Issue 25: `serve` says at start when anyone who reaches it can enqueue, and when it cannot write to the spool.
@Suite struct ServeStartWarningTests {
    func startAndStop(_ args: [String], dir: String) throws -> String {
        let c = try Child(spoolBin, ["--dir", dir, "serve"] + args)
        defer { c.signal(SIGKILL); _ = c.wait(timeout: 10) }
        #expect(c.waitFor { c.stdout.contains("listening on") })
        c.signal(SIGTERM)
        #expect(c.wait(timeout: 20).status == 0)
        return c.stderr
    }

    @Test func anOpenListenerWithoutATokenIsSaid() throws {
        let base = makeTempDir()
        let dir = base + "/s", token = base + "/token"
        try Data("t0ken\n".utf8).write(to: URL(fileURLWithPath: token))
        chmod(token, 0o600)
        #expect(try startAndStop(["--listen", "0.0.0.0:0"], dir: dir).contains(" level=warn component=serve msg=\"listening on 0.0.0.0:"))
        #expect(!(try startAndStop(["--listen", "0.0.0.0:0", "--token-file", token], dir: dir)).contains("warning"))
        #expect(!(try startAndStop(["--listen", "127.0.0.1:0"], dir: dir)).contains("warning"))
    }

    @Test(.enabled(if: immutableDirectoriesWork(), "needs chattr +i (root on ext4)"))
    func anUnwritableSpoolIsSaid() throws {
        let dir = makeTempDir() + "/s"
        _ = try spool("init", dir: dir)
        #expect(try runProcess("/usr/bin/chattr", ["+i", dir + "/tmp"]).status == 0)
        defer { _ = try? runProcess("/usr/bin/chattr", ["-i", dir + "/tmp"]) }
        #expect(try startAndStop(["--listen", "127.0.0.1:0"], dir: dir).contains(" level=warn component=serve msg=\"cannot write to the spool directory \(dir)"))
    }
}

/// Issue 25, item 5: the guard that kills a dead consumer's handlers is one process per consumer, not one per
/// attempt: a handler is the consumer's own child, and the consumer has exactly one other (the guard), which takes
/// every running handler and its children with it when the consumer is SIGKILLed alone.
@Suite struct HandlerGuardTests {
    func children(of pid: Int32) -> [Int32] {
        let pids = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return pids.compactMap { Int32($0) }.filter { p in
            guard let stat = try? String(contentsOfFile: "/proc/\(p)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return false }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 2 && Int32(fields[1]) == pid
        }
    }

    func alive(_ pid: Int32) -> Bool { FileManager.default.fileExists(atPath: "/proc/\(pid)/stat") && !((try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8))?.contains(") Z ") ?? true) }

    @Test func oneGuardPerConsumerAndHandlersAreItsChildren() throws {
        let dir = makeTempDir() + "/s"
        let log = dir + ".ppid"
        for k in ["h1", "h2"] { _ = try spool("enqueue", "--key", k, "-", dir: dir, stdin: Data("{}".utf8)) }
        let c = try Child(spoolBin, ["--dir", dir, "consume", "--concurrency", "2", "--exec", "echo \"$PPID $$\" >> \(log); sleep 33.75 & wait"])
        defer { c.signal(SIGKILL); _ = c.wait(timeout: 10) }
        #expect(waitUntil(timeout: 20) { ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n").count == 2 })
        let lines = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").map { $0.split(separator: " ").compactMap { Int32($0) } }
        #expect(lines.allSatisfy { $0.count == 2 && $0[0] == c.pid }, "each handler's parent is the consumer: \(lines) vs \(c.pid)")
        let handlers = Set(lines.compactMap { $0.last })
        let kids = Set(children(of: c.pid))
        #expect(kids.count == 3 && handlers.isSubset(of: kids), "two handlers and one guard: \(kids)")
        let guardPID = try #require(kids.subtracting(handlers).first)
        let grandchildren = handlers.flatMap { children(of: $0) }
        #expect(grandchildren.count == 2, "each handler's sleep: \(grandchildren)")
        c.signal(SIGKILL)
        _ = c.wait(timeout: 10)
        #expect(waitUntil(timeout: 5) { !(handlers.map(alive) + grandchildren.map(alive)).contains(true) },
                "handlers or their children outlived the consumer")
        #expect(waitUntil(timeout: 5) { !alive(guardPID) }, "the guard exits after it has done its job")
    }
}
