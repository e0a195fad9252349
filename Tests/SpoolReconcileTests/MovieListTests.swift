import SpoolCore
import SpoolReconcile
import SpoolWire
import SpoolSystem
import Testing

/// The list response parser: strict shape, and each movie object passed on byte for byte.
@Suite struct MovieListTests {
    static let movieA = #"{ "success" : true,"status":"done","project":"WAEE8PohgVwv2teP","url":"https:\/\/x\/a.mp4","ended_at":"2026-05-12T07:44:57.108Z","client-data":{"orderId":"A-1","n":12.50,"deep":{"tier":"gold"}},"message":"caf\u00e9 \ud83d\ude00 ü","json":{"exports":[{"destinations":[{"type":"webhook","endpoint":"https://hooks.example/j2v"}]}]}}"#
    static let movieB = "{\"project\":\"Qx9LmT2vBn7RzK4p\",\"status\":\"running\",\"client-data\":{}}"

    func body(_ movies: [String], hasNext: String = "false", token: String = "null", extra: String = "") -> [UInt8] {
        Array("{\"success\":true,\"from\":\"x\",\"count\":\(movies.count),\"has_next\":\(hasNext),\"next_token\":\(token),\n \"movies\": [ \(movies.joined(separator: " ,\n\t")) ]\(extra),\"remaining_quota\":{\"time\":1}}".utf8)
    }

    @Test func eachMovieIsItsExactSourceBytes() throws {
        let page = try MovieListPage.parse(body([Self.movieA, Self.movieB], hasNext: "true", token: "\"tok/+1\""))
        #expect(page.movies.count == 2)
        #expect(page.movies[0].raw == Array(Self.movieA.utf8))
        #expect(page.movies[1].raw == Array(Self.movieB.utf8))
        #expect(page.movies[0].project == "WAEE8PohgVwv2teP" && page.movies[0].status == "done" && page.movies[0].isFinal)
        #expect(page.movies[0].endedAtNanos == RFC3339.parse("2026-05-12T07:44:57.108Z"))
        #expect(!page.movies[1].isFinal && page.movies[1].endedAtNanos == nil)
        #expect(page.hasNext && page.nextToken == "tok/+1")
        #expect(page.movies[0].webhookPayload == Array(("{\"success\":true,\"movie\":" + Self.movieA + "}").utf8))
        // The payload is valid JSON whose movie is the same value as the source's.
        let reparsed = try JSONParser.parse(page.movies[0].webhookPayload)
        #expect(reparsed["movie"] == (try JSONParser.parse(Self.movieA)))
    }

    @Test func everyStatusAndAnEmptyLastPage() throws {
        let statuses = ["pending", "running", "done", "error", "timeout"]
        let movies = statuses.enumerated().map { "{\"project\":\"p\($0.offset)\",\"status\":\"\($0.element)\"}" }
        let page = try MovieListPage.parse(body(movies))
        #expect(page.movies.map(\.isFinal) == [false, false, true, true, true])
        #expect(!page.hasNext && page.nextToken == nil)
        #expect(try MovieListPage.parse(body([])).movies.isEmpty)
    }

