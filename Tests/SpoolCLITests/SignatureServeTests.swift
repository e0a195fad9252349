import Foundation
import SpoolSignatures
import SpoolTestSupport
import Testing

/// Signs deliveries with independent implementations (Tests/Fixtures/signing/sign.py): the reference
/// `standardwebhooks` package and `svix` from PyPI, and Python's `hmac` module for GitHub and Stripe.
enum SigningOracle {
    static let script = packageRoot + "/Tests/Fixtures/signing/sign.py"

    struct Case: Encodable {
        let lib: String
        let secret: String
        var id = ""
        var timestamp: Int64 = 0
        let body: String
    }

    /// True when both PyPI packages import; otherwise says so loudly (the Standard Webhooks test is then
    /// reported as skipped, never as passed).
    static let referenceLibrariesAvailable: Bool = {
        let r = try? runProcess("/usr/bin/env", ["python3", script, "--check"], timeout: 30)
        guard let r, r.status == 0 else {
            let why = r.map { $0.stdout + $0.stderr } ?? "python3 did not run"
            print("**** SKIPPED: Standard Webhooks interoperability (\(why.trimmingCharacters(in: .whitespacesAndNewlines))); pip install standardwebhooks svix ****")
            return false
        }
        return true
    }()

    static func sign(_ cases: [Case]) throws -> [String] {
        let input = try JSONEncoder().encode(cases)
        let r = try runProcess("/usr/bin/env", ["python3", script], stdin: [UInt8](input), timeout: 30)
        guard r.status == 0, let out = try? JSONDecoder().decode([String].self, from: Data(r.stdout.utf8)), out.count == cases.count else {
            throw HelperFailure(what: "sign.py: status \(r.status), \(r.stderr.prefix(500))")
        }
        return out
    }
}

/// `spool serve --verify` as a real process, driven by curl with signatures from the oracles above.
@Suite(.serialized) struct SignatureServeTests {
    static var now: Int64 { Int64(Date().timeIntervalSince1970) }

