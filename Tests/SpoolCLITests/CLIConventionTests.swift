import Synchronization
import Foundation
import Testing
import SpoolWire
@testable import SpoolCLI
import SpoolCore
import SpoolBridges
import SpoolSystem
import SpoolTestSupport

@Suite struct CLIConventionTests {
    static let commandNames = CLI.commands.map(\.name)

    /// Credentials from the environment: an empty variable (an unset one in a unit file) is no credential.
    @Test func emptyCredentialVariablesCountAsAbsent() throws {
        let cmd = try #require(CLI.commands.first { $0.name == "consume" })
        func creds(_ a: [String], _ env: [String: String]) throws -> NATSCommand.ConnectOptions {
            var o = NATSConnectionOptions(endpoint: Endpoint(host: "127.0.0.1", port: 1, defaultPort: 4222))
            try CLI.setNATSCredentials(&o, try cmd.parse(a), env: env)
            return o.credentials
        }
        #expect(try creds(["--nats-user", "u"], ["SPOOL_NATS_PASSWORD": ""]).password == nil)
        #expect(try creds(["--nats-user", "u"], ["SPOOL_NATS_PASSWORD": "pw"]).password == "pw")
        #expect(try creds(["--nats-user", "u", "--nats-password", "flag"], ["SPOOL_NATS_PASSWORD": "pw"]).password == "flag")
        #expect(try creds([], ["SPOOL_NATS_TOKEN": ""]).token == nil)
        #expect(try creds([], ["SPOOL_NATS_TOKEN": "t"]).token == "t")
    }

