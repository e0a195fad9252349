import Foundation
import Testing
import SpoolTestSupport
import SpoolSystem

/// `--metrics-listen` on consume (issue 25), checked with promtool and read back with prometheus-client; serve's
/// /metrics gains the oldest waiting item's age; the alerting rules of docs/operations.md pass promtool's own tests.
@Suite struct MetricsCLITests {
    static let promtool = ["/usr/bin/promtool", "/usr/local/bin/promtool"].first { FileManager.default.isExecutableFile(atPath: $0) }

    /// `promtool check metrics` on the text; nil when it passed, else what it said.
    func promtoolCheck(_ text: String) throws -> String? {
        guard let promtool = Self.promtool else { Issue.record("promtool is not installed (apt-get install prometheus)"); return nil }
        let r = try runProcess(promtool, ["check", "metrics"], stdin: Array(text.utf8))
        return r.status == 0 ? nil : r.stdout + r.stderr
    }

    /// The samples as prometheus-client's parser reads them: "name{labels}" → value.
    func parsed(_ text: String) throws -> [String: Double] {
        let script = """
            import sys, json
            from prometheus_client.parser import text_string_to_metric_families
            out = {}
            for fam in text_string_to_metric_families(sys.stdin.read()):
                for s in fam.samples:
                    out[s.name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items())) + "}"] = s.value
            print(json.dumps(out))
            """
        let r = try runProcess("/usr/bin/env", ["python3", "-c", script], stdin: Array(text.utf8))
        guard r.status == 0 else { Issue.record("prometheus-client could not parse: \(r.stderr)"); return [:] }
        return (try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Double]) ?? [:]
    }

    @Test func aConsumerServesItsCountsAndTheQueuesGauges() throws {
        let dir = makeTempDir() + "/s"
        for k in ["ok1", "ok2", "bad"] { _ = try spool("enqueue", "--key", k, "-", dir: dir, stdin: Data("{}".utf8)) }
        let c = try Child(spoolBin, ["--dir", dir, "consume", "--exec", #"[ "$SPOOL_KEY" != bad ] || exit 65"#, "--metrics-listen", "127.0.0.1:0"])
        defer { c.signal(SIGKILL); _ = c.wait(timeout: 10) }
        #expect(c.waitFor { c.stderr.contains("metrics on http://127.0.0.1:") })
        let port = try #require(c.stderr.components(separatedBy: "metrics on http://127.0.0.1:").last?.prefix { $0.isNumber })
        #expect(waitUntil(timeout: 20) { entries(dir + "/done").count == 2 && entries(dir + "/failed").count == 1 })
        let text = try curl(["-s", "http://127.0.0.1:\(port)/metrics"]).stdout
        #expect(try promtoolCheck(text) == nil)
        let m = try parsed(text)
        #expect(m[#"spool_consumer_attempts_total{outcome="done",queue="default"}"#] == 2, "\(text)")
        #expect(m[#"spool_consumer_attempts_total{outcome="failed",queue="default"}"#] == 1)
        #expect(m[#"spool_consumer_attempts_total{outcome="retry",queue="default"}"#] == 0)
        #expect(m[#"spool_consumer_attempt_duration_seconds_count{}"#] == 3)
        #expect(m[#"spool_items{queue="default",state="done"}"#] == 2 && m[#"spool_items{queue="default",state="failed"}"#] == 1)
        #expect(m[#"spool_oldest_waiting_seconds{queue="default"}"#] == 0)
        #expect(m[#"spool_consumer_attempts_in_flight{queue="default"}"#] == 0)
        #expect(try curl(["-s", "http://127.0.0.1:\(port)/healthz"]).stdout == "ok\n")
        #expect(try curl(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--data", "", "http://127.0.0.1:\(port)/metrics"]).stdout == "405")
        #expect(try curl(["-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(port)/other"]).stdout == "404")
        c.signal(SIGTERM)
        #expect(c.wait(timeout: 30).status == 0)
    }

    @Test func serveShowsTheOldestWaitingItemsAge() throws {
        let dir = makeTempDir() + "/s"
        _ = try spool("enqueue", "--key", "old", "-", dir: dir, stdin: Data("{}".utf8))
        // The item arrived a minute ago, as far as its file says.
        #expect(try runProcess("/usr/bin/touch", ["-m", "-d", "@\(Int(Date().timeIntervalSince1970) - 60)", dir + "/new/old"]).status == 0)
        let server = try Server(dir: dir)
        let text = try curl(["-s", server.url + "/metrics"]).stdout
        _ = server.stop()
        #expect(try promtoolCheck(text) == nil)
        let age = try #require(try parsed(text)[#"spool_oldest_waiting_seconds{queue="default"}"#])
        #expect(age >= 59 && age < 120, "\(age)")
    }

    /// The rules block of docs/operations.md: valid, and each alert fires on the series it is about.
    @Test func theDocumentedAlertingRulesPassPromtoolsTests() throws {
        guard let promtool = Self.promtool else { Issue.record("promtool is not installed (apt-get install prometheus)"); return }
        let doc = try String(contentsOfFile: packageRoot + "/docs/operations.md", encoding: .utf8)
        let start = try #require(doc.range(of: "```yaml\ngroups:"))
        let body = doc[start.upperBound...]
        let end = try #require(body.range(of: "```"))
        let rules = "groups:" + body[..<end.lowerBound]
        let dir = makeTempDir()
        try Data(rules.utf8).write(to: URL(fileURLWithPath: dir + "/rules.yml"))
        let check = try runProcess(promtool, ["check", "rules", dir + "/rules.yml"])
        #expect(check.status == 0, "\(check.stdout)\(check.stderr)")
        try Data("""
            rule_files: [rules.yml]
            evaluation_interval: 1m
            tests:
              - interval: 1m
                input_series:
                  - series: 'spool_consumer_attempts_total{queue="billing",outcome="failed"}'
                    values: '0 0 0 1 1 1'
                  - series: 'spool_oldest_waiting_seconds{queue="billing"}'
                    values: '0 600 1200 1800 2400 3000 3600 4200 4800'
                  - series: 'up{job="spool-consume",instance="w1:9464"}'
                    values: '1 1 0 0 0 0 0'
                alert_rule_test:
                  - eval_time: 4m
                    alertname: SpoolItemsFailed
                    exp_alerts:
                      - exp_labels: {severity: warning, queue: billing, outcome: failed}
                        exp_annotations: {summary: "queue billing: items moved to failed/ (spool ls failed; spool show KEY)"}
                  - eval_time: 1m
                    alertname: SpoolItemsFailed
                    exp_alerts: []
                  - eval_time: 8m
                    alertname: SpoolQueueStuck
                    exp_alerts:
                      - exp_labels: {severity: critical, queue: billing}
                        exp_annotations: {summary: "queue billing: an item has waited 1h 20m 0s"}
                  - eval_time: 3m
                    alertname: SpoolQueueStuck
                    exp_alerts: []
                  - eval_time: 5m
                    alertname: SpoolConsumerDown
                    exp_alerts:
                      - exp_labels: {severity: critical, job: spool-consume, instance: "w1:9464"}
                        exp_annotations: {summary: "consumer w1:9464 is not answering /metrics"}
            """.utf8).write(to: URL(fileURLWithPath: dir + "/tests.yml"))
        let test = try runProcess(promtool, ["test", "rules", dir + "/tests.yml"])
        #expect(test.status == 0, "\(test.stdout)\(test.stderr)")
    }
}

/// Issue 25: an administrator running a command on the service user's spool gets the exact command that works.
@Suite struct NotOwnerHintTests {
    @Test(.enabled(if: getuid() == 0, "needs root to chown"))
    func theHintIsTheSameCommandAsTheOwner() throws {
        let base = makeTempDir()
        let dir = base + "/s"
        _ = try spool("init", dir: dir)
        #expect(chown(dir, 65534, 65534) == 0)
        let r = try spool("ls", "failed", dir: dir)
        let passwd: String = try String(contentsOfFile: "/etc/passwd", encoding: .utf8)
        var found: String? = nil
        for line in passwd.split(separator: "\n") {
            let f: [Substring] = line.split(separator: ":", omittingEmptySubsequences: false)
            if f.count > 2 && f[2] == "65534" { found = String(f[0]); break }
        }
        let name = try #require(found)
        #expect(r.status == 1)
        #expect(r.stderr == "error: \(dir) belongs to user \(name) (uid 65534), not to us; run: sudo -u \(name) spool --dir \(dir) ls failed\n", "\(r.stderr)")
    }
}
