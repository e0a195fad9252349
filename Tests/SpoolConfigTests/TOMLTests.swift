import Testing
@testable import SpoolConfig

/// The TOML subset, byte by byte: what it reads, and what it refuses with the line and column.
@Suite struct TOMLTests {
    func parse(_ s: String) throws -> TOMLTable { try TOML.parse(s) }

    func error(_ s: String) -> TOMLError? {
        do { _ = try TOML.parse(s); return nil } catch { return error }
    }

    @Test func tablesArraysOfTablesAndValues() throws {
        let t = try parse("""
            # spool
            listen = "127.0.0.1:8080"   # trailing comment
            max_attempts = 1_000
            negative = -17
            enabled = true
            off = false
            paths = ["movie.project", 'project', ]
            nested = [[1, 2], ["a"]]
            inline = { a = 1, "b c" = "d", e.f = true }

            [[route]]
            path = "/json2video/done"
            queues = ["video",
                      "billing",   # a comment inside an array
                     ]

            [[route]]
            path = "/stripe"

            [queue.video]
            match = ["movie.status=done"]
            [queue."billing"]
            rate = "10/s"
            site.name = "x"
            """)
        #expect(t["listen"]?.value == .string("127.0.0.1:8080"))
        #expect(t["max_attempts"]?.value == .integer(1000))
        #expect(t["negative"]?.value == .integer(-17))
        #expect(t["enabled"]?.value == .bool(true) && t["off"]?.value == .bool(false))
        guard case .array(let paths)? = t["paths"]?.value else { Issue.record("paths"); return }
        #expect(paths.map(\.value) == [.string("movie.project"), .string("project")])
        guard case .table(let inline)? = t["inline"]?.value, case .table(let e)? = inline["e"]?.value else { Issue.record("inline"); return }
        #expect(inline["a"]?.value == .integer(1) && inline["b c"]?.value == .string("d") && e["f"]?.value == .bool(true))
        guard case .array(let routes)? = t["route"]?.value else { Issue.record("routes"); return }
        #expect(routes.count == 2)
        guard case .table(let r0) = routes[0].value, case .array(let qs)? = r0["queues"]?.value else { Issue.record("route 0"); return }
        #expect(qs.map(\.value) == [.string("video"), .string("billing")])
        #expect(routes[0].position == TOMLPosition(line: 11, column: 1))
        guard case .table(let queue)? = t["queue"]?.value, case .table(let billing)? = queue["billing"]?.value else { Issue.record("queue"); return }
        #expect(billing["rate"]?.value == .string("10/s"))
        #expect(billing["rate"]?.position == TOMLPosition(line: 23, column: 8))
        #expect(queue.entries.map(\.key) == ["video", "billing"])
    }

    @Test func stringEscapesAndLiterals() throws {
        let t = try parse(#"a = "tab\there \"q\" \\ \u00e9 \U0001F600 \n"\#nb = 'C:\no\escape'\#nc = "ünïcode""#)
        #expect(t["a"]?.value == .string("tab\there \"q\" \\ é 😀 \n"))
        #expect(t["b"]?.value == .string(#"C:\no\escape"#))
        #expect(t["c"]?.value == .string("ünïcode"))
        // CRLF line ends and a byte order mark.
        let crlf = try TOML.parse([0xEF, 0xBB, 0xBF] + Array("a = 1\r\n[t]\r\nb = 2\r\n".utf8))
        guard case .table(let tt)? = crlf["t"]?.value else { Issue.record("t"); return }
        #expect(crlf["a"]?.value == .integer(1) && tt["b"]?.value == .integer(2))
    }

    /// Every refusal says where, by line and column, and why.
    @Test(arguments: [
        ("a = 1\na = 2", 2, 1, "defined twice"),
        ("[t]\n[t]", 2, 1, "defined twice"),
        ("a = 1\n[a]", 2, 2, "defined twice"),
        ("[[r]]\n[r]", 2, 2, "defined twice"),
        ("r = [1]\n[[r]]", 2, 3, "not an array of tables"),
        ("a.b = 1\n[a]", 2, 1, "defined twice"),
        ("t = {a = 1}\n[t.b]", 2, 2, "inline table"),
        ("t = {a = 1}\nt.b = 2", 2, 1, "cannot be extended"),
        ("a = ", 1, 5, "expected a value"),
        ("a = bare", 1, 5, "must be quoted"),
        ("a = 1.5", 1, 6, "floats"),
        ("a = 1e3", 1, 6, "floats"),
        ("a = inf", 1, 5, "floats"),
        ("a = 0x1F", 1, 5, "hexadecimal"),
        ("a = 1979-05-27", 1, 9, "dates"),
        ("a = 0123", 1, 5, "leading zero"),
        ("a = 1__0", 1, 6, "underscore"),
        ("a = 9223372036854775808", 1, 5, "out of range"),
        ("a = \"open", 1, 10, "unterminated"),
        ("a = \"x\ny\"", 1, 7, "ends on its line"),
        ("a = \"\\q\"", 1, 6, "invalid escape"),
        ("a = \"\\uD800\"", 1, 6, "Unicode scalar"),
        ("a = \"\"\"multi\"\"\"", 1, 5, "multi-line"),
        ("a = [1, 2", 1, 10, "unterminated array"),
        ("a = [1 2]", 1, 8, "expected ',' or ']'"),
        ("a = {b = 1,}", 1, 12, "trailing comma"),
        ("a = {b = 1\n}", 1, 11, "one line"),
        ("a = 1 b = 2", 1, 7, "end of the line"),
        ("[t", 1, 3, "']'"),
        ("[[t]", 1, 4, "']]'"),
        ("= 1", 1, 1, "expected a key"),
        ("a 1", 1, 3, "expected '='"),
        ("a = \"\u{7}\"", 1, 6, "control character"),
        ("a = 1 # \u{1}", 1, 9, "control character"),
        ("a = 1\r", 1, 6, "line feed"),
    ])
    func refusals(input: String, line: Int, column: Int, reason: String) {
        let e = error(input)
        #expect(e?.line == line && e?.column == column && e?.message.contains(reason) == true, "\(input.debugDescription): \(String(describing: e))")
    }

    @Test func invalidUTF8AndLimits() {
        #expect((try? TOML.parse([0x61, 0x3D, 0x22, 0xFF, 0x22])) == nil, "invalid UTF-8 in a basic string")
        #expect((try? TOML.parse([0x61, 0x3D, 0x27, 0xC3, 0x27])) == nil, "a truncated UTF-8 sequence in a literal string")
        let deep = "a = " + String(repeating: "[", count: 40) + String(repeating: "]", count: 40)
        #expect(error(deep)?.message.contains("deeper") == true)
        #expect(error(String(repeating: "#", count: TOML.maxBytes + 1))?.message.contains("larger") == true)
    }

    @Test func keysCompareByteForByte() throws {
        // KELVIN SIGN (U+212A) is canonically equivalent to K: as keys they are different.
        let t = try parse("Key = 1\n\"\u{212A}ey\" = 2")
        #expect(t["Key"]?.value == .integer(1) && t["\u{212A}ey"]?.value == .integer(2) && t.entries.count == 2)
    }
}
