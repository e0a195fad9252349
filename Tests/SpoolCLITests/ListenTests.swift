import Foundation
import SpoolTestSupport
import Testing

/// `--listen` forms and the banner line scripts parse.
@Suite(.serialized) struct ListenTests {
    /// `[::1]:0`, as in a URL: the banner shows the address in brackets once, and the server answers there.
    @Test func bracketedIPv6ListenAddress() throws {
        let dir = makeTempDir() + "/s"
        let c = try Child(spoolBin, ["--dir", dir, "serve", "--listen", "[::1]:0"])
        defer { c.signal(SIGKILL); _ = c.wait(timeout: 10) }
        #expect(c.waitFor(timeout: 20) { c.stdout.contains("\n") })
        let banner = c.stdout.split(separator: "\n").first.map(String.init) ?? ""
        let prefix = "listening on http://[::1]:", suffix = " spool \(dir)"
        #expect(banner.hasPrefix(prefix) && banner.hasSuffix(suffix), "\(banner)")
        let port = banner.dropFirst(prefix.count).dropLast(suffix.count)
        #expect(UInt16(port) != nil, "\(banner)")
        let r = try curl(["-g", "-o", "/dev/null", "-w", "%{http_code}", "http://[::1]:\(port)/healthz"])
        #expect(r.stdout == "200")
    }
}
