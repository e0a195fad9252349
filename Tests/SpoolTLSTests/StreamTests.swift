import Foundation
import Glibc
import Synchronization
import Testing
import SpoolSystem
import SpoolTLS
import SpoolTestSupport

/// TLSStream over real sockets, against independent TLS implementations (Python's `ssl`, `openssl s_server`,
/// curl) and against itself.
struct StreamTests {
    // MARK: - Our client, their server

    @Test func clientAgainstPythonEchoServer() throws {
        let py = try PythonTLSServer(try Fixtures.certs().server)
        let fd = try Socket.connect(host: "127.0.0.1", port: py.port, deadline: deadline())
        let s = try TLSStream(descriptor: fd, client: Fixtures.client(), serverName: "localhost")
        defer { s.close() }
        try s.handshake(deadline: deadline())
        #expect(s.isHandshakeComplete && s.protocolVersion == "TLSv1.3")
        let data = pattern(100_000, seed: 11)
        try s.writeAll(data, deadline: deadline())
        #expect(try s.read(count: data.count, deadline: deadline()) == data)
        s.shutdownWrite()  // close_notify: Python's recv returns b"" and it unwraps
        #expect(try s.readToEnd(deadline: deadline()).isEmpty)
        #expect(!s.closedWithoutCloseNotify)
        #expect(py.finish() == ["version: TLSv1.3", "eof", "unwrapped"])
    }

    @Test func clientAgainstPythonTLS12() throws {
        let py = try PythonTLSServer(try Fixtures.certs().server, mode: "tls12")
        let fd = try Socket.connect(host: "127.0.0.1", port: py.port, deadline: deadline())
        let s = try TLSStream(descriptor: fd, client: Fixtures.client(), serverName: "127.0.0.1")
        defer { s.close() }
        // No explicit handshake: the first write drives it.
        try s.writeAll(Array("twelve".utf8), deadline: deadline())
        #expect(String(decoding: try s.read(count: 6, deadline: deadline()), as: UTF8.self) == "twelve")
        #expect(s.protocolVersion == "TLSv1.2")
        s.shutdownWrite()
        #expect(try s.readToEnd(deadline: deadline()).isEmpty)
        #expect(py.finish() == ["version: TLSv1.2", "eof", "unwrapped"])
    }