    @Test func everyDeviationFromTheDocumentedShapeIsMalformed() {
        let bad: [[UInt8]] = [
            Array("".utf8), Array("[]".utf8), Array("{\"success\":true}".utf8),
            Array("{\"success\":false,\"movies\":[]}".utf8),
            Array("{\"success\":true,\"movies\":{}}".utf8),
            Array("{\"success\":true,\"movies\":[],\"movies\":[]}".utf8),
            Array("{\"success\":true,\"movies\":[1]}".utf8),
            Array("{\"success\":true,\"movies\":[{\"status\":\"done\"}]}".utf8),
            Array("{\"success\":true,\"movies\":[{\"project\":\"\",\"status\":\"done\"}]}".utf8),
            Array("{\"success\":true,\"movies\":[{\"project\":\"a/b\\u0000\",\"status\":\"done\"}]}".utf8),
            Array("{\"success\":true,\"movies\":[{\"project\":\"ab\",\"status\":3}]}".utf8),
            Array("{\"success\":true,\"movies\":[{\"project\":\"ab\",\"project\":\"cd\",\"status\":\"done\"}]}".utf8),
            Array("{\"success\":true,\"movies\":[],\"has_next\":true}".utf8),
            Array("{\"success\":true,\"movies\":[],\"has_next\":true,\"next_token\":\"\"}".utf8),
            Array("{\"success\":true,\"movies\":[],\"has_next\":\"yes\"}".utf8),
            Array("{\"success\":true,\"movies\":[],\"next_token\":5}".utf8),
            Array("{\"success\":true,\"movies\":[,]}".utf8),
            Array("{\"success\":true,\"movies\":[]} x".utf8),
            Array("{\"success\":true,\"movies\":[{\"project\":\"ab\",\"status\":\"done\",}]}".utf8),
            body([Self.movieA]).dropLast(1).map { $0 },
        ]
        for b in bad {
            #expect(throws: ReconcileError.self, "\(String(decoding: b, as: UTF8.self))") { try MovieListPage.parse(b) }
            if let e = try? MovieListPage.parse(b) { Issue.record("accepted \(e)") }
        }
        do { _ = try MovieListPage.parse(Array("{\"success\":true}".utf8)) } catch { #expect(error.kind == .malformed) }
    }

    /// The ranges agree with the tree parser on many generated documents: the element's bytes parse to the value.
    @Test func rangesAgreeWithTheTreeParserOnGeneratedDocuments() throws {
        var rng = SplitMix(seed: 13)
        for _ in 0..<300 {
            let n = Int(rng.next() % 6)
            var movies: [String] = []
            for i in 0..<n {
                let ws = [" ", "", "\n", "\t "][Int(rng.next() % 4)]
                movies.append("{\(ws)\"project\"\(ws):\(ws)\"k\(i)-\(rng.next() % 1000)\",\"status\":\"done\",\"x\":[\(rng.next() % 50),{\"y\":\"\\\"]}\"}],\"z\":null\(ws)}")
            }
            let b = body(movies)
            let page = try MovieListPage.parse(b)
            #expect(page.movies.map { String(decoding: $0.raw, as: UTF8.self) } == movies)
            let tree = try JSONParser.parse(b)
            guard case .array(let values)? = tree["movies"] else { Issue.record("no movies"); continue }
            #expect(values == page.movies.map(\.value))
        }
    }

    /// Every prefix of a valid page is refused; every one-byte change either is refused or keeps the invariants
    /// the fuzzer checks (the kept bytes of each movie parse to the value the tree parser sees).
    @Test func everyTruncationIsRefusedAndEveryByteFlipKeepsTheInvariants() throws {
        let full = body([Self.movieA, Self.movieB], hasNext: "true", token: "\"t\"")
        for n in 0..<full.count {
            #expect(throws: ReconcileError.self) { try MovieListPage.parse(Array(full[..<n])) }
        }
        var rng = SplitMix(seed: 7)
        for i in 0..<full.count {
            for _ in 0..<3 {
                var b = full
                b[i] = UInt8(truncatingIfNeeded: rng.next())
                guard let page = try? MovieListPage.parse(b) else { continue }
                let tree = try JSONParser.parse(b)
                guard case .array(let values)? = tree["movies"] else { Issue.record("accepted without movies"); continue }
                #expect(values == page.movies.map(\.value))
                for m in page.movies { #expect(try JSONParser.parse(m.raw) == m.value) }
            }
        }
    }

    @Test func filtersMatchWebhookAndClientData() throws {
        let page = try MovieListPage.parse(body([Self.movieA, Self.movieB]))
        let a = page.movies[0], b = page.movies[1]
        #expect(MovieFilter(webhook: "https://hooks.example/j2v").matches(a))
        #expect(!MovieFilter(webhook: "https://hooks.example/other").matches(a))
        #expect(!MovieFilter(webhook: "https://hooks.example/j2v").matches(b))
        let term = try #require(MovieFilter.clientDataTerm("deep.tier=gold"))
        #expect(MovieFilter(clientData: [term]).matches(a) && !MovieFilter(clientData: [term]).matches(b))
        #expect(MovieFilter(clientData: [MovieFilter.clientDataTerm("n=12.50")!]).matches(a))
        #expect(!MovieFilter(clientData: [MovieFilter.clientDataTerm("orderId=A-2")!]).matches(a))
        #expect(MovieFilter.clientDataTerm("noequals") == nil && MovieFilter.clientDataTerm(".a=b") == nil)
        // The original JSON as a string holding JSON.
        let s = try MovieListPage.parse(body(["{\"project\":\"ab\",\"status\":\"done\",\"json\":\"{\\\"exports\\\":[{\\\"destinations\\\":[{\\\"type\\\":\\\"webhook\\\",\\\"endpoint\\\":\\\"https://h/x\\\"}]}]}\"}"]))
        #expect(MovieFilter(webhook: "https://h/x").matches(s.movies[0]))
    }
}

struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
