/// One log record of a long-running command, and its encodings (docs/operations.md, "Logs"). Pure, so that it is
/// tested byte by byte: whatever a key, a header or a handler's error holds, one record is one line, and no value
/// can forge a field (a value is written bare only when it is a plain word, else quoted with escapes).
public struct LogLine: Sendable, Equatable {
    public enum Format: String, Sendable, CaseIterable {
        /// `ts=... level=info component=serve msg="..." key=value`: https://brandur.org/logfmt, as Loki, Vector
        /// and `hl` read it.
        case logfmt
        /// One JSON object a line: `{"ts":"...","level":"info","component":"serve","msg":"...","key":"value"}`.
        case json
    }

    public enum Level: Int, Sendable, Comparable, CaseIterable {
        case debug, info, warn, error
        public var name: String { ["debug", "info", "warn", "error"][rawValue] }
        public init?(name: String) {
            guard let l = Level.allCases.first(where: { $0.name == name }) else { return nil }
            self = l
        }
        public static func < (a: Level, b: Level) -> Bool { a.rawValue < b.rawValue }
    }

    /// RFC 3339 with milliseconds, UTC.
    public var time: String
    public var level: Level
    public var component: String
    public var message: String
    /// Further fields, in order; names are ours (`[a-z_]+`), values anything.
    public var fields: [(String, String)]

    public init(time: String, level: Level, component: String, message: String, fields: [(String, String)] = []) {
        self.time = time; self.level = level; self.component = component; self.message = message; self.fields = fields
    }

    public static func == (a: LogLine, b: LogLine) -> Bool {
        a.time == b.time && a.level == b.level && a.component == b.component && a.message == b.message
            && a.fields.map(\.0) == b.fields.map(\.0) && a.fields.map(\.1) == b.fields.map(\.1)
    }

    /// The level a free-text message carries by its prefix: `error: ` and `warning: ` (the prefix is dropped from
    /// the message); anything else is `info`.
    public static func classify(_ text: String) -> (Level, String) {
        if text.hasPrefix("error: ") { return (.error, String(text.dropFirst(7))) }
        if text.hasPrefix("warning: ") { return (.warn, String(text.dropFirst(9))) }
        return (.info, text)
    }

    /// The record as one line, with its LF.
    public func encoded(_ format: Format) -> [UInt8] {
        var all: [(String, String)] = [("ts", time), ("level", level.name), ("component", component), ("msg", message)]
        all += fields
        var out: [UInt8] = []
        out.reserveCapacity(64 + message.utf8.count + fields.reduce(0) { $0 + $1.0.utf8.count + $1.1.utf8.count + 4 })
        switch format {
        case .logfmt:
            for (i, (k, v)) in all.enumerated() {
                if i > 0 { out.append(0x20) }
                out.append(contentsOf: k.utf8)
                out.append(0x3D)
                LogLine.appendLogfmtValue(v, to: &out)
            }
        case .json:
            out.append(0x7B)
            for (i, (k, v)) in all.enumerated() {
                if i > 0 { out.append(0x2C) }
                LogLine.appendQuoted(k, to: &out)
                out.append(0x3A)
                LogLine.appendQuoted(v, to: &out)
            }
            out.append(0x7D)
        }
        out.append(0x0A)
        return out
    }

    /// A logfmt value: bare when it is non-empty printable ASCII without space, `"`, `=` or `\`; otherwise quoted.
    static func appendLogfmtValue(_ v: String, to out: inout [UInt8]) {
        let bare = !v.isEmpty && v.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F && $0 != 0x22 && $0 != 0x3D && $0 != 0x5C }
        if bare { out.append(contentsOf: v.utf8); return }
        appendQuoted(v, to: &out)
    }

    /// A quoted string, valid in logfmt and JSON alike: `\"`, `\\`, `\n`, `\r`, `\t`, and `\u00XX` for other
    /// control characters (C0, DEL, C1) and the two JavaScript line terminators, so that the line stays one line
    /// and a reader's terminal sees no escape sequence.
    static func appendQuoted(_ v: String, to out: inout [UInt8]) { appendJSONString(v, to: &out, escapingC1: true) }
}
