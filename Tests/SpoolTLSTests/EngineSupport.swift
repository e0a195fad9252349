import Foundation
import Testing
import SpoolTLS
import SpoolTestSupport

/// Contexts made once per process from the shared test certificates.
enum Fixtures {
    static func certs() throws -> TestCertificates { try TestCertificates.shared() }

    static func server(_ id: KeyPath<TestCertificates, TestCertificates.Identity> = \.server) throws -> TLSServerContext {
        let c = try certs()[keyPath: id]
        return try TLSServerContext(certificateChainFile: c.certificate, privateKeyFile: c.key)
    }

    static func client(alpn: [String] = [], identity: KeyPath<TestCertificates, TestCertificates.Identity>? = nil) throws -> TLSClientContext {
        let c = try certs()
        let id = identity.map { c[keyPath: $0] }
        return try TLSClientContext(caFile: c.caCertificate, clientCertificateFile: id?.certificate,
                                    clientKeyFile: id?.key, alpnProtocols: alpn)
    }
}

/// Moves the ciphertext `from` has produced into `to`, in pieces of at most `piece` bytes (nil: in one
/// piece), calling `step` after each piece, so that the receiver sees a boundary after every piece.
func deliver(_ from: TLSEngine, _ to: TLSEngine, piece: Int?, step: () throws -> Void) throws {
    let bytes = from.takeOutput()
    guard !bytes.isEmpty else { return }
    let size = piece ?? bytes.count
    var off = 0
    while off < bytes.count {
        let end = min(off + size, bytes.count)
        to.feed(Array(bytes[off..<end]))
        try step()
        off = end
    }
}

/// Runs the handshake between two engines to completion, delivering every flight in pieces of `piece`
/// bytes and stepping the receiver after each. Returns the number of flights exchanged.
@discardableResult
func handshake(_ client: TLSEngine, _ server: TLSEngine, piece: Int? = nil) throws -> Int {
    var flights = 0
    for _ in 0..<50 {
        _ = try client.handshake()
        if client.pendingOutputCount > 0 { flights += 1 }
        try deliver(client, server, piece: piece) { _ = try server.handshake() }
        _ = try server.handshake()
        if server.pendingOutputCount > 0 { flights += 1 }
        // After the client's handshake is complete, what the server sends (session tickets) is read by `read`.
        try deliver(server, client, piece: piece) {
            if client.isHandshakeComplete { _ = try readAll(client) } else { _ = try client.handshake() }
        }
        if client.isHandshakeComplete && server.isHandshakeComplete
            && client.pendingOutputCount == 0 && server.pendingOutputCount == 0 { return flights }
    }
    Issue.record("handshake did not finish")
    return flights
}

/// Reads every plaintext byte the engine can give without more input.
func readAll(_ e: TLSEngine, max: Int = 1 << 24) throws -> (bytes: [UInt8], end: TLSEngine.ReadResult) {
    var out: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 4096)
    while out.count < max {
        let r = try buf.withUnsafeMutableBytes { try e.read(into: $0) }
        switch r {
        case .bytes(let n): out += buf[0..<n]
        default: return (out, r)
        }
    }
    return (out, .needsInput)
}

/// Writes all of `bytes` into the engine (record by record).
func writeAll(_ e: TLSEngine, _ bytes: [UInt8]) throws {
    var off = 0
    while off < bytes.count {
        let r = try bytes.withUnsafeBytes { try e.write(UnsafeRawBufferPointer(rebasing: $0[off...])) }
        guard case .bytes(let n) = r, n > 0 else { Issue.record("write answered \(r)"); return }
        off += n
    }
}

/// A handshaken client/server pair.
func connectedEngines(server: TLSServerContext? = nil, client: TLSClientContext? = nil,
                      name: String = "localhost") throws -> (client: TLSEngine, server: TLSEngine) {
    let s = try TLSEngine(server: server ?? Fixtures.server())
    let c = try TLSEngine(client: client ?? Fixtures.client(), serverName: name)
    try handshake(c, s)
    return (c, s)
}

/// Deterministic pseudo-random bytes (a test can tell every offset apart).
func pattern(_ count: Int, seed: UInt64 = 1) -> [UInt8] {
    var x = seed &* 0x9E3779B97F4A7C15 | 1
    return (0..<count).map { _ in
        x ^= x << 13; x ^= x >> 7; x ^= x << 17
        return UInt8(truncatingIfNeeded: x)
    }
}

func hex(_ s: String) -> [UInt8] {
    var out: [UInt8] = []
    var it = s.utf8.makeIterator()
    while let a = it.next(), let b = it.next() {
        out.append(UInt8(String(decoding: [a, b], as: UTF8.self), radix: 16)!)
    }
    return out
}
