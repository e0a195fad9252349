import Foundation
import SpoolTestSupport
import Testing
import SpoolWire
import SpoolCore

/// `spool serve` through real sockets: curl, raw clients, concurrency, SIGKILL, and serve + consumers end to end.
@Suite(.serialized) struct ServeTests {
    let fixtures = packageRoot + "/Tests/Fixtures/payloads/"

    @Test func json2videoPayloadShapesWithCurl() throws {
        let dir = makeTempDir() + "/s"
        let server = try Server(dir: dir)
        let cases: [(String, String?, String)] = [
            ("envelope-done.json", "application/json", "WAEE8PohgVwv2teP"),
            ("envelope-error.json", nil, "Qx9LmT2vBn7RzK4p"),
            ("envelope-timeout.json", "application/json; charset=utf-8", "Zr5TyU8iOp1AsD3f"),
            ("flat-reference.json", "application/json", "Gh7JkL9mNb2VcX4z"),
            ("flat-tutorial-error.json", "text/plain", "Po0IuY6tRe5WqA1s"),
            ("form-encoded.txt", "application/x-www-form-urlencoded", "Lk3JhG5fDs7AzX9c"),
        ]
        for (file, ct, key) in cases {
            var args = ["--data-binary", "@" + fixtures + file, server.url + "/json2video/done"]
            args += ["-H", "Content-Type: " + (ct ?? "")]
            let r = try curl(args)
            #expect(r.stdout == "{\"status\":\"accepted\",\"key\":\"\(key)\"}", "\(file): \(r.stdout)")
            let again = try curl(args)
            #expect(again.stdout == "{\"status\":\"duplicate\",\"key\":\"\(key)\"}")
            // Stored byte for byte.
            let stored = Data(try #require(storedPayload(atPath: dir + "/new/\(key)")))
            #expect(stored == (try Data(contentsOf: URL(fileURLWithPath: fixtures + file))))
        }
        let show = try spool("show", "Lk3JhG5fDs7AzX9c", "--json", dir: dir)
        #expect(show.stdout.contains("\"content-type\":\"application/x-www-form-urlencoded\""))
        let stopped = server.stop()
        #expect(stopped.status == 0)
        #expect(stopped.stderr.contains("method=POST path=/json2video/done status=200 outcome=accepted key=WAEE8PohgVwv2teP"), "\(stopped.stderr)")
    }

    @Test func statusCodes() throws {
        let dir = makeTempDir() + "/s"
        let tokenFile = dir + ".token"
        try "s3cret\n".write(toFile: tokenFile, atomically: true, encoding: .utf8)
        // A secret file others can read is refused, with a command that fixes it.
        chmod(tokenFile, 0o644)
        let open = cli(["--dir", dir, "serve", "--listen", "127.0.0.1:0", "--token-file", tokenFile])
        #expect(open.code == 1 && open.err == "error: token file \(tokenFile) is open to others (mode 644); run: chmod 600 \(tokenFile)\n", "\(open.err)")
        chmod(tokenFile, 0o640)
        let server = try Server(dir: dir, extra: ["--token-file", tokenFile, "--max-body", "1000"])
        let u = server.url + "/json2video/done"
        func code(_ args: [String]) throws -> String { try curl(["-o", "/dev/null", "-w", "%{http_code}"] + args).stdout }
        let good = ["-H", "Content-Type: application/json", "--data-binary", #"{"project":"T1"}"#]
        #expect(try code(good + [u]) == "401")
        #expect(try code(good + [u + "?token=wrong"]) == "401")
        #expect(try code(good + ["-H", "Authorization: Bearer s3cre", u]) == "401")
        #expect(try code(good + [u + "?token=s3cret"]) == "200")
        #expect(try code(good + ["-H", "Authorization: Bearer s3cret", u]) == "200")
        let auth = ["-H", "Authorization: Bearer s3cret"]
        #expect(try code(auth + ["-H", "Content-Type: application/json", "--data-binary", "{nope", u]) == "400")
        #expect(try code(auth + ["-H", "Content-Type: application/json", "--data-binary", #"{"other":1}"#, u]) == "422")
        #expect(try code(auth + ["-H", "Content-Type: application/json", "--data-binary", #"{"project":[1]}"#, u]) == "422")
        #expect(try code(auth + ["--data-binary", String(repeating: "x", count: 1001), u]) == "413")
        #expect(try code(auth + [server.url + "/other"]) == "404")
        let r405 = try curl(["-i", "-X", "PUT", "--data-binary", "x"] + auth + [u])
        #expect(r405.stdout.hasPrefix("HTTP/1.1 405") && r405.stdout.contains("Allow: POST"))
        #expect(try code([server.url + "/healthz"]) == "200")
        // 411: a POST with no framing at all.
        let c = try RawHTTPClient(port: server.port, timeoutMs: 30_000)
        try c.send(Array("POST /json2video/done HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret\r\n\r\n".utf8))
        #expect(c.readResponse()?.status == 411)
        // 100-continue: an unauthorised request gets its 401 without the body being read.
        let d = try RawHTTPClient(port: server.port, timeoutMs: 30_000)
        try d.send(Array("POST /json2video/done HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 10\r\n\r\n".utf8))
        #expect(d.readResponse()?.status == 401)
        let metrics = try curl(["-H", "Authorization: Bearer s3cret", server.url + "/metrics"]).stdout
        #expect(metrics.contains("spool_http_requests_total{status=\"401\"} 4"))
        #expect(metrics.contains("spool_webhooks_accepted_total 1"))
        #expect(metrics.contains("spool_webhooks_duplicate_total 1"))
        #expect(metrics.contains("spool_items{queue=\"default\",state=\"new\"} 1"))
        #expect(metrics.contains("spool_ack_latency_seconds_count 2"))
        #expect(server.stop().status == 0)
    }

    @Test func fiftyClientsTenCopiesOfTwoHundredKeys() throws {
        let dir = makeTempDir() + "/s"
        let server = try Server(dir: dir)
        let results = Results()
        DispatchQueue.concurrentPerform(iterations: 50) { client in
            do {
                let c = try RawHTTPClient(port: server.port, timeoutMs: 30_000)
                for i in 0..<40 {
                    let n = (client * 40 + i)
                    let key = "k\(n % 200)"
                    let r = try c.post(body: Array("{\"project\":\"\(key)\",\"copy\":\(n / 200)}".utf8))
                    results.add(status: r.status, body: r.text)
                }
            } catch { results.add(status: -1, body: "\(error)") }
        }
        #expect(results.statuses.count == 2000)
        #expect(results.statuses.allSatisfy { $0 == 200 })
        #expect(results.bodies.filter { $0.contains("\"accepted\"") }.count == 200)
        #expect(results.bodies.filter { $0.contains("\"duplicate\"") }.count == 1800)
        #expect(entries(dir + "/new").count == 200 && entries(dir + "/keys").count == 200 && entries(dir + "/tmp").isEmpty)
        #expect(server.stop().status == 0)
    }

    @Test func serverKilledUnderLoadLosesNoAcknowledgedWebhook() throws {
        let dir = makeTempDir() + "/s"
        var acked: [String: [UInt8]] = [:]
        for round in 0..<3 {
            let server = try Server(dir: dir)
            let results = Results()
            let group = DispatchGroup()
            for client in 0..<8 {
                DispatchQueue.global().async(group: group) {
                    guard let c = try? RawHTTPClient(port: server.port, timeoutMs: 30_000) else { return }
                    for i in 0..<100_000 {
                        let key = "r\(round)c\(client)i\(i)"
                        let body = Array("{\"project\":\"\(key)\",\"pad\":\"\(String(repeating: "z", count: i % 700))\"}".utf8)
                        guard let r = try? c.post(body: body) else { return }
                        if r.status == 200 { results.ack(key, body) }
                    }
                }
            }
            usleep(UInt32.random(in: 300_000...700_000))
            server.child.signal(SIGKILL)
            server.child.wait()
            group.wait()
            for (k, v) in results.acked { acked[k] = v }
        }
        #expect(acked.count > 100, "the load was real")
        // A restarted server runs recover; then every acknowledged key is present and intact.
        let server = try Server(dir: dir)
        for (k, body) in acked {
            let stored = storedPayload(atPath: dir + "/new/\(k)").map { Data($0) }
            #expect(stored == Data(body), "\(k) lost or damaged")
        }
        // Format 2 names nothing before it is complete (O_TMPFILE), and the restarted server's recover removes what a
        // dead writer left (its pid says it is dead): tmp/ is empty.
        #expect(entries(dir + "/tmp").isEmpty, "\(entries(dir + "/tmp").prefix(3))")
        #expect(server.stop().status == 0)
        _ = try spool("recover", "--tmp-grace", "0s", dir: dir)
        #expect(entries(dir + "/tmp").isEmpty)
    }

    @Test func serveAndTwoConsumersEndToEndWithCurl() throws {
        let dir = makeTempDir() + "/s"
        let server = try Server(dir: dir)
        let log = dir + ".handled"
        let consumers = try (0..<2).map { _ in
            try Child(spoolBin, ["--dir", dir, "consume", "--exec", "echo $SPOOL_KEY >> \(log)", "--concurrency", "2"])
        }
        // One curl process sends 600 requests (500 keys, 100 of them twice) over keep-alive connections.
        var config = ""
        for i in 0..<600 {
            let key = "e2e\(i % 500)"
            config += "url = \"\(server.url)/json2video/done\"\nheader = \"Content-Type: application/json\"\n"
            config += "data-binary = \"{\\\"movie\\\":{\\\"project\\\":\\\"\(key)\\\"}}\"\nwrite-out = \"%{http_code}\\\\n\"\noutput = \"/dev/null\"\n"
            if i < 599 { config += "next\n" }
        }
        try config.write(toFile: dir + ".curlrc", atomically: true, encoding: .utf8)
        let r = try curl(["-K", dir + ".curlrc"])
        let codes = r.stdout.split(separator: "\n")
        #expect(codes.count == 600 && codes.allSatisfy { $0 == "200" }, "\(r.stderr)")
        #expect(waitUntil(timeout: 30) { entries(dir + "/done").count == 500 })
        for c in consumers { c.signal(SIGTERM); #expect(c.wait().status == 0) }
        let handled = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n")
        #expect(handled.count == 500 && Set(handled).count == 500, "every key handled exactly once")
        #expect(server.stop().status == 0)
    }
}

/// Thread-safe collection of client results.
final class Results: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var statuses: [Int] = []
    private(set) var bodies: [String] = []
    private(set) var acked: [String: [UInt8]] = [:]
    func add(status: Int, body: String) { lock.lock(); statuses.append(status); bodies.append(body); lock.unlock() }
    func ack(_ k: String, _ b: [UInt8]) { lock.lock(); acked[k] = b; lock.unlock() }
}

@Suite(.serialized) struct SlowClientTests {
    @Test func thousandSlowHeaderClientsDoNotDelayANormalPost() throws {
        var lim = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &lim)
        lim.rlim_cur = lim.rlim_max
        setrlimit(Int32(RLIMIT_NOFILE.rawValue), &lim)
        let dir = makeTempDir() + "/s"
        let server = try Server(dir: dir)
        // 1,000 connections, each sending its head one byte at a time, a byte per second each.
        var slow: [RawHTTPClient] = []
        for _ in 0..<1000 { slow.append(try RawHTTPClient(port: server.port, timeoutMs: 30_000)) }
        let head = Array("POST /json2video/done HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n".utf8)
        var worst = 0.0
        for second in 0..<3 {
            for c in slow { try? c.send([head[second]]) }
            let t0 = Date()
            let normal = try RawHTTPClient(port: server.port, timeoutMs: 30_000)
            let r = try normal.post(body: Array("{\"project\":\"n\(second)\"}".utf8))
            #expect(r.status == 200)
            worst = max(worst, Date().timeIntervalSince(t0))
            usleep(1_000_000)
        }
        #expect(worst < 1.0, "a normal POST took \(worst)s next to 1,000 slow clients")
        let metrics = try curl([server.url + "/metrics"]).stdout
        let open = metrics.split(separator: "\n").first { $0.hasPrefix("spool_open_connections ") }.flatMap { Int($0.split(separator: " ")[1]) }
        #expect((open ?? 0) >= 1000, "the slow connections are still held: \(open ?? -1)")
        slow.removeAll()
        #expect(server.stop().status == 0)
    }
}

/// A full descriptor table (EMFILE): the server must not spin on its listener, must answer what it cannot store
/// with 503 and Retry-After (never 2xx), and must serve normally once descriptors are free again.
@Suite(.serialized) struct DescriptorExhaustionTests {

