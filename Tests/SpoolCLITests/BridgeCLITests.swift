import Foundation
import SpoolTestSupport
import Testing
import SpoolWire
import SpoolCore
import SpoolSystem
import SpoolBridges

// `spool consume --nats` and `--post` through the real `spool` binary: usage rules, a consumer killed between
// publish and done/, NATS authentication, and one spool forwarding into another spool's `spool serve`.

/// The `spool` binary of the build these tests belong to: $SPOOL_BIN, else the one next to the running test
/// bundle, else `.build-bridges/debug/spool` (the bridges' scratch build), else `.build/debug/spool`.
let bridgeSpoolBin: String = {
    if let b = ProcessInfo.processInfo.environment["SPOOL_BIN"], !b.isEmpty { return b }
    let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent().path + "/spool"
    if FileManager.default.isExecutableFile(atPath: exe) { return exe }
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    let scratch = root + "/.build-bridges/debug/spool"
    return FileManager.default.isExecutableFile(atPath: scratch) ? scratch : root + "/.build/debug/spool"
}()

/// `$NATS_SERVER` overrides the search (`NATS_SERVER=none` shows what happens without it).
private let natsBinary: String? = {
    if let e = ProcessInfo.processInfo.environment["NATS_SERVER"], !e.isEmpty {
        return FileManager.default.isExecutableFile(atPath: e) ? e : nil
    }
    return ["/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server"].first { FileManager.default.isExecutableFile(atPath: $0) }
}()

/// Whether the NATS tests below can run; when not, says so loudly (they are then reported as skipped).
private let natsInstalled: Bool = {
    if natsBinary == nil {
        FileHandle.standardError.write(Data("\n**** SKIPPED: BridgeCLITests NATS tests need nats-server (apt-get install nats-server); they did NOT run ****\n\n".utf8))
    }
    return natsBinary != nil
}()

/// Messages of a consumer not yet acknowledged plus not yet delivered (`num_ack_pending + num_pending`).
func consumerPending(_ url: String, stream: String, consumer: String) throws -> Int64 {
    let c = try NATSConnection(options: NATSConnectionOptions(endpoint: try Endpoint.nats(url)), log: { _ in })
    c.start()
    defer { c.close() }
    let r = try c.request(subject: "$JS.API.CONSUMER.INFO.\(stream).\(consumer)", headers: nil, payload: [], timeoutNanos: 5_000_000_000)
    let v = try JetStreamAPI.json(r, what: "consumer info")
    return (v["num_ack_pending"]?.intValue ?? -1) + (v["num_pending"]?.intValue ?? -1)
}

/// True when python3 can import `module` (an independent implementation used as an oracle).
func pythonHas(_ module: String) -> Bool {
    (try? run("/usr/bin/env", ["python3", "-c", "import \(module)"]).status) == 0
}

/// A `nats-server -js` child on a free loopback port with a temporary store; stopped by its pid.
private final class NATSChild {
    let port: UInt16
    let child: Child
    init(extra: [String] = []) throws {
        port = try freePort()
        child = try Child(natsBinary!, ["-js", "-a", "127.0.0.1", "-p", "\(port)", "-sd", makeTempDir("natsjs")] + extra)
        let up = waitUntil(timeout: 10) {
            guard let fd = try? Socket.connect(Socket.Address(host: "127.0.0.1", port: port)!) else { return false }
            try? fd.close()
            return true
        }
        if !up { child.signal(SIGKILL); throw POSIXError(.ETIMEDOUT) }
    }
    var url: String { "nats://127.0.0.1:\(port)" }
    deinit { child.signal(SIGTERM); child.wait(timeout: 10) }

    /// `state.messages` of the stream, read with our own client.
    func count(_ stream: String, token: String? = nil) throws -> Int64 {
        var o = NATSConnectionOptions(endpoint: try Endpoint.nats(url))
        o.credentials.token = token
        let c = try NATSConnection(options: o, log: { _ in })
        c.start()
        defer { c.close() }
        return try JetStreamPublisher.streamMessageCount(c, stream: stream)
    }
}

