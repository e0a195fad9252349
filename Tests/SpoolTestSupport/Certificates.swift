import Foundation
import Synchronization

/// Test certificates made with the `openssl` command line tool (an independent implementation, not the code
/// under test): a CA, server certificates signed by it, and the bad cases a TLS client must refuse. For the
/// TLS engine tests and, later, the HTTPS server, the HTTPS forwarder and NATS over TLS.
///
/// Keys are ECDSA P-256 (fast to make; every client supports them). Leaf certificates are issued with
/// `openssl ca` so that validity dates can be set in the past (OpenSSL 3.0's `x509 -req` has no not-before
/// option) and every certificate of the CA gets its own serial number from the CA's serial file.
public struct TestCertificates: Sendable {
    /// A certificate (PEM) and its private key (PEM, unencrypted).
    public struct Identity: Sendable {
        public let certificate: String
        public let key: String
    }

    public let directory: String
    /// The trusted CA (what a client passes as its CA file).
    public let caCertificate: String
    /// CN=localhost, SAN DNS:localhost and IP:127.0.0.1, valid until 2035.
    public let server: Identity
    /// The same leaf as `server` followed by the CA certificate, in one file (a chain file), same key.
    public let serverChain: Identity
    /// Same names as `server`, another key and another serial number (a certificate reload).
    public let serverReissued: Identity
    /// CN=other.example, SAN DNS:other.example only: a host name (and IP) mismatch for `localhost`.
    public let otherName: Identity
    /// Names as `server`, but valid only in January 2020.
    public let expired: Identity
    /// CN=spool-client, extended key usage clientAuth, for mutual TLS.
    public let client: Identity
    /// A second CA nobody trusts, and a `localhost` certificate it signed.
    public let untrustedCA: String
    public let untrusted: Identity

    public struct ToolFailure: Error, CustomStringConvertible {
        public let description: String
        public init(description: String) { self.description = description }
    }

    private static let cache = Mutex<TestCertificates?>(nil)

    /// One set per test process (made on first use; about 20 `openssl` runs).
    public static func shared() throws -> TestCertificates {
        try cache.withLock { c in
            if let c { return c }
            let made = try make()
            c = made
            return made
        }
    }

    /// A fresh set in a new temporary directory.
    public static func make(tag: String = "certs") throws -> TestCertificates {
        let dir = makeTempDir(tag)
        try write(dir + "/req.cnf", """
            [ req ]
            distinguished_name = dn
            prompt = no
            [ dn ]
            CN = placeholder
            [ v3_ca ]
            basicConstraints = critical,CA:TRUE
            keyUsage = critical,keyCertSign,cRLSign
            subjectKeyIdentifier = hash
            authorityKeyIdentifier = keyid:always
            """)
        let ca = try makeCA(dir: dir + "/ca", name: "spool test CA")
        let rogue = try makeCA(dir: dir + "/rogue", name: "untrusted test CA")
        let localhostSAN = "DNS:localhost,IP:127.0.0.1"
        let server = try issue(ca, dir: dir, name: "server", cn: "localhost", san: localhostSAN)
        let reissued = try issue(ca, dir: dir, name: "server2", cn: "localhost", san: localhostSAN)
        let other = try issue(ca, dir: dir, name: "other", cn: "other.example", san: "DNS:other.example")
        let expired = try issue(ca, dir: dir, name: "expired", cn: "localhost", san: localhostSAN,
                                start: "200101000000Z", end: "200131000000Z")
        let client = try issue(ca, dir: dir, name: "client", cn: "spool-client", san: nil)
        let untrusted = try issue(rogue, dir: dir, name: "untrusted", cn: "localhost", san: localhostSAN)
        let chain = dir + "/server-chain.pem"
        try write(chain, try String(contentsOfFile: server.certificate, encoding: .utf8)
                  + String(contentsOfFile: ca + "/ca.pem", encoding: .utf8))
        return TestCertificates(
            directory: dir, caCertificate: ca + "/ca.pem", server: server,
            serverChain: Identity(certificate: chain, key: server.key), serverReissued: reissued,
            otherName: other, expired: expired, client: client, untrustedCA: rogue + "/ca.pem", untrusted: untrusted)
    }

