import SpoolCore
import SpoolSystem
import SpoolWire

/// A runtime failure: printed as `error: ...` on stderr, exit 1 (or the given code).
struct CommandFailure: Error {
    let message: String
    var code: Int32 = 1
}

/// One `spool` subcommand.
struct Command: Sendable {
    let name: String
    let summary: String
    let usage: String
    let options: [OptionSpec]
    let run: @Sendable (ParsedArguments, Context) throws -> Int32
}

/// What every command gets: the console and the spool directory it should use.
struct Context: Sendable {
    let console: Console
    let dir: String

    func openSpool(flush: FlushMode = .auto) throws -> Spool {
        do { return try Spool(path: dir, flush: flush) } catch { throw CommandFailure(message: "\(error)") }
    }
}

public enum CLI {
    public static let version = "0.1.0"
    static let maxStdinBytes = 64 * 1024 * 1024

    static let commands: [Command] = operatorCommands + serviceCommands

    static let mainUsage = """
    usage: spool [--dir DIR] COMMAND [ARGS...]

    A webhook-to-queue bridge on a file-backed spool directory.
    DIR defaults to $SPOOL_DIR, else ./spool.

    commands:
    \(commands.map { "  " + $0.name.padding(9) + $0.summary }.joined(separator: "\n"))

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
            if first == "--version" { console.out("spool \(version)"); return 0 }
            if first == "--dir" {
                guard args.count >= 2 else { return usage("--dir needs a value", console: console, text: mainUsage) }
                dir = args[1]; args.removeFirst(2); continue
            }
            if first.hasPrefix("--dir=") { dir = String(first.dropFirst(6)); args.removeFirst(); continue }
            return usage("unknown option \(first)", console: console, text: mainUsage)
        }
        guard let name = args.first else { return usage("missing command", console: console, text: mainUsage) }
        if name == "help" { console.out(mainUsage); return 0 }
        guard let cmd = commands.first(where: { $0.name == name }) else {
            return usage("unknown command '\(name)'", console: console, text: mainUsage)
        }
        let rest = Array(args.dropFirst())
        if rest.contains("--help") || rest.contains("-h") { console.out(cmd.usage); return 0 }
        let parsed: ParsedArguments
        do { parsed = try ParsedArguments.parse(rest, options: cmd.options + [.value("--dir")]) } catch {
            return usage(error.message, console: console, text: cmd.usage)
        }
        if let d = parsed.value("--dir") {
            if dir != nil { return usage("--dir given more than once", console: console, text: cmd.usage) }
            dir = d
        }
        let ctx = Context(console: console, dir: dir ?? console.environment["SPOOL_DIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "./spool")
        do {
            return try cmd.run(parsed, ctx)
        } catch let e as UsageError {
            return usage(e.message, console: console, text: cmd.usage)
        } catch let e as CommandFailure {
            console.err("error: \(e.message)")
            return e.code
        } catch {
            console.err("error: \(error)")
            return 1
        }
    }

    static func usage(_ message: String, console: Console, text: String) -> Int32 {
        console.err("spool: \(message)")
        console.err(text.split(separator: "\n", omittingEmptySubsequences: false).first.map(String.init) ?? "")
        return 64
    }
}

/// The public entry point used by `main.swift`.
public func run(_ arguments: [String]) -> Int32 { CLI.run(arguments) }

extension String {
    func padding(_ width: Int) -> String { count >= width ? self + " " : self + String(repeating: " ", count: width - count) }
}

/// Human-readable durations for tables: `45s`, `12m`, `3h`, `2d`.
func humanDuration(nanos: Int64) -> String {
    let s = max(0, nanos / 1_000_000_000)
    if s > 999 * 86400 { return ">999d" }
    if s < 120 { return "\(s)s" }
    if s < 7200 { return "\(s / 60)m" }
    if s < 172_800 { return "\(s / 3600)h" }
    return "\(s / 86400)d"
}
