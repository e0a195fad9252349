import Foundation
import Glibc
import Testing
import SpoolCore
import SpoolTestSupport
@testable import SpoolUI

/// Real headless Chromium (Debian's `chromium`) against `spool ui`. Skipped, loudly, when it is not installed.
/// `SPOOL_TEST_CHROMIUM=none` behaves as if it were not installed (to see the skip); another value is the binary.
let chromiumPath: String? = {
    let env = ProcessInfo.processInfo.environment["SPOOL_TEST_CHROMIUM"]
    if env == "none" { return nil }
    return ([env].compactMap { $0 } + ["/usr/bin/chromium", "/usr/bin/chromium-browser"]).first { FileManager.default.isExecutableFile(atPath: $0) }
}()

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

    /// Chromium clicks the retry button of a failed item on the overview: the browser's own POST (its Origin,
    /// the page's CSRF field) moves the item to new/. A page of another origin that submits the same form with
    /// a script is refused and changes nothing.
    @Test func retryClickedInTheBrowserAndCrossOriginFormRefused() throws {
        if skipWithoutChromium() { return }
        let dir = makeTempDir("ui-click")
        let spool = try Spool(path: dir)
        let claimed = try makeFixture(spool)
        defer { _ = claimed }
        let p = try UIProcess(dir: dir)
        defer { _ = p.stop() }
        let browser = try DevToolsBrowser(chromium: chromiumPath!)
        let session = try browser.open(p.url + "/")
        // The new tab starts as about:blank: wait for our page.
        #expect(waitUntil(timeout: 20) {
            ((try? browser.evaluate("document.readyState === 'complete' && document.getElementById('count-failed') ? document.getElementById('count-failed').textContent : ''", session: session)) as? String) == "2"
        })
        #expect(try browser.evaluate("document.querySelectorAll('#chart polyline').length", session: session) as? Int == 3)
        #expect(try browser.evaluate("document.title", session: session) as? String == "spool: 4 waiting, 2 failed")
        // The failed-1 row's retry button.
        let clicked = try browser.evaluate("""
            (() => { for (const f of document.querySelectorAll('form[action="/actions/retry"]')) {
                if (f.querySelector('input[name=key]').value === 'failed-1') { f.querySelector('button').click(); return true } }
              return false })()
            """, session: session)
        #expect(clicked as? Bool == true)
        #expect(waitUntil(timeout: 15) { names(dir, "new").contains("failed-1") }, "the click did not move failed-1 to new/")
        #expect(!names(dir, "failed").contains("failed-1"))
        // It landed on the item's page, which says so.
        #expect(waitUntil(timeout: 15) { ((try? browser.evaluate("location.pathname", session: session)) as? String) == "/items/failed-1" })
        // The log says which key was retried, and from where.
        #expect(p.child.stderr.contains(" component=ui msg=request remote=127.0.0.1:"), "\(p.child.stderr)")
        #expect(p.child.stderr.contains(" method=POST path=/actions/retry status=303 outcome=retried key=failed-1 "), "\(p.child.stderr)")

        // An attacker's page on another origin (another port) posting the same fields with a script.
        let csrf = try #require(formFields(in: try curl([p.url + "/"]).stdout, action: "/actions/retry-all")?.first?.1)
        let evil = HTTPServerForTests(html: """
            <form id=f method=post action="\(p.url)/actions/retry-all"><input name=csrf value="\(csrf)"></form>
            <script>document.getElementById('f').submit()</script>
            """)
        let evilPort = try evil.start()
        defer { evil.stop() }
        let before = names(dir, "failed")
        let attack = try browser.open("http://localhost:\(evilPort)/")
        _ = attack
        #expect(waitUntil(timeout: 10) { evil.served > 0 })
        // The browser did send it, and the UI refused it.
        #expect(waitUntil(timeout: 10) { p.child.stderr.contains("method=POST path=/actions/retry-all status=403") }, "\(p.child.stderr)")
        #expect(names(dir, "failed") == before && !before.isEmpty, "a cross-origin form changed the spool")
    }

    /// docs/ui-screenshot.png: the overview of a spool with items in every state and an hour of history.
    /// `SPOOL_UI_SCREENSHOT=docs swift test --disable-xctest --filter screenshotForTheDocs` writes it.
    @Test func screenshotForTheDocs() throws {
        if skipWithoutChromium() { return }
        let dir = makeTempDir("ui-shot")
        try makeHistory(dir)
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
        // Into docs/ only when asked, so that a test run does not leave the work tree changed.
        if ProcessInfo.processInfo.environment["SPOOL_UI_SCREENSHOT"] == "docs" {
            try bytes.write(to: URL(fileURLWithPath: packageRoot + "/docs/ui-screenshot.png"))
        }
    }
}