private func bridgeSpool(_ args: [String], dir: String, env: [String: String] = [:], timeout: Double = 60) throws -> ProcessResult {
    try run(bridgeSpoolBin, ["--dir", dir] + args, env: env, timeout: timeout)
}

/// `count` items `prefix0`... with distinct payloads, enqueued through the library in one group commit.
private func fill(_ dir: String, prefix: String, count: Int, contentType: String = "application/json") throws {
    let spool = try Spool(path: dir)
    let requests = try (0..<count).map { i in
        EnqueueRequest(key: try SpoolKey("\(prefix)\(i)"), payload: Array("{\"project\":\"\(prefix)\(i)\",\"n\":\(i),\"pad\":\"\(String(repeating: "z", count: i % 97))\"}\n".utf8),
                       headers: [("content-type", contentType)])
    }
    for r in spool.enqueueBatch(requests) { _ = try r.get() }
}

@Suite(.serialized) struct BridgeCLITests {
    @Test func exactlyOneSinkAndHonestUsageErrors() throws {
        let dir = makeTempDir() + "/s"
        let cases: [([String], String)] = [
            (["consume"], "one of --exec CMD, --nats URL or --post URL is required"),
            (["consume", "--exec", "true", "--post", "http://127.0.0.1:1/"], "exclude each other"),
            (["consume", "--nats", "nats://127.0.0.1:1", "--post", "http://127.0.0.1:1/", "--subject", "a"], "exclude each other"),
            (["consume", "--post", "https://example.com/hook", "--client-cert", "c.pem"], "--client-cert and --client-key go together"),
            (["consume", "--exec", "true", "--ca-file", "ca.pem"], "--ca-file needs --post https:// or --nats"),
            (["consume", "--post", "ftp://example.com/hook"], "must start with http:// or https://"),
            (["consume", "--post", "http://h/", "--header", "Content-Length: 3"], "set by spool itself"),
            (["consume", "--post", "http://h/", "--header", "no colon"], "is not 'Name: value'"),
            (["consume", "--exec", "true", "--header", "A: b"], "--header needs --post"),
            (["consume", "--nats", "nats://127.0.0.1:1"], "--nats needs --subject"),
            (["consume", "--nats", "nats://127.0.0.1:1", "--subject", "a.*"], "is not a NATS subject"),
            (["consume", "--nats", "nats://127.0.0.1:1", "--subject", "a", "--create-stream"], "--create-stream needs --nats-stream"),
            (["consume", "--nats", "nats://127.0.0.1:1", "--subject", "a", "--nats-stream", "a.b"], "not a valid stream name"),
            (["consume", "--nats", "nats://127.0.0.1:1", "--subject", "a", "--nats-password", "p"], "--nats-password needs --nats-user"),
            (["consume", "--nats", "nats://127.0.0.1:1", "--subject", "a", "--nats-user", "u", "--nats-password", ""], "--nats-password is empty"),
            (["consume", "--nats", "nats://127.0.0.1:1", "--subject", "a", "--nats-user", ""], "--nats-user is empty"),
            (["consume", "--nats", "nats://127.0.0.1:1", "--subject", "a", "--nats-token", ""], "--nats-token is empty"),
            (["consume", "--nats", "nats://127.0.0.1:1", "--subject", "a", "--nats-password-file", "f"], "--nats-password-file needs --nats-user"),
            (["consume", "--nats", "nats://127.0.0.1:1", "--subject", "a", "--nats-token-file", "f", "--nats-user", "u"], "exclude each other"),
            (["consume", "--exec", "true", "--nats-token-file", "f"], "--nats-token-file needs --nats"),
            (["consume", "--nats", "nats://127.0.0.1:1", "--subject", "a", "--nats-token", "t", "--nats-user", "u"], "exclude each other"),
            (["consume", "--nats", "http://127.0.0.1:1", "--subject", "a"], "must start with nats://"),
            (["consume", "--exec", "true", "--subject", "a"], "--subject needs --nats"),
        ]
        for (args, message) in cases {
            let r = try bridgeSpool(args, dir: dir)
            #expect(r.status == 64, "\(args)")
            #expect(r.stderr.contains(message), "\(args): \(r.stderr)")
            #expect(r.stderr.contains("usage: spool consume"), "\(args)")
        }
        #expect(!FileManager.default.fileExists(atPath: dir), "a usage error does not create the spool")
        let help = try bridgeSpool(["consume", "--help"], dir: dir)
        #expect(help.status == 0 && help.stdout.contains("--nats nats://HOST:PORT --subject SUBJECT") && help.stdout.contains("--post http://"))
    }

