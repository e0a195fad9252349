import Testing
import SpoolConfig
import SpoolWire
@testable import SpoolIngress

/// Which queues of a route take a webhook: every condition of a queue must hold; none taking it is `unrouted`.
@Suite struct RouteMatchTests {
    func route(_ queues: [(String, [String])]) throws -> IngressRoute {
        var r = IngressRoute(path: "/in")
        r.queues = try queues.map { name, conditions in
            RouteQueue(name: name, match: try conditions.map { try MatchCondition.parse($0).get() })
        }
        return r
    }

    func queues(_ r: IngressRoute, _ body: String, contentType: String? = "application/json", headers: HTTPHeaders = [:]) -> [String] {
        r.queues(for: Array(body.utf8), contentType: contentType, headers: headers)
    }

    @Test func conditions() throws {
        let r = try route([
            ("done", ["movie.status=done"]),
            ("failed", ["movie.status=error|timeout", "!movie.retry"]),
            ("any", []),
            ("numbers", ["movie.duration=12.5", "movie.final=true", "movie.note=null"]),
            ("prod", ["header:x-env=prod", "movie"]),
        ])
        #expect(queues(r, #"{"movie":{"status":"done"}}"#) == ["done", "any"])
        #expect(queues(r, #"{"movie":{"status":"timeout"}}"#) == ["failed", "any"])
        #expect(queues(r, #"{"movie":{"status":"error","retry":1}}"#) == ["any"])
        #expect(queues(r, #"{"movie":{"duration":12.5,"final":true,"note":null}}"#) == ["any", "numbers"])
        #expect(queues(r, #"{"movie":{}}"#, headers: ["X-Env": "prod"]) == ["any", "prod"])
        #expect(queues(r, #"{"movie":{}}"#, headers: ["X-Env": "staging"]) == ["any"])
        // A member given twice decides nothing (absent); values compare byte for byte, not by canonical equivalence.
        #expect(queues(r, #"{"movie":{"status":"done","status":"done"}}"#) == ["any"])
        let k = try route([("k", ["Key=\u{212A}"])])
        #expect(queues(k, #"{"Key":"K"}"#) == [unroutedQueue])
        #expect(queues(k, #"{"Key":"\u212A"}"#) == ["k"])
    }

    @Test func unroutedFormAndNoQueues() throws {
        let r = try route([("done", ["movie.status=done"])])
        #expect(queues(r, "not json at all") == [unroutedQueue])
        #expect(queues(r, #"{"movie":{"status":"error"}}"#) == [unroutedQueue])
        // Form data: a path's last name is the field.
        #expect(queues(r, "project=P&status=done", contentType: "application/x-www-form-urlencoded") == ["done"])
        // A route without queues feeds the spool's own queue, unconditionally.
        #expect(queues(IngressRoute(path: "/x"), "{}") == [])
    }

    @Test func conditionSyntax() {
        for bad in ["", "=x", "a..b", "!a=b", "header:", "header:=1", "a=", "a=x||y", ".a"] {
            #expect((try? MatchCondition.parse(bad).get()) == nil, "\(bad)")
        }
        #expect((try? MatchCondition.parse("header:X-Env=prod").get())?.subject == .header("x-env"))
    }
}
