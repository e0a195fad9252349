import Foundation
import CSpoolTestShims
import Testing
import SpoolTLS
import SpoolTestSupport

/// Bytes the C heap holds now (every arena; OpenSSL allocates with malloc).
func heapInUse() -> Int {
    Int(spool_test_heap_in_use())
}

/// What idle TLS connections cost, and that nothing leaks on the success and error paths. Measured on the C
/// heap, which other tests running at the same time also use: the numbers are taken over hundreds of
/// connections, the best of three rounds, with limits far from what noise can reach.
@Suite(.serialized) struct MemoryTests {
    /// Thousands of idle keep-alive connections must stay cheap: the target is < 20 KB per idle server
    /// session after it served a request larger than its buffers.
    @Test func anIdleServerSessionIsSmall() throws {
        let server = try Fixtures.server(), client = try Fixtures.client()
        let count = 200
        let request = pattern(65_536, seed: 7), response = pattern(65_536, seed: 8)
        var best = Int.max
        for _ in 0..<3 {
            var clients: [TLSEngine] = [], servers: [TLSEngine] = []
            for _ in 0..<count {
                let (c, s) = try connectedEngines(server: server, client: client)
                // A 64 KB request and a 64 KB response, then idle.
                try writeAll(c, request)
                try deliver(c, s, piece: 16_384) { _ = try readAll(s) }
                try writeAll(s, response)
                try deliver(s, c, piece: 16_384) { _ = try readAll(c) }
                clients.append(c)
                servers.append(s)
            }
            let withBoth = heapInUse()
            servers.removeAll()
            let withClients = heapInUse()
            best = min(best, (withBoth - withClients) / count)
            clients.removeAll()
        }
        print("idle TLS server session: \(best) bytes")
        #expect(best < 20_000, "an idle server session holds \(best) bytes")
    }

    @Test func nothingLeaksOnSuccessOrFailure() throws {
        let server = try Fixtures.server(), other = try Fixtures.server(\.otherName), client = try Fixtures.client()
        let payload = pattern(20_000), garbage = pattern(500)
        func round() throws {
            for _ in 0..<100 {
                // A full session with data and close_notify.
                let (c, s) = try connectedEngines(server: server, client: client)
                try writeAll(c, payload)
                try deliver(c, s, piece: nil) { _ = try readAll(s) }
                c.close()
                try deliver(c, s, piece: nil) { _ = try readAll(s) }
                // A verification failure, garbage, and a truncated handshake.
                let s2 = try TLSEngine(server: other), c2 = try TLSEngine(client: client, serverName: "localhost")
                _ = try? handshake(c2, s2)
                let s3 = try TLSEngine(server: server)
                s3.feed(garbage)
                _ = try? s3.handshake()
                let s4 = try TLSEngine(server: server), c4 = try TLSEngine(client: client, serverName: "localhost")
                _ = try c4.handshake()
                s4.feed(Array(c4.takeOutput().prefix(100)))
                s4.feedEOF()
                _ = try? s4.handshake()
                // Contexts too (a certificate reload makes new ones).
                _ = try Fixtures.server(\.serverReissued)
                _ = try? TLSServerContext(certificateChainFile: try Fixtures.certs().server.certificate,
                                          privateKeyFile: try Fixtures.certs().otherName.key)
            }
        }
        try round()  // warm up: OpenSSL's lazily built tables, error strings
        var best = Int.max
        for _ in 0..<3 {
            let before = heapInUse()
            try round()
            best = min(best, heapInUse() - before)
        }
        print("heap growth over 100 rounds: \(best) bytes")
        #expect(best < 100 * 1024, "the heap grew by \(best) bytes over 100 rounds")
    }
}