    /// The crash the Nats-Msg-Id header exists for: a consumer SIGKILLed after publishing and before moving items
    /// to done/. Its claims are recovered and published again; the stream still holds each key once.
    @Test(.enabled(if: natsInstalled, "nats-server is not installed: SKIPPED"))
    func consumerKilledBetweenPublishAndDoneStillStoresEachKeyOnce() throws {
        let nats = try NATSChild()
        let dir = makeTempDir() + "/s"
        let n = 2000
        try fill(dir, prefix: "crash", count: n)
        let args = ["consume", "--nats", nats.url, "--subject", "hooks.crash", "--nats-stream", "CRASH", "--create-stream",
                    "--concurrency", "16", "--backoff", "50ms", "--max-backoff", "200ms"]
        var killedWithClaims = false
        var logs = ""
        for round in 0..<5 where entries(dir + "/done").count < n {
            let c = try Child(bridgeSpoolBin, ["--dir", dir] + args)
            let target = min(n - 1, (round + 1) * 300)
            _ = waitUntil(timeout: 20) { entries(dir + "/done").count >= target }
            if !entries(dir + "/claimed").isEmpty { killedWithClaims = true }
            c.signal(SIGKILL)
            logs += c.wait().stderr
        }
        #expect(killedWithClaims, "at least one kill left claims behind (published, not yet done)")
        let last = try bridgeSpool(args + ["--drain"], dir: dir, timeout: 60)
        #expect(last.status == 0, "\(last.stderr.suffix(500))")
        #expect(entries(dir + "/done").count == n)
        #expect(entries(dir + "/claimed").isEmpty && entries(dir + "/new").isEmpty && entries(dir + "/failed").isEmpty)
        #expect(try nats.count("CRASH") == Int64(n), "exactly one message per key")
        let duplicates = (logs + last.stderr).components(separatedBy: "status=duplicate of seq").count - 1
        #expect(duplicates >= 1, "some recovered items had been published before the kill; JetStream recognised them")
    }

    @Test(.enabled(if: natsInstalled, "nats-server is not installed: SKIPPED"))
    func natsAuthentication() throws {
        let nats = try NATSChild(extra: ["--auth", "s3cret"])
        let dir = makeTempDir() + "/s"
        try fill(dir, prefix: "auth", count: 5)
        let base = ["consume", "--nats", nats.url, "--subject", "hooks.auth", "--nats-stream", "AUTH", "--create-stream",
                    "--max-attempts", "1", "--timeout", "1s", "--concurrency", "5", "--drain"]
        let wrong = try bridgeSpool(base + ["--nats-token", "wrong"], dir: dir)
        #expect(wrong.status == 0)
        #expect(wrong.stderr.contains("Authorization Violation"), "\(wrong.stderr.suffix(400))")
        #expect(entries(dir + "/failed").count == 5 && entries(dir + "/done").isEmpty, "nothing counts as delivered without a connection")
        _ = try bridgeSpool(["retry", "--all-failed"], dir: dir)
        // The token from the environment, as a service file would pass it.
        let right = try bridgeSpool(base, dir: dir, env: ["SPOOL_NATS_TOKEN": "s3cret"])
        #expect(right.status == 0 && entries(dir + "/done").count == 5, "\(right.stderr.suffix(400))")
        #expect(try nats.count("AUTH", token: "s3cret") == 5)
    }

