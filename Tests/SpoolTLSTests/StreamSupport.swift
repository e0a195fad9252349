import Foundation
import Synchronization
import Testing
import SpoolSystem
import SpoolTLS
import SpoolTestSupport

func deadline(_ seconds: Double = 20) -> Int64 { monotonicNanos() + Int64(seconds * 1e9) }

/// A nonblocking listener on 127.0.0.1 and its port.
func listener() throws -> (FileDescriptor, UInt16) {
    let l = try Socket.listen(Socket.Address(host: "127.0.0.1", port: 0)!, backlog: 16)
    return (l, try l.localPort())
}

/// Waits for one connection on `l` (nonblocking accepted socket).
func acceptOne(_ l: FileDescriptor, timeout: Double = 20) throws -> FileDescriptor {
    let end = deadline(timeout)
    while true {
        if let fd = try Socket.accept(l) { return fd }
        guard try l.poll(.read, deadline: end) else { throw StreamError.timedOut }
    }
}

/// A connected pair of nonblocking sockets over loopback.
func socketPair() throws -> (client: FileDescriptor, server: FileDescriptor) {
    let (l, port) = try listener()
    defer { try? l.close() }
    let c = try Socket.connect(host: "127.0.0.1", port: port, deadline: deadline(5))
    return (c, try acceptOne(l))
}

/// A thread whose error (if any) is collected by `join`.
final class TestThread: Sendable {
    private let done = DispatchSemaphore(value: 0)
    private let failure = Mutex<String?>(nil)

    init(_ body: @escaping @Sendable () throws -> Void) {
        startThread { [self] in
            do { try body() } catch { failure.withLock { $0 = "\(error)" } }
            done.signal()
        }
    }

    /// Waits for the thread; records its error as a test issue.
    func join(timeout: Double = 60, sourceLocation: SourceLocation = #_sourceLocation) {
        guard done.wait(timeout: .now() + timeout) == .success else {
            Issue.record("thread did not finish", sourceLocation: sourceLocation)
            return
        }
        if let f = failure.withLock({ $0 }) { Issue.record("thread failed: \(f)", sourceLocation: sourceLocation) }
    }
}

extension ByteStream {
    /// Reads exactly `count` bytes (fewer if the peer closes first).
    func read(count: Int, deadline: Int64) throws(StreamError) -> [UInt8] {
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while out.count < count {
            let want = min(buf.count, count - out.count)
            let n = try buf.withUnsafeMutableBytes { p in
                Result { () throws(StreamError) in try read(into: UnsafeMutableRawBufferPointer(rebasing: p[..<want]), deadline: deadline) }
            }.get()
            if n == 0 { break }
            out += buf[0..<n]
        }
        return out
    }

    /// Reads until the peer closes.
    func readToEnd(deadline: Int64) throws(StreamError) -> [UInt8] { try read(count: Int.max, deadline: deadline) }

    /// Reads until `marker` has arrived.
    func read(until marker: String, deadline: Int64) throws(StreamError) -> String {
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while !String(decoding: out, as: UTF8.self).contains(marker) {
            let n = try buf.withUnsafeMutableBytes { p in
                Result { () throws(StreamError) in try read(into: p, deadline: deadline) }
            }.get()
            if n == 0 { break }
            out += buf[0..<n]
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// A Python `ssl` server (an independent TLS implementation) that echoes what it receives until the client
/// sends close_notify, then answers with its own. Modes: "plain", "tls12" (TLS 1.2 at most), "mtls" (requires a
/// client certificate from the test CA). It prints its port, then one line per event.
final class PythonTLSServer {
    let child: Child
    let port: UInt16

    static let script = #"""
import socket, ssl, sys
cert, key, ca, mode = sys.argv[1:5]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
if mode == "mtls":
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(ca)
if mode == "tls12":
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen(1)
print(ls.getsockname()[1], flush=True)
conn, _ = ls.accept()
conn.settimeout(20)
try:
    t = ctx.wrap_socket(conn, server_side=True)
except Exception as e:
    print("handshake-error:", e, flush=True)
    sys.exit(0)
print("version:", t.version(), flush=True)
if mode == "mtls":
    print("peer:", dict(x[0] for x in t.getpeercert()["subject"])["commonName"], flush=True)
while True:
    try:
        d = t.recv(65536)
    except Exception as e:
        print("recv-error:", e, flush=True)
        sys.exit(0)
    if not d:
        break
    t.sendall(d)
print("eof", flush=True)
try:
    t.unwrap()
    print("unwrapped", flush=True)
except Exception as e:
    print("unwrap-error:", e, flush=True)
conn.close()
"""#

    init(_ identity: TestCertificates.Identity, mode: String = "plain") throws {
        let certs = try TestCertificates.shared()
        let c = try Child("/usr/bin/python3", ["-c", Self.script, identity.certificate, identity.key, certs.caCertificate, mode])
        guard c.waitFor(timeout: 20, { c.stdout.contains("\n") }),
              let p = UInt16(c.stdout.split(separator: "\n").first ?? "") else {
            throw TestCertificates.ToolFailure(description: "python server did not start: \(c.stderr)")
        }
        child = c
        port = p
    }

    /// Everything it printed after the port, once it exits.
    func finish() -> [String] { Array(child.wait(timeout: 30).lines.dropFirst()) }
}
