import SpoolCore
import SpoolSystem

/// `spool version`, `spool man` and `spool completion`: generated from the same `Command` declarations the parser
/// uses, so a page or a completion never lists an option the parser refuses, or misses one it accepts.
extension CLI {
    static let documentationCommands: [Command] = [versionCommand, manCommand, completionCommand]

    /// `spool VERSION (commit C, spool format 2)`: also `spool --version`.
    static var versionLine: String { "spool \(version) (commit \(BuildInfo.commit), spool format \(Spool.formatVersion))" }

    static let versionCommand = Command(
        name: "version", summary: "print the version, the commit and the spool format",
        description: "Prints 'spool VERSION (commit HASH, spool format N)'; the same as 'spool --version'.",
        options: [.flag("--json", help: #"print {"version":V,"commit":C,"spool_format":N}"#)],
        run: { args, ctx in
            guard args.positionals.isEmpty else { throw UsageError("unexpected argument \(args.positionals[0])") }
            if args.flag("--json") {
                ctx.console.out("{\"version\":\(JSONWriter.quote(version)),\"commit\":\(JSONWriter.quote(BuildInfo.commit)),\"spool_format\":\(Spool.formatVersion)}")
            } else {
                ctx.console.out(versionLine)
            }
            return 0
        })

    static let manCommand = Command(
        name: "man", summary: "print a manual page (roff)",
        synopsis: "[COMMAND]",
        description: """
        Prints the manual page of spool, or of one COMMAND, in roff: 'spool man serve | man -l -'.
        The package installs them as spool(1) and spool-COMMAND(1).
        """,
        options: [],
        run: { args, ctx in
            guard args.positionals.count <= 1 else { throw UsageError("at most one COMMAND") }
            guard let name = args.positionals.first else { ctx.console.out(ManPage.main()); return 0 }
            guard let cmd = commands.first(where: { $0.name == name }) else { throw UsageError("unknown command '\(name)'") }
            ctx.console.out(ManPage.page(for: cmd))
            return 0
        })

    static let completionCommand = Command(
        name: "completion", summary: "print a shell completion script",
        synopsis: "bash|zsh|fish",
        description: """
        Prints a completion script for the shell: commands, options, queue names (from the spool
        directory) and option values that are a fixed set. bash: 'source <(spool completion bash)';
        the package installs all three.
        """,
        options: [],
        run: { args, ctx in
            guard args.positionals.count == 1, let shell = args.positionals.first else { throw UsageError("give bash, zsh or fish") }
            switch shell {
            case "bash": ctx.console.out(Completion.bash())
            case "zsh": ctx.console.out(Completion.zsh())
            case "fish": ctx.console.out(Completion.fish())
            default: throw UsageError("give bash, zsh or fish, not '\(shell)'")
            }
            return 0
        })
}

/// Manual pages in roff (man(7)), from the declarations.
enum ManPage {
    /// Text as roff: backslashes escaped, a line that would start with a control character protected.
    static func text(_ s: String) -> String {
        s.split(separator: "\n", omittingEmptySubsequences: false).map { line -> String in
            let l = String(line).replacingOccurrences("\\", "\\e").replacingOccurrences("-", "\\-")
            return l.hasPrefix(".") || l.hasPrefix("'") ? "\\&" + l : l
        }.joined(separator: "\n")
    }

    static func header(_ name: String) -> String {
        ".TH \(name.uppercased().replacingOccurrences("-", "\\-")) 1 \"\" \"spool \(CLI.version)\" \"spool manual\""
    }

    static func main() -> String {
        var out = [header("spool"), ".SH NAME", "spool \\- a webhook\\-to\\-queue bridge on a file\\-backed spool directory",
                   ".SH SYNOPSIS", ".B spool", "[\\fB\\-\\-dir\\fR \\fIDIR\\fR] \\fICOMMAND\\fR [\\fIARGS\\fR...]",
                   ".SH DESCRIPTION",
                   text("spool serve receives webhooks and answers 2xx only once the exact bytes are durably stored in the spool directory under their idempotency key; spool consume workers claim items and hand them to a command, an HTTP endpoint or NATS JetStream, with retries and dead letters. DIR defaults to $SPOOL_DIR, else ./spool."),
                   ".SH COMMANDS"]
        for c in CLI.commands { out += [".TP", "\\fBspool \(text(c.name))\\fR", text(c.summary) + " (spool\\-\(text(c.name))(1))."] }
        out += [".SH EXIT STATUS", "0 success; 1 a runtime failure (the message starts with \\fBerror:\\fR); 3 nothing to do (\\fBconsume \\-\\-once\\fR); 64 a usage error.",
                ".SH SEE ALSO", CLI.commands.map { "\\fBspool\\-\(text($0.name))\\fR(1)" }.joined(separator: ", ")]
        return out.joined(separator: "\n")
    }

    static func page(for c: Command) -> String {
        var out = [header("spool-" + c.name), ".SH NAME", "spool\\-\(text(c.name)) \\- \(text(c.summary))",
                   ".SH SYNOPSIS", ".B spool \(text(c.name))", "[\\fIOPTIONS\\fR]" + (c.synopsis.isEmpty ? "" : " " + text(c.synopsis)),
                   ".SH DESCRIPTION"]
        out += paragraphs(c.description)
        for group in c.allGroups where !group.options.isEmpty {
            out.append(group.title == "options" ? ".SH OPTIONS" : ".SS \(text(group.title.prefix(1).uppercased() + group.title.dropFirst()))")
            if group.title != "options" && out.last?.hasPrefix(".SS") == true && !out.contains(".SH OPTIONS") {
                out.insert(".SH OPTIONS", at: out.count - 1)
            }
            for o in group.options {
                out.append(".TP")
                out.append("\\fB\(text(o.name))\\fR" + (o.valueName.isEmpty ? "" : " \\fI\(text(o.valueName))\\fR"))
                var body = o.help.split(separator: "\n").joined(separator: " ")
                if let d = o.defaultValue { body += " (default " + d.split(separator: "\n").joined(separator: " ") + ")" }
                out.append(text(body))
            }
        }
        out += [".TP", "\\fB\\-h\\fR, \\fB\\-\\-help\\fR", "print the help of this command", ".SH ENVIRONMENT"]
        for v in c.allEnvironment { out += [".TP", "\\fB\(text(v.name))\\fR", text(v.help)] }
        if !c.examples.isEmpty {
            out.append(".SH EXAMPLES")
            for e in c.examples { out += [".TP", "\\fB\(text(e.command))\\fR", text(e.what)] }
        }
        out += [".SH SEE ALSO", "\\fBspool\\fR(1)"]
        return out.joined(separator: "\n")
    }

    /// A description's lines as roff: blank lines separate paragraphs; the rest is filled.
    static func paragraphs(_ s: String) -> [String] {
        s.split(separator: "\n", omittingEmptySubsequences: false).map { $0.isEmpty ? ".PP" : text(String($0)) }
    }
}

/// Shell completion scripts, from the declarations.
enum Completion {
    /// The values an option takes when they are a fixed set: a value name such as `done|failed`.
    static func choices(_ o: Option) -> [String]? {
        guard o.valueName.contains("|") else { return nil }
        let parts = o.valueName.split(separator: "|").map(String.init)
        guard parts.allSatisfy({ !$0.isEmpty && $0.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x2D || ($0 >= 0x30 && $0 <= 0x39) } }) else { return nil }
        return parts
    }

    enum ValueKind { case none, choices([String]), file, directory, queue, anything }

    static func kind(_ o: Option) -> ValueKind {
        if o.kind == .flag { return .none }
        if let c = choices(o) { return .choices(c) }
        if o.name == "--queue" { return .queue }
        if o.valueName == "DIR" { return .directory }
        if o.valueName.contains("FILE") { return .file }
        return .anything
    }

    /// The queues of the spool directory (`$SPOOL_DIR` or ./spool, or the --dir on the line) at completion time.
    static let bashQueues = #"local d=${SPOOL_DIR:-./spool}; local j; for ((j=1; j<COMP_CWORD; j++)); do [ "${COMP_WORDS[j]}" = --dir ] && d=${COMP_WORDS[j+1]}; done; COMPREPLY=($(compgen -W "default $(ls "$d/queues" 2>/dev/null)" -- "$cur"))"#

    static func bash() -> String {
        let names = CLI.commands.map(\.name).joined(separator: " ")
        var s = """
        # bash completion for spool, generated by 'spool completion bash' from its option declarations.
        _spool() {
            local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} cmd= i=1
            while [ $i -lt $COMP_CWORD ]; do
                case ${COMP_WORDS[i]} in
                    --dir) i=$((i + 2)); continue ;;
                    -*) ;;
                    *) cmd=${COMP_WORDS[i]}; break ;;
                esac
                i=$((i + 1))
            done
            if [ "$prev" = --dir ]; then COMPREPLY=($(compgen -d -- "$cur")); return; fi
            if [ -z "$cmd" ]; then COMPREPLY=($(compgen -W "\(names) --dir --help --version" -- "$cur")); return; fi
            case $cmd in

        """
        for c in CLI.commands {
            s += "        \(c.name))\n            case $prev in\n"
            for o in c.options {
                switch kind(o) {
                case .none: continue
                case .choices(let v): s += "                \(o.name)) COMPREPLY=($(compgen -W \"\(v.joined(separator: " "))\" -- \"$cur\")); return ;;\n"
                case .file: s += "                \(o.name)) COMPREPLY=($(compgen -f -- \"$cur\")); return ;;\n"
                case .directory: s += "                \(o.name)) COMPREPLY=($(compgen -d -- \"$cur\")); return ;;\n"
                case .queue: s += "                \(o.name)) \(bashQueues); return ;;\n"
                case .anything: s += "                \(o.name)) COMPREPLY=(); return ;;\n"
                }
            }
            let opts = (c.options.map(\.name) + ["--help"]).joined(separator: " ")
            s += "            esac\n            COMPREPLY=($(compgen -W \"\(opts)\" -- \"$cur\")) ;;\n"
        }
        s += "    esac\n}\ncomplete -F _spool spool"
        return s
    }

    /// zsh runs the bash function through its bashcompinit layer: one script, the same behaviour.
    static func zsh() -> String {
        "#compdef spool\n# zsh completion for spool, generated by 'spool completion zsh' (the bash completion through bashcompinit).\n"
            + "autoload -U +X bashcompinit && bashcompinit\n" + bash()
    }

    static func fish() -> String {
        func q(_ s: String) -> String { "'" + s.replacingOccurrences("\\", "\\\\").replacingOccurrences("'", "\\'") + "'" }
        var lines = ["# fish completion for spool, generated by 'spool completion fish' from its option declarations.",
                     "complete -c spool -f"]
        for c in CLI.commands { lines.append("complete -c spool -n __fish_use_subcommand -a \(c.name) -d \(q(c.summary))") }
        for c in CLI.commands {
            for o in c.options {
                var l = "complete -c spool -n '__fish_seen_subcommand_from \(c.name)' -l \(o.name.dropFirst(2))"
                switch kind(o) {
                case .none: break
                case .choices(let v): l += " -x -a \(q(v.joined(separator: " ")))"
                case .file: l += " -r -F"
                case .directory: l += " -x -a '(__fish_complete_directories)'"
                case .queue: l += " -x -a '(printf \"%s\\n\" default; ls (set -q SPOOL_DIR; and echo $SPOOL_DIR; or echo ./spool)/queues 2>/dev/null)'"
                case .anything: l += " -x"
                }
                l += " -d " + q(o.help.split(separator: "\n").first.map(String.init) ?? "")
                lines.append(l)
            }
        }
        return lines.joined(separator: "\n")
    }
}

extension String {
    /// Every `target` character replaced by `replacement`.
    func replacingOccurrences(_ target: Character, _ replacement: String) -> String {
        split(separator: target, omittingEmptySubsequences: false).joined(separator: replacement)
    }
}