    /// `spool pull`: two pullers on one durable consumer into two worker spools, one of them SIGKILLed and restarted
    /// twice mid-run; every key in at least one worker spool, nothing left unacknowledged, and `consume --exec` on
    /// each worker handles what it got.
    @Test(.enabled(if: natsInstalled, "nats-server is not installed: SKIPPED"))
    func twoPullersShareADurableConsumerThroughKills() throws {
        let nats = try NATSChild()
        let ingress = makeTempDir() + "/in"
        let n = 600
        try fill(ingress, prefix: "pl", count: n)
        let pub = try bridgeSpool(["consume", "--nats", nats.url, "--subject", "hooks.pull", "--nats-stream", "PULL", "--create-stream",
                                   "--drain", "--concurrency", "8"], dir: ingress)
        #expect(pub.status == 0 && entries(ingress + "/done").count == n, "\(pub.stderr.suffix(400))")
        let w1 = makeTempDir() + "/w1", w2 = makeTempDir() + "/w2"
        func puller(_ dir: String) throws -> Child {
            try Child(bridgeSpoolBin, ["--dir", dir, "pull", "--nats", nats.url, "--stream", "PULL", "--consumer", "WORK", "--create-consumer",
                                       "--batch", "16", "--ack-wait", "2s"])
        }
        var p1 = try puller(w1)
        let p2 = try puller(w2)
        defer { p2.signal(SIGKILL); _ = p2.wait(timeout: 10) }
        for _ in 0..<2 {
            _ = waitUntil(timeout: 5) { entries(w1 + "/new").count + entries(w2 + "/new").count > 0 }
            usleep(150_000)
            p1.signal(SIGKILL)
            _ = p1.wait(timeout: 10)
            p1 = try puller(w1)
        }
        defer { p1.signal(SIGKILL); _ = p1.wait(timeout: 10) }
        let all = Set((0..<n).map { "pl\($0)" })
        #expect(waitUntil(timeout: 60) { Set(entries(w1 + "/new")).union(entries(w2 + "/new")) == all },
                "missing: \(all.subtracting(Set(entries(w1 + "/new")).union(entries(w2 + "/new"))).count)")
        // Byte for byte, with the ingress's metadata carried over.
        let one = entries(w1 + "/new").first ?? entries(w2 + "/new").first ?? "pl0"
        let dir = entries(w1 + "/new").contains(one) ? w1 : w2
        #expect(storedPayload(atPath: dir + "/new/\(one)") == storedPayload(atPath: ingress + "/done/\(one)"))
        #expect(storedHeader(atPath: dir + "/new/\(one)")?.source == .pull)
        // Nothing left unacknowledged once both have caught up (redeliveries of the killed puller's batches included).
        #expect(waitUntil(timeout: 20) { (try? consumerPending(nats.url, stream: "PULL", consumer: "WORK")) == 0 },
                "\(String(describing: try? consumerPending(nats.url, stream: "PULL", consumer: "WORK")))")
        // A SIGTERM before the handlers are in place ends a process the default way (143), which a fast pull now
        // makes possible here: wait until the restarted puller says it started.
        #expect(p1.waitFor { p1.stderr.contains("component=pull msg=\"started on") })
        p1.signal(SIGTERM)
        #expect(p1.wait(timeout: 20).status == 0)
        var handled = 0
        for w in [w1, w2] {
            let r = try bridgeSpool(["consume", "--exec", "cat > /dev/null", "--drain", "--concurrency", "4"], dir: w)
            #expect(r.status == 0)
            handled += entries(w + "/done").count
        }
        #expect(handled >= n)
    }

    /// `--nats-nkey`: the seed signs the server's nonce (the seed and the server's user list made by the `nkeys`
    /// package, an independent implementation); a wrong seed is refused once and then left alone, not hammered.
    @Test(.enabled(if: natsInstalled && pythonHas("nkeys"), "nats-server and the nkeys package (pip install nkeys) are needed: SKIPPED"))
    func natsNKeyAuthentication() throws {
        let work = makeTempDir()
        let made = try run("/usr/bin/env", ["python3", "-c", """
            import nkeys, os
            for _ in range(2):
                seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
                print(seed.decode(), nkeys.from_seed(seed).public_key.decode())
            """]).stdout.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        let (seed, pub, otherSeed) = (made[0][0], made[0][1], made[1][0])
        try "authorization { users: [ { nkey: \"\(pub)\" } ] }\n".write(toFile: work + "/nats.conf", atomically: true, encoding: .utf8)
        let nats = try NATSChild(extra: ["-c", work + "/nats.conf"])
        for (name, text) in [("good", seed), ("bad", otherSeed)] {
            try (text + "\n").write(toFile: work + "/\(name).nk", atomically: true, encoding: .utf8)
            chmod(work + "/\(name).nk", 0o600)
        }
        let dir = makeTempDir() + "/s"
        try fill(dir, prefix: "nk", count: 4)
        let base = ["consume", "--nats", nats.url, "--subject", "hooks.nk", "--nats-stream", "NK", "--create-stream", "--drain", "--timeout", "2s"]
        let ok = try bridgeSpool(base + ["--nats-nkey", work + "/good.nk"], dir: dir)
        #expect(ok.status == 0 && entries(dir + "/done").count == 4, "\(ok.stderr.suffix(500))")
        #expect(!ok.stderr.contains(seed), "the seed is never logged")
        // A wrong seed: refused, and then not asked again for 30 s (a long-running consumer, 3 s of it).
        try fill(dir, prefix: "nk2", count: 1)
        let c = try Child(bridgeSpoolBin, ["--dir", dir, "consume", "--nats", nats.url, "--subject", "hooks.nk", "--nats-nkey", work + "/bad.nk"])
        Thread.sleep(forTimeInterval: 3)
        c.signal(SIGTERM)
        let r = c.wait(timeout: 20)
        #expect(r.stderr.contains("Authorization Violation"), "\(r.stderr.suffix(500))")
        #expect(r.stderr.components(separatedBy: "refused our credentials").count - 1 == 1, "\(r.stderr.suffix(800))")
        #expect(entries(dir + "/new").contains("nk20"), "nothing was failed or lost while refused")
        chmod(work + "/good.nk", 0o644)
        let tooOpen = try bridgeSpool(base + ["--nats-nkey", work + "/good.nk"], dir: dir)
        #expect(tooOpen.status == 1 && tooOpen.stderr.contains("is open to others"), "\(tooOpen.stderr)")
    }

    /// `--nats-creds` against an operator-mode server (memory resolver; JWTs made by Tests/Fixtures/peers/
    /// nats_operator.py with the nkeys package): a user of a known account publishes; one of an unknown account is refused.
    @Test(.enabled(if: natsInstalled && pythonHas("nkeys"), "nats-server and the nkeys package (pip install nkeys) are needed: SKIPPED"))
    func natsCredsAuthentication() throws {
        let work = makeTempDir()
        let made = try run("/usr/bin/env", ["python3", packageRoot + "/Tests/Fixtures/peers/nats_operator.py", work, "--foreign"])
        #expect(made.status == 0, "\(made.stderr)")
        let nats = try NATSChild(extra: ["-c", work + "/server.conf"])
        let dir = makeTempDir() + "/s"
        try fill(dir, prefix: "cr", count: 3)
        let base = ["consume", "--nats", nats.url, "--subject", "hooks.cr", "--nats-stream", "CR", "--create-stream", "--drain",
                    "--timeout", "2s", "--max-attempts", "1"]
        let stranger = try bridgeSpool(base + ["--nats-creds", work + "/foreign.creds"], dir: dir)
        #expect(stranger.stderr.contains("Authorization Violation") && entries(dir + "/done").isEmpty, "\(stranger.stderr.suffix(500))")
        _ = try bridgeSpool(["retry", "--all-failed"], dir: dir)
        let ok = try bridgeSpool(base + ["--nats-creds", work + "/user.creds"], dir: dir)
        #expect(ok.status == 0 && entries(dir + "/done").count == 3, "\(ok.stderr.suffix(500))")
        let creds = try String(contentsOfFile: work + "/user.creds", encoding: .utf8)
        let seedLine = creds.split(separator: "\n").first { $0.hasPrefix("SU") }.map(String.init) ?? "SU?"
        #expect(!ok.stderr.contains(seedLine) && !stranger.stderr.contains(seedLine), "the seed is never logged")
    }

    /// `--nats tls://` with `--ca-file`, `--client-cert`, `--client-key` against a server that requires client
    /// certificates; the key file's mode is checked like every secret.
    @Test(.enabled(if: natsInstalled, "nats-server is not installed: SKIPPED"))
    func natsOverTLSWithClientCertificate() throws {
        let certs = try TestCertificates.shared()
        let key = makeTempDir() + "/client.key"
        try FileManager.default.copyItem(atPath: certs.client.key, toPath: key)
        chmod(key, 0o600)
        let nats = try NATSChild(extra: ["--tlscert", certs.server.certificate, "--tlskey", certs.server.key,
                                         "--tlscacert", certs.caCertificate, "--tlsverify"])
        let dir = makeTempDir() + "/s"
        try fill(dir, prefix: "tls", count: 5)
        let base = ["consume", "--nats", "tls://localhost:\(nats.port)", "--subject", "hooks.tls", "--nats-stream", "TLSCLI",
                    "--create-stream", "--ca-file", certs.caCertificate, "--drain", "--max-attempts", "1", "--timeout", "2s"]
        chmod(key, 0o644)
        let open = try bridgeSpool(base + ["--client-cert", certs.client.certificate, "--client-key", key], dir: dir)
        #expect(open.status == 1 && open.stderr.contains("is open to others"), "\(open.stderr)")
        chmod(key, 0o600)
        let r = try bridgeSpool(base + ["--client-cert", certs.client.certificate, "--client-key", key], dir: dir)
        #expect(r.status == 0 && entries(dir + "/done").count == 5, "\(r.stderr.suffix(600))")
        #expect(r.stderr.contains("connected to tls://localhost:\(nats.port)"), "\(r.stderr.suffix(600))")
    }

    @Test(.enabled(if: natsInstalled, "nats-server is not installed: SKIPPED"))
    func natsUserAndPassword() throws {
        let nats = try NATSChild(extra: ["--user", "bridge", "--pass", "pw"])
        let dir = makeTempDir() + "/s"
        try fill(dir, prefix: "user", count: 3)
        let base = ["consume", "--nats", nats.url, "--subject", "hooks.user", "--nats-user", "bridge", "--max-attempts", "1",
                    "--timeout", "1s", "--concurrency", "3", "--drain"]
        let wrong = try bridgeSpool(base + ["--nats-password", "nope"], dir: dir)
        #expect(wrong.stderr.contains("Authorization Violation") && entries(dir + "/failed").count == 3)
        _ = try bridgeSpool(["retry", "--all-failed"], dir: dir)
        // Without a stream on the subject the server answers "no responders": retried, never done.
        let noStream = try bridgeSpool(base, dir: dir, env: ["SPOOL_NATS_PASSWORD": "pw", "SPOOL_NATS_TOKEN": "ignored"])
        #expect(noStream.stderr.contains("status=no responders") && entries(dir + "/done").isEmpty, "\(noStream.stderr.suffix(400))")
        _ = try bridgeSpool(["retry", "--all-failed"], dir: dir)
        let right = try bridgeSpool(base + ["--nats-stream", "USER", "--create-stream"], dir: dir, env: ["SPOOL_NATS_PASSWORD": "pw"])
        #expect(right.status == 0 && entries(dir + "/done").count == 3, "\(right.stderr.suffix(400))")
        // The password from a file (first line; its mode checked), kept out of ps and the environment.
        try fill(dir, prefix: "userfile", count: 2)
        let pwFile = makeTempDir() + "/pw"
        try "pw\n".write(toFile: pwFile, atomically: true, encoding: .utf8)
        chmod(pwFile, 0o600)
        let fromFile = try bridgeSpool(base + ["--nats-stream", "USER", "--nats-password-file", pwFile], dir: dir)
        #expect(fromFile.status == 0 && entries(dir + "/done").count == 5, "\(fromFile.stderr.suffix(400))")
    }

    /// Two spools bridged over HTTP: `consume --post` on one feeds `spool serve` of the other, which takes the key
    /// from X-Spool-Key; every payload arrives byte for byte with its content type, each key once.
    @Test func postForwardsIntoAnotherSpoolServe() throws {
        let source = makeTempDir() + "/src", target = makeTempDir() + "/dst"
        try fill(source, prefix: "fwd", count: 200, contentType: "application/vnd.example+json")
        let serve = try Child(bridgeSpoolBin, ["--dir", target, "serve", "--listen", "127.0.0.1:0", "--path", "/in", "--key-header", "x-spool-key"])
        defer { serve.signal(SIGTERM); serve.wait(timeout: 20) }
        var port: String? = nil
        _ = serve.waitFor(timeout: 20) {
            if let r = serve.stdout.range(of: "127.0.0.1:"), let end = serve.stdout[r.upperBound...].firstIndex(of: " ") { port = String(serve.stdout[r.upperBound..<end]) }
            return port != nil
        }
        let url = "http://127.0.0.1:\(try #require(port))/in"
        let r = try bridgeSpool(["consume", "--post", url, "--header", "X-Source: spool-test", "--concurrency", "8", "--drain"], dir: source)
        #expect(r.status == 0, "\(r.stderr.suffix(400))")
        #expect(entries(source + "/done").count == 200)
        let src = try Spool(path: source), dst = try Spool(path: target)
        for i in 0..<200 {
            let key = try SpoolKey("fwd\(i)")
            let a = try src.find(key: key), b = try dst.find(key: key)
            #expect(try dst.payload(of: b) == src.payload(of: a), "fwd\(i) bytes")
            #expect(b.meta?.header("content-type") == "application/vnd.example+json")
        }
        // A second run has nothing to do, and forwarding the same items again would be answered "duplicate".
        _ = try bridgeSpool(["retry", "--all-failed"], dir: source)
        #expect(try bridgeSpool(["consume", "--post", url, "--once"], dir: source).status == 3)
        #expect(try dst.list(states: [.new, .done]).count == 200)
    }
}

