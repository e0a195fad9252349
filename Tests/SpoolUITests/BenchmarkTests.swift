import Foundation
import Testing
import SpoolCore
import SpoolHTTP
import SpoolTestSupport
@testable import SpoolUI

/// `SPOOL_UI_BENCH=1 swift test --disable-xctest --filter UIBenchmark`: the pages on a spool of 100,000 items.
@Suite(.enabled(if: ProcessInfo.processInfo.environment["SPOOL_UI_BENCH"] == "1", "a benchmark, not a test: run it with SPOOL_UI_BENCH=1"))
struct UIBenchmark {
    @Test func hundredThousandItems() throws {
        let total = Int(ProcessInfo.processInfo.environment["SPOOL_UI_ITEMS"] ?? "") ?? 100_000
        let dir = makeTempDir("ui-bench")
        let spool = try Spool(path: dir, flush: .syncfs)
        let t0 = Date()
        var i = 0
        while i < total {
            let n = min(256, total - i)
            let reqs = (i..<(i + n)).map { EnqueueRequest(key: try! SpoolKey("bench-\($0)"), payload: Array("{\"movie\":{\"project\":\"bench-\($0)\"}}".utf8)) }
            for r in spool.enqueueBatch(reqs) { _ = try r.get() }
            i += n
        }
        // A spread over the states without a consumer run: 30% moved to done/, 10% to failed/ (a rename, as
        // complete and fail end with; their metadata says nothing of it, so the ctime is the finish time).
        let fm = FileManager.default
        for k in 0..<total where k % 10 < 4 {
            let name = "bench-\(k)"
            try fm.moveItem(atPath: "\(dir)/new/\(name)", toPath: "\(dir)/\(k % 10 == 0 ? "failed" : "done")/\(name)")
        }
        print("ui bench: filled \(total) items in \(String(format: "%.1f", Date().timeIntervalSince(t0))) s")

        let ui = UIHandler(spool: spool)
        func measure(_ label: String, _ target: String, invalidate: Bool = false, runs: Int = 5) {
            var times: [Double] = []
            var size = 0
            for _ in 0..<runs {
                if invalidate { ui.cache.invalidate() }
                let s = Date()
                let r = ui.get(target)
                times.append(Date().timeIntervalSince(s) * 1000)
                size = r.body.count
                #expect(r.status == 200)
            }
            times.sort()
            print("ui bench: \(label): median \(String(format: "%.1f", times[times.count / 2])) ms, worst \(String(format: "%.1f", times.last!)) ms, \(size) bytes")
        }
        measure("GET / first request (cold scan, every metadata read)", "/", runs: 1)
        measure("GET / after retry-all or a refresh failure (invalidated: waits for a rescan, the listing and a stat of every item, metadata reused)", "/", invalidate: true)
        measure("GET / from the cached scan", "/", runs: 20)
        var worstAction = 0.0
        for k in stride(from: 0, to: 200, by: 10) {  // failed items: retry, then the page it redirects to
            let s = Date()
            let r = ui.post("/actions/retry", fields: [("csrf", ui.csrfToken), ("key", "bench-\(k)")])
            #expect(r.status == 303)
            #expect(ui.get("/").status == 200)
            worstAction = max(worstAction, Date().timeIntervalSince(s) * 1000)
        }
        print("ui bench: POST /actions/retry then GET / (the cached scan corrected in place): worst \(String(format: "%.1f", worstAction)) ms")
        measure("GET /list?state=new&page=300 (cached)", "/list?state=new&page=300", runs: 20)
        measure("GET /api/items?state=done&limit=100 (cached)", "/api/items?state=done&limit=100", runs: 20)
        measure("GET /api/stats (cached)", "/api/stats", runs: 20)
        measure("GET /items/bench-77777", "/items/bench-77777", runs: 20)
        // Last: its background scans would compete with the measurements above.
        var config = UIConfiguration()
        config.scanMaxAgeNanos = 0
        let always = UIHandler(spool: spool, configuration: config)
        _ = always.get("/")
        var worst = 0.0
        for _ in 0..<20 {
            let s = Date()
            #expect(always.get("/").status == 200)
            worst = max(worst, Date().timeIntervalSince(s) * 1000)
            Thread.sleep(forTimeInterval: 0.1)
        }
        print("ui bench: GET / every 100 ms with the scan always expired (served from the last scan while a new one runs): worst \(String(format: "%.1f", worst)) ms")

        ui.cache.invalidate()
        let r = ui.get("/")
        let countLine = r.text.range(of: "id=\"count-new\"").map { String(r.text[$0.lowerBound...].prefix(60)) } ?? "none"
        #expect(r.text.contains("<a id=\"count-new\" href=\"/list?state=new\">\(total * 6 / 10 + 20)</a>"), "\(countLine)")
    }
}