    /// `--nats-token-file` and `--nats-password-file`: the first line, trailing newline dropped, the mode checked.
    @Test func natsSecretsFromFiles() throws {
        let cmd = try #require(CLI.commands.first { $0.name == "pull" })
        func creds(_ a: [String]) throws -> NATSCommand.ConnectOptions {
            var o = NATSConnectionOptions(endpoint: Endpoint(host: "127.0.0.1", port: 1, defaultPort: 4222))
            try CLI.setNATSCredentials(&o, try cmd.parse(a), env: ["SPOOL_NATS_TOKEN": "env", "SPOOL_NATS_PASSWORD": "env"])
            return o.credentials
        }
        let dir = makeTempDir()
        let token = dir + "/token", password = dir + "/password", empty = dir + "/empty"
        try "s3cr3t\nsecond line\n".write(toFile: token, atomically: true, encoding: .utf8)
        try "pa ss\r\n".write(toFile: password, atomically: true, encoding: .utf8)
        try "\n".write(toFile: empty, atomically: true, encoding: .utf8)
        for f in [token, password, empty] { chmod(f, 0o600) }
        #expect(try creds(["--nats-token-file", token]).token == "s3cr3t")
        let up = try creds(["--nats-user", "u", "--nats-password-file", password])
        #expect(up.user == "u" && up.password == "pa ss" && up.token == nil)
        #expect(throws: CommandFailure.self) { try creds(["--nats-token-file", empty]) }
        chmod(token, 0o644)
        do { _ = try creds(["--nats-token-file", token]); Issue.record("a token file open to others was read") } catch let e as CommandFailure {
            #expect(e.message.contains("is open to others") && !e.message.contains("s3cr3t"), "\(e.message)")
        }
        #expect(throws: UsageError("--nats-token and --nats-token-file exclude each other")) { try creds(["--nats-token", "t", "--nats-token-file", token]) }
        #expect(throws: UsageError("--nats-password-file needs --nats-user")) { try creds(["--nats-password-file", password]) }
        #expect(throws: UsageError("--nats-password and --nats-password-file exclude each other")) {
            try creds(["--nats-user", "u", "--nats-password", "p", "--nats-password-file", password])
        }
    }

    /// `enqueue --key-path` is checked like `serve --key-path`, before any input is read.
    @Test func enqueueRefusesAKeyPathWithAnEmptyMember() {
        for p in ["a..b", ".a", "a.", ""] {
            let r = cli(["--dir", "/nonexistent/spool", "enqueue", "--key-path", p], stdin: Array("{\"a\":{\"b\":\"k\"}}".utf8))
            #expect(r.code == 64 && r.err.contains("is not a dotted path"), "\(p): \(r.err)")
        }
    }

    /// A consumer logs a batch's attempts in one call: every line is a logfmt record of its own, in one write; the
    /// level comes from an `error: ` or `warning: ` prefix, and records under --log-level are dropped.
    @Test func logLinesOfOneCallEachAreARecordInOneWrite() throws {
        let writes = Mutex<[[UInt8]]>([])
        let console = Console(writeOut: { _ in }, writeErr: { b in writes.withLock { $0.append(b) } }, environment: [:], readStdin: { [] })
        let log = LogSettings().logger(console, component: "consume")
        log("key=a outcome=done\nkey=b outcome=done")
        log("error: it \"broke\"")
        let w = writes.withLock { $0 }
        #expect(w.count == 2)
        let lines = String(decoding: w[0], as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.count == 3 && lines[2].isEmpty, "\(lines)")
        for (line, body) in zip(lines, ["key=a outcome=done", "key=b outcome=done"]) {
            let parts = line.split(separator: " ", maxSplits: 3)
            #expect(parts.count == 4 && parts[0].hasPrefix("ts=") && RFC3339.parse(String(parts[0].dropFirst(3))) != nil
                    && parts[1] == "level=info" && parts[2] == "component=consume" && parts[3] == "msg=\"\(body)\"", "\(line)")
        }
        #expect(String(decoding: w[1], as: UTF8.self).hasSuffix(" level=error component=consume msg=\"it \\\"broke\\\"\"\n"), "\(String(decoding: w[1], as: UTF8.self))")
        var quiet = LogSettings()
        quiet.minimum = .warn
        quiet.format = .json
        let q = quiet.logger(console, component: "pull")
        q("fine\nwarning: careful")
        let last = String(decoding: writes.withLock { $0 }.last ?? [], as: UTF8.self)
        #expect(last.hasSuffix(#""level":"warn","component":"pull","msg":"careful"}"# + "\n") && !last.contains("fine"), "\(last)")
    }

    @Test(arguments: commandNames)
    func helpGoesToStdoutWithExitZero(_ name: String) {
        let r = cli([name, "--help"])
        #expect(r.code == 0)
        #expect(r.out.hasPrefix("usage: spool \(name)"))
        #expect(r.err.isEmpty)
    }

    /// Help is generated from the same declarations the parser uses: every declared option is listed with its
    /// value name, every option listed is declared, the parser accepts each, and refuses any other.
    @Test(arguments: commandNames)
    func helpListsExactlyTheOptionsTheParserAccepts(_ name: String) throws {
        let cmd = try #require(CLI.commands.first { $0.name == name })
        let help = cli([name, "--help"]).out
        let declared = cmd.options.map(\.name)
        #expect(declared.contains("--dir"), "the global --dir is accepted and documented by every command")
        #expect(Set(declared).count == declared.count, "\(name) declares an option twice")
        for o in cmd.options {
            #expect(help.contains("\n  " + o.label), "\(name) --help does not list \(o.label)")
        }
        let listed = help.split(separator: "\n").filter { $0.hasPrefix("  --") }.map { String($0.dropFirst(2).prefix { $0 != " " }) }
        #expect(listed.sorted() == declared.sorted(), "\(name) --help lists options the parser does not accept, or twice")

        for o in cmd.options {
            let forms = o.kind == .flag ? [[o.name]] : [[o.name, "v"], [o.name + "=v"]]
            for args in forms {
                do { _ = try cmd.parse(args) } catch { Issue.record("\(name) refuses declared \(args): \(error.message)") }
            }
        }
        let others = Set(CLI.commands.flatMap { $0.options.map(\.name) } + ["--bogus"]).subtracting(declared)
        for other in others {
            #expect(throws: UsageError("unknown option \(other)"), "\(name) accepts undeclared \(other)") { try cmd.parse([other, "v"]) }
        }
        let bogus = cli(["--dir", makeTempDir() + "/s", name, "--bogus"])
        #expect(bogus.code == 64 && bogus.out.isEmpty)
        #expect(bogus.err == "spool: unknown option --bogus\n" + cmd.usageLine + "\n")
    }

    @Test func consumeAndServeDocumentEverythingTheyRead() {
        let consume = cli(["consume", "--help"]).out
        #expect(consume.contains("\n  --no-inotify "))
        #expect(consume.contains("poll new/ every --poll-interval instead of watching it with inotify"))
        for v in ["SPOOL_DIR", "SPOOL_NATS_TOKEN", "SPOOL_NATS_PASSWORD"] { #expect(consume.contains("\n  \(v) "), "\(v)") }
        let serve = cli(["serve", "--help"]).out
        #expect(serve.contains("\nenvironment:\n"))
        for v in ["SPOOL_DIR", "SPOOL_TOKEN", "SPOOL_COMMITTERS"] { #expect(serve.contains("\n  \(v) "), "\(v)") }
        #expect(serve.contains("from 1 to 16"))
    }

    /// A bad SPOOL_COMMITTERS was silently ignored; now it is a usage error, before the spool is opened or a
    /// port bound (the real binary, so that a regression cannot leave a server running in the test process).
    @Test(arguments: ["0", "17", "x", " 2", "2 ", "+2", "-1", "2.0", "99999999999999999999"])
    func badCommittersAreUsageErrors(_ value: String) throws {
        let dir = makeTempDir() + "/s"
        let r = try run(spoolBin, ["--dir", dir, "serve", "--listen", "127.0.0.1:0"], env: ["SPOOL_COMMITTERS": value], timeout: 20)
        #expect(r.status == 64, "SPOOL_COMMITTERS='\(value)': \(r.stderr)")
        #expect(r.stderr.hasPrefix("spool: SPOOL_COMMITTERS must be a whole number from 1 to 16, got '"), "\(r.stderr)")
        #expect(r.stderr.hasSuffix("\nusage: spool serve [OPTIONS]\n"))
        #expect(r.stdout.isEmpty)
        #expect(!FileManager.default.fileExists(atPath: dir), "a usage error does not create the spool")
    }

    @Test func committersFromTheEnvironment() throws {
        #expect(try Parse.environment([:], "N", in: 1...16) == nil)
        #expect(try Parse.environment(["N": ""], "N", in: 1...16) == nil, "empty is unset, as for every SPOOL_ variable")
        #expect(try Parse.environment(["N": "1"], "N", in: 1...16) == 1)
        #expect(try Parse.environment(["N": "16"], "N", in: 1...16) == 16)
        #expect(throws: UsageError("N must be a whole number from 1 to 16, got '0'")) { try Parse.environment(["N": "0"], "N", in: 1...16) }
        let dir = makeTempDir() + "/s"
        let server = try Server(dir: dir, env: ["SPOOL_COMMITTERS": "16"])
        #expect(server.stop().status == 0)
    }

    /// One mapping at the edge: usage errors exit 64 with the usage line, a CommandFailure keeps its message and
    /// code, any other error is `error: <description>` with exit 1.
    @Test func errorsAreMappedInOnePlace() throws {
        struct Opaque: Error, CustomStringConvertible { var description: String { "disk on fire" } }
        let cmd = try #require(CLI.commands.first { $0.name == "stats" })
        let cases: [(any Error, Int32, String)] = [
            (UsageError("bad"), 64, "spool: bad\nusage: spool stats [OPTIONS]\n"),
            (CommandFailure(message: "custom", code: 3), 3, "error: custom\n"),
            (Opaque(), 1, "error: disk on fire\n"),
        ]
        for (error, code, err) in cases {
            let c = CapturedConsole()
            #expect(CLI.report(error, command: cmd, console: c.console) == code)
            #expect(c.stderr == err && c.stdout.isEmpty)
        }
    }

    @Test func topLevelHelpAndVersion() {
        let h = cli(["--help"])
        #expect(h.code == 0 && h.out.contains("commands:") && h.out.contains("consume"))
        let v = cli(["--version"])
        #expect(v.code == 0 && v.out == "spool \(CLI.version) (commit unknown, spool format 2)\n")
    }

    @Test(arguments: [
        ["bogus"], [], ["--bogus"], ["ls", "--bogus"], ["ls", "--limit"], ["ls", "--limit", "+5"], ["ls", "--limit", "5x"],
        ["ls", "sideways"], ["purge"], ["purge", "--older-than", "7 days"], ["purge", "--older-than", "1d", "--state", "new"],
        ["retry"], ["retry", "--all-failed", "k"], ["show"], ["show", "a", "b"], ["consume"], ["consume", "--exec", "true", "--drain", "--once"],
        ["consume", "--exec", "true", "--concurrency", "0"], ["consume", "--exec", "true", "--timeout", "5"], ["stats", "extra"],
        ["--dir"], ["ls", "--json=yes"], ["ls", "--limit", "1", "--limit", "2"],
    ])
    func usageErrorsExit64OnStderr(_ args: [String]) {
        let dir = makeTempDir()
        let r = cli(["--dir", dir + "/s"] + args)
        #expect(r.code == 64, "\(args)")
        #expect(r.out.isEmpty)
        #expect(r.err.hasPrefix("spool: "))
    }

    @Test func runtimeFailuresExit1WithOneLine() throws {
        let dir = makeTempDir()
        // A directory that is not a spool is refused by every command that does not store items (issue 25):
        // a mistyped --dir must not read as an empty queue.
        for args in [["show", "missing"], ["ls"], ["stats"], ["retry", "--all-failed"], ["consume", "--exec", "true", "--drain"], ["pause"]] {
            let m = cli(["--dir", dir + "/s"] + args)
            #expect(m.code == 1 && m.err == "error: \(dir)/s does not exist; 'spool init --dir \(dir)/s' creates one (serve and enqueue do on first use)\n", "\(args): \(m.err)")
        }
        #expect(!FileManager.default.fileExists(atPath: dir + "/s"))
        #expect(cli(["--dir", dir + "/s", "init"]).out == "spool directory \(dir)/s is ready (format 2, queue default)\n")
        #expect(cli(["--dir", dir + "/s", "init"]).code == 0, "init is idempotent")
        let r = cli(["--dir", dir + "/s", "show", "missing"])
        #expect(r.code == 1 && r.err == "error: no such item: missing\n")
        chmod(dir, 0o777)
        try FileManager.default.createDirectory(atPath: dir + "/open", withIntermediateDirectories: false, attributes: [.posixPermissions: 0o777])
        chmod(dir + "/open", 0o777)
        let u = cli(["--dir", dir + "/open", "ls"])
        #expect(u.code == 1 && u.err.hasPrefix("error: ") && u.err.contains("writable by group or others"))
        // The hint is a command that works when pasted (it once read "chmod go-w spool directory PATH").
        let hint = try #require(u.err.split(separator: "\n")[0].components(separatedBy: "; run: ").last)
        #expect(hint == "chmod go-w \(dir)/open")
        #expect(try runProcess("/bin/sh", ["-c", hint]).status == 0)
        let empty = cli(["--dir", dir + "/open", "ls"])
        #expect(empty.code == 1 && empty.err.contains("\(dir)/open is not a spool directory (it has no 'format' file)"), "\(empty.err)")
        #expect(entries(dir + "/open").isEmpty, "nothing was created in it")
        #expect(cli(["--dir", dir + "/open", "enqueue", "--key", "x", "-"], stdin: [0x7B, 0x7D]).code == 0)
        #expect(cli(["--dir", dir + "/open", "ls"]).code == 0)
        let noKey = cli(["--dir", dir + "/s", "enqueue", "-"], stdin: Array(#"{"x":1}"#.utf8))
        #expect(noKey.code == 1 && noKey.err.contains("no key found; tried movie.project, project"))
    }

    @Test func dirComesFromFlagThenEnvironment() {
        let dir = makeTempDir()
        let a = cli(["enqueue", "--key", "E", "-"], env: ["SPOOL_DIR": dir + "/env"], stdin: [1])
        #expect(a.code == 0 && a.out == "accepted E\n")
        #expect(entries(dir + "/env/new") == ["E"])
        let b = cli(["enqueue", "--dir", dir + "/flag", "--key", "E", "-"], env: ["SPOOL_DIR": dir + "/env"], stdin: [1])
        #expect(b.out == "accepted E\n" && entries(dir + "/flag/new") == ["E"])
    }

    @Test func durations() throws {
        #expect(try Parse.duration("250ms", name: "d") == 250_000_000)
        #expect(try Parse.duration("30s", name: "d") == 30_000_000_000)
        #expect(try Parse.duration("15m", name: "d") == 900_000_000_000)
        #expect(try Parse.duration("24h", name: "d") == 86_400_000_000_000)
        #expect(try Parse.duration("7d", name: "d") == 604_800_000_000_000)
        // Several units, largest first, and a bare 0 (issue 25.4).
        #expect(try Parse.duration("0", name: "d") == 0)
        #expect(try Parse.duration("1h30m", name: "d") == 5_400_000_000_000)
        #expect(try Parse.duration("2m30s500ms", name: "d") == 150_500_000_000)
        #expect(try Parse.duration("1d12h", name: "d") == 129_600_000_000_000)
        for bad in ["", "s", "5", "-5s", "+5s", "5 s", "5sec", "1.5s", "0x5s", "99999999999999999999d", "30m1h", "1h1h", "1h30", "00", "m5"] {
            #expect(throws: UsageError.self, "\(bad)") { try Parse.duration(bad, name: "d") }
        }
        do { _ = try Parse.duration("1.5h", name: "--x"); Issue.record("accepted 1.5h") } catch {
            #expect(error.message.contains("write 1.5h as 1h30m"))
        }
    }

    /// `spool help COMMAND`, "did you mean", `spool version` (issue 25.4).
    @Test func helpCommandAndTypos() {
        let help = cli(["help", "serve"])
        #expect(help.code == 0 && help.out.hasPrefix("usage: spool serve"))
        let typo = cli(["sevre"])
        #expect(typo.code == 64 && typo.err.contains("unknown command 'sevre' (did you mean 'serve'?)"), "\(typo.err)")
        #expect(!cli(["zzzzzz"]).err.contains("did you mean"))
        #expect(cli(["--version"]).out.hasPrefix("spool \(CLI.version) (commit "))
        #expect(cli(["version"]).out == cli(["--version"]).out)
    }
}

@Suite struct OperatorCommandTests {
    @Test func enqueueLsShowStatsRetryPurge() throws {
        let dir = makeTempDir() + "/s"
        let envelope = try Array(Data(contentsOf: URL(fileURLWithPath: packageRoot + "/Tests/Fixtures/payloads/envelope-done.json")))
        #expect(cli(["--dir", dir, "enqueue", "-"], stdin: envelope).out == "accepted WAEE8PohgVwv2teP\n")
        #expect(cli(["--dir", dir, "enqueue", "-"], stdin: envelope).out == "duplicate WAEE8PohgVwv2teP\n")
        let form = try Array(Data(contentsOf: URL(fileURLWithPath: packageRoot + "/Tests/Fixtures/payloads/form-encoded.txt")))
        #expect(cli(["--dir", dir, "enqueue", "--content-type", "application/x-www-form-urlencoded", "-"], stdin: form).out == "accepted Lk3JhG5fDs7AzX9c\n")

        let body = cli(["--dir", dir, "show", "WAEE8PohgVwv2teP", "--body"])
        #expect(body.code == 0 && Array(body.out.utf8) == envelope, "--body writes exactly the stored bytes")

        let ls = cli(["--dir", dir, "ls", "--json"])
        let objects = try ls.out.split(separator: "\n").map { try JSONParser.parse(String($0)) }
        #expect(objects.count == 2)
        for o in objects {
            for field in ["state", "key", "size", "received_at", "attempts", "path"] { #expect(o[field] != nil, "\(field)") }
            #expect(o["state"]?.stringValue == "new")
        }
        #expect(Set(objects.compactMap { $0["key"]?.stringValue }) == ["WAEE8PohgVwv2teP", "Lk3JhG5fDs7AzX9c"])

        let table = cli(["--dir", dir, "ls", "new"])
        #expect(table.out.hasPrefix("STATE") && table.out.contains("WAEE8PohgVwv2teP"))

        let stats = try JSONParser.parse(cli(["--dir", dir, "stats", "--json"]).out)
        #expect(stats["new"]?.intValue == 2 && stats["claimed"]?.intValue == 0 && stats["done"]?.intValue == 0 && stats["failed"]?.intValue == 0)

        // Process one to failure, retry it, finish both, purge.
        let s = try Spool(path: dir)
        let item = try #require(try s.claimSoon())
        try s.fail(item, error: "downstream said no\nsecond line", status: "exit 65", retryable: false, policy: RetryPolicy())
        let failedLine = cli(["--dir", dir, "ls", "failed", "--json"]).out
        #expect(try JSONParser.parse(failedLine)["last_error"]?.stringValue == "downstream said no\nsecond line")
        #expect(cli(["--dir", dir, "ls", "failed"]).out.contains("second line"))
        #expect(cli(["--dir", dir, "retry", "--all-failed"]).code == 0)
        #expect(try JSONParser.parse(cli(["--dir", dir, "stats", "--json"]).out)["new"]?.intValue == 2)
        while let i = try s.claim() { try s.complete(i) }
        #expect(cli(["--dir", dir, "purge", "--older-than", "1h"]).out == "purged 0 items\n")
        #expect(cli(["--dir", dir, "purge", "--older-than", "0s"]).out == "purged 2 items\n")
        #expect(cli(["--dir", dir, "enqueue", "-"], stdin: envelope).out == "accepted WAEE8PohgVwv2teP\n", "purged keys are forgotten")
    }
}

/// Durations in tables: a retry due in 400ms must not read "retry in 0s".
@Suite struct HumanDurationTests {
    @Test func subSecondAndRoundedUpUnderTenSeconds() {
        #expect(humanDuration(nanos: 400_000_000) == "0.4s")
        #expect(humanDuration(nanos: 1) == "0.1s")
        #expect(humanDuration(nanos: 1_000_000_000) == "1s")
        #expect(humanDuration(nanos: 1_050_000_000) == "1.1s")
        #expect(humanDuration(nanos: 9_990_000_000) == "10s")
        #expect(humanDuration(nanos: 0) == "0s")
        #expect(humanDuration(nanos: -5) == "0s")
        #expect(humanDuration(nanos: 45_000_000_000) == "45s")
        #expect(humanDuration(nanos: 720_000_000_000) == "12m")
        #expect(humanDuration(nanos: Int64.max) == ">999d")
    }
}

/// Secret files behind symbolic links (certbot's live/ directory, Kubernetes secret volumes): followed, and the
/// checks apply to the file they resolve to (issue 25.4).
@Suite struct SecretLinkTests {
    @Test func aLinkedSecretIsFollowedAndItsTargetChecked() throws {
        let dir = makeTempDir()
        try Data("key-123\n".utf8).write(to: URL(fileURLWithPath: dir + "/real"))
        chmod(dir + "/real", 0o600)
        try FileManager.default.createSymbolicLink(atPath: dir + "/link", withDestinationPath: dir + "/real")
        let base = ["--dir", dir + "/s", "reconcile", "--once", "--api-url", "http://127.0.0.1:1/v2/movies", "--api-key-file"]
        let ok = try run(spoolBin, base + [dir + "/link"])
        #expect(!ok.stderr.contains("api key") || !ok.stderr.contains("regular file"), "\(ok.stderr)")
        #expect(!ok.stderr.contains("open to others") && !ok.stderr.contains("not a regular file"), "the link is followed: \(ok.stderr)")
        chmod(dir + "/real", 0o644)
        let open = try run(spoolBin, base + [dir + "/link"])
        #expect(open.status == 1 && open.stderr.contains("is open to others (mode 644)"), "the target's mode is checked: \(open.stderr)")
        try FileManager.default.createSymbolicLink(atPath: dir + "/dangling", withDestinationPath: dir + "/nowhere")
        let dangling = try run(spoolBin, base + [dir + "/dangling"])
        #expect(dangling.status == 1 && dangling.stderr.contains("cannot read"), "\(dangling.stderr)")
    }
}
