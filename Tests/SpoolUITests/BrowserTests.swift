import Foundation
import Glibc
import Testing
import SpoolCore
import SpoolTestSupport
@testable import SpoolUI

/// Real headless Chromium (Debian's `chromium`) against `spool ui`. Skipped, loudly, when it is not installed.
let chromiumPath: String? = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first { FileManager.default.isExecutableFile(atPath: $0) }

func chromium(_ args: [String], timeout: Double = 90) throws -> ProcessResult {
    // As root Chromium needs --no-sandbox; a private profile so that parallel runs do not share one.
    let profile = makeTempDir("chromium")
    return try runProcess(chromiumPath!, ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-dev-shm-usage",
                                          "--user-data-dir=\(profile)", "--virtual-time-budget=3000"] + args, timeout: timeout)
}

func skipWithoutChromium() -> Bool {
    if chromiumPath == nil {
        print("**** SKIPPED: Chromium browser tests of spool ui: chromium is not installed (apt-get install chromium) ****")
        return true
    }
    return false
}

@Suite(.serialized) struct BrowserTests {
    @Test func pageLoadsCountsChartAndNothingHostileRuns() throws {
        if skipWithoutChromium() { return }
        let dir = makeTempDir("ui-browser")
        let spool = try Spool(path: dir)
        let claimed = try makeFixture(spool)
        defer { _ = claimed }
        let p = try UIProcess(dir: dir)
        defer { _ = p.stop() }
        for path in ["/", "/items/" + percentEncoded(Hostile.key), "/list?state=failed"] {
            let r = try chromium(["--dump-dom", p.url + path])
            #expect(r.status == 0, "\(r.stderr)")
            let dom = r.stdout
            #expect(dom.contains("<title>spool: "), "\(path): no title")
            // Whatever the page shows, the title is still ours: no hostile script changed it.
            let title = dom.range(of: "<title>").flatMap { s in dom.range(of: "</title>", range: s.upperBound..<dom.endIndex).map { String(dom[s.upperBound..<$0.lowerBound]) } }
            #expect(title?.hasPrefix("spool: ") == true && !(title?.hasPrefix("pwned") ?? true), "\(path): title \(title ?? "none")")
            #expect(!dom.contains("<img"), "\(path): an <img> element was created")
            #expect(!dom.contains("<script"), "\(path): a <script> element was created")
            if path == "/" {
                #expect(dom.contains("<a id=\"count-failed\" href=\"/list?state=failed\">2</a>"))
                #expect(dom.contains("<a id=\"count-new\" href=\"/list?state=new\">4</a>"))
                #expect(dom.contains("<polyline class=\"series-arrivals\""))
            } else if path.hasPrefix("/items/") {
                // The hostile text is shown, as text.
                #expect(dom.contains("&lt;/textarea&gt;&lt;script&gt;document.title='pwned-error'&lt;/script&gt;"))
                #expect(dom.contains("&lt;html&gt;&lt;script&gt;document.title='pwned-payload'"))
            }
        }
    }

    /// docs/ui-screenshot.png: the overview of a spool with items in every state.
    @Test func screenshotForTheDocs() throws {
        if skipWithoutChromium() { return }
        let dir = makeTempDir("ui-shot")
        let spool = try Spool(path: dir)
        let claimed = try makeFixture(spool)
        defer { _ = claimed }
        let p = try UIProcess(dir: dir)
        defer { _ = p.stop() }
        let png = dir + "/shot.png"
        let r = try chromium(["--screenshot=\(png)", "--window-size=1280,900", "--hide-scrollbars", p.url + "/"])
        #expect(r.status == 0, "\(r.stderr)")
        let bytes = try #require(FileManager.default.contents(atPath: png))
        #expect(bytes.starts(with: [0x89, 0x50, 0x4E, 0x47]) && bytes.count > 10_000)
        try bytes.write(to: URL(fileURLWithPath: packageRoot + "/docs/ui-screenshot.png"))
    }
}
