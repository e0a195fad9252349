import Testing
@testable import SpoolWire

/// The parser must produce the same events however the bytes are split (TCP gives no message boundaries).
struct HTTPParserSplitTests {
    static let samples: [String] = [
        "GET /a?b=c HTTP/1.1\r\nHost: a\r\nX-Request-Id: r1\r\n\r\n",
        "\r\n\r\nPOST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\nExpect: 100-continue\r\n\r\nhello world",
        "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n1\r\n!\r\n0\r\nT: 1\r\nU: two\r\n\r\n",
        "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nPOST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nokGET /3 HTTP/1.0\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nBad : x\r\n\r\n",
        "GET / HTTP/1.1\rHost: a\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX",
        "GET / HTTP/2.0\r\nHost: a\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
    ]

    @Test(arguments: samples)
    func byteAtATimeMatchesWhole(_ s: String) {
        let bytes = Array(s.utf8)
        let whole = events(pieces: [bytes])
        let single = events(pieces: bytes.map { [$0] })
        #expect(single == whole)
        #expect(!whole.isEmpty)
    }

    @Test(arguments: samples)
    func everyTwoWaySplitMatchesWhole(_ s: String) {
        let bytes = Array(s.utf8)
        let whole = events(pieces: [bytes])
        for cut in 0...bytes.count {
            let split = events(pieces: [Array(bytes[..<cut]), Array(bytes[cut...])])
            #expect(split == whole, "split at \(cut)")
            if split != whole { return }
        }
    }

    @Test func everyThreeWaySplitOfChunked() {
        let bytes = Array(Self.samples[2].utf8)
        let whole = events(pieces: [bytes])
        var mismatches = 0
        for a in 0...bytes.count {
            for b in a...bytes.count {
                let e = events(pieces: [Array(bytes[..<a]), Array(bytes[a..<b]), Array(bytes[b...])])
                if e != whole { mismatches += 1 }
            }
        }
        #expect(mismatches == 0)
    }
}
