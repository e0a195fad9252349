import Testing
import SpoolWire
import SpoolSystem
@testable import SpoolCore

@Suite struct JSONTests {
    @Test(arguments: ["{}", "[]", "0", "-0", "1.5e10", "\"\\u00e9\\ud83c\\udfac\"", "{\"a\":[1,{\"b\":null}]}", " true ", "\"日本\""])
    func accepts(_ s: String) throws { _ = try JSONParser.parse(s) }

    @Test(arguments: ["", "{", "[1,]", "{\"a\":1,}", "01", "+1", "1.", ".5", "NaN", "'x'", "\"\\x\"", "\"\\ud800\"", "{\"a\" 1}",
                      "[1] 2", "\"a\nb\"", "tru", "{a:1}", "// c\n{}", "\"\\u12\""])
    func rejects(_ s: String) {
        #expect(throws: JSONError.self) { try JSONParser.parse(s) }
    }

    @Test func rejectsInvalidUTF8AndDeepNesting() {
        #expect(throws: JSONError.self) { try JSONParser.parse([0x22, 0xFF, 0x22]) }
        // Strings without escapes take a fast path when all ASCII; a byte >= 0x80 anywhere, first or last, after
        // any amount of ASCII, must still be validated: lone continuation, overlong, encoded surrogate, cut short.
        for bad: [UInt8] in [[0x80], [0xC0, 0xAF], [0xED, 0xA0, 0x80], [0xE6, 0x97], [0xF4, 0x90, 0x80, 0x80]] {
            for (pre, post) in [("", ""), ("abc", ""), ("", "xyz"), (String(repeating: "a", count: 40), "b")] {
                let bytes = [0x22] + Array(pre.utf8) + bad + Array(post.utf8) + [0x22]
                #expect(throws: JSONError.self, "\(bytes)") { try JSONParser.parse(bytes) }
            }
        }
        for good in ["", "plain ascii ~!", "caf\u{e9}", "\u{65e5}\u{672c}", "\u{1F3AC} end", "a\u{7F}b"] {
            #expect((try? JSONParser.parse(Array(("\"" + good + "\"").utf8))) == .string(good), "\(good)")
        }
        #expect(throws: JSONError.self) { try JSONParser.parse(String(repeating: "[", count: 100) + String(repeating: "]", count: 100)) }
    }

    @Test func writerRoundTrips() throws {
        let v = JSONValue.object([("k\"ey", .string("line\nbreak\u{1}é")), ("n", .number("-12")), ("a", .array([.bool(true), .null]))])
        #expect(try JSONParser.parse(JSONWriter.write(v)) == v)
    }

    @Test func strictInteger() {
        #expect(JSONParser.strictInteger("42") == 42)
        #expect(JSONParser.strictInteger("-7") == -7)
        #expect(JSONParser.strictInteger("1.0") == nil)
        #expect(JSONParser.strictInteger("99999999999999999999") == nil)
    }
}

@Suite struct KeyExtractionTests {
    let x = KeyExtractor(paths: ["movie.project", "project"])

    @Test func envelopeAndFlatShapes() throws {
        #expect(try x.extractJSON(Array(#"{"success":true,"movie":{"project":"WAEE8PohgVwv2teP"}}"#.utf8)).value == "WAEE8PohgVwv2teP")
        #expect(try x.extractJSON(Array(#"{"project":"Gh7JkL9mNb2VcX4z","id":"x"}"#.utf8)).value == "Gh7JkL9mNb2VcX4z")
        #expect(try x.extractJSON(Array(#"{"project":12345}"#.utf8)).value == "12345")
        // The envelope wins over the flat field when both are present.
        #expect(try x.extractJSON(Array(#"{"project":"flat","movie":{"project":"env"}}"#.utf8)).value == "env")
    }

