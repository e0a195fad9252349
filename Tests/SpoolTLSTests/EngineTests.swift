import Foundation
import Testing
import SpoolTLS
import SpoolTestSupport

/// The engine as a byte transform: a client engine against a server engine in memory, no sockets.
struct EngineTests {
    @Test func handshakeInOnePieceAndDataBothWays() throws {
        let (c, s) = try connectedEngines()
        #expect(c.isHandshakeComplete && s.isHandshakeComplete)
        #expect(c.protocolVersion == "TLSv1.3")
        #expect(c.negotiatedALPN == nil)
        let request = pattern(100_000, seed: 2)
        try writeAll(c, request)
        try deliver(c, s, piece: nil) {}
        #expect(try readAll(s).bytes == request)
        let response = pattern(300_000, seed: 3)
        try writeAll(s, response)
        try deliver(s, c, piece: nil) {}
        let got = try readAll(c)
        #expect(got.bytes == response && got.end == .needsInput)
    }

    /// Every flight of a full handshake and an application record each way delivered one byte at a time,
    /// the receiver stepped after each byte: the engine sees a boundary at every position of every record.
    @Test func handshakeAndRecordsSplitAtEveryByte() throws {
        let s = try TLSEngine(server: Fixtures.server())
        let c = try TLSEngine(client: Fixtures.client(alpn: ["http/1.1"]), serverName: "localhost")
        let flights = try handshake(c, s, piece: 1)
        #expect(flights >= 3)
        #expect(c.isHandshakeComplete && s.isHandshakeComplete)
        #expect(s.negotiatedALPN == "http/1.1" && c.negotiatedALPN == "http/1.1")

        let message = Array("POST /hook HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi".utf8)
        try writeAll(c, message)
        var received: [UInt8] = []
        var stepsWithoutData = 0
        try deliver(c, s, piece: 1) {
            let r = try readAll(s)
            if r.bytes.isEmpty { stepsWithoutData += 1 }
            received += r.bytes
        }
        #expect(received == message)
        #expect(stepsWithoutData > 20)  // nothing came out of a partial record

        try writeAll(s, Array("HTTP/1.1 204 No Content\r\n\r\n".utf8))
        var back: [UInt8] = []
        try deliver(s, c, piece: 1) { back += try readAll(c).bytes }
        #expect(String(decoding: back, as: UTF8.self) == "HTTP/1.1 204 No Content\r\n\r\n")
    }

    /// One application record split in two at every possible position (same session, a new record each time).
    @Test func aRecordSplitInTwoAtEveryPosition() throws {
        let (c, s) = try connectedEngines()
        let message = pattern(300, seed: 9)
        try writeAll(c, message)
        let first = c.takeOutput()  // one record carrying the message: its size
        let length = first.count
        #expect(length > message.count)
        s.feed(first)
        #expect(try readAll(s).bytes == message)
        for cut in 1..<length {
            try writeAll(c, message)
            let record = c.takeOutput()
            #expect(record.count == length)
            s.feed(Array(record[..<cut]))
            let first = try readAll(s)
            #expect(first.bytes.isEmpty && first.end == .needsInput, "cut \(cut)")
            s.feed(Array(record[cut...]))
            #expect(try readAll(s).bytes == message, "cut \(cut)")
        }
    }

    @Test func alpn() throws {
        // Offered with another protocol first: the server picks http/1.1.
        var (c, s) = try connectedEngines(client: Fixtures.client(alpn: ["h2", "http/1.1"]))
        #expect(c.negotiatedALPN == "http/1.1" && s.negotiatedALPN == "http/1.1")
        // Only h2 offered: the handshake goes on without ALPN (documented choice, not a failure).
        (c, s) = try connectedEngines(client: Fixtures.client(alpn: ["h2"]))
        #expect(c.negotiatedALPN == nil && s.negotiatedALPN == nil)
        #expect(c.isHandshakeComplete && s.isHandshakeComplete)
    }

    // MARK: - Verification

    /// Runs a handshake expected to fail on the client; returns (client error, server error).
    func failingHandshake(server: KeyPath<TestCertificates, TestCertificates.Identity>, name: String = "localhost",
                          client: TLSClientContext? = nil) throws -> (TLSError?, TLSError?) {
        let s = try TLSEngine(server: Fixtures.server(server))
        let c = try TLSEngine(client: client ?? Fixtures.client(), serverName: name)
        var clientError: TLSError?, serverError: TLSError?
        for _ in 0..<10 {
            do throws(TLSError) { _ = try c.handshake() } catch { clientError = error }
            try deliver(c, s, piece: nil) {}
            do throws(TLSError) { _ = try s.handshake() } catch { serverError = error }
            try deliver(s, c, piece: nil) {}
            if clientError != nil && (serverError != nil || c.pendingOutputCount == 0) {
                // The client's alert reaches the server.
                do throws(TLSError) { _ = try s.handshake() } catch { serverError = error }
                break
            }
        }
        // A failed engine keeps failing the same way.
        if let clientError {
            var again: TLSError?
            do throws(TLSError) { _ = try c.handshake() } catch { again = error }
            #expect(again == clientError)
        }
        return (clientError, serverError)
    }

