import SpoolCore
import SpoolSystem
import SpoolWire

/// A runtime failure that needs its own message or exit code. Any other error a command throws (except
/// `UsageError`) is printed as `error: <description>` with exit 1 by `CLI.run`; commands need not wrap them.
struct CommandFailure: Error {
    let message: String
    var code: Int32 = 1
}

/// One `spool` subcommand, declared once: the parser accepts exactly `options`, and `help` is generated from
/// the same declarations, so the two cannot drift apart.
struct Command: Sendable {
    let name: String
    let summary: String
    /// What follows `[OPTIONS]` on the usage line: positionals and required options (`[STATE...]`, `KEY`).
    let synopsis: String
    /// The paragraph(s) under the usage line.
    let description: String
    /// Titled groups of options shown before the general ones (for `consume`: the sinks and their options).
    let groups: [OptionGroup]
    /// The general options, shown under "options:" followed by the global `--dir`.
    let generalOptions: [Option]
    /// Environment variables the command reads besides `SPOOL_DIR` (which every command reads).
    let environment: [EnvironmentVariable]
    /// Command lines with what each does, for the "examples:" section of help and the man page.
    let examples: [(command: String, what: String)]
    let run: @Sendable (ParsedArguments, Context) throws -> Int32

    init(name: String, summary: String, synopsis: String = "", description: String, groups: [OptionGroup] = [],
         options: [Option], environment: [EnvironmentVariable] = [], examples: [(command: String, what: String)] = [],
         run: @escaping @Sendable (ParsedArguments, Context) throws -> Int32) {
        self.name = name; self.summary = summary; self.synopsis = synopsis; self.description = description
        self.groups = groups; self.generalOptions = options; self.environment = environment; self.examples = examples; self.run = run
    }

    /// Every option the command accepts, in help order: the groups, the general options, then `--dir`.
    var allGroups: [OptionGroup] { groups + [OptionGroup("options", generalOptions + [CLI.queueOption, CLI.dirOption])] }
    var options: [Option] { allGroups.flatMap(\.options) }
    var allEnvironment: [EnvironmentVariable] { [CLI.dirVariable] + environment }

    /// The first line of `help`, also printed after a usage error.
    var usageLine: String { "usage: spool \(name) [OPTIONS]" + (synopsis.isEmpty ? "" : " " + synopsis) }

    /// Parses the command's arguments (without the command name) against exactly its declared options.
    func parse(_ arguments: [String]) throws(UsageError) -> ParsedArguments {
        try ParsedArguments.parse(arguments, options: options)
    }
}

/// Options shown together under a title in help.
struct OptionGroup: Sendable {
    let title: String
    let options: [Option]
    init(_ title: String, _ options: [Option]) { self.title = title; self.options = options }
}

/// An environment variable a command reads, for the "environment:" section of its help.
struct EnvironmentVariable: Sendable {
    let name: String
    let help: String
    init(_ name: String, _ help: String) { self.name = name; self.help = help }
}

/// What every command gets: the console, the spool directory and the queue(s) it should use.
struct Context: Sendable {
    let console: Console
    let dir: String
    /// `--queue` as given (several only for `enqueue`); empty: `default`.
    var queues: [String] = []
    /// `--log-format`, `--log-level`, `--access-log` of a long-running command.
    var logging = LogSettings()

    /// This context with the logging options of a long-running command.
    func withLogging(_ args: ParsedArguments, accessLog: Bool = false, trustedProxy: Bool = false) throws(UsageError) -> Context {
        var c = self
        c.logging = try LogSettings.parse(args, accessLog: accessLog, trustedProxy: trustedProxy)
        return c
    }

    /// The one queue a command acts on.
    var queue: String { queues.first ?? QueueName.defaultName }

    /// Opens the spool. Only the commands that store items (`serve`, `enqueue`, `pull`, `reconcile`) and `init`
    /// create one; the others refuse a directory that is not a spool, so a mistyped `--dir` is an error, not zeros.
    func openSpool(create: Bool = false, flush: FlushMode = .auto) throws -> Spool {
        try Spool(path: dir, queue: queue, create: create, flush: flush)
    }
}