    /// The serial number as `openssl x509 -noout -serial` prints it (upper-case hex).
    public static func serial(of certificate: String) throws -> String {
        let out = try openssl(["x509", "-in", certificate, "-noout", "-serial"])
        return out.trimmingCharacters(in: .whitespacesAndNewlines).replacingOccurrences(of: "serial=", with: "")
    }

    // MARK: - openssl steps

    @discardableResult
    static func openssl(_ args: [String], cwd: String? = nil) throws -> String {
        let r = try Child("/usr/bin/openssl", args, cwd: cwd).wait(timeout: 60)
        guard r.status == 0 else {
            throw ToolFailure(description: "openssl \(args.joined(separator: " ")) failed (\(r.status)): \(r.stderr)")
        }
        return r.stdout
    }

    static func write(_ path: String, _ text: String) throws {
        try (text + "\n").write(toFile: path, atomically: true, encoding: .utf8)
    }

    /// A self-signed CA with its `openssl ca` database in `dir`; returns `dir`.
    static func makeCA(dir: String, name: String) throws -> String {
        try FileManager.default.createDirectory(atPath: dir + "/issued", withIntermediateDirectories: true)
        let parent = (dir as NSString).deletingLastPathComponent
        try openssl(["req", "-x509", "-config", parent + "/req.cnf", "-extensions", "v3_ca",
                     "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                     "-keyout", dir + "/ca.key", "-out", dir + "/ca.pem", "-days", "3650", "-subj", "/CN=\(name)"])
        _ = FileManager.default.createFile(atPath: dir + "/index.txt", contents: Data())  // empty: no blank line
        // A random starting serial: certificates of different test runs never share one.
        try write(dir + "/serial", String(format: "%016llX", UInt64.random(in: 1 << 60 ..< 1 << 62)))
        try write(dir + "/ca.cnf", """
            [ ca ]
            default_ca = testca
            [ testca ]
            dir = \(dir)
            database = $dir/index.txt
            new_certs_dir = $dir/issued
            serial = $dir/serial
            certificate = $dir/ca.pem
            private_key = $dir/ca.key
            default_md = sha256
            policy = policy_any
            unique_subject = no
            email_in_dn = no
            [ policy_any ]
            commonName = supplied
            """)
        return dir
    }

    /// A key and a certificate for `cn` signed by the CA in `caDir`: a server certificate with `san`, or a
    /// client certificate when `san` is nil. Valid from `start` to `end` (UTCTime, YYMMDDHHMMSSZ).
    static func issue(_ caDir: String, dir: String, name: String, cn: String, san: String?,
                      start: String = "240101000000Z", end: String = "350101000000Z") throws -> Identity {
        let key = "\(dir)/\(name).key", csr = "\(dir)/\(name).csr", cert = "\(dir)/\(name).pem", ext = "\(dir)/\(name).ext"
        try openssl(["req", "-new", "-config", dir + "/req.cnf", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                     "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=\(cn)"])
        var lines = ["[ leaf ]", "basicConstraints = critical,CA:FALSE", "subjectKeyIdentifier = hash",
                     "authorityKeyIdentifier = keyid,issuer"]
        if let san {
            lines += ["keyUsage = critical,digitalSignature,keyEncipherment", "extendedKeyUsage = serverAuth",
                      "subjectAltName = \(san)"]
        } else {
            lines += ["keyUsage = critical,digitalSignature", "extendedKeyUsage = clientAuth"]
        }
        try write(ext, lines.joined(separator: "\n"))
        try openssl(["ca", "-batch", "-notext", "-config", caDir + "/ca.cnf", "-in", csr, "-out", cert,
                     "-startdate", start, "-enddate", end, "-extfile", ext, "-extensions", "leaf"])
        return Identity(certificate: cert, key: key)
    }
}