    func secretFile(_ dir: String, _ lines: [String]) throws -> String {
        let path = dir + ".secrets"
        try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o600)
        return path
    }

    /// (status, body) of one POST.
    func post(_ server: Server, _ body: String, _ headers: [String], path: String = "/json2video/done") throws -> (Int, String) {
        var args = ["-w", "\n%{http_code}", "-H", "Content-Type: application/json", "--data-binary", body]
        for h in headers { args += ["-H", h] }
        let r = try curl(args + [server.url + path])
        let lines = r.stdout.split(separator: "\n", omittingEmptySubsequences: false)
        return (Int(lines.last ?? "") ?? -1, lines.dropLast().joined(separator: "\n"))
    }

    func metrics(_ server: Server, _ headers: [String] = []) throws -> String {
        var args: [String] = []
        for h in headers { args += ["-H", h] }
        return try curl(args + [server.url + "/metrics"]).stdout
    }

    @Test(.enabled(if: SigningOracle.referenceLibrariesAvailable, "SKIPPED: the PyPI packages standardwebhooks and svix are not installed"))
    func standardWebhooksAgainstTheReferenceLibraries() throws {
        let dir = makeTempDir() + "/s"
        let current = "whsec_" + Base64.encode(Array("spool test secret, the current one".utf8))
        let previous = "whsec_" + Base64.encode(Array("spool test secret, the previous one".utf8))
        let stranger = "whsec_" + Base64.encode(Array("a secret spool does not have".utf8))
        // Two lines: a rotation in progress, either verifies.
        let file = try secretFile(dir, [current, previous])
        let server = try Server(dir: dir, extra: ["--verify", "standard-webhooks", "--secret-file", file])
        let t = Self.now
        func body(_ n: Int) -> String { #"{"type":"invoice.paid","n":\#(n),"data":{"amount":1200}}"# }
        typealias C = SigningOracle.Case
        let cases = [
            C(lib: "standardwebhooks", secret: current, id: "msg_valid", timestamp: t, body: body(1)),         // 0
            C(lib: "svix", secret: previous, id: "msg_svix_rotated", timestamp: t, body: body(2)),             // 1
            C(lib: "standardwebhooks", secret: current, id: "msg_changed", timestamp: t, body: body(3)),       // 2
            C(lib: "svix", secret: stranger, id: "msg_stranger", timestamp: t, body: body(4)),                 // 3
            C(lib: "standardwebhooks", secret: current, id: "msg_old", timestamp: t - 400, body: body(5)),     // 4
            C(lib: "svix", secret: current, id: "msg_future", timestamp: t + 400, body: body(6)),              // 5
            C(lib: "standardwebhooks", secret: stranger, id: "msg_several", timestamp: t, body: body(7)),      // 6
            C(lib: "standardwebhooks", secret: current, id: "msg_several", timestamp: t, body: body(7)),       // 7
            C(lib: "standardwebhooks", secret: current, id: "msg_missing", timestamp: t, body: body(8)),       // 8
            C(lib: "svix", secret: current, id: "msg_svix_branded", timestamp: t, body: body(9)),              // 9
        ]
        let sigs = try SigningOracle.sign(cases)
        func headers(_ i: Int, sig: String? = nil) -> [String] {
            ["webhook-id: \(cases[i].id)", "webhook-timestamp: \(cases[i].timestamp)", "webhook-signature: \(sig ?? sigs[i])"]
        }
        // Valid, stored under webhook-id byte for byte; the same delivery again is a duplicate.
        #expect(try post(server, body(1), headers(0)) == (200, #"{"status":"accepted","key":"msg_valid"}"#))
        #expect(try post(server, body(1), headers(0)) == (200, #"{"status":"duplicate","key":"msg_valid"}"#))
        #expect(String(decoding: try #require(storedPayload(atPath: dir + "/new/msg_valid")), as: UTF8.self) == body(1))
        // svix's Webhook class, signed with the previous secret (second line of the file).
        #expect(try post(server, body(2), headers(1)) == (200, #"{"status":"accepted","key":"msg_svix_rotated"}"#))
        // Svix's branded header names (what Svix sends by default); the key is svix-id.
        let branded = ["svix-id: msg_svix_branded", "svix-timestamp: \(t)", "svix-signature: \(sigs[9])"]
        #expect(try post(server, body(9), branded) == (200, #"{"status":"accepted","key":"msg_svix_branded"}"#))
        // Several signatures, one valid (any order), and a future version skipped.
        #expect(try post(server, body(7), headers(7, sig: "\(sigs[6]) v1a,c2lnbmF0dXJl \(sigs[7])")).0 == 200)
        let invalid = #"{"error":"invalid signature"}"#, stale = #"{"error":"timestamp outside tolerance"}"#
        // The body changed by one byte.
        var changed = Array(body(3).utf8)
        changed[changed.count - 3] = UInt8(ascii: "1")
        #expect(try post(server, String(decoding: changed, as: UTF8.self), headers(2)) == (401, invalid))
        #expect(try post(server, body(4), headers(3)) == (401, invalid))             // a secret not in the file
        #expect(try post(server, body(5), headers(4)) == (401, stale))               // 400 s old
        #expect(try post(server, body(6), headers(5)) == (401, stale))               // 400 s ahead
        #expect(try post(server, body(7), headers(6)) == (401, invalid))             // only the stranger's signature
        for drop in 0..<3 {                                                           // each header missing
            var h = headers(8)
            h.remove(at: drop)
            #expect(try post(server, body(8), h) == (401, invalid), "without \(headers(8)[drop])")
        }
        let malformed = try post(server, body(8), headers(8, sig: "v1," + String(sigs[8].dropFirst(4))))
        #expect(malformed.0 == 400 && malformed.1.hasPrefix(#"{"error":"malformed signature: webhook-signature"#), "\(malformed)")
        // Nothing of a refused request reached the spool.
        #expect(entries(dir + "/new") == ["msg_several", "msg_svix_branded", "msg_svix_rotated", "msg_valid"])
        #expect(entries(dir + "/keys").count == 4 && entries(dir + "/tmp").isEmpty)
        let m = try metrics(server)
        for (reason, n) in [("missing", 3), ("malformed", 1), ("invalid", 3), ("timestamp", 2)] {
            #expect(m.contains("spool_signature_rejected_total{reason=\"\(reason)\"} \(n)\n"), "\(reason) \(n)")
        }
        #expect(m.contains("spool_webhooks_rejected_total 9\n"))
        let stopped = server.stop()
        #expect(stopped.status == 0)
        #expect(stopped.stderr.contains("verifying standard-webhooks signatures with 2 secrets, tolerance 300s"))
        // Secrets are never logged.
        for s in [current, previous] { #expect(!stopped.stderr.contains(s) && !stopped.stdout.contains(s)) }
        #expect(!stopped.stderr.contains(String(current.dropFirst(6))))
    }

    @Test func githubDocumentedExampleAndHMAC() throws {
        let dir = makeTempDir() + "/s"
        let secret = "It's a Secret to Everybody"
        let file = try secretFile(dir, [secret])
        let server = try Server(dir: dir, extra: ["--verify", "github", "--secret-file", file])
        // GitHub's documentation: secret "It's a Secret to Everybody", payload "Hello, World!".
        let documented = "X-Hub-Signature-256: sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        #expect(try post(server, "Hello, World!", [documented, "X-GitHub-Delivery: 72d3162e-cc78-11e3-81ab-4c9367dc0958"])
                == (200, #"{"status":"accepted","key":"72d3162e-cc78-11e3-81ab-4c9367dc0958"}"#))
        #expect(String(decoding: try #require(storedPayload(atPath: dir + "/new/72d3162e-cc78-11e3-81ab-4c9367dc0958")), as: UTF8.self) == "Hello, World!")
        let push = #"{"ref":"refs/heads/main","after":"0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"}"#
        let sigs = try SigningOracle.sign([.init(lib: "github", secret: secret, body: push), .init(lib: "github", secret: "other", body: push)])
        #expect(try post(server, push, ["X-Hub-Signature-256: \(sigs[0])", "X-GitHub-Delivery: d-2"]).0 == 200)
        #expect(try post(server, push + "\n", ["X-Hub-Signature-256: \(sigs[0])", "X-GitHub-Delivery: d-3"]).0 == 401)
        #expect(try post(server, push, ["X-Hub-Signature-256: \(sigs[1])", "X-GitHub-Delivery: d-4"]).0 == 401)
        #expect(try post(server, push, ["X-GitHub-Delivery: d-5"]).0 == 401)
        #expect(try post(server, push, ["X-Hub-Signature-256: sha256=abc", "X-GitHub-Delivery: d-6"]).0 == 400)
        // Signed but without the delivery id, the default key: the key's error, after the signature passed.
        #expect(try post(server, push, ["X-Hub-Signature-256: \(sigs[0])"]) == (422, #"{"error":"no key: header X-GitHub-Delivery is missing"}"#))
        #expect(entries(dir + "/new") == ["72d3162e-cc78-11e3-81ab-4c9367dc0958", "d-2"])
        #expect(server.stop().status == 0)
    }

    @Test func stripeTimestampSeveralSignaturesAndTolerance() throws {
        let dir = makeTempDir() + "/s"
        let secret = "whsec_TEST0123456789abcdefghijklmnopqrstuv"
        let file = try secretFile(dir, [secret])
        let server = try Server(dir: dir, extra: ["--verify", "stripe", "--secret-file", file, "--tolerance", "10m"])
        let t = Self.now
        func event(_ id: String) -> String { #"{"id":"\#(id)","object":"event","type":"payment_intent.succeeded"}"# }
        typealias C = SigningOracle.Case
        let sigs = try SigningOracle.sign([
            C(lib: "stripe", secret: secret, timestamp: t, body: event("evt_1")),
            C(lib: "stripe", secret: "whsec_other", timestamp: t, body: event("evt_2")),
            C(lib: "stripe", secret: secret, timestamp: t, body: event("evt_2")),
            C(lib: "stripe", secret: secret, timestamp: t - 500, body: event("evt_3")),
            C(lib: "stripe", secret: secret, timestamp: t - 700, body: event("evt_4")),
            C(lib: "stripe", secret: secret, timestamp: t + 700, body: event("evt_5")),
        ])
        func v1(_ header: String) -> String { String(header.split(separator: ",")[1]) }
        #expect(try post(server, event("evt_1"), ["Stripe-Signature: \(sigs[0])"]) == (200, #"{"status":"accepted","key":"evt_1"}"#))
        #expect(try post(server, event("evt_1"), ["Stripe-Signature: \(sigs[0])"]) == (200, #"{"status":"duplicate","key":"evt_1"}"#))
        // Several v1 (Stripe sends one per active secret while one rolls), plus a v0 that is never checked.
        let several = "Stripe-Signature: t=\(t),\(v1(sigs[1])),\(v1(sigs[2])),v0=\(String(repeating: "0", count: 64))"
        #expect(try post(server, event("evt_2"), [several]).0 == 200)
        #expect(try post(server, event("evt_2"), ["Stripe-Signature: \(sigs[1])"]).0 == 401)
        #expect(try post(server, event("evt_3"), ["Stripe-Signature: \(sigs[3])"]).0 == 200)     // 500 s old, within 10m
        #expect(try post(server, event("evt_4"), ["Stripe-Signature: \(sigs[4])"]) == (401, #"{"error":"timestamp outside tolerance"}"#))
        #expect(try post(server, event("evt_5"), ["Stripe-Signature: \(sigs[5])"]) == (401, #"{"error":"timestamp outside tolerance"}"#))
        // The signed timestamp is part of the content: moving t breaks the signature.
        #expect(try post(server, event("evt_1"), ["Stripe-Signature: t=\(t + 1),\(v1(sigs[0]))"]) == (401, #"{"error":"invalid signature"}"#))
        #expect(try post(server, event("evt_1"), ["Stripe-Signature: \(v1(sigs[0]))"]).0 == 400)
        #expect(entries(dir + "/new") == ["evt_1", "evt_2", "evt_3"])
        #expect(server.stop().status == 0)
    }

    @Test func tokenAndSignatureBothMustPass() throws {
        let dir = makeTempDir() + "/s"
        let tokenFile = dir + ".token"
        try "t0ken\n".write(toFile: tokenFile, atomically: true, encoding: .utf8)
        chmod(tokenFile, 0o600)
        let file = try secretFile(dir, ["gh-secret"])
        let server = try Server(dir: dir, extra: ["--verify", "github", "--secret-file", file, "--token-file", tokenFile])
        let body = #"{"zen":"Keep it logically awesome."}"#
        let sig = try SigningOracle.sign([.init(lib: "github", secret: "gh-secret", body: body)])[0]
        let signed = ["X-Hub-Signature-256: \(sig)", "X-GitHub-Delivery: ping-1"]
        #expect(try post(server, body, signed) == (401, #"{"error":"missing or wrong token"}"#))
        #expect(try post(server, body, ["X-GitHub-Delivery: ping-1"], path: "/json2video/done?token=t0ken") == (401, #"{"error":"invalid signature"}"#))
        #expect(entries(dir + "/new").isEmpty)
        #expect(try post(server, body, signed, path: "/json2video/done?token=t0ken").0 == 200)
        #expect(try post(server, body, signed + ["Authorization: Bearer t0ken"]).1 == #"{"status":"duplicate","key":"ping-1"}"#)
        #expect(server.stop().status == 0)
    }

    /// Usage errors (64) before anything is read or opened; file and secret problems are runtime errors (1)
    /// that never show the secret.
    @Test func commandLineErrors() throws {
        let dir = makeTempDir() + "/s"
        let file = try secretFile(dir, ["whsec_" + Base64.encode(Array("k".utf8))])
        let usage = "\nusage: spool serve [OPTIONS]\n"
        let base = ["--dir", dir, "serve", "--listen", "127.0.0.1:0"]
        let usageCases: [([String], String)] = [
            (["--verify", "standard-webhooks"], "--verify needs --secret-file FILE"),
            (["--secret-file", file], "--secret-file needs --verify KIND"),
            (["--tolerance", "5m"], "--tolerance needs --verify KIND"),
            (["--verify", "svix", "--secret-file", file], "--verify takes standard-webhooks, github or stripe, got 'svix'"),
            (["--verify", "stripe", "--secret-file", file, "--tolerance", "5 minutes"], "--tolerance: expected a duration like 250ms, 30s, 15m, 24h, 7d or 1h30m, got '5 minutes'"),
            (["--verify", "stripe", "--secret-file", file, "--tolerance", "500ms"], "--tolerance must be at least 1s (signed timestamps are whole seconds)"),
            (["--verify", "github", "--secret-file", file, "--tolerance", "5m"], "--tolerance does not apply to --verify github (GitHub signs no timestamp)"),
        ]
        for (extra, message) in usageCases {
            let r = cli(base + extra)
            #expect(r.code == 64 && r.err == "spool: " + message + usage, "\(extra): \(r.err)")
        }
        #expect(!FileManager.default.fileExists(atPath: dir), "a usage error does not create the spool")

        func failure(_ kind: String, _ lines: [String]?, mode: mode_t = 0o600) throws -> (Int32, String) {
            let path = dir + ".bad"
            try? FileManager.default.removeItem(atPath: path)
            if let lines {
                try lines.joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
                chmod(path, mode)
            }
            let r = cli(base + ["--verify", kind, "--secret-file", path])
            return (r.code, r.err)
        }
        let path = dir + ".bad"
        #expect(try failure("github", ["x"], mode: 0o644) == (1, "error: secret file \(path) is open to others (mode 644); run: chmod 600 \(path)\n"))
        #expect(try failure("github", nil).1.hasPrefix("error: cannot read secret file \(path): "))
        #expect(try failure("github", []) == (1, "error: secret file \(path) holds no secret (one a line)\n"))
        #expect(try failure("stripe", ["", "  ", "\r"]) == (1, "error: secret file \(path) holds no secret (one a line)\n"))
        let notBase64 = try failure("standard-webhooks", ["whsec_AAAA", "whsec_this is-not*base64"])
        #expect(notBase64 == (1, "error: secret file \(path) line 2 is not base64 after the whsec_ prefix (a Standard Webhooks secret is base64, optionally prefixed whsec_)\n"))
        #expect(!notBase64.1.contains("is-not*base64"))
        #expect(try failure("github", Array(repeating: "s", count: 17)) == (1, "error: secret file \(path) holds 17 secrets; at most 16\n"))
        #expect(!FileManager.default.fileExists(atPath: dir), "a bad secret file does not create the spool")
        // Help documents the three options.
        let help = cli(["serve", "--help"]).out
        for o in ["--verify KIND", "--secret-file FILE", "--tolerance D"] { #expect(help.contains("\n  \(o) "), "\(o)") }
    }
}
