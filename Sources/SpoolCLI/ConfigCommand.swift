import SpoolConfig
import SpoolSystem
import SpoolWire

extension CLI {
    /// The configuration file of `--config FILE`, else `$SPOOL_CONFIG`; nil when neither is given.
    static func configPath(_ args: ParsedArguments, _ ctx: Context) -> String? {
        args.value("--config") ?? ctx.console.environment["SPOOL_CONFIG"].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// Reads and checks a configuration file: a regular file (symlinks followed), at most `TOML.maxBytes`.
    static func loadConfiguration(_ path: String) throws -> Configuration {
        let bytes: [UInt8]
        do {
            bytes = try FileDescriptor.open(path, [.readOnly, .nonBlocking]).closeAfter { (fd) throws(Errno) in
                guard try fd.stat().isRegular else { throw Errno.invalidArgument }
                return try fd.readAll(limit: TOML.maxBytes)
            }
        } catch {
            throw CommandFailure(message: "cannot read configuration \(path): \(error == .invalidArgument ? "not a regular file" : "\(error)")")
        }
        return try Configuration.parse(bytes, file: path)
    }

    static let validateCommand = Command(
        name: "validate", summary: "check a configuration file and print every error",
        description: """
        Reads the configuration file (--config FILE, else $SPOOL_CONFIG) strictly: unknown keys, wrong types,
        bad values and duplicate tables are errors, each printed as FILE:LINE:COLUMN: message. Exits 0 when
        the file is valid, 1 with every error otherwise. docs/configuration.md documents every key.
        """,
        options: [
            .value("--config", "FILE", help: "the configuration file (default $SPOOL_CONFIG)"),
        ],
        environment: [EnvironmentVariable("SPOOL_CONFIG", "the configuration file when --config is not given")],
        run: { args, ctx in
            guard args.positionals.isEmpty else { throw UsageError("unexpected argument \(args.positionals[0])") }
            guard let path = configPath(args, ctx) else { throw UsageError("give --config FILE (or set SPOOL_CONFIG)") }
            do {
                let c = try loadConfiguration(path)
                ctx.console.out("\(logSafe(path)): ok (\(c.routes.count) route(s), queues: \(c.queueNames.isEmpty ? "default" : c.queueNames.joined(separator: ", ")))")
                return 0
            } catch let e as ConfigErrors {
                for error in e.errors { ctx.console.err(logSafe(error.description)) }
                return 1
            }
        })
}