    @Test func failures() {
        #expect(throws: KeyExtractor.Failure.noKey(tried: ["movie.project", "project"])) { try x.extractJSON(Array(#"{"a":1}"#.utf8)) }
        #expect(throws: KeyExtractor.Failure.self) { try x.extractJSON(Array("{not json".utf8)) }
        #expect(throws: KeyExtractor.Failure.self) { try x.extractJSON(Array(#"{"project":1.5}"#.utf8)) }
        #expect(throws: KeyExtractor.Failure.self) { try x.extractJSON(Array(#"{"project":{"a":1}}"#.utf8)) }
        #expect(throws: KeyExtractor.Failure.self) { try x.extractJSON(Array(#"{"project":""}"#.utf8)) }
        // Ambiguous: two values for the same member must not be resolved silently.
        #expect(throws: KeyExtractor.Failure.self) { try x.extractJSON(Array(#"{"project":"a","project":"b"}"#.utf8)) }
    }

    @Test func formEncoded() throws {
        let body = Array("project=Lk3JhG5fDs7AzX9c&status=done&url=https%3A%2F%2Fa&client-data%5BorderId%5D=A-1004".utf8)
        #expect(try x.extract(body: body, contentType: "application/x-www-form-urlencoded; charset=utf-8").value == "Lk3JhG5fDs7AzX9c")
        #expect(try x.extractForm(Array("project=a+b%2Fc".utf8)).value == "a b/c")
        // `curl -d @payload.json` sends JSON labelled as form data: a body starting with a brace is JSON.
        #expect(try x.extract(body: Array(#" {"project":"J"}"#.utf8), contentType: "application/x-www-form-urlencoded").value == "J")
        #expect(throws: KeyExtractor.Failure.malformedBody("invalid JSON: expected member name at byte 1")) {
            try x.extract(body: Array("{x".utf8), contentType: "application/x-www-form-urlencoded")
        }
        // A `%` without two hex digits stays literal (WHATWG application/x-www-form-urlencoded): a stray `%` in a field
        // nobody reads no longer refuses the webhook, and in the key it is part of the key.
        #expect(try x.extractForm(Array("id=0&value=%&project=K".utf8)).value == "K")
        #expect(try x.extractForm(Array("project=%zz".utf8)).value == "%zz")
        #expect(try x.extractForm(Array("project=%4".utf8)).value == "%4")
        #expect(try x.extractForm(Array("project=100%25+%E2%9C%93".utf8)).value == "100% ✓")
        #expect(KeyExtractor.parseForm(Array("a=%%41%4g%".utf8)).map { $0.1 } == [Array("%A%4g%".utf8)])
        #expect(throws: KeyExtractor.Failure.self) { try x.extractForm(Array("project=a&project=b".utf8)) }
    }

    /// Names from the wire compare byte for byte: KELVIN SIGN (U+212A) is canonically equivalent to `K`, and must not
    /// stand in for it (nor make a document with both ambiguous).
    @Test func memberAndFieldNamesCompareByteForByte() throws {
        let x = KeyExtractor(paths: ["Key"])
        #expect(throws: KeyExtractor.Failure.self) { try x.extractJSON(Array(#"{"\u212Aey":"x"}"#.utf8)) }
        #expect(try x.extractJSON(Array(#"{"Key":"a","\u212Aey":"b"}"#.utf8)).value == "a")
        #expect(try x.extractForm(Array("%E2%84%AAey=b&Key=a".utf8)).value == "a")
        #expect(throws: KeyExtractor.Failure.self) { try x.extractForm(Array("%E2%84%AAey=b".utf8)) }
    }
}

@Suite struct ItemMetaParseTests {
    let good = #"{"v":1,"key":"k1","received_at_ns":5,"size":3,"attempts":2,"headers":{"content-type":"text/plain"},"last_error":"boom"}"#

    @Test func readsEveryField() throws {
        let m = try ItemMeta.parse(Array(good.utf8))
        #expect(m.key == "k1" && m.receivedAtNanos == 5 && m.size == 3 && m.attempts == 2 && m.lastError == "boom")
        #expect(m.header("content-type") == "text/plain")
        // What it writes, it reads back.
        #expect(try ItemMeta.parse(m.jsonBytes).jsonBytes == m.jsonBytes)
    }

