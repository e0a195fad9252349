import Foundation
import Glibc
import Testing
import SpoolCore
import SpoolHTTP
import SpoolTestSupport
@testable import SpoolUI

/// The handler behind a real `HTTPServer` on 127.0.0.1:0, driven with curl.
@Suite struct ServerTests {
    @Test func pagesAndActionsOverHTTP() throws {
        let dir = makeTempDir("ui-live")
        let spool = try Spool(path: dir)
        let claimed = try makeFixture(spool)
        let ui = UIHandler(spool: spool)
        let server = HTTPServer(handler: ui)
        let port = try server.bind(host: "127.0.0.1", port: 0)
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread { try? server.run(); done.signal() }
        defer { server.shutdown(grace: .seconds(1)); _ = done.wait(timeout: .now() + 5); _ = claimed }
        let base = "http://127.0.0.1:\(port)"

        let page = try curl(["-i", base + "/"])
        #expect(page.status == 0)
        #expect(page.stdout.hasPrefix("HTTP/1.1 200"))
        for h in ["content-security-policy: default-src 'self'", "x-frame-options: DENY", "x-content-type-options: nosniff",
                  "referrer-policy: same-origin", "cache-control: no-store"] {
            #expect(page.stdout.lowercased().contains(h.lowercased()), "\(h)")
        }
        #expect(page.stdout.contains("<a id=\"count-failed\" href=\"/list?state=failed\">2</a>"))
        let stats = try curl([base + "/api/stats"])
        #expect(stats.stdout.contains("\"failed\":2"))

        // The retry form, submitted as a browser does (curl sends no Origin: add the one a browser would).
        let fields = try #require(formFields(in: page.stdout, action: "/actions/retry"))
        let body = fields.map { "\($0.0)=\(formEncode($0.1))" }.joined(separator: "&")
        let csrfLess = try curl(["-o", "/dev/null", "-w", "%{http_code}", "-H", "Origin: \(base)", "--data", "key=failed-1", base + "/actions/retry"])
        #expect(csrfLess.stdout == "403")
        let foreign = try curl(["-o", "/dev/null", "-w", "%{http_code}", "-H", "Origin: http://evil.example", "--data", body, base + "/actions/retry"])
        #expect(foreign.stdout == "403")
        #expect(names(dir, "new").count == 4)
        let ok = try curl(["-o", "/dev/null", "-w", "%{http_code}", "-H", "Origin: \(base)", "--data", body, base + "/actions/retry"])
        #expect(ok.stdout == "303")
        #expect(names(dir, "new").count == 5)
        let raw = try curl([base + "/items/" + percentEncoded(Hostile.key) + "/body"])
        #expect(Array(raw.stdout.utf8) == Hostile.payload)
    }
}

/// `spool ui` as a process.
@Suite struct UICommandTests {
    @Test func helpAndUsageErrors() throws {
        let help = try runProcess(spoolBin, ["ui", "--help"])
        #expect(help.status == 0 && help.stdout.contains("--token-file") && help.stdout.contains("127.0.0.1:8081"))
        let dir = makeTempDir("ui-cmd")
        for listen in ["0.0.0.0:0", "10.1.2.3:8081", "[::]:0"] {
            let r = try runProcess(spoolBin, ["--dir", dir, "ui", "--listen", listen])
            #expect(r.status == 64, "\(listen): \(r.stderr)")
            #expect(r.stderr.contains("not a loopback address") && r.stderr.contains("--token-file"))
        }
        #expect(try runProcess(spoolBin, ["--dir", dir, "ui", "extra"]).status == 64)
        #expect(try runProcess(spoolBin, ["--dir", dir, "ui", "--listen", "nonsense"]).status == 64)
        let tokenFile = dir + "/token"
        _ = FileManager.default.createFile(atPath: tokenFile, contents: Data("t0ken\n".utf8), attributes: [.posixPermissions: 0o644])
        let open = try runProcess(spoolBin, ["--dir", dir, "ui", "--token-file", tokenFile])
        #expect(open.status == 1 && open.stderr.contains("open to others"))
    }

    @Test func tokenFileLoginAndCSRFThroughTheProcess() throws {
        let dir = makeTempDir("ui-cmd")
        let spool = try Spool(path: dir)
        let claimed = try makeFixture(spool)
        defer { _ = claimed }
        let tokenFile = dir + "/token"
        _ = FileManager.default.createFile(atPath: tokenFile, contents: Data("very-secret-token\n".utf8), attributes: [.posixPermissions: 0o600])
        // Any address is allowed with a token; 127.0.0.1 keeps the test local.
        let p = try UIProcess(dir: dir, extra: ["--token-file", tokenFile])
        let jar = dir + "/jar"
        #expect(try curl(["-o", "/dev/null", "-w", "%{http_code}", p.url + "/"]).stdout == "401")
        #expect(try curl(["-o", "/dev/null", "-w", "%{http_code}", p.url + "/?token=wrong"]).stdout == "401")
        let login = try curl(["-i", "-c", jar, p.url + "/?token=very-secret-token"])
        #expect(login.stdout.hasPrefix("HTTP/1.1 303") && login.stdout.contains("HttpOnly") && login.stdout.contains("SameSite=Strict"))
        let page = try curl(["-b", jar, p.url + "/"])
        #expect(page.stdout.contains("<a id=\"count-failed\""))
        #expect(try curl(["-H", "Authorization: Bearer very-secret-token", p.url + "/api/stats"]).stdout.contains("\"failed\":2"))
        let fields = try #require(formFields(in: page.stdout, action: "/actions/retry-all"))
        let body = fields.map { "\($0.0)=\(formEncode($0.1))" }.joined(separator: "&")
        // Logged in, but no token / another origin: refused, nothing moves.
        #expect(try curl(["-o", "/dev/null", "-w", "%{http_code}", "-b", jar, "-H", "Origin: \(p.url)", "--data", "x=1", p.url + "/actions/retry-all"]).stdout == "403")
        #expect(try curl(["-o", "/dev/null", "-w", "%{http_code}", "-b", jar, "-H", "Origin: http://evil.example", "--data", body, p.url + "/actions/retry-all"]).stdout == "403")
        // The right token but no session: 401.
        #expect(try curl(["-o", "/dev/null", "-w", "%{http_code}", "-H", "Origin: \(p.url)", "--data", body, p.url + "/actions/retry-all"]).stdout == "401")
        #expect(names(dir, "failed").count == 2)
        #expect(try curl(["-o", "/dev/null", "-w", "%{http_code}", "-b", jar, "-H", "Origin: \(p.url)", "--data", body, p.url + "/actions/retry-all"]).stdout == "303")
        #expect(names(dir, "failed").isEmpty)
        let r = p.stop()
        #expect(r.status == 0)
        #expect(!r.stderr.contains("very-secret-token"), "the token reached the log")
        #expect(r.stderr.contains("method=GET path=/ status=303"))
    }
}
