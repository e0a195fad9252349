import Foundation
import Synchronization
import Testing
import SpoolConsumer
import SpoolCore
import SpoolSystem
import SpoolTLS
import SpoolTestSupport
@testable import SpoolBridges

/// The JetStream bridge over TLS against a real `nats-server` with TLS and client certificates required
/// (`--tlsverify`): INFO in plain text, then the upgrade; a restart mid-run redoes the handshake.
@Suite(.serialized, .enabled(if: natsAvailable, "nats-server is not installed (apt-get install nats-server): JetStream TLS tests SKIPPED"))
struct JetStreamTLSTests {
    let certs: TestCertificates
    let clientKey: String

    init() throws {
        certs = try TestCertificates.shared()
        clientKey = makeTempDir("key") + "/client.key"
        try FileManager.default.copyItem(atPath: certs.client.key, toPath: clientKey)
    }

    var serverFlags: [String] {
        ["--tlscert", certs.server.certificate, "--tlskey", certs.server.key, "--tlscacert", certs.caCertificate, "--tlsverify"]
    }
    var clientProfile: TLSClientProfile {
        TLSClientProfile(caFile: certs.caCertificate, clientCertificateFile: certs.client.certificate, clientKeyFile: clientKey)
    }

    func publisher(_ server: NATSServerProcess, url: String, tls: TLSClientProfile?, subject: String, stream: String,
                   log: LogLines) throws -> (NATSConnection, JetStreamPublisher) {
        try startedPublisher(endpoint: try Endpoint.nats(url), tls: tls, subject: subject, stream: stream, log: log,
                             timeout: 2_000_000_000, connectTimeout: 2_000_000_000)
    }

    @Test func tlsURLWithClientCertificateSurvivesARestartAndStoresEachKeyOnce() throws {
        let server = try NATSServerProcess(extra: serverFlags, clientTLS: clientProfile)
        let log = LogLines()
        let n = 2000
        let spool = try filledSpool("tls", prefix: "tls", count: n)
        let (conn, pub) = try publisher(server, url: "tls://localhost:\(server.port)", tls: clientProfile, subject: "hooks.tls", stream: "TLS", log: log)
        defer { conn.close() }
        #expect(conn.waitUntilConnected(timeoutNanos: 5_000_000_000), "\(log.all.suffix(3))")
        var cfg = ConsumerConfiguration()
        cfg.concurrency = 8
        cfg.policy = RetryPolicy(maxAttempts: 10_000, baseNanos: 50_000_000, maxNanos: 300_000_000)
        cfg.claimCheckIntervalNanos = 200_000_000
        let c = try Consumer(spool: spool, processor: pub, configuration: cfg, log: log.log)
        let finished = Mutex(false)
        startThread { _ = c.run(); finished.withLock { $0 = true } }
        defer { c.stop(); _ = waitUntil(timeout: 10) { finished.withLock { $0 } } }
        #expect(waitUntil(timeout: 30) { entries(spool.path + "/done").count >= 200 })
        server.stop(signal: SIGKILL)
        #expect(entries(spool.path + "/done").count < n, "the kill happened mid-run")
        usleep(300_000)
        try server.start()
        #expect(waitUntil(timeout: 60) { entries(spool.path + "/done").count == n }, "done: \(entries(spool.path + "/done").count) \(log.all.suffix(5))")
        #expect(try streamCount(server, "TLS") == Int64(n), "each key stored once")
        #expect(conn.connectCount >= 2, "reconnected (a new handshake) after the restart")
    }

    @Test func aPlainURLIsUpgradedWhenTheServerRequiresTLS() throws {
        let server = try NATSServerProcess(extra: serverFlags, clientTLS: clientProfile)
        let log = LogLines()
        let spool = try filledSpool("up", prefix: "up", count: 20)
        let (conn, pub) = try publisher(server, url: "nats://127.0.0.1:\(server.port)", tls: clientProfile, subject: "hooks.up", stream: "UP", log: log)
        defer { conn.close() }
        var cfg = ConsumerConfiguration()
        cfg.mode = .drain
        cfg.concurrency = 4
        _ = try Consumer(spool: spool, processor: pub, configuration: cfg, log: log.log).run()
        #expect(entries(spool.path + "/done").count == 20, "\(log.all.suffix(5))")
        #expect(try streamCount(server, "UP") == 20)
    }

    @Test func withoutTheClientCertificateOrWithTheWrongCANothingIsDelivered() throws {
        let server = try NATSServerProcess(extra: serverFlags, clientTLS: clientProfile)
        for (tls, why) in [(TLSClientProfile(caFile: certs.caCertificate), "TLS"),
                           (TLSClientProfile(caFile: certs.untrustedCA), "certificate verify failed")] {
            let log = LogLines()
            let (conn, _) = try publisher(server, url: "tls://localhost:\(server.port)", tls: tls, subject: "hooks.no", stream: "NO", log: log)
            defer { conn.close() }
            #expect(!conn.waitUntilConnected(timeoutNanos: 1_500_000_000))
            #expect(log.all.contains { $0.contains("cannot connect") && $0.contains(why) }, "\(log.all.suffix(3))")
        }
    }
}