    @Test func aRepeatedMemberCountsAsAbsent() throws {
        // Two "attempts": neither is trusted, so the required field is missing and the metadata is corrupt.
        let twice = good.replacingOccurrences(of: #""attempts":2"#, with: #""attempts":2,"attempts":0"#)
        #expect(throws: SpoolError.self) { try ItemMeta.parse(Array(twice.utf8)) }
        // A repeated optional member is dropped, the rest still read.
        let errTwice = good.replacingOccurrences(of: #""last_error":"boom""#, with: #""last_error":"a","last_error":"b""#)
        #expect(try ItemMeta.parse(Array(errTwice.utf8)).lastError == nil)
    }

    /// Documents where reading members as they come could differ from parsing the whole tree: both must accept
    /// the same ones and read the same metadata from them.
    @Test func readingMembersAsTheyComeAgreesWithTheTree() throws {
        let cases = [
            good,
            good + " \n",
            good + "x",                                                     // trailing garbage
            good.replacingOccurrences(of: "}", with: ",}"),                 // trailing comma
            good.replacingOccurrences(of: #""v":1"#, with: #""v":1.0"#),   // not a plain integer
            good.replacingOccurrences(of: #""v":1"#, with: #""v":"1""#),   // a string where a number belongs
            good.replacingOccurrences(of: #""size":3"#, with: #""size":03"#),
            good.replacingOccurrences(of: #""size":3"#, with: #""size":-0"#),
            good.replacingOccurrences(of: #""size":3"#, with: #""size":9223372036854775808"#),
            good.replacingOccurrences(of: #""key":"k1""#, with: #""k\u0065y":"k1""#),            // escaped member name
            good.replacingOccurrences(of: #""key":"k1""#, with: #""key":"k1","k\u0065y":"k2""#), // repeated, once escaped
            good.replacingOccurrences(of: #""last_error":"boom""#, with: #""last_error":["boom"]"#),
            good.replacingOccurrences(of: #""last_error":"boom""#, with: #""extra":{"a":[1,{"b":null}]},"last_error":"b\u00e9""#),
            good.replacingOccurrences(of: #""last_error":"boom""#, with: #""last_error":"\ud800""#), // lone surrogate
            good.replacingOccurrences(of: #""headers":{"content-type":"text/plain"}"#, with: #""headers":[1]"#),
            good.replacingOccurrences(of: #""headers":{"content-type":"text/plain"}"#, with: #""headers":{"a":1,"b":"c"}"#),
            #"[1,2]"#, #""v""#, "", "{", "{}", #"{"v":1}"#, " {\"v\":1,\"key\":\"k\",\"received_at_ns\":1,\"size\":0,\"attempts\":0} ",
        ]
        for c in cases {
            let bytes = Array(c.utf8)
            let fast = try? ItemMeta.parse(bytes)
            let tree = try? ItemMeta._parseReference(bytes)
            #expect(fast?.json == tree?.json, "\(c)")
        }
        // Nesting limits are the same too: 64 levels under a member are refused by both.
        let deep = #"{"v":1,"x":"# + String(repeating: "[", count: 64) + String(repeating: "]", count: 64) + "}"
        #expect((try? JSONParser.parse(Array(deep.utf8))) == nil)
        #expect(throws: JSONError.self) { _ = try JSONParser.visitObject(Array(deep.utf8)) { _, p throws(JSONError) in _ = try p.memberValue() } }
        #expect(try ItemMeta.parse(Array(good.utf8)).key == "k1" && (try? ItemMeta.parse(Array((good + "x").utf8))) == nil)
    }

    /// Found by the fuzzer: a `last_attempt_at` in a year Int64 nanoseconds cannot hold trapped (overflow) in every
    /// reader of the item, `spool ls` and the consumers alike. Now the time is unknown and the rest is read.
    @Test func aTimeOutsideInt64NanosecondsIsUnknownNotACrash() throws {
        for time in ["1013-11-29T09:03:03.000Z", "1677-01-01T00:00:00.000Z", "2263-01-01T00:00:00Z", "9999-12-31T23:59:59.999Z"] {
            let doc = good.replacingOccurrences(of: #""last_error":"boom""#, with: #""last_attempt_at":"\#(time)""#)
            let m = try ItemMeta.parse(Array(doc.utf8))
            #expect(m.lastAttemptAtNanos == nil && m.key == "k1", "\(time)")
        }
        #expect(RFC3339.parse("1678-01-01T00:00:00Z") != nil && RFC3339.parse("2262-04-11T23:47:16.854Z") != nil)
        #expect(RFC3339.parse("2262-04-11T23:47:16.855Z") == nil)
    }
}