/// Issue 25: `consume --nats` checks its stream at start: a missing one is exit 1 with a hint before any item is
/// attempted; `--create-stream` creates it at start, before anything is published.
@Suite struct StreamCheckAtStartTests {
    @Test(.enabled(if: natsInstalled, "nats-server is not installed: SKIPPED"))
    func aMissingStreamStopsTheStartAndCreateStreamActsAtOnce() throws {
        let nats = try NATSChild()
        let dir = makeTempDir() + "/s"
        _ = try spool("enqueue", "--key", "first", "-", dir: dir, stdin: Data("{}".utf8))
        let base = ["consume", "--nats", nats.url, "--subject", "hooks.start", "--nats-stream", "START", "--drain", "--timeout", "2s"]
        let missing = try bridgeSpool(base, dir: dir)
        #expect(missing.status == 1 && missing.stderr.contains("error: stream START does not exist") && missing.stderr.contains("--create-stream"),
                "\(missing.stderr)")
        #expect(entries(dir + "/new") == ["first"] && entries(dir + "/state").isEmpty, "no attempt was used")
        // --create-stream on an empty spool: the stream exists when the consumer is done, though nothing was published.
        let empty = makeTempDir() + "/e"
        _ = try spool("init", dir: empty)
        let created = try bridgeSpool(base + ["--create-stream"], dir: empty)
        #expect(created.status == 0 && created.stderr.contains("created stream START"), "\(created.stderr)")
        #expect(try nats.count("START") == 0)
        let delivered = try bridgeSpool(base, dir: dir)
        let count = try nats.count("START")
        #expect(delivered.status == 0 && entries(dir + "/done") == ["first"] && count == 1, "\(delivered.stderr)")
    }
}
