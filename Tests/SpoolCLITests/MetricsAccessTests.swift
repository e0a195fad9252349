import Foundation
import SpoolTestSupport
import Testing

/// /metrics is not public by accident: it needs the webhook token, or lives on --metrics-listen.
@Suite(.serialized) struct MetricsAccessTests {
    func code(_ args: [String]) throws -> String { try curl(["-o", "/dev/null", "-w", "%{http_code}"] + args).stdout }

    @Test func metricsNeedTheTokenWhenOneIsSetAndHealthzStaysOpen() throws {
        let dir = makeTempDir() + "/s"
        let tokenFile = dir + ".token"
        try "t0ken\n".write(toFile: tokenFile, atomically: true, encoding: .utf8)
        chmod(tokenFile, 0o600)
        let server = try Server(dir: dir, extra: ["--token-file", tokenFile])
        #expect(try code([server.url + "/metrics"]) == "401")
        #expect(try code([server.url + "/metrics?token=wrong"]) == "401")
        #expect(try code(["-H", "Authorization: Bearer t0ken", server.url + "/metrics"]) == "200")
        #expect(try code([server.url + "/metrics?token=t0ken"]) == "200")
        #expect(try code([server.url + "/healthz"]) == "200")
        #expect(server.stop().status == 0)
    }

    @Test func metricsListenServesProbesOnTheirOwnAddressOnly() throws {
        let dir = makeTempDir() + "/s"
        let c = try Child(spoolBin, ["--dir", dir, "serve", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
        defer { c.signal(SIGKILL); _ = c.wait(timeout: 10) }
        #expect(c.waitFor(timeout: 20) { c.stdout.split(separator: "\n").count >= 2 }, "\(c.stdout) \(c.stderr)")
        let lines = c.stdout.split(separator: "\n").map(String.init)
        #expect(lines[0].hasPrefix("listening on http://127.0.0.1:") && lines[1].hasPrefix("metrics on http://127.0.0.1:"), "\(lines)")
        let web = "http://127.0.0.1:" + lines[0].dropFirst("listening on http://127.0.0.1:".count).prefix { $0 != " " }
        let probes = String(lines[1].dropFirst("metrics on ".count))
        #expect(try curl(["--data-binary", #"{"project":"m1"}"#, web + "/json2video/done"]).stdout == #"{"status":"accepted","key":"m1"}"#)
        #expect(try code([web + "/metrics"]) == "404", "the webhook port no longer publishes metrics")
        #expect(try code([web + "/healthz"]) == "200")
        let m = try curl([probes + "/metrics"]).stdout
        #expect(m.contains("spool_webhooks_accepted_total 1\n"), "\(m.prefix(400))")
        #expect(try code([probes + "/healthz"]) == "200")
        #expect(try code(["--data-binary", #"{"project":"m2"}"#, probes + "/json2video/done"]) == "404", "no webhooks on the metrics address")
        #expect(try code(["--data-binary", "x", probes + "/metrics"]) == "405")
        c.signal(SIGTERM)
        let r = c.wait(timeout: 20)
        #expect(r.status == 0, "\(r.stderr.suffix(300))")
        #expect(entries(dir + "/new") == ["m1"])
    }
}
