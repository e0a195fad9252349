import Foundation
import Testing
import SpoolCore
import SpoolHTTP
import SpoolTestSupport
@testable import SpoolUI

@Suite struct HandlerTests {
    let dir = makeTempDir("ui")
    let spool: Spool
    let claimed: ClaimedItem
    let ui: UIHandler

    init() throws {
        spool = try Spool(path: dir)
        claimed = try makeFixture(spool)
        ui = UIHandler(spool: spool)
    }

    @Test func overviewShowsCountsTablesAndChart() throws {
        let r = ui.get("/")
        #expect(r.status == 200)
        #expect(r.header("Content-Type") == "text/html; charset=utf-8")
        #expect(hasSecurityHeaders(r))
        let html = r.text
        #expect(html.contains("<a id=\"count-new\" href=\"/list?state=new\">4</a>"))
        #expect(html.contains("<a id=\"count-claimed\" href=\"/list?state=claimed\">1</a>"))
        #expect(html.contains("<a id=\"count-done\" href=\"/list?state=done\">1</a>"))
        #expect(html.contains("<a id=\"count-failed\" href=\"/list?state=failed\">2</a>"))
        #expect(html.contains("<meta http-equiv=\"refresh\" content=\"5\">"))
        #expect(html.contains("<svg") && html.contains("class=\"series-arrivals\"") && html.contains("class=\"series-completions\""))
        #expect(html.contains("8 arrivals, 1 completions, 2 failures"))
        #expect(html.contains("handler exited 1: connection refused"))
        #expect(html.contains("href=\"/items/claimed-1\""))
        #expect(html.contains("href=\"/items/waiting-1\""))
        #expect(html.contains("<td id=\"oldest\">") && html.contains("<span class=\"small\"><a class=\"key\" href=\"/items/"))
        #expect(html.contains("<td>in "))  // retrying-1 is due in minutes
        #expect(!html.contains("<script"))
        #expect(!html.contains("style="))
        let css = ui.get("/ui.css")
        #expect(css.status == 200 && css.header("Content-Type") == "text/css; charset=utf-8" && hasSecurityHeaders(css))
    }