    @Test func hostnameMismatch() throws {
        let (c, s) = try failingHandshake(server: \.otherName)
        #expect(c == .verification("certificate verify failed: hostname mismatch"))
        #expect(c?.description == "certificate verify failed: hostname mismatch")
        guard case .handshake(let m) = s else { Issue.record("server saw \(String(describing: s))"); return }
        #expect(m.contains("alert"))  // the client told the server why
    }

    @Test func ipAddresses() throws {
        // The IP literal is checked against the certificate's IP addresses (and sent as no SNI).
        let (c, _) = try connectedEngines(name: "127.0.0.1")
        #expect(c.isHandshakeComplete)
        let (e, _) = try failingHandshake(server: \.otherName, name: "127.0.0.1")
        #expect(e == .verification("certificate verify failed: IP address mismatch"))
        let (e6, _) = try failingHandshake(server: \.server, name: "[::1]")
        #expect(e6 == .verification("certificate verify failed: IP address mismatch"))
    }

    @Test func expiredCertificate() throws {
        let (c, s) = try failingHandshake(server: \.expired)
        #expect(c == .verification("certificate verify failed: certificate has expired"))
        #expect(s == .handshake("sslv3 alert certificate expired"))
    }

    @Test func unknownCA() throws {
        let (c, s) = try failingHandshake(server: \.untrusted)
        #expect(c == .verification("certificate verify failed: unable to get local issuer certificate"))
        #expect(s == .handshake("tlsv1 alert unknown ca"))  // the client's alert, in the server's words
        // The system's roots (no CA file) do not know the test CA either.
        let (d, _) = try failingHandshake(server: \.server, client: TLSClientContext())
        #expect(d == .verification("certificate verify failed: unable to get local issuer certificate"))
    }

    @Test func invalidServerNames() throws {
        let client = try Fixtures.client()
        for name in ["", "[]", String(repeating: "a", count: 300), "a\u{0}b"] {
            #expect(throws: TLSError.self, "\(name.count)") { _ = try TLSEngine(client: client, serverName: name) }
        }
    }

    @Test func aChainFileIsAccepted() throws {
        let ctx = try Fixtures.server(\.serverChain)
        let (c, _) = try connectedEngines(server: ctx)
        #expect(c.isHandshakeComplete)
    }

    // MARK: - Garbage, truncation, close

