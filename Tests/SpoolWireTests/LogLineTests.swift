import Testing
import SpoolWire

/// The log record encodings, byte by byte: one record is one line whatever its values hold, and no value can
/// forge a field (docs/operations.md, "Logs").
@Suite struct LogLineTests {
    let time = "2026-12-08T01:02:03.456Z"

    func text(_ l: LogLine, _ f: LogLine.Format) -> String { String(decoding: l.encoded(f), as: UTF8.self) }

    @Test func logfmtQuotesOnlyWhatNeedsIt() {
        let l = LogLine(time: time, level: .info, component: "serve", message: "request",
                        fields: [("key", "WAEE8PohgVwv2teP"), ("path", "/json2video/done"), ("empty", ""), ("space", "order 7/ü"), ("eq", "a=b")])
        #expect(text(l, .logfmt) == #"ts=2026-12-08T01:02:03.456Z level=info component=serve msg=request key=WAEE8PohgVwv2teP path=/json2video/done empty="" space="order 7/ü" eq="a=b""# + "\n")
    }

    @Test func aValueCannotForgeAFieldOrALine() {
        let hostile = "x level=error msg=\"pwned\"\nts=0 level=error\u{1B}[31m\u{9B}\\"
        let l = LogLine(time: time, level: .warn, component: "consume", message: hostile, fields: [("key", hostile)])
        let logfmt = text(l, .logfmt)
        let quoted = #""x level=error msg=\"pwned\"\nts=0 level=error\u001b[31m\u009b\\""#
        #expect(logfmt == "ts=\(time) level=warn component=consume msg=\(quoted) key=\(quoted)\n")
        #expect(logfmt.utf8.filter { $0 == 0x0A }.count == 1 && !logfmt.utf8.contains(0x1B))
        let json = text(l, .json)
        #expect(json == #"{"ts":"2026-12-08T01:02:03.456Z","level":"warn","component":"consume","msg":"# + quoted + #","key":"# + quoted + "}\n")
    }

    /// The one JSON string writer: C1 characters stay as they are in JSON data and are escaped in log lines.
    @Test func jsonStringsWithAndWithoutC1Escapes() {
        let text = "a\u{85}\u{2028}\"\\\n\u{1}\u{7F}é"
        var plain: [UInt8] = [], log: [UInt8] = []
        appendJSONString(text, to: &plain)
        appendJSONString(text, to: &log, escapingC1: true)
        #expect(String(decoding: plain, as: UTF8.self) == "\"a\u{85}\\u2028\\\"\\\\\\n\\u0001\\u007fé\"")
        #expect(String(decoding: log, as: UTF8.self) == "\"a\\u0085\\u2028\\\"\\\\\\n\\u0001\\u007fé\"")
        #expect(jsonEscaped(text) == String(decoding: plain.dropFirst().dropLast(), as: UTF8.self))
        var fast: [UInt8] = []
        appendJSONString("plain ascii and ü", to: &fast, escapingC1: true)
        #expect(fast == Array("\"plain ascii and ü\"".utf8))
    }

    @Test func levelsFromPrefixesAndByName() {
        #expect(LogLine.classify("error: it broke") == (.error, "it broke"))
        #expect(LogLine.classify("warning: careful") == (.warn, "careful"))
        #expect(LogLine.classify("errors: 0") == (.info, "errors: 0"))
        #expect(LogLine.Level.allCases.map(\.name) == ["debug", "info", "warn", "error"])
        #expect(LogLine.Level(name: "warn") == .warn && LogLine.Level(name: "WARN") == nil && LogLine.Level(name: "warning") == nil)
        #expect(LogLine.Level.debug < .info && LogLine.Level.warn < .error)
    }
}
