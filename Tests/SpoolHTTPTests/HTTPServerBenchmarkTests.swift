import Foundation
import Testing
import SpoolWire
import SpoolSystem
import SpoolTestSupport
@testable import SpoolHTTP

/// Opt-in load checks (`SPOOL_HTTP_BENCH=1 swift test --filter Benchmark`): too heavy for every run.
@Suite(.enabled(if: ProcessInfo.processInfo.environment["SPOOL_HTTP_BENCH"] == "1", "a benchmark, not a test: run it with SPOOL_HTTP_BENCH=1"))
struct HTTPServerBenchmarkTests {
    static func rssKiB() -> Int {
        let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
        return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
    }

    @Test func fiveThousandSlowConnections() throws {
        try withServer { s in
            let before = Self.rssKiB()
            var clients: [RawHTTPClient] = []
            for i in 0..<5000 {
                let c = try RawHTTPClient(port: s.port)
                if i % 2 == 0 { try c.send("POST /slow HTTP/1.1\r\nHost: a\r\nX-Partial: ") }
                clients.append(c)
            }
            let deadline = monotonicNanos() + 10_000_000_000
            while s.server.openConnections < 5000 && monotonicNanos() < deadline { Thread.sleep(forTimeInterval: 0.01) }
            let after = Self.rssKiB()
            var worst = 0.0
            for _ in 0..<200 {
                let c = try RawHTTPClient(port: s.port)
                let t = try elapsed {
                    try c.send("GET /fast HTTP/1.1\r\nHost: a\r\n\r\n")
                    #expect(c.readResponse()?.status == 200)
                }
                worst = max(worst, t)
            }
            print("5000 connections: open=\(s.server.openConnections) rss +\((after - before) / 1024) MiB (client and server sockets together), worst of 200 requests \(Int(worst * 1000)) ms")
            #expect(s.server.openConnections >= 5000)
            #expect(worst < 0.5)
        }
    }
}
