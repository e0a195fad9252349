import Foundation
import SpoolTestSupport
import SpoolCore
import Testing

/// A consumer whose endpoint is down sleeps: no CPU, no attempts burnt; it delivers everything once it is back.
@Suite(.serialized) struct OutageTests {
    @Test func postConsumerSleepsThroughAnOutageAndDeliversAfterIt() throws {
        let dir = makeTempDir() + "/s", target = makeTempDir() + "/t"
        let spool = try Spool(path: dir)
        let requests = try (0..<50).map { i in
            EnqueueRequest(key: try SpoolKey("out\(i)"), payload: Array("{\"project\":\"out\(i)\"}".utf8), headers: [("content-type", "application/json")])
        }
        for r in spool.enqueueBatch(requests) { _ = try r.get() }
        let port = try freePort()
        let consumer = try Child(spoolBin, ["--dir", dir, "consume", "--post", "http://127.0.0.1:\(port)/json2video/done",
                                            "--concurrency", "16", "--backoff", "100ms", "--max-backoff", "1s"])
        defer { consumer.signal(SIGKILL); _ = consumer.wait(timeout: 10) }
        Thread.sleep(forTimeInterval: 1)
        let c0 = cpuSeconds(consumer.pid)
        Thread.sleep(forTimeInterval: 3)
        let used = cpuSeconds(consumer.pid) - c0
        #expect(used < 0.03, "the consumer used \(used)s of CPU in 3s of outage (limit 1% of a core)")
        let attempts = try spool.list(states: [.new]).reduce(0) { $0 + ($1.meta?.attempts ?? 0) }
        #expect(attempts <= 8, "\(attempts) attempts were used up against an endpoint that is down (one probe per backoff)")
        let server = try Child(spoolBin, ["--dir", target, "serve", "--listen", "127.0.0.1:\(port)"])
        defer { server.signal(SIGKILL); _ = server.wait(timeout: 10) }
        #expect(waitUntil(timeout: 40) { entries(dir + "/done").count == 50 }, "done: \(entries(dir + "/done").count)\n\(consumer.stderr.suffix(600))")
        #expect(entries(target + "/new").count == 50)
    }
}
