import Foundation
import Testing
import SpoolSystem
import SpoolTLS
import SpoolTestSupport
@testable import SpoolHTTP

/// The server with TLS streams (what `serve --tls-cert` builds): the handshake lives inside the header
/// deadline, large bodies both ways, pipelining, all through real TLS clients.
@Suite(.serialized) struct HTTPSServerTests {
    final class Running: @unchecked Sendable {
        let server: HTTPServer
        let port: UInt16
        let finished = DispatchSemaphore(value: 0)
        init(headerTimeout: Duration = .seconds(10)) throws {
            let certs = try TestCertificates.shared()
            let ctx = try TLSServerContext(certificateChainFile: certs.server.certificate, privateKeyFile: certs.server.key)
            var config = HTTPServerConfiguration()
            config.headerTimeout = headerTimeout
            config.sweepInterval = .milliseconds(50)
            config.maxBody = 4 << 20
            server = HTTPServer(configuration: config, handler: EchoHandler(), makeStream: { fd in
                do throws(TLSError) { return try TLSStream(descriptor: fd, server: ctx) } catch { return nil }
            })
            port = try server.bind(host: "127.0.0.1", port: 0)
            let server = self.server, finished = self.finished
            let t = Thread { try? server.run(); finished.signal() }
            t.stackSize = 1 << 20
            t.start()
        }
        func stop() { server.shutdown(grace: .seconds(2)); finished.wait() }
    }

    /// Seconds until the server closes a connection that sent `bytes` and then nothing.
    func secondsUntilClosed(port: UInt16, after bytes: [UInt8]) throws -> Double {
        let fd = try Socket.connect(host: "127.0.0.1", port: port, deadline: monotonicNanos() + 5_000_000_000)
        defer { try? fd.close() }
        if !bytes.isEmpty { _ = try bytes.withUnsafeBytes { try fd.send($0) } }
        let t0 = Date()
        var buf = [UInt8](repeating: 0, count: 4096)
        while Date().timeIntervalSince(t0) < 10 {
            guard try fd.poll(.read, deadline: monotonicNanos() + 10_000_000_000) else { break }
            let n = (try? buf.withUnsafeMutableBytes { try fd.recv(into: $0) }) ?? 0
            if n == 0 { break }
        }
        return Date().timeIntervalSince(t0)
    }

    @Test func aHandshakeThatDoesNotFinishWithinTheHeaderTimeoutIsClosed() throws {
        let s = try Running(headerTimeout: .milliseconds(500))
        defer { s.stop() }
        let silent = try secondsUntilClosed(port: s.port, after: [])
        let partial = try secondsUntilClosed(port: s.port, after: [0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00])
        #expect(silent >= 0.3 && silent < 2, "\(silent)")
        #expect(partial >= 0.3 && partial < 2, "\(partial)")
        // Not TLS at all: refused at once, never answered in plain text.
        let plain = try curl(["-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(s.port)/x"])
        #expect(plain.stdout == "000")
    }

    @Test func largeBodiesBothWaysAndKeepAlive() throws {
        let s = try Running()
        defer { s.stop() }
        let certs = try TestCertificates.shared()
        let body = makeTempDir() + "/body"
        let bytes = (0..<(3 << 20)).map { UInt8(0x41 + $0 % 26) }  // ASCII: the echo handler returns it as text
        try Data(bytes).write(to: URL(fileURLWithPath: body))
        let out = makeTempDir() + "/out"
        let r = try curl(["--cacert", certs.caCertificate, "--data-binary", "@" + body, "-o", out, "-w", "%{http_code} %{size_download}",
                          "https://localhost:\(s.port)/big", "--next", "--cacert", certs.caCertificate, "-o", "/dev/null",
                          "-w", " %{http_code} %{size_download} %{num_connects}", "https://localhost:\(s.port)/again"])
        #expect(r.stdout == "200 \(3 << 20 + "POST /big - ".utf8.count) 200 \("GET /again - ".utf8.count) 0", "\(r.stdout) \(r.stderr)")
        let echoed = try Data(contentsOf: URL(fileURLWithPath: out))
        #expect(echoed.count == 3 << 20 + 12 && echoed.suffix(3 << 20) == Data(bytes))
    }

    @Test func pipelinedRequestsInOneTLSRecordAreAnsweredInOrder() throws {
        let s = try Running()
        defer { s.stop() }
        let certs = try TestCertificates.shared()
        let py = """
            import socket, ssl, sys
            ctx = ssl.create_default_context(cafile=sys.argv[1])
            s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[2]))), server_hostname="localhost")
            reqs = b"".join(b"GET /p%d HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n" % i for i in range(20))
            s.sendall(reqs + b"GET /last HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n")
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk: break
                data += chunk
            print(data.count(b"HTTP/1.1 200"), [l for l in data.split(b"\\r\\n") if l.startswith(b"GET /")][-1].decode())
            """
        let r = try runProcess("/usr/bin/env", ["python3", "-c", py, certs.caCertificate, String(s.port)])
        #expect(r.stdout == "21 GET /last - \n", "\(r.stdout) \(r.stderr)")
    }
}