public enum CLI {
    public static let version = "0.1.0"
    static let maxStdinBytes = 64 * 1024 * 1024

    static let commands: [Command] = operatorCommands + serviceCommands + documentationCommands

    /// Accepted by every command (and before the command name); shown in each command's help.
    static let dirOption = Option.value("--dir", "DIR", help: "the spool directory (default $SPOOL_DIR, else ./spool)")
    static let dirVariable = EnvironmentVariable("SPOOL_DIR", "the spool directory when --dir is not given")
    /// Accepted by every command: the queue it acts on (docs/spool-format.md, "Queues"). Repeated only by `enqueue`.
    static let queueOption = Option.repeated("--queue", "NAME", default: "default",
                                             help: "the queue to act on (enqueue: repeat to enter the item into several)")

    static let mainUsage = """
    usage: spool [--dir DIR] COMMAND [ARGS...]

    A webhook-to-queue bridge on a file-backed spool directory.
    DIR defaults to $SPOOL_DIR, else ./spool.

    commands:
    \(commands.map { "  " + $0.name.padding(commands.map(\.name.count).max()! + 2) + $0.summary }.joined(separator: "\n"))

    Run 'spool COMMAND --help' for a command's options.
    """

    /// Runs the command line (without the program name) and returns the process exit status:
    /// 0 success, 1 runtime failure, 3 nothing to do (`consume --once`), 64 usage error.
    public static func run(_ arguments: [String], console: Console = .standard) -> Int32 {
        var args = arguments
        var dir: String? = nil
        // Global options before the command.
        while let first = args.first, first.hasPrefix("-") {
            if first == "--help" || first == "-h" { console.out(mainUsage); return 0 }
            if first == "--version" { console.out(versionLine); return 0 }
            if first == "--dir" {
                guard args.count >= 2 else { return usage("--dir needs a value", console: console, text: mainUsage) }
                dir = args[1]; args.removeFirst(2); continue
            }
            if first.hasPrefix("--dir=") { dir = String(first.dropFirst(6)); args.removeFirst(); continue }
            return usage("unknown option \(first)", console: console, text: mainUsage)
        }
        guard let name = args.first else { return usage("missing command", console: console, text: mainUsage) }
        if name == "help" {
            // `spool help COMMAND` is `spool COMMAND --help`.
            if args.count >= 2, let cmd = commands.first(where: { $0.name == args[1] }) { console.out(cmd.help); return 0 }
            console.out(mainUsage); return 0
        }
        guard let cmd = commands.first(where: { $0.name == name }) else {
            let hint = closestCommand(to: name).map { " (did you mean '\($0)'?)" } ?? ""
            return usage("unknown command '\(logSafe(name))'\(hint)", console: console, text: mainUsage)
        }
        let rest = Array(args.dropFirst())
        if rest.contains("--help") || rest.contains("-h") { console.out(cmd.help); return 0 }
        let parsed: ParsedArguments
        do { parsed = try cmd.parse(rest) } catch {
            return usage(error.message, console: console, text: cmd.usageLine)
        }
        if let d = parsed.value("--dir") {
            if dir != nil { return usage("--dir given more than once", console: console, text: cmd.usageLine) }
            dir = d
        }
        let queues = parsed.all("--queue")
        if queues.count > 1 && cmd.name != "enqueue" { return usage("--queue given more than once", console: console, text: cmd.usageLine) }
        if let bad = queues.first(where: { !QueueName.isValid($0) }) { return usage("\(SpoolError.invalidQueue(bad))", console: console, text: cmd.usageLine) }
        let ctx = Context(console: console, dir: dir ?? console.environment["SPOOL_DIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "./spool",
                          queues: queues)
        do {
            return try cmd.run(parsed, ctx)
        } catch let e as SpoolError {
            // Run as the spool's owner (the service user of a systemd setup): the same command line, pasteable.
            if case let .notOwner(path, owner, _) = e {
                let user = userName(uid: owner).map(shellQuoted) ?? "'#\(owner)'"
                let line = ["spool"] + (arguments.contains("--dir") || arguments.contains(where: { $0.hasPrefix("--dir=") }) ? [] : ["--dir", ctx.dir]) + arguments
                console.err("error: \(path) belongs to \(userName(uid: owner).map { "user \(logSafe($0)) (uid \(owner))" } ?? "uid \(owner)"), not to us; run: sudo -u \(user) \(line.map(shellQuoted).joined(separator: " "))")
                return 1
            }
            return report(e, command: cmd, console: console)
        } catch {
            return report(error, command: cmd, console: console)
        }
    }

    /// The name of `uid` in /etc/passwd (read strictly: at most 1 MiB, `name:x:uid:...` lines), if it has one.
    static func userName(uid: UInt32) -> String? {
        guard let bytes = try? FileDescriptor.open("/etc/passwd", [.readOnly, .nonBlocking]).closeAfter({ (fd) throws(Errno) in try fd.readAll(limit: 1 << 20) }) else { return nil }
        for line in bytes.split(separator: 0x0A) {
            let f = line.split(separator: 0x3A, omittingEmptySubsequences: false)
            guard f.count >= 3, !f[0].isEmpty, let u = UInt32(String(decoding: f[2], as: UTF8.self)), u == uid else { continue }
            return String(decoding: f[0], as: UTF8.self)
        }
        return nil
    }

    /// The one place errors become output and exit codes: a usage error prints the message and the usage line
    /// (64); a `CommandFailure` its message and code; anything else `error: <description>` (1).
    static func report(_ error: any Error, command: Command, console: Console) -> Int32 {
        switch error {
        case let e as UsageError:
            return usage(e.message, console: console, text: command.usageLine)
        case let e as CommandFailure:
            console.err("error: \(e.message)")
            return e.code
        default:
            console.err("error: \(error)")
            return 1
        }
    }

    /// The command within two edits of `name` (Levenshtein), if exactly one is closest: a typo's "did you mean".
    static func closestCommand(to name: String) -> String? {
        func distance(_ a: [UInt8], _ b: [UInt8]) -> Int {
            var row = Array(0...b.count)
            for (i, x) in a.enumerated() {
                var prev = row[0]; row[0] = i + 1
                for (j, y) in b.enumerated() {
                    let cur = row[j + 1]
                    row[j + 1] = min(row[j + 1] + 1, row[j] + 1, prev + (x == y ? 0 : 1))
                    prev = cur
                }
            }
            return row[b.count]
        }
        let scored = commands.map { ($0.name, distance(Array(name.utf8.prefix(64)), Array($0.name.utf8))) }.filter { $0.1 <= 2 }
        guard let best = scored.map(\.1).min() else { return nil }
        let at = scored.filter { $0.1 == best }
        return at.count == 1 ? at[0].0 : nil
    }

    static func usage(_ message: String, console: Console, text: String) -> Int32 {
        console.err("spool: \(message)")
        console.err(text.split(separator: "\n", omittingEmptySubsequences: false).first.map(String.init) ?? "")
        return 64
    }
}

/// The public entry point used by `main.swift`.
public func run(_ arguments: [String]) -> Int32 { CLI.run(arguments) }

/// "1 item", "2 items".
func plural(_ n: Int, _ word: String) -> String { "\(n) \(word)\(n == 1 ? "" : "s")" }

extension String {
    func padding(_ width: Int) -> String { count >= width ? self + " " : self + String(repeating: " ", count: width - count) }
}

/// Human-readable durations for tables: `0.4s`, `45s`, `12m`, `3h`, `2d`. Under ten seconds with a tenth, so a
/// retry due in 400ms does not read as "retry in 0s" (rounded up: it is not due yet).
func humanDuration(nanos: Int64) -> String {
    if nanos > 0 && nanos < 10_000_000_000 {
        let tenths = (nanos + 99_999_999) / 100_000_000
        return tenths % 10 == 0 ? "\(tenths / 10)s" : "\(tenths / 10).\(tenths % 10)s"
    }
    let s = max(0, nanos / 1_000_000_000)
    if s > 999 * 86400 { return ">999d" }
    if s < 120 { return "\(s)s" }
    if s < 7200 { return "\(s / 60)m" }
    if s < 172_800 { return "\(s / 3600)h" }
    return "\(s / 86400)d"
}
