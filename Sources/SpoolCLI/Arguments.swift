import SpoolSystem
import SpoolWire

/// A usage error: bad flags or arguments. Printed to stderr with the command's usage; exit 64 (EX_USAGE).
public struct UsageError: Error, Equatable, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
}

/// One option a command accepts, declared once: the parser reads its name and kind, `--help` prints all of it.
struct Option: Sendable {
    enum Kind: Sendable { case flag, value, repeated }
    let name: String
    let kind: Kind
    /// What the value is called in help (`N`, `FILE`, `HOST:PORT`); empty for flags.
    let valueName: String
    /// Shown in help as `(default ...)` after the help text.
    let defaultValue: String?
    /// One or more lines (separated by newlines).
    let help: String

    static func flag(_ name: String, help: String) -> Option {
        Option(name: name, kind: .flag, valueName: "", defaultValue: nil, help: help)
    }
    static func value(_ name: String, _ valueName: String, default defaultValue: String? = nil, help: String) -> Option {
        Option(name: name, kind: .value, valueName: valueName, defaultValue: defaultValue, help: help)
    }
    /// An option that may be given several times; every value is kept, in order.
    static func repeated(_ name: String, _ valueName: String, default defaultValue: String? = nil, help: String) -> Option {
        Option(name: name, kind: .repeated, valueName: valueName, defaultValue: defaultValue, help: help)
    }

    /// `--name VALUE` as help and usage lines show it.
    var label: String { valueName.isEmpty ? name : name + " " + valueName }
}

/// The result of parsing one command's arguments. Strict: unknown options, missing values and repeated
/// single-valued options are usage errors; `--` ends the options; `-` is a positional (stdin).
struct ParsedArguments: Sendable {
    var values: [String: [String]] = [:]
    var flags: Set<String> = []
    var positionals: [String] = []
    /// The declared option names: reading any other is a programming error (caught in debug builds and tests).
    var declared: Set<String> = []

    func flag(_ n: String) -> Bool { assertDeclared(n); return flags.contains(n) }
    func value(_ n: String) -> String? { assertDeclared(n); return values[n]?.last }
    func all(_ n: String) -> [String] { assertDeclared(n); return values[n] ?? [] }
    private func assertDeclared(_ n: String) { assert(declared.contains(n), "option \(n) is read but not declared") }

    static func parse(_ args: [String], options: [Option]) throws(UsageError) -> ParsedArguments {
        var out = ParsedArguments()
        var byName: [String: Option] = [:]
        for o in options { byName[o.name] = o }
        out.declared = Set(byName.keys)
        var i = 0
        var onlyPositionals = false
        while i < args.count {
            let a = args[i]
            i += 1
            if onlyPositionals || a == "-" || !a.hasPrefix("-") { out.positionals.append(a); continue }
            if a == "--" { onlyPositionals = true; continue }
            var name = a
            var inline: String? = nil
            if let eq = a.firstIndex(of: "="), a.hasPrefix("--") {
                name = String(a[..<eq])
                inline = String(a[a.index(after: eq)...])
            }
            guard let spec = byName[name] else { throw UsageError("unknown option \(name)") }
            switch spec.kind {
            case .flag:
                if inline != nil { throw UsageError("\(name) takes no value") }
                out.flags.insert(name)
            case .value, .repeated:
                let v: String
                if let inline { v = inline } else {
                    guard i < args.count else { throw UsageError("\(name) needs a value") }
                    v = args[i]
                    i += 1
                }
                if spec.kind == .value, out.values[name] != nil { throw UsageError("\(name) given more than once") }
                out.values[name, default: []].append(v)
            }
        }
        return out
    }
}

/// Strict number and duration parsing for the command line (no signs, no spaces, overflow-checked).
enum Parse {
    static func unsigned(_ s: String, name: String, max: Int = Int.max) throws(UsageError) -> Int {
        guard !s.isEmpty, s.utf8.count <= 19 else { throw UsageError("\(name): expected a whole number, got '\(s)'") }
        var v = 0
        for c in s.utf8 {
            guard c >= 0x30 && c <= 0x39 else { throw UsageError("\(name): expected a whole number, got '\(s)'") }
            let (m, o1) = v.multipliedReportingOverflow(by: 10)
            let (a, o2) = m.addingReportingOverflow(Int(c - 0x30))
            if o1 || o2 { throw UsageError("\(name): number too large") }
            v = a
        }
        guard v <= max else { throw UsageError("\(name): at most \(max)") }
        return v
    }

    /// A whole number from the environment, parsed as strictly as one from the command line. Unset or empty
    /// is `nil` (as for every `SPOOL_*` variable); anything else outside `range` is a usage error naming the
    /// variable and the range, never silently ignored.
    static func environment(_ env: [String: String], _ name: String, in range: ClosedRange<Int>) throws(UsageError) -> Int? {
        guard let v = env[name], !v.isEmpty else { return nil }
        guard let n = try? unsigned(v, name: name, max: range.upperBound), range.contains(n) else {
            throw UsageError("\(name) must be a whole number from \(range.lowerBound) to \(range.upperBound), got '\(logSafe(v))'")
        }
        return n
    }

    /// `250ms`, `30s`, `15m`, `24h`, `7d`, or several of them in decreasing units (`1h30m`, `2m30s`), or `0`, into
    /// nanoseconds. Whole numbers only (`1.5h` is refused, with the way to write it).
    static func duration(_ s: String, name: String) throws(UsageError) -> Int64 {
        if s == "0" { return 0 }
        let units: [(String, Int64)] = [("d", 86_400_000_000_000), ("h", 3_600_000_000_000), ("m", 60_000_000_000), ("s", 1_000_000_000), ("ms", 1_000_000)]
        let bytes = Array(s.utf8)
        var i = 0, total: Int64 = 0, lastUnit = -1
        func bad() -> UsageError {
            if s.contains(".") { return UsageError("\(name): whole numbers only: write 1.5h as 1h30m, got '\(logSafe(s))'") }
            return UsageError("\(name): expected a duration like 250ms, 30s, 15m, 24h, 7d or 1h30m, got '\(logSafe(s))'")
        }
        while i < bytes.count {
            let start = i
            while i < bytes.count, bytes[i] >= 0x30 && bytes[i] <= 0x39 { i += 1 }
            guard i > start, i - start <= 12, let n = Int64(String(decoding: bytes[start..<i], as: UTF8.self)) else { throw bad() }
            let rest = bytes[i...]
            // "ms" before "m": the longest unit that matches.
            guard let u = [4, 0, 1, 2, 3].first(where: { rest.starts(with: Array(units[$0].0.utf8)) }) else { throw bad() }
            guard u > lastUnit else { throw bad() }  // each unit once, largest first
            lastUnit = u
            i += units[u].0.utf8.count
            let (v, o1) = n.multipliedReportingOverflow(by: units[u].1)
            let (t, o2) = total.addingReportingOverflow(v)
            guard !o1 && !o2 else { throw UsageError("\(name): duration too large") }
            total = t
        }
        guard lastUnit >= 0 else { throw bad() }
        return total
    }

    /// A point in time: RFC 3339 (`2026-12-07T10:00:00Z`, with an offset or fraction), or a duration meaning that
    /// long before `now` (`2h`).
    static func pointInTime(_ s: String, name: String, now: Int64) throws(UsageError) -> Int64 {
        if let t = RFC3339.parse(s) { return t }
        guard let d = try? duration(s, name: name) else {
            throw UsageError("\(name): expected an RFC 3339 time (2026-12-07T10:00:00Z) or a duration meaning that long ago (2h), got '\(logSafe(s))'")
        }
        return now - d
    }
}