    @Test func fullDescriptorTableIs503WithoutSpinningAndRecovers() throws {
        let dir = makeTempDir() + "/s"
        let server = try Server(dir: dir, fdLimit: 64)
        let first = try RawHTTPClient(port: server.port, timeoutMs: 30_000)
        #expect(try first.post(body: Array(#"{"project":"before"}"#.utf8)).status == 200)

        // More connections than descriptors: the kernel completes them, the server accepts until EMFILE.
        var idle: [RawHTTPClient] = []
        for _ in 0..<120 { idle.append(try RawHTTPClient(port: server.port, timeoutMs: 30_000)) }
        usleep(300_000)
        let pid = server.child.pid
        let cpu0 = cpuSeconds(pid)
        usleep(1_000_000)
        let cpu = cpuSeconds(pid) - cpu0
        #expect(cpu < 0.5, "the server spent \(cpu) s of CPU in 1 s with a full descriptor table (spinning on accept?)")

        // The committer cannot open a file now: the webhook is refused as temporary, never acknowledged.
        let refused = try first.post(body: Array(#"{"project":"during"}"#.utf8))
        #expect(refused.status == 503 && refused.header("retry-after") != nil, "\(refused)")

        idle.removeAll()
        var after = 0
        let recovered = waitUntil(timeout: 10) {
            guard let c = try? RawHTTPClient(port: server.port, timeoutMs: 30_000), let r = try? c.post(body: Array(#"{"project":"after"}"#.utf8)) else { return false }
            after = r.status
            return r.status == 200
        }
        #expect(recovered, "no 200 after descriptors were freed (last status \(after))")
        // What was refused left nothing behind: sent again, it is accepted, not a duplicate.
        let again = try RawHTTPClient(port: server.port, timeoutMs: 30_000).post(body: Array(#"{"project":"during"}"#.utf8))
        #expect(again.status == 200 && again.text.contains("accepted"), "\(again)")
        #expect(entries(dir + "/tmp").isEmpty)
        #expect(Set(entries(dir + "/new")) == ["after", "before", "during"])
        #expect(server.stop().status == 0)
    }
}

@Suite(.serialized) struct ServeOptionTests {
    @Test func flushModeIsHonouredAndCountedInMetrics() throws {
        func metric(_ text: String, _ name: String) -> Int? {
            text.split(separator: "\n").first { $0.hasPrefix(name + " ") }.flatMap { Int(Double($0.split(separator: " ")[1]) ?? -1) }
        }
        let dir = makeTempDir() + "/s"
        let server = try Server(dir: dir, extra: ["--flush", "fsync"])
        for i in 0..<5 {
            #expect(try curl(["--data-binary", "{\"project\":\"fl\(i)\"}", server.url + "/json2video/done"]).stdout.contains("accepted"))
        }
        let text = try curl([server.url + "/metrics"]).stdout
        #expect(metric(text, "spool_flush_batches_total{method=\"fsync\"}") == 5, "\(text)")
        #expect(metric(text, "spool_flush_batches_total{method=\"syncfs\"}") == 0)
        #expect(metric(text, "spool_commit_batch_size_count") == 5)
        #expect(server.stop().status == 0)
        let bad = try spool("serve", "--flush", "sometimes", dir: dir)
        #expect(bad.status == 64 && bad.stderr.contains("auto, fsync or syncfs"))
    }

    @Test func keyFromHeaderAndCustomKeyPathsAndPath() throws {
        let dir = makeTempDir() + "/s"
        let byHeader = try Server(dir: dir, extra: ["--key-header", "webhook-id", "--path", "/hooks/in"])
        let u = byHeader.url + "/hooks/in"
        func post(_ args: [String]) throws -> String { try curl(["-H", "Content-Type: application/json"] + args + [u]).stdout }
        #expect(try post(["-H", "webhook-id: msg_2Lh9", "--data-binary", #"{"no":"key here"}"#]) == #"{"status":"accepted","key":"msg_2Lh9"}"#)
        #expect(try post(["-H", "webhook-id: msg_2Lh9", "--data-binary", "not even json"]) == #"{"status":"duplicate","key":"msg_2Lh9"}"#)
        #expect(try post(["--data-binary", "{}"]).contains("header webhook-id is missing"))
        #expect(try curl(["-o", "/dev/null", "-w", "%{http_code}", "--data-binary", "{}", byHeader.url + "/json2video/done"]).stdout == "404")
        #expect(byHeader.stop().status == 0)

        let dir2 = makeTempDir() + "/s"
        let byPath = try Server(dir: dir2, extra: ["--key-path", "data.id", "--key-path", "event.id"])
        let u2 = byPath.url + "/json2video/done"
        #expect(try curl(["--data-binary", #"{"event":{"id":42}}"#, u2]).stdout == #"{"status":"accepted","key":"42"}"#)
        #expect(try curl(["--data-binary", #"{"data":{"id":"d-1"},"event":{"id":43}}"#, u2]).stdout == #"{"status":"accepted","key":"d-1"}"#)
        let miss = try curl(["-w", " %{http_code}", "--data-binary", #"{"project":"P"}"#, u2]).stdout
        #expect(miss.hasSuffix(" 422") && miss.contains("data.id, event.id"), "422 names the paths tried: \(miss)")
        #expect(byPath.stop().status == 0)
    }

    @Test func accessLogEscapesAndCarriesRequestId() throws {
        let dir = makeTempDir() + "/s"
        let server = try Server(dir: dir)
        _ = try curl(["-H", "X-Request-Id: abc-123", "-H", "Content-Type: application/json",
                      "--data-binary", #"{"project":"order 7/ü","secret":"s3"}"#, server.url + "/json2video/done"])
        // A key with a control character is refused (422) and logged without it.
        _ = try curl(["-H", "Content-Type: application/json", "--data-binary", #"{"project":"a\nb"}"#, server.url + "/json2video/done"])
        let log = server.stop().stderr
        let line = try #require(log.split(separator: "\n").first { $0.contains("rid=abc-123") })
        #expect(line.contains(" level=info component=serve msg=request remote=127.0.0.1:"), "\(line)")
        #expect(line.contains(" method=POST path=/json2video/done status=200 outcome=accepted key=\"order 7/ü\" duration_ms="), "\(line)")
        let refused = try #require(log.split(separator: "\n").first { $0.contains("status=422") })
        #expect(refused.contains(" outcome=rejected reason=key duration_ms="), "a refused key is not logged: \(refused)")
        // A duplicate, a wrong path and a request the HTTP layer refuses say so.
        let server2 = try Server(dir: dir)
        for _ in 0..<2 { _ = try curl(["-H", "Content-Type: application/json", "--data-binary", #"{"project":"twice"}"#, server2.url + "/json2video/done"]) }
        _ = try curl(["--data-binary", "{}", server2.url + "/elsewhere"])
        _ = try curl(["-H", "Content-Length: x", "--data-binary", "{}", server2.url + "/json2video/done"])
        let log2 = server2.stop().stderr
        #expect(log2.contains("status=200 outcome=accepted key=twice") && log2.contains("status=200 outcome=duplicate key=twice"), "\(log2)")
        #expect(log2.contains("path=/elsewhere status=404 outcome=rejected reason=path"), "\(log2)")
        #expect(log2.contains("status=400 outcome=rejected reason=http"), "\(log2)")
        #expect(!log.contains("s3"), "the body is never logged")
        #expect(log.split(separator: "\n").allSatisfy { !$0.contains("\r") })
    }
}

/// `serve --trusted-proxy` (issue 25): the access log believes X-Forwarded-For only from a trusted peer.
@Suite struct TrustedProxyServeTests {
    @Test func theClientComesFromTheHeaderOnlyForATrustedPeer() throws {
        for (extra, expected) in [([] as [String], "remote=127.0.0.1:"), (["--trusted-proxy", "127.0.0.0/8"], "remote=203.0.113.7 peer=127.0.0.1:")] {
            let dir = makeTempDir() + "/s"
            let server = try Server(dir: dir, extra: extra)
            _ = try curl(["-H", "X-Forwarded-For: 203.0.113.7", "-H", "Content-Type: application/json", "--data-binary", #"{"project":"p"}"#,
                          server.url + "/json2video/done"])
            let log = server.stop().stderr
            #expect(log.contains(" msg=request \(expected)"), "\(extra): \(log)")
        }
        let bad = try spool("serve", "--trusted-proxy", "proxy.example", dir: makeTempDir() + "/s")
        #expect(bad.status == 64 && bad.stderr.contains("--trusted-proxy takes an IPv4 or IPv6 address or CIDR range"))
    }
}

/// Issue 25, SIGHUP: serve reads its token and secret files, and its configuration's routes, again; all or none.
@Suite struct ReloadServeTests {
    func post(_ url: String, token: String) throws -> String {
        try curl(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Authorization: Bearer \(token)", "-H", "Content-Type: application/json",
                  "--data-binary", #"{"project":"r\#(UInt32.random(in: 0...UInt32.max))"}"#, url]).stdout
    }

    @Test func aRotatedTokenAndAnEditedConfigurationTakeEffectOnSIGHUP() throws {
        let base = makeTempDir()
        let dir = base + "/s", token = base + "/token", config = base + "/spool.toml"
        try Data("first\n".utf8).write(to: URL(fileURLWithPath: token))
        chmod(token, 0o600)
        try Data("[[route]]\npath = \"/a\"\ntoken_file = \"\(token)\"\n".utf8).write(to: URL(fileURLWithPath: config))
        let server = try Server(dir: dir, extra: ["--config", config])
        #expect(try post(server.url + "/a", token: "first") == "200")
        try Data("second\n".utf8).write(to: URL(fileURLWithPath: token))
        try Data("[[route]]\npath = \"/b\"\ntoken_file = \"\(token)\"\n".utf8).write(to: URL(fileURLWithPath: config))
        server.child.signal(SIGHUP)
        #expect(waitUntil(timeout: 10) { server.child.stderr.contains("SIGHUP: routes, tokens and secrets reloaded (/b)") }, "\(server.child.stderr)")
        #expect(try post(server.url + "/b", token: "second") == "200")
        #expect(try post(server.url + "/b", token: "first") == "401")
        #expect(try post(server.url + "/a", token: "second") == "404")
        // A token file open to others: nothing changes, and the error says why without the secret.
        try Data("third\n".utf8).write(to: URL(fileURLWithPath: token))
        chmod(token, 0o644)
        try Data("[[route]]\npath = \"/c\"\ntoken_file = \"\(token)\"\n".utf8).write(to: URL(fileURLWithPath: config))
        server.child.signal(SIGHUP)
        #expect(waitUntil(timeout: 10) { server.child.stderr.contains("reload failed, keeping the previous routes, tokens and secrets") }, "\(server.child.stderr)")
        #expect(try post(server.url + "/b", token: "second") == "200")
        #expect(try post(server.url + "/c", token: "third") == "404")
        let log = server.stop().stderr
        #expect(!log.contains("first") && !log.contains("second") && !log.contains("third"), "no secret in the log")
    }
}
