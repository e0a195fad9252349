import Testing
@testable import SpoolConfig

@Suite struct ConfigurationTests {
    static let example = """
        listen = "127.0.0.1:8080"

        [[route]]
        path = "/json2video/done"
        key = ["movie.project", "project"]
        token_file = "/etc/spool/token"
        queues = ["video", "billing", "alerts"]

        [[route]]
        path = "/stripe"
        key_header = "stripe-event-id"
        verify = "stripe"
        secret_file = "/etc/spool/stripe-secret"
        tolerance = "5m"
        queues = ["billing"]

        [queue.video]
        match = ["movie.status=done"]
        exec = "./download.sh"
        concurrency = 4

        [queue.billing]
        post = "https://billing.internal/hooks"
        rate = "10/s"
        max_attempts = 20
        backoff = "500ms"
        max_backoff = "1h"

        [queue.alerts]
        match = ["movie.status=error|timeout", "!movie.retry", "header:x-env=prod"]
        delay = "30s"
        """

    @Test func theDocumentedExample() throws {
        let c = try Configuration.parse(Array(Self.example.utf8), file: "spool.toml")
        #expect(c.listen == "127.0.0.1:8080")
        #expect(c.routes.map(\.path) == ["/json2video/done", "/stripe"])
        #expect(c.routes[0].keyPaths == ["movie.project", "project"] && c.routes[0].queues == ["video", "billing", "alerts"])
        #expect(c.routes[1].keyHeader == "stripe-event-id" && c.routes[1].verify == "stripe" && c.routes[1].toleranceSeconds == 300)
        #expect(c.queueNames == ["video", "billing", "alerts"])
        #expect(c.queue("video")?.exec == "./download.sh" && c.queue("video")?.concurrency == 4)
        #expect(c.queue("billing")?.rate == "10/s" && c.queue("billing")?.maxAttempts == 20 && c.queue("billing")?.backoff == "500ms")
        let alerts = try #require(c.queue("alerts"))
        #expect(alerts.match == [
            MatchCondition(subject: .json(["movie", "status"]), test: .equals(["error", "timeout"]), text: "movie.status=error|timeout"),
            MatchCondition(subject: .json(["movie", "retry"]), test: .absent, text: "!movie.retry"),
            MatchCondition(subject: .header("x-env"), test: .equals(["prod"]), text: "header:x-env=prod"),
        ])
        #expect(alerts.delay == "30s")
    }

    @Test func aRouteWithoutQueuesFeedsDefault() throws {
        let c = try Configuration.parse(Array("[[route]]\npath = \"/in\"\n".utf8), file: "f")
        #expect(c.routes[0].queues == ["default"] && c.routes[0].keyPaths == nil)
    }

    /// Every error of the file, each with FILE:LINE:COLUMN.
    @Test func everyErrorWithItsPlace() {
        let text = """
            listen = 8080
            colour = "blue"
            [[route]]
            path = "no-slash"
            key = ["a..b"]
            key_header = "x-id"
            verify = "sha1"
            queues = ["Video", "ok", "ok"]
            [[route]]
            queues = []
            [queue.video]
            match = ["=x", "!a=b", "header:=1"]
            exec = "a"
            post = "b"
            concurrency = 0
            max_attempts = "3"
            rate = "fast"
            delay = "soon"
            extra = true
            [queue."Bad Name"]
            """
        do {
            _ = try Configuration.parse(Array(text.utf8), file: "spool.toml")
            Issue.record("accepted")
        } catch {
            let lines = error.errors.map(\.description)
            let expected = [
                "spool.toml:2:1: unknown key 'colour'",
                "spool.toml:1:10: 'listen' must be a string, not an integer",
                "spool.toml:4:8: 'path' must start with '/'",
                "spool.toml:6:14: a route takes 'key' or 'key_header', not both",
                "spool.toml:5:8: key path 'a..b'",
                "spool.toml:7:10: 'verify' must be standard-webhooks, github or stripe",
                "spool.toml:7:10: 'verify' needs 'secret_file'",
                "spool.toml:8:11: queue name 'Video'",
                "spool.toml:8:26: queue 'ok' is named twice",
                "spool.toml:9:1: a [[route]] needs a 'path'",
                "spool.toml:10:10: 'queues' must name at least one queue",
                "spool.toml:19:1: unknown key 'extra' in [queue.video]",
                "spool.toml:12:10: match condition '=x'",
                "spool.toml:12:16: match condition '!a=b'",
                "spool.toml:12:24: match condition 'header:=1'",
                "spool.toml:14:8: a queue takes 'exec' or 'post', not both",
                "spool.toml:15:15: 'concurrency' must be between 1 and 1024",
                "spool.toml:16:16: 'max_attempts' must be an integer, not a string",
                "spool.toml:18:9: 'delay' must be a duration",
                "spool.toml:17:8: 'rate' must be a count per second",
                "spool.toml:20:1: queue name 'Bad Name'",
            ]
            for e in expected { #expect(lines.contains { $0.hasPrefix(e) }, "missing: \(e)\nin:\n\(lines.joined(separator: "\n"))") }
            #expect(lines.count == expected.count, "\(lines.joined(separator: "\n"))")
        }
    }

    @Test func syntaxErrorsSayWhereToo() {
        do { _ = try Configuration.parse(Array("[[route]]\npath = /x\n".utf8), file: "c.toml"); Issue.record("accepted") } catch {
            #expect(error.description == "c.toml:2:8: expected a value, found '/' (a string must be quoted)")
        }
    }

    @Test func duplicateRoutePaths() {
        do { _ = try Configuration.parse(Array("[[route]]\npath = \"/a\"\n[[route]]\npath = \"/a\"\n".utf8), file: "c"); Issue.record("accepted") } catch {
            #expect(error.description == "c:3:1: route path /a is already used by the route at line 1")
        }
    }
}
