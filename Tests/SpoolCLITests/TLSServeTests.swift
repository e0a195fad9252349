import Foundation
import SpoolSystem
import SpoolTestSupport
import Testing

/// `spool serve` with `--tls-cert`: a real process, certificates made by the openssl CLI, and independent
/// clients (curl, Python's ssl module, openssl s_client).
func httpsServer(dir: String, cert: String, key: String, extra: [String] = [], env: [String: String] = [:]) throws -> Server {
    try Server(dir: dir, extra: ["--tls-cert", cert, "--tls-key", key] + extra, env: env)
}

/// The serial number of the certificate a new TLS connection to `port` is shown.
func servedSerial(port: UInt16, ca: String) throws -> String {
    let r = try runProcess("/bin/sh", ["-c", "openssl s_client -connect 127.0.0.1:\(port) -servername localhost -CAfile \(ca) </dev/null 2>/dev/null | openssl x509 -noout -serial"])
    return r.stdout.trimmingCharacters(in: .whitespacesAndNewlines).replacingOccurrences(of: "serial=", with: "")
}

@Suite(.serialized) struct TLSServeTests {
    let fixtures = packageRoot + "/Tests/Fixtures/payloads/"

    @Test func httpsIngressWithCurlAndPython() throws {
        let certs = try TestCertificates.shared()
        let dir = makeTempDir() + "/s"
        let tokenFile = dir + ".token"
        try "s3cret\n".write(toFile: tokenFile, atomically: true, encoding: .utf8)
        chmod(tokenFile, 0o600)
        let server = try httpsServer(dir: dir, cert: certs.serverChain.certificate, key: certs.serverChain.key, extra: ["--token-file", tokenFile])
        #expect(server.child.stdout == "listening on https://127.0.0.1:\(server.port) spool \(dir)\n", "\(server.child.stdout)")
        let u = server.httpsURL + "/json2video/done?token=s3cret"
        let post = ["--cacert", certs.caCertificate, "-H", "Content-Type: application/json", "--data-binary", "@" + fixtures + "envelope-done.json"]
        #expect(try curl(post + [u]).stdout == #"{"status":"accepted","key":"WAEE8PohgVwv2teP"}"#)
        #expect(try curl(post + [u]).stdout == #"{"status":"duplicate","key":"WAEE8PohgVwv2teP"}"#)
        let noToken = try curl(["-o", "/dev/null", "-w", "%{http_code}"] + post + [server.httpsURL + "/json2video/done"])
        #expect(noToken.stdout == "401")
        // By IP address too (the certificate has IP:127.0.0.1), keep-alive over TLS: two requests, one connection.
        let two = try curl(["-v", "--cacert", certs.caCertificate, "https://127.0.0.1:\(server.port)/healthz", "https://127.0.0.1:\(server.port)/metrics?token=s3cret"])
        #expect(two.stdout.hasPrefix("ok\n") && two.stdout.contains("spool_webhooks_accepted_total 1"), "\(two.stdout.prefix(300))")
        #expect(two.stderr.contains("Re-using existing connection") || two.stderr.contains("Reusing existing"), "\(two.stderr.suffix(600))")
        #expect(two.stderr.contains("ALPN: server accepted http/1.1") || two.stderr.contains("ALPN, server accepted to use http/1.1"))
        // Python's ssl module, an independent TLS and HTTP client.
        let py = """
            import http.client, ssl, sys
            ctx = ssl.create_default_context(cafile=sys.argv[1])
            c = http.client.HTTPSConnection("localhost", int(sys.argv[2]), context=ctx)
            body = open(sys.argv[3], "rb").read()
            c.request("POST", "/json2video/done", body, {"Authorization": "Bearer s3cret", "Content-Type": "application/json"})
            r = c.getresponse()
            print(r.status, r.read().decode(), c.sock.version())
            """
        let p = try runProcess("/usr/bin/env", ["python3", "-c", py, certs.caCertificate, String(server.port), fixtures + "envelope-error.json"])
        #expect(p.stdout.hasPrefix(#"200 {"status":"accepted","key":"Qx9LmT2vBn7RzK4p"} TLSv1."#), "\(p.stdout) \(p.stderr)")
        // Plain HTTP on the TLS port: never a 2xx.
        let plain = try curl(["-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(server.port)/healthz"])
        #expect(plain.stdout == "000" && plain.status != 0)
        // An old protocol is refused (TLS 1.2 is the floor).
        let old = try runProcess("/bin/sh", ["-c", "openssl s_client -connect 127.0.0.1:\(server.port) -tls1_1 -cipher DEFAULT@SECLEVEL=0 </dev/null 2>&1"])
        #expect(old.status != 0 && old.stdout.contains("alert protocol version") && old.stdout.contains("Cipher is (NONE)"), "\(old.stdout)")
        #expect(entries(dir + "/new").sorted() == ["Qx9LmT2vBn7RzK4p", "WAEE8PohgVwv2teP"])
        let log = server.stop()
        #expect(log.status == 0)
        #expect(log.stderr.contains("method=POST path=/json2video/done status=200 outcome=accepted key=WAEE8PohgVwv2teP"))
        #expect(!log.stderr.contains("s3cret"), "secrets never logged")
    }