    @Test func garbageInsteadOfAClientHello() throws {
        for garbage in [Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8), pattern(2000, seed: 5), [0x16, 0x03, 0x01, 0xff, 0xff] + pattern(100)] {
            let s = try TLSEngine(server: Fixtures.server())
            s.feed(garbage)
            var failure: TLSError?
            do throws(TLSError) { _ = try s.handshake() } catch { failure = error }
            guard case .handshake(let m) = failure else { Issue.record("got \(String(describing: failure))"); continue }
            #expect(!m.isEmpty)
            #expect(throws: TLSError.self) { _ = try readAll(s) }
        }
        // Plain HTTP gets OpenSSL's own diagnosis.
        let s = try TLSEngine(server: Fixtures.server())
        s.feed(Array("GET / HTTP/1.1\r\n\r\n".utf8))
        #expect(throws: TLSError.handshake("http request")) { _ = try s.handshake() }
    }

    @Test func closeNotifyEndsTheStreamCleanly() throws {
        let (c, s) = try connectedEngines()
        try writeAll(c, Array("last words".utf8))
        c.close()
        c.close()  // once only
        try deliver(c, s, piece: nil) {}
        let r = try readAll(s)
        #expect(String(decoding: r.bytes, as: UTF8.self) == "last words")
        #expect(r.end == .closed && s.peerSentCloseNotify)
        #expect(try readAll(s).end == .closed)  // and stays closed
        // The server may still answer (TLS 1.3 half-close), then closes too.
        try writeAll(s, Array("bye".utf8))
        s.close()
        try deliver(s, c, piece: nil) {}
        let back = try readAll(c)
        #expect(String(decoding: back.bytes, as: UTF8.self) == "bye" && back.end == .closed)
        #expect(throws: TLSError.self) { try writeAll(c, [1]) }  // after our close_notify
    }

    @Test func aPeerThatClosesMidRecord() throws {
        let (c, s) = try connectedEngines()
        try writeAll(c, pattern(1000))
        let record = c.takeOutput()
        s.feed(Array(record[..<(record.count / 2)]))
        #expect(try readAll(s).end == .needsInput)
        s.feedEOF()
        #expect(try readAll(s).end == .unexpectedEOF)
        #expect(try readAll(s).end == .unexpectedEOF)
    }

    @Test func eofAtARecordBoundaryWithoutCloseNotify() throws {
        let (c, s) = try connectedEngines()
        try writeAll(c, Array("complete".utf8))
        try deliver(c, s, piece: nil) {}
        s.feedEOF()
        let r = try readAll(s)
        #expect(String(decoding: r.bytes, as: UTF8.self) == "complete" && r.end == .unexpectedEOF)
    }

    @Test func eofDuringTheHandshake() throws {
        let s = try TLSEngine(server: Fixtures.server())
        let c = try TLSEngine(client: Fixtures.client(), serverName: "localhost")
        _ = try c.handshake()
        let hello = c.takeOutput()
        s.feed(Array(hello[..<40]))
        #expect(try s.handshake() == .needsInput)
        s.feedEOF()
        #expect(throws: TLSError.handshake("the connection closed during the handshake")) { _ = try s.handshake() }
        // And on the client, EOF right after its hello.
        c.feedEOF()
        #expect(throws: TLSError.handshake("the connection closed during the handshake")) { _ = try c.handshake() }
    }

    @Test func bufferedInputIsReported() throws {
        let (c, s) = try connectedEngines()
        #expect(!s.hasBufferedInput)
        try writeAll(c, pattern(40_000))
        try deliver(c, s, piece: nil) {}
        #expect(s.hasBufferedInput)  // fed, not yet looked at
        var small = [UInt8](repeating: 0, count: 100)
        let r = try small.withUnsafeMutableBytes { try s.read(into: $0) }
        #expect(r == .bytes(100))
        #expect(s.bufferedPlaintext > 0 && s.hasBufferedInput)
        let rest = try readAll(s)
        #expect(rest.bytes.count == 40_000 - 100 && rest.end == .needsInput)
        #expect(s.bufferedPlaintext == 0)
        #expect(!s.hasBufferedInput)
    }

    // MARK: - Contexts

    @Test func certificateErrorsNameTheFile() throws {
        let certs = try Fixtures.certs()
        func error(_ body: () throws -> Void) -> String {
            do { try body(); return "no error" } catch { return "\(error)" }
        }
        let missing = error { _ = try TLSServerContext(certificateChainFile: "/nonexistent/cert.pem", privateKeyFile: certs.server.key) }
        #expect(missing == "certificate chain /nonexistent/cert.pem: No such file or directory")
        let notPEM = error { _ = try TLSServerContext(certificateChainFile: certs.directory + "/req.cnf", privateKeyFile: certs.server.key) }
        #expect(notPEM == "certificate chain \(certs.directory)/req.cnf: no PEM certificate in it (no start line)")
        let mismatch = error { _ = try TLSServerContext(certificateChainFile: certs.server.certificate, privateKeyFile: certs.otherName.key) }
        #expect(mismatch == "private key \(certs.otherName.key) does not match the certificate in \(certs.server.certificate)")
        let keyIsCert = error { _ = try TLSServerContext(certificateChainFile: certs.server.certificate, privateKeyFile: certs.server.certificate) }
        #expect(keyIsCert == "private key \(certs.server.certificate): no PEM private key in it (unsupported)")
        let half = error { _ = try TLSClientContext(clientCertificateFile: certs.client.certificate) }
        #expect(half == "a client certificate and its private key must be given together")
        let badCA = error { _ = try TLSClientContext(caFile: certs.server.key) }
        #expect(badCA == "CA file \(certs.server.key): no certificate or crl found")
    }

    @Test func serialNumbersMatchTheOpenSSLTool() throws {
        let certs = try Fixtures.certs()
        let a = try Fixtures.server(\.server), b = try Fixtures.server(\.serverReissued)
        #expect(a.certificateSerial == (try TestCertificates.serial(of: certs.server.certificate)))
        #expect(b.certificateSerial == (try TestCertificates.serial(of: certs.serverReissued.certificate)))
        #expect(a.certificateSerial != b.certificateSerial)
        #expect(try Fixtures.server(\.serverChain).certificateSerial == a.certificateSerial)  // the leaf's
    }
}