    @Test func verificationFailsBeforeAnythingIsSent() throws {
        let py = try PythonTLSServer(try Fixtures.certs().otherName)
        let fd = try Socket.connect(host: "127.0.0.1", port: py.port, deadline: deadline())
        let s = try TLSStream(descriptor: fd, client: Fixtures.client(), serverName: "localhost")
        defer { s.close() }
        #expect(throws: StreamError.protocolFailure("certificate verify failed: hostname mismatch")) {
            try s.handshake(deadline: deadline())
        }
        // The stream stays failed.
        #expect(throws: StreamError.protocolFailure("certificate verify failed: hostname mismatch")) {
            try s.writeAll([1], deadline: deadline())
        }
        let lines = py.finish()
        #expect(lines.count == 1 && lines[0].hasPrefix("handshake-error:") && lines[0].contains("BAD_CERTIFICATE"), "\(lines)")
    }

    @Test func mutualTLS() throws {
        let certs = try Fixtures.certs()
        let py = try PythonTLSServer(certs.server, mode: "mtls")
        let fd = try Socket.connect(host: "127.0.0.1", port: py.port, deadline: deadline())
        let s = try TLSStream(descriptor: fd, client: Fixtures.client(identity: \.client), serverName: "localhost")
        defer { s.close() }
        try s.writeAll(Array("with a certificate".utf8), deadline: deadline())
        #expect(String(decoding: try s.read(count: 18, deadline: deadline()), as: UTF8.self) == "with a certificate")
        s.shutdownWrite()
        _ = try s.readToEnd(deadline: deadline())
        #expect(py.finish() == ["version: TLSv1.3", "peer: spool-client", "eof", "unwrapped"])

        // Without one, the server refuses it; with TLS 1.3 the client learns it at its first read.
        let py2 = try PythonTLSServer(certs.server, mode: "mtls")
        let fd2 = try Socket.connect(host: "127.0.0.1", port: py2.port, deadline: deadline())
        let s2 = try TLSStream(descriptor: fd2, client: Fixtures.client(), serverName: "localhost")
        defer { s2.close() }
        var failure: StreamError?
        do throws(StreamError) {
            try s2.handshake(deadline: deadline())
            // (Sending nothing: data the server never reads would make its close a reset, which can destroy
            // the alert before we read it.)
            _ = try s2.readToEnd(deadline: deadline())
        } catch { failure = error }
        guard case .protocolFailure(let m) = failure else { Issue.record("got \(String(describing: failure))"); return }
        #expect(m.contains("certificate required"), "\(m)")
        #expect(py2.finish().first?.hasPrefix("handshake-error:") == true)
    }

    @Test func clientAgainstOpenSSLServer() throws {
        let certs = try Fixtures.certs()
        let (probe, port) = try listener()
        try probe.close()  // a free port for s_server (it cannot report one it picked itself)
        let server = try Child("/usr/bin/openssl", ["s_server", "-accept", "127.0.0.1:\(port)", "-cert", certs.server.certificate,
                                                    "-key", certs.server.key, "-www", "-naccept", "1", "-quiet"])
        var fd: FileDescriptor?
        let end = deadline(10)
        while fd == nil && monotonicNanos() < end {
            fd = try? Socket.connect(host: "127.0.0.1", port: port, deadline: deadline(1))
            if fd == nil { usleep(20_000) }
        }
        let s = try TLSStream(descriptor: try #require(fd), client: Fixtures.client(), serverName: "localhost")
        defer { s.close() }
        try s.handshake(deadline: deadline())
        try s.writeAll(Array("GET / HTTP/1.0\r\n\r\n".utf8), deadline: deadline())
        let page = String(decoding: try s.readToEnd(deadline: deadline()), as: UTF8.self)
        #expect(page.hasPrefix("HTTP/1.0 200 ok\r\n"), "\(page.prefix(200))")
        #expect(page.contains("TLSv1.3"))
        server.signal(SIGTERM)  // it does not always exit after its one connection
        server.wait(timeout: 10)
    }

    // MARK: - Their client, our server

    /// A tiny blocking HTTP/1.1 server on TLSStream: reads one request head, answers `body`, closes.
    func serveOnce(_ l: FileDescriptor, body: String, context: TLSServerContext) throws -> (request: String, alpn: String?) {
        let fd = try acceptOne(l)
        let s = try TLSStream(descriptor: fd, server: context)
        defer { s.close() }
        let request = try s.read(until: "\r\n\r\n", deadline: deadline())
        let response = "HTTP/1.1 200 OK\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)"
        try s.writeAll(Array(response.utf8), deadline: deadline())
        s.shutdownWrite()
        _ = try? s.readToEnd(deadline: deadline(5))
        return (request, s.negotiatedALPN)
    }

    @Test func curlAgainstOurServer() throws {
        let certs = try Fixtures.certs()
        let (l, port) = try listener()
        defer { try? l.close() }
        let curl = try Child("/usr/bin/curl", ["-sS", "-v", "--max-time", "15", "--cacert", certs.caCertificate,
                                               "https://localhost:\(port)/hello"])
        let (request, alpn) = try serveOnce(l, body: "hello over TLS", context: try Fixtures.server())
        let r = curl.wait(timeout: 30)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == "hello over TLS")
        #expect(request.hasPrefix("GET /hello HTTP/1.1\r\n"))
        #expect(alpn == "http/1.1")
        #expect(r.stderr.contains("ALPN") && r.stderr.contains("http/1.1"))

        // curl to the IP address: the certificate's IP SAN.
        let curl2 = try Child("/usr/bin/curl", ["-sS", "--max-time", "15", "--cacert", certs.caCertificate,
                                                "https://127.0.0.1:\(port)/ip"])
        _ = try serveOnce(l, body: "by address", context: try Fixtures.server())
        #expect(curl2.wait(timeout: 30).stdout == "by address")
    }

    @Test func pythonClientAgainstOurServer() throws {
        let certs = try Fixtures.certs()
        let (l, port) = try listener()
        defer { try? l.close() }
        let script = #"""
import socket, ssl, sys
port, ca, maxver = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context(cafile=ca)
if maxver == "1.2":
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
ctx.set_alpn_protocols(["h2", "http/1.1"])
s = socket.create_connection(("127.0.0.1", port), timeout=20)
t = ctx.wrap_socket(s, server_hostname="localhost")
print(t.version(), t.selected_alpn_protocol(), flush=True)
data = bytes(range(256)) * 400
t.sendall(data)
got = b""
while len(got) < len(data):
    d = t.recv(65536)
    if not d:
        break
    got += d
print("echo-ok" if got == data else "echo-bad %d" % len(got), flush=True)
t.unwrap()
print("unwrapped", flush=True)
"""#
        for maxver in ["1.3", "1.2"] {
            let py = try Child("/usr/bin/python3", ["-c", script, "\(port)", certs.caCertificate, maxver])
            let fd = try acceptOne(l)
            let s = try TLSStream(descriptor: fd, server: try Fixtures.server())
            // Echo until the client's close_notify, then answer with ours.
            var buf = [UInt8](repeating: 0, count: 16384)
            while true {
                let n = try buf.withUnsafeMutableBytes { try s.read(into: $0, deadline: deadline()) }
                if n == 0 { break }
                try s.writeAll(Array(buf[0..<n]), deadline: deadline())
            }
            #expect(!s.closedWithoutCloseNotify)
            s.shutdownWrite()
            s.close()
            let r = py.wait(timeout: 30)
            #expect(r.lines == ["TLSv\(maxver) http/1.1", "echo-ok", "unwrapped"], "\(r.stderr)")
        }
    }

    @Test func plainHTTPToTheTLSServer() throws {
        let (c, sfd) = try socketPair()
        defer { try? c.close() }
        let s = try TLSStream(descriptor: sfd, server: try Fixtures.server())
        defer { s.close() }
        try c.sendAll(Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
        #expect(throws: StreamError.protocolFailure("TLS handshake failed: http request")) {
            _ = try s.readToEnd(deadline: deadline())
        }
    }

    /// A TCP connection that closes before its first byte (a port probe, a health check) is just closed, as
    /// on a plain socket; one that closes in the middle of a ClientHello is a failed handshake.
    @Test func connectionsThatEndBeforeOrDuringTheHandshake() throws {
        let (c, sfd) = try socketPair()
        let s = try TLSStream(descriptor: sfd, server: try Fixtures.server())
        defer { s.close() }
        try c.close()
        #expect(try s.readToEnd(deadline: deadline()).isEmpty)
        var buf = [UInt8](repeating: 0, count: 8)
        #expect(try buf.withUnsafeMutableBytes { try s.read(into: $0) } == .closed)

        let (c2, sfd2) = try socketPair()
        let s2 = try TLSStream(descriptor: sfd2, server: try Fixtures.server())
        defer { s2.close() }
        let hello = try TLSEngine(client: Fixtures.client(), serverName: "localhost")
        _ = try hello.handshake()
        try c2.sendAll(Array(hello.takeOutput().prefix(60)))
        try c2.close()
        #expect(throws: StreamError.protocolFailure("TLS handshake failed: the connection closed during the handshake")) {
            _ = try s2.readToEnd(deadline: deadline())
        }
    }

    // MARK: - Our client, our server

    /// `write` under backpressure: the socket blocks part-way through a record's ciphertext; the caller
    /// retries with the same bytes, and every byte arrives exactly once.
    @Test func writeRetryContractUnderBackpressure() throws {
        let (cfd, sfd) = try socketPair()
        try sfd.setSocketOption(SOL_SOCKET, SO_SNDBUF, 8192)
        try cfd.setSocketOption(SOL_SOCKET, SO_RCVBUF, 8192)
        let server = try TLSStream(descriptor: sfd, server: try Fixtures.server())
        let client = try TLSStream(descriptor: cfd, client: try Fixtures.client(), serverName: "localhost")
        defer { server.close(); client.close() }
        let data = pattern(250_000, seed: 4)
        // Before the client has said anything, a write can only wait for its ClientHello.
        #expect(try data.withUnsafeBytes { try server.write($0) } == .wouldBlock(.read))
        let received = Mutex<[UInt8]>([])
        let reader = TestThread {
            try client.handshake(deadline: deadline())
            usleep(200_000)  // let the server fill every buffer first
            let got = try client.read(count: data.count, deadline: deadline(60))
            received.withLock { $0 = got }
        }
        var off = 0, blockedOnWrite = 0, resumed = 0
        var lastWasBlocked = false
        let end = deadline(60)
        while off < data.count {
            let r = try data.withUnsafeBytes { p in
                Result { () throws(StreamError) in try server.write(UnsafeRawBufferPointer(rebasing: p[off...])) }
            }.get()
            switch r {
            case .bytes(let n):
                #expect(n > 0 && n <= 16384)
                if lastWasBlocked { resumed += 1 }
                off += n
                lastWasBlocked = false
            case .wouldBlock(let i):
                if i == .write { blockedOnWrite += 1 }
                lastWasBlocked = true
                try server.wait(i, deadline: end)
            case .closed:
                Issue.record("closed")
                off = data.count
            }
        }
        reader.join()
        #expect(blockedOnWrite >= 2 && resumed >= 2, "\(blockedOnWrite) \(resumed)")
        #expect(received.withLock { $0 } == data)
    }

    /// One thread reads while another writes on the same stream (as the NATS connection does): the stream's
    /// lock keeps the session consistent. The peer echoes.
    @Test func concurrentReaderAndWriter() throws {
        let (cfd, sfd) = try socketPair()
        let server = try TLSStream(descriptor: sfd, server: try Fixtures.server())
        let client = try TLSStream(descriptor: cfd, client: try Fixtures.client(), serverName: "localhost")
        defer { server.close(); client.close() }
        let echo = TestThread {
            var buf = [UInt8](repeating: 0, count: 7000)
            while true {
                let n = try buf.withUnsafeMutableBytes { try server.read(into: $0, deadline: deadline(60)) }
                if n == 0 { break }
                try server.writeAll(Array(buf[0..<n]), deadline: deadline(60))
            }
            server.shutdownWrite()
        }
        try client.handshake(deadline: deadline())
        let data = pattern(3_000_000, seed: 6)
        let received = Mutex<[UInt8]>([])
        let reader = TestThread {
            let got = try client.readToEnd(deadline: deadline(60))
            received.withLock { $0 = got }
        }
        let writer = TestThread {
            var off = 0, size = 1
            while off < data.count {
                let end = min(off + size, data.count)
                try client.writeAll(Array(data[off..<end]), deadline: deadline(60))
                off = end
                size = size * 7 % 40_000 + 1
            }
            client.shutdownWrite()
        }
        writer.join()
        echo.join()
        reader.join()
        #expect(received.withLock { $0 } == data)
    }

    /// Plaintext the session holds after a read is announced by `hasBufferedInput` even when the kernel
    /// shows nothing readable, and reading it needs no wait.
    @Test func bufferedInputWithoutKernelReadability() throws {
        let (cfd, sfd) = try socketPair()
        let server = try TLSStream(descriptor: sfd, server: try Fixtures.server())
        let client = try TLSStream(descriptor: cfd, client: try Fixtures.client(), serverName: "localhost")
        defer { server.close(); client.close() }
        let hs = TestThread { try client.handshake(deadline: deadline()) }
        let data = pattern(5000, seed: 8)
        try server.writeAll(data, deadline: deadline())  // drives the server's handshake too
        hs.join()
        usleep(100_000)  // every record is in the client's kernel buffer
        #expect(!client.hasBufferedInput)
        var got: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 100)
        var sawHiddenInput = false
        while got.count < data.count {
            let r = try buf.withUnsafeMutableBytes { try client.read(into: $0) }
            guard case .bytes(let n) = r else { Issue.record("read answered \(r) with \(got.count) bytes read"); break }
            got += buf[0..<n]
            let kernelReadable = try cfd.poll(.read, deadline: monotonicNanos() + 1_000_000)
            if client.hasBufferedInput && !kernelReadable { sawHiddenInput = true }
        }
        #expect(got == data)
        #expect(sawHiddenInput)
        #expect(try buf.withUnsafeMutableBytes { try client.read(into: $0) } == .wouldBlock(.read))
        #expect(!client.hasBufferedInput)
    }

    @Test func endOfFileWithAndWithoutCloseNotify() throws {
        for notify in [true, false] {
            let (cfd, sfd) = try socketPair()
            let server = try TLSStream(descriptor: sfd, server: try Fixtures.server())
            let client = try TLSStream(descriptor: cfd, client: try Fixtures.client(), serverName: "localhost")
            defer { server.close(); client.close() }
            let hs = TestThread { try client.handshake(deadline: deadline()) }
            try server.writeAll(Array("final".utf8), deadline: deadline())
            hs.join()
            if notify { server.shutdownWrite() } else { try sfd.shutdownWrite() }  // a FIN without close_notify
            #expect(String(decoding: try client.readToEnd(deadline: deadline()), as: UTF8.self) == "final")
            #expect(client.closedWithoutCloseNotify == !notify)
            var buf = [UInt8](repeating: 0, count: 10)
            #expect(try buf.withUnsafeMutableBytes { try client.read(into: $0) } == .closed)
        }
    }
}
