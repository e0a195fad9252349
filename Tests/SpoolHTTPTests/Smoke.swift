import Testing
@testable import SpoolHTTP
@Test func smoke() { var p = HTTPParser(); #expect(p.feed(Array("GET / HTTP/1.1\r\nHost: a\r\n\r\n".utf8)).count == 2) }