    @Test func sighupSwapsTheCertificateAndABadPairKeepsTheOld() throws {
        let certs = try TestCertificates.shared()
        let work = makeTempDir()
        let cert = work + "/cert.pem", key = work + "/key.pem"
        try FileManager.default.copyItem(atPath: certs.server.certificate, toPath: cert)
        try FileManager.default.copyItem(atPath: certs.server.key, toPath: key)
        chmod(key, 0o600)
        let server = try httpsServer(dir: work + "/s", cert: cert, key: key)
        let first = try TestCertificates.serial(of: certs.server.certificate)
        let second = try TestCertificates.serial(of: certs.serverReissued.certificate)
        #expect(first != second)
        #expect(try servedSerial(port: server.port, ca: certs.caCertificate) == first)
        // An open keep-alive connection keeps its session; new connections get the new certificate.
        for (from, to) in [(certs.serverReissued.certificate, cert), (certs.serverReissued.key, key)] {
            try FileManager.default.removeItem(atPath: to)
            try FileManager.default.copyItem(atPath: from, toPath: to)
        }
        chmod(key, 0o600)
        server.child.signal(SIGHUP)
        #expect(waitUntil(timeout: 10) { server.child.stderr.contains("TLS certificate reloaded (serial \(second))") }, "\(server.child.stderr)")
        #expect(try servedSerial(port: server.port, ca: certs.caCertificate) == second)
        // A pair that does not load (a key of another certificate) is reported; the previous one stays in use.
        try FileManager.default.removeItem(atPath: key)
        try FileManager.default.copyItem(atPath: certs.client.key, toPath: key)
        chmod(key, 0o600)
        server.child.signal(SIGHUP)
        #expect(waitUntil(timeout: 10) { server.child.stderr.contains("level=error component=serve msg=\"TLS reload failed") }, "\(server.child.stderr)")
        #expect(try servedSerial(port: server.port, ca: certs.caCertificate) == second)
        let r = try curl(["--cacert", certs.caCertificate, "--data-binary", #"{"project":"after-reload"}"#, server.httpsURL + "/json2video/done"])
        #expect(r.stdout == #"{"status":"accepted","key":"after-reload"}"#)
        #expect(server.stop().status == 0)
    }

    @Test func thousandStalledHandshakesDoNotDelayAWebhook() throws {
        var lim = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &lim)
        lim.rlim_cur = lim.rlim_max
        setrlimit(Int32(RLIMIT_NOFILE.rawValue), &lim)
        let certs = try TestCertificates.shared()
        let server = try httpsServer(dir: makeTempDir() + "/s", cert: certs.server.certificate, key: certs.server.key)
        // 1,000 connections that open TCP and never start the handshake, and 100 that stop inside a ClientHello.
        var stalled: [FileDescriptor] = []
        defer { for fd in stalled { try? fd.close() } }
        for i in 0..<1100 {
            let fd = try Socket.connect(host: "127.0.0.1", port: server.port, deadline: monotonicNanos() + 5_000_000_000)
            if i >= 1000 { _ = try? [UInt8]([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).withUnsafeBytes { try fd.send($0) } }
            stalled.append(fd)
        }
        var worst = 0.0
        for i in 0..<3 {
            let t0 = Date()
            let r = try curl(["--cacert", certs.caCertificate, "--data-binary", "{\"project\":\"n\(i)\"}", server.httpsURL + "/json2video/done"])
            worst = max(worst, Date().timeIntervalSince(t0))
            #expect(r.stdout == "{\"status\":\"accepted\",\"key\":\"n\(i)\"}")
        }
        #expect(worst < 1.0, "an HTTPS webhook took \(worst)s next to 1,100 stalled handshakes")
        let metrics = try curl(["--cacert", certs.caCertificate, server.httpsURL + "/metrics"]).stdout
        let open = metrics.split(separator: "\n").first { $0.hasPrefix("spool_open_connections ") }.flatMap { Int($0.split(separator: " ")[1]) }
        #expect((open ?? 0) >= 1100, "the stalled connections are held, not refused: \(open ?? -1)")
        #expect(server.stop().status == 0)
    }

    @Test func withoutOpenSSLTheExactErrorAndPlainServeStillWorks() throws {
        let certs = try TestCertificates.shared()
        let dir = makeTempDir() + "/s"
        let env = ["SPOOL_LIBSSL": "/nonexistent/libssl.so.3"]
        let r = try run(spoolBin, ["--dir", dir, "serve", "--listen", "127.0.0.1:0", "--tls-cert", certs.server.certificate,
                                   "--tls-key", certs.server.key], env: env)
        #expect(r.status == 1)
        #expect(r.stderr == "error: TLS needs OpenSSL 3 (libssl.so.3); install it with your package manager (Debian/Ubuntu: libssl3)\n", "\(r.stderr)")
        let post = try run(spoolBin, ["--dir", dir, "consume", "--post", "https://127.0.0.1:1/", "--once"], env: env)
        #expect(post.status == 1 && post.stderr.hasPrefix("error: TLS needs OpenSSL 3 (libssl.so.3)"), "\(post.stderr)")
        let nats = try run(spoolBin, ["--dir", dir, "consume", "--nats", "tls://127.0.0.1:1", "--subject", "s", "--once"], env: env)
        #expect(nats.status == 1 && nats.stderr.hasPrefix("error: TLS needs OpenSSL 3 (libssl.so.3)"), "\(nats.stderr)")
        // Plain HTTP needs nothing of OpenSSL.
        let plain = try Child(spoolBin, ["--dir", dir, "serve", "--listen", "127.0.0.1:0"], env: env)
        defer { plain.signal(SIGKILL); _ = plain.wait(timeout: 10) }
        #expect(plain.waitFor(timeout: 20) { plain.stdout.contains("listening on http://127.0.0.1:") }, "\(plain.stderr)")
    }

    @Test func tlsUsageAndFileErrors() throws {
        let certs = try TestCertificates.shared()
        let dir = makeTempDir() + "/s"
        let half = cli(["--dir", dir, "serve", "--tls-cert", certs.server.certificate])
        #expect(half.code == 64 && half.err.contains("--tls-cert and --tls-key go together"))
        let openKey = makeTempDir() + "/key.pem"
        try FileManager.default.copyItem(atPath: certs.server.key, toPath: openKey)
        chmod(openKey, 0o644)
        let open = cli(["--dir", dir, "serve", "--listen", "127.0.0.1:0", "--tls-cert", certs.server.certificate, "--tls-key", openKey])
        #expect(open.code == 1 && open.err.contains("--tls-key \(openKey) is open to others (mode 644); run: chmod 600 \(openKey)"), "\(open.err)")
        let mismatch = cli(["--dir", dir, "serve", "--listen", "127.0.0.1:0", "--tls-cert", certs.server.certificate, "--tls-key", certs.client.key])
        #expect(mismatch.code == 1 && mismatch.err.hasPrefix("error: TLS: "), "\(mismatch.err)")
        let missing = cli(["--dir", dir, "serve", "--listen", "127.0.0.1:0", "--tls-cert", "/nonexistent.pem", "--tls-key", certs.server.key])
        #expect(missing.code == 1 && missing.err.contains("/nonexistent.pem"), "\(missing.err)")
        let help = cli(["serve", "--help"])
        #expect(help.code == 0 && help.out.contains("--tls-cert FILE") && help.out.contains("SPOOL_LIBSSL"))
    }
}