    @Test func hostileTextIsEscapedEverywhere() throws {
        let pages = [ui.get("/").text, ui.get("/list?state=failed").text, ui.get("/items/" + percentEncoded(Hostile.key)).text]
        for html in pages {
            #expect(!html.contains("<script"), "a <script> got through")
            #expect(!html.contains("<img"), "an <img> got through")
            #expect(!html.contains("</textarea>"))
            #expect(!html.unicodeScalars.contains { ($0.value < 0x20 && $0 != "\n" && $0 != "\t") || (0x7F...0x9F).contains($0.value) },
                    "a control character got through")
            #expect(html.contains("&lt;script&gt;document.title=&#39;pwned-key&#39;&lt;/script&gt;&quot;&gt;&lt;img src=x onerror=&quot;document.title=&#39;pwned-img&#39;&quot;&gt;\\x85\\x9b"))
        }
        let item = pages[2]
        #expect(item.contains("&lt;/textarea&gt;&lt;script&gt;document.title=&#39;pwned-error&#39;&lt;/script&gt;"))
        #expect(item.contains("\\x1b[31m\\x00\\x07\\x0d\nsecond line"))
        #expect(item.contains("&lt;html&gt;&lt;script&gt;document.title=&#39;pwned-payload&#39;&lt;/script&gt;&lt;/textarea&gt;"))
        #expect(item.contains("\\x01\\x1b\\x9b"))
        #expect(item.contains("x-evil: &lt;script&gt;document.title=&#39;pwned-header&#39;&lt;/script&gt;"))
        #expect(item.contains("&lt;b&gt;500&lt;/b&gt;"))
        // The title holds the key, escaped.
        #expect(item.contains("<title>spool: item &lt;script&gt;"))
    }

    @Test func itemPageAndRawBody() throws {
        let r = ui.get("/items/failed-1")
        #expect(r.status == 200 && hasSecurityHeaders(r))
        // JSON pretty-printed.
        #expect(r.text.contains("{\n  &quot;movie&quot;: {\n    &quot;project&quot;: &quot;failed-1&quot;\n  },\n  &quot;n&quot;: [\n    1,\n    2\n  ]\n}"))
        #expect(r.text.contains("href=\"/items/failed-1/body\""))
        // The delivery history of the queue: the one failed attempt, with its status and error.
        #expect(r.text.contains("<h2>Attempts</h2>") && r.text.contains("<td>failed</td><td>exit 1</td><td>handler exited 1: connection refused</td>"))
        #expect(r.text.contains("<th>queue</th><td>default</td>"))
        let raw = ui.get("/items/" + percentEncoded(Hostile.key) + "/body")
        #expect(raw.status == 200 && raw.body == Hostile.payload)
        #expect(raw.header("Content-Type") == "application/octet-stream" && raw.header("X-Content-Type-Options") == "nosniff")
        #expect(ui.get("/items/nope").status == 404)
        #expect(ui.get("/items/%zz").status == 400)
        #expect(ui.get("/items/%01").status == 400)
        #expect(ui.get("/nope").status == 404)
        #expect(hasSecurityHeaders(ui.get("/nope")))
    }

    @Test func largePayloadIsCapped() throws {
        let big = [UInt8](repeating: 0x61, count: 300 * 1024)
        _ = try spool.enqueue(key: SpoolKey("big"), payload: big)
        let r = ui.get("/items/big")
        #expect(r.status == 200)
        #expect(r.text.contains("first 256 KiB of 307200 bytes shown"))
        #expect(r.body.count < 270 * 1024)
        #expect(ui.get("/items/big/body").body.count == 300 * 1024)
    }

    @Test func jsonAPI() throws {
        let s = ui.get("/api/stats")
        #expect(s.status == 200 && s.header("Content-Type") == "application/json" && hasSecurityHeaders(s))
        let stats = try JSONSerialization.jsonObject(with: Data(s.body)) as! [String: Any]
        #expect(stats["new"] as? Int == 4 && stats["failed"] as? Int == 2 && stats["done"] as? Int == 1 && stats["claimed"] as? Int == 1)
        // Item files: the payload and its header.
        let doneBytes = try #require((stats["bytes"] as? [String: Any])?["done"] as? Int)
        #expect(doneBytes > 11 && doneBytes < 11 + 512)
        #expect(stats["keys"] as? Int == 8)
        let i = ui.get("/api/items?state=failed&limit=10")
        let items = try JSONSerialization.jsonObject(with: Data(i.body)) as! [[String: Any]]
        #expect(items.count == 2)
        #expect(Set(items.compactMap { $0["key"] as? String }) == ["failed-1", Hostile.key])
        #expect(items.allSatisfy { $0["state"] as? String == "failed" && $0["attempts"] as? Int == 1 && $0["received_at"] is String && $0["finished_at"] is String })
        #expect(items.contains { $0["last_error"] as? String == Hostile.error })
        let all = try JSONSerialization.jsonObject(with: Data(ui.get("/api/items?limit=3").body)) as! [[String: Any]]
        #expect(all.count == 3)
        let rest = try JSONSerialization.jsonObject(with: Data(ui.get("/api/items?offset=3&limit=100").body)) as! [[String: Any]]
        #expect(rest.count == 5)
        let bad = ui.get("/api/items?state=bogus")
        #expect(bad.status == 400 && bad.header("Content-Type") == "application/json" && bad.text.contains("\"error\""))
        #expect(ui.get("/api/items?limit=-1").status == 400)
        #expect(ui.get("/api/nope").status == 404)
    }

    @Test func retryFromThePageMovesAFailedItemToNew() throws {
        let page = ui.get("/").text
        let fields = try #require(formFields(in: page, action: "/actions/retry"))
        #expect(fields.map(\.0) == ["csrf", "key"])
        let key = String(decoding: percentDecoded(fields[1].1[...])!, as: UTF8.self)
        let r = ui.post("/actions/retry", fields: fields)
        #expect(r.status == 303 && hasSecurityHeaders(r))
        let name = try SpoolKey(key).fileName
        #expect(names(dir, "new").contains(name))
        #expect(!names(dir, "failed").contains(name))
        // The cache was invalidated: the next page shows it.
        #expect(ui.get("/").text.contains("<a id=\"count-failed\" href=\"/list?state=failed\">1</a>"))
    }

    @Test func retryTheHostileKeyAndRetryAllAndPurge() throws {
        let csrf = ui.csrfToken
        #expect(ui.post("/actions/retry", fields: [("csrf", csrf), ("key", percentEncoded(Hostile.key))]).status == 303)
        #expect(names(dir, "new").contains(try SpoolKey(Hostile.key).fileName))
        #expect(ui.post("/actions/retry-all", fields: [("csrf", csrf)]).status == 303)
        #expect(names(dir, "failed").isEmpty)
        // Purge asks first: a page whose form carries confirm=yes; nothing is removed until that form is sent.
        let ask = ui.post("/actions/purge", fields: [("csrf", csrf), ("key", "done-1")])
        #expect(ask.status == 200 && ask.text.contains("<h1>Purge done-1?</h1>") && ask.text.contains(#"name="confirm" value="yes""#), "\(ask.text)")
        #expect(names(dir, "done").contains("done-1"))
        #expect(ui.post("/actions/purge", fields: [("csrf", csrf), ("key", "done-1"), ("confirm", "yes")]).status == 303)
        #expect(names(dir, "done").isEmpty && !names(dir, "keys").contains("done-1"))
        // Not finished: refused, nothing changes.
        let r = ui.post("/actions/purge", fields: [("csrf", csrf), ("key", "waiting-1")])
        #expect(r.status == 409 && names(dir, "new").contains("waiting-1"))
        #expect(ui.post("/actions/retry", fields: [("csrf", csrf), ("key", "nope")]).status == 404)
        #expect(ui.post("/actions/retry", fields: [("csrf", csrf)]).status == 400)
        #expect(ui.post("/actions/other", fields: [("csrf", csrf)]).status == 404)
    }

    @Test func csrfRefusals() throws {
        let before = tree(dir)
        let key = ("key", "failed-1")
        let csrf = ui.csrfToken
        var refused: [HTTPResponse] = [
            ui.post("/actions/retry", fields: [key]),                                  // no token
            ui.post("/actions/retry", fields: [("csrf", (csrf.hasPrefix("0") ? "1" : "0") + csrf.dropFirst()), key]), // one digit off
            ui.post("/actions/retry", fields: [("csrf", ""), key]),
            ui.post("/actions/retry", fields: [("csrf", csrf), key], origin: "http://evil.example"),
            ui.post("/actions/retry", fields: [("csrf", csrf), key], origin: "null"),
            ui.post("/actions/retry", fields: [("csrf", csrf), key], origin: "http://127.0.0.1:8081.evil.example"),
            ui.post("/actions/retry", fields: [("csrf", csrf), key], origin: nil),     // neither Origin nor Referer
            ui.post("/actions/retry", fields: [("csrf", csrf), key], origin: nil, extra: [("Referer", "http://evil.example/")]),
            ui.post("/actions/retry", fields: [("csrf", csrf), key], origin: nil, extra: [("Referer", "http://127.0.0.1:8081.evil.example/")]),
            ui.post("/actions/retry", fields: [("csrf", csrf), key], extra: [("Sec-Fetch-Site", "cross-site")]),
            ui.post("/actions/retry-all", fields: [], origin: "http://evil.example"),
            ui.post("/actions/purge", fields: [("csrf", csrf), ("key", "done-1"), ("confirm", "yes")], origin: "https://evil.example"),
        ]
        // A form field repeated to smuggle a second token.
        refused.append(ui.post("/actions/retry", fields: [("csrf", "x"), ("csrf", csrf), key]))
        for r in refused {
            #expect(r.status == 403 || r.status == 400, "\(r.status) \(r.text)")
            #expect(hasSecurityHeaders(r))
        }
        #expect(tree(dir) == before, "a refused POST changed the spool")
        // Without Origin, a same-origin Referer is enough (with the token).
        #expect(ui.post("/actions/retry", fields: [("csrf", csrf), key], origin: nil, extra: [("Referer", "http://127.0.0.1:8081/items/failed-1")]).status == 303)
        #expect(names(dir, "new").contains("failed-1"))
    }

    @Test func dnsRebindingHostIsRefusedWithoutToken() {
        #expect(ui.get("/", headers: [("Host", "evil.example:8081")]).status == 403)
        #expect(ui.get("/", headers: []).status == 403)
        #expect(ui.get("/", headers: [("Host", "localhost:9000")]).status == 200)
        #expect(ui.get("/", headers: [("Host", "[::1]:8081")]).status == 200)
        #expect(ui.request("PUT", "/").status == 405)
        #expect(ui.request("POST", "/").status == 405)
    }

    @Test func tokenLoginCookieAndBearer() throws {
        let secured = UIHandler(spool: spool, configuration: UIConfiguration(token: "s3cret-token"))
        let host = [("Host", "ui.example:8081")]
        #expect(secured.get("/", headers: host).status == 401)
        #expect(secured.get("/api/stats", headers: host).status == 401)
        #expect(secured.get("/?token=wrong", headers: host).status == 401)
        let login = secured.get("/?token=s3cret-token", headers: host)
        #expect(login.status == 303 && login.header("Location") == "/")
        #expect(secured.get("/items/failed-1?token=s3cret-token", headers: host).header("Location") == "/items/failed-1")
        for sneaky in ["//evil.example/", "/\\evil.example/", "/a\"b"] {
            #expect(secured.get(sneaky + "?token=s3cret-token", headers: host).header("Location") == "/", "\(sneaky)")
        }
        let cookie = try #require(login.header("Set-Cookie"))
        #expect(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && !cookie.contains("s3cret-token"))
        let pair = String(cookie.split(separator: ";")[0])
        #expect(secured.get("/", headers: host + [("Cookie", "a=b; " + pair)]).status == 200)
        #expect(secured.get("/", headers: host + [("Cookie", "spool_ui_session=forged")]).status == 401)
        #expect(secured.get("/api/stats", headers: host + [("Authorization", "Bearer s3cret-token")]).status == 200)
        #expect(secured.get("/api/stats", headers: host + [("Authorization", "Bearer s3cret-tokeN")]).status == 401)
        // CSRF still holds with the cookie.
        let before = tree(dir)
        func post(_ fields: [(String, String)], origin: String) -> HTTPResponse {
            let body = fields.map { "\($0.0)=\(formEncode($0.1))" }.joined(separator: "&")
            return secured.request("POST", "/actions/retry", headers: host + [("Cookie", pair), ("Origin", origin), ("Content-Type", "application/x-www-form-urlencoded")], body: Array(body.utf8))
        }
        #expect(post([("key", "failed-1")], origin: "http://ui.example:8081").status == 403)
        #expect(post([("csrf", secured.csrfToken), ("key", "failed-1")], origin: "http://evil.example").status == 403)
        #expect(post([("csrf", ui.csrfToken), ("key", "failed-1")], origin: "http://ui.example:8081").status == 403)  // another process's token
        #expect(tree(dir) == before)
        #expect(post([("csrf", secured.csrfToken), ("key", "failed-1")], origin: "http://ui.example:8081").status == 303)
        #expect(names(dir, "new").contains("failed-1"))
    }

    @Test func pagingThroughAList() throws {
        for n in 0..<250 { _ = try spool.enqueue(key: SpoolKey("bulk-\(n)"), payload: [0x78]) }
        let p1 = ui.get("/list?state=new").text
        #expect(p1.contains("new: 254 items") && p1.contains("page 1 of 3") && p1.contains("href=\"/list?state=new&amp;page=2\""))
        let p3 = ui.get("/list?state=new&page=3").text
        #expect(p3.contains("page 3 of 3") && !p3.contains("rel=\"next\""))
        #expect(ui.get("/list?state=new&page=x").status == 400)
        #expect(ui.get("/list?state=x").status == 400)
    }
}
