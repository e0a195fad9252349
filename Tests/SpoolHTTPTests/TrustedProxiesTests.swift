import Testing
@testable import SpoolHTTP

/// `--trusted-proxy`: which address the access log names as the client (issue 25).
@Suite struct TrustedProxiesTests {
    @Test func rangesAndAddresses() throws {
        let t = try #require(TrustedProxies(["10.0.0.0/8", "192.168.1.7", "fd00::/8", "::1", "172.16.0.0/12"]))
        func trusted(_ s: String) -> Bool { TrustedProxies.address(s).map(t.trusted) ?? false }
        #expect(trusted("10.1.2.3") && trusted("10.255.255.255") && !trusted("11.0.0.1") && !trusted("9.255.255.255"))
        #expect(trusted("192.168.1.7") && !trusted("192.168.1.8"))
        #expect(trusted("fd12:3456::1") && !trusted("fe80::1") && trusted("::1") && !trusted("::2"))
        #expect(trusted("172.31.255.255") && !trusted("172.32.0.0") && trusted("172.16.0.1"))
        #expect(trusted("::ffff:10.0.0.1"), "an IPv4-mapped IPv6 address is its IPv4 address")
        #expect(!trusted("localhost") && !trusted("10.0.0.1:80") && !trusted(""))
        for bad in ["10.0.0.0/33", "::/129", "10.0.0.0/", "/8", "host.example", "10.0.0.0/8/8", "10.0.0.0/-1", "10.0.0.0/ 8", "10.0.0"] {
            #expect(TrustedProxies([bad]) == nil, "\(bad)")
        }
        #expect(TrustedProxies([]) == TrustedProxies.none)
    }

    @Test func theClientIsTheRightMostUntrustedHop() throws {
        let t = try #require(TrustedProxies(["127.0.0.1", "10.0.0.0/8"]))
        #expect(t.client(peer: "127.0.0.1:5555", forwardedFor: ["203.0.113.7"]) == "203.0.113.7")
        #expect(t.client(peer: "127.0.0.1:5555", forwardedFor: ["203.0.113.7, 10.0.0.2"]) == "203.0.113.7")
        #expect(t.client(peer: "127.0.0.1:5555", forwardedFor: ["6.6.6.6, 203.0.113.7, 10.0.0.2"]) == "203.0.113.7", "a forged left part is ignored")
        #expect(t.client(peer: "127.0.0.1:5555", forwardedFor: ["6.6.6.6", "203.0.113.7"]) == "203.0.113.7", "several fields are one list")
        #expect(t.client(peer: "127.0.0.1:5555", forwardedFor: ["10.0.0.9, 10.0.0.2"]) == "10.0.0.9", "all trusted: the first")
        #expect(t.client(peer: "127.0.0.1:5555", forwardedFor: ["garbage, 203.0.113.7"]) == "203.0.113.7")
        #expect(t.client(peer: "127.0.0.1:5555", forwardedFor: ["203.0.113.7, garbage"]) == nil, "garbage added by the trusted peer: the peer stays")
        #expect(t.client(peer: "198.51.100.1:5555", forwardedFor: ["203.0.113.7"]) == nil, "an untrusted peer is the client")
        #expect(t.client(peer: "127.0.0.1:5555", forwardedFor: []) == nil)
        #expect(TrustedProxies.none.client(peer: "127.0.0.1:5555", forwardedFor: ["203.0.113.7"]) == nil)
        let v6 = try #require(TrustedProxies(["::1"]))
        #expect(v6.client(peer: "[::1]:443", forwardedFor: ["2001:db8::7"]) == "2001:db8::7")
    }
}
