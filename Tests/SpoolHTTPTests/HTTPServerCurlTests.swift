import Foundation
import Testing
import SpoolWire
@testable import SpoolHTTP
import SpoolTestSupport

/// Interoperability with a real client.
struct HTTPServerCurlTests {
    @Test func keepAliveReusesConnection() throws {
        try withServer { s in
            let (rc, out, err) = try curl(["-D", "-", "\(s.url)/a", "\(s.url)/b"]).parts
            #expect(rc == 0, "\(err)")
            let remotes = out.components(separatedBy: "\r\n").filter { $0.lowercased().hasPrefix("x-remote:") }
            #expect(remotes.count == 2)
            #expect(Set(remotes).count == 1)  // same client port: one connection
            #expect(out.contains("GET /a - ") && out.contains("GET /b - "))
        }
    }

    @Test func chunkedPost() throws {
        try withServer { s in
            let (rc, out, _) = try curl(["-H", "Transfer-Encoding: chunked", "--data-binary", "payload-123", "\(s.url)/in"]).parts
            #expect(rc == 0)
            #expect(out == "POST /in - payload-123")
        }
    }

    @Test func expectContinueIsAnsweredPromptly() throws {
        try withServer { s in
            // curl waits up to 1 s for the 100 before sending the body anyway: a fast answer proves we sent it.
            let t = try elapsed {
                let (rc, out, _) = try curl(["-H", "Expect: 100-continue", "--expect100-timeout", "3", "--data-binary", "xyz", "\(s.url)/e"]).parts
                #expect(rc == 0)
                #expect(out == "POST /e - xyz")
            }
            #expect(t < 1.5)
        }
    }

    @Test func earlyRejectionWithExpect() throws {
        try withServer { s in
            let (rc, out, _) = try curl(["-H", "Expect: 100-continue", "--expect100-timeout", "3", "-w", " %{http_code}",
                                         "--data-binary", String(repeating: "z", count: 5000), "\(s.url)/reject"]).parts
            #expect(rc == 0)
            #expect(out == "{\"error\":\"unauthorized\"} 401")
        }
    }

    @Test func lengthRequiredAndTooLarge() throws {
        var config = HTTPServerConfiguration()
        config.maxBody = 1000
        try withServer(config) { s in
            let (_, out411, _) = try curl(["-X", "POST", "-w", "%{http_code}", "-o", "/dev/null", "\(s.url)/p"]).parts
            #expect(out411 == "411")
            let (_, out413, _) = try curl(["-w", "%{http_code}", "-o", "/dev/null", "--data-binary", String(repeating: "q", count: 5000), "\(s.url)/p"]).parts
            #expect(out413 == "413")
        }
    }
}
