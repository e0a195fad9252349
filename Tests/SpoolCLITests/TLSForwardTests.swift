import Foundation
import SpoolTestSupport
import Testing

/// `consume --post https://` against a real TLS server (Python's http.server in ssl): what is verified, what a
/// failure says, and mutual TLS.
@Suite(.serialized) struct TLSForwardTests {
    /// A Python HTTPS endpoint with this certificate; `clientCA` requires a client certificate.
    final class Endpoint: @unchecked Sendable {
        let child: Child
        let port: UInt16
        init(_ id: TestCertificates.Identity, clientCA: String? = nil) throws {
            var args = [packageRoot + "/Tests/Fixtures/peers/https_server.py", id.certificate, id.key]
            if let clientCA { args += ["--client-ca", clientCA] }
            (child, port) = try startPythonPeer(args[0], Array(args.dropFirst()))
        }
        deinit { child.signal(SIGKILL); _ = child.wait(timeout: 10) }
        var requests: [String] { child.stdout.split(separator: "\n").filter { $0.hasPrefix("POST ") }.map(String.init) }
    }

    /// One item `key`, one attempt (`--once`) to `url`; returns the item's metadata as `show --json` prints it.
    func deliver(_ key: String, to url: String, extra: [String]) throws -> (result: ProcessResult, show: String) {
        let dir = makeTempDir() + "/s"
        _ = try spool("enqueue", "--key", key, "-", dir: dir, stdin: Data("{\"project\":\"\(key)\"}".utf8))
        let r = try run(spoolBin, ["--dir", dir, "consume", "--post", url, "--once", "--timeout", "5s"] + extra)
        let show = try spool("show", key, "--json", dir: dir).stdout
        return (r, show)
    }

    @Test func verifiedChainIsDoneAndEveryBadCertificateIsARetriedAttemptThatSaysWhy() throws {
        let certs = try TestCertificates.shared()
        let ca = ["--ca-file", certs.caCertificate]
        let good = try Endpoint(certs.serverChain)
        let ok = try deliver("good", to: "https://localhost:\(good.port)/hook", extra: ca)
        #expect(ok.result.status == 0 && ok.show.contains("\"state\":\"done\""), "\(ok.show) \(ok.result.stderr)")
        #expect(good.requests == ["POST /hook good - 18"], "\(good.requests)")
        // The address literal is checked against the certificate's IP entry.
        let byIP = try deliver("byip", to: "https://127.0.0.1:\(good.port)/hook", extra: ca)
        #expect(byIP.show.contains("\"state\":\"done\""), "\(byIP.show)")

        let cases: [(TestCertificates.Identity, [String], String)] = [
            (certs.otherName, ca, "certificate verify failed: hostname mismatch"),
            (certs.expired, ca, "certificate verify failed: certificate has expired"),
            (certs.untrusted, ca, "certificate verify failed: unable to get local issuer certificate"),
            (certs.server, [], "certificate verify failed: unable to get local issuer certificate"),  // system roots
        ]
        for (identity, extra, why) in cases {
            let bad = try Endpoint(identity)
            let d = try deliver("bad", to: "https://localhost:\(bad.port)/hook", extra: extra)
            #expect(d.show.contains("\"state\":\"new\"") && d.show.contains("\"attempts\":1"), "\(d.show)")
            #expect(d.show.contains(why), "expected '\(why)' in \(d.show)")
            #expect(d.result.stderr.contains("outcome=retry"), "\(d.result.stderr)")
            #expect(bad.requests.isEmpty, "nothing was sent to a server that could not prove who it is")
        }
    }

    @Test func mutualTLSIsAcceptedOnlyWithTheClientCertificate() throws {
        let certs = try TestCertificates.shared()
        let server = try Endpoint(certs.server, clientCA: certs.caCertificate)
        let url = "https://localhost:\(server.port)/m"
        let without = try deliver("nocert", to: url, extra: ["--ca-file", certs.caCertificate])
        // TLS 1.3: the client's handshake is complete before the server checks the certificate, so the refusal
        // arrives as an alert after the request was sent, or (the server closing at once) as a reset.
        #expect(without.show.contains("\"state\":\"new\"") && without.show.contains("\"attempts\":1"), "\(without.show)")
        #expect(without.show.contains("alert certificate required") || without.show.contains("reset by peer"), "\(without.show)")
        let key = makeTempDir() + "/client.key"
        try FileManager.default.copyItem(atPath: certs.client.key, toPath: key)
        chmod(key, 0o600)
        let with = try deliver("withcert", to: url, extra: ["--ca-file", certs.caCertificate, "--client-cert", certs.client.certificate, "--client-key", key])
        #expect(with.show.contains("\"state\":\"done\""), "\(with.show) \(with.result.stderr)")
        #expect(server.requests == ["POST /m withcert spool-client 22"], "\(server.requests)")
    }
}
