import Foundation
import SpoolTestSupport
import Testing

/// Refusals a sender must be able to act on: the limit is named, a content coding is 415, every refusal counted.
@Suite(.serialized) struct RejectionTests {
    @Test func tooLargeNamesTheLimitAndCodingsAre415AndBothAreCounted() throws {
        let dir = makeTempDir() + "/s"
        let server = try Server(dir: dir, extra: ["--max-body", "100"])
        let body = "{\"movie\":{\"project\":\"big\"},\"pad\":\"" + String(repeating: "x", count: 200) + "\"}"
        let big = try curl(["-i", "--data-binary", body, "-H", "Content-Type: application/json", server.url + "/json2video/done"])
        #expect(big.stdout.hasPrefix("HTTP/1.1 413"), "\(big.stdout)")
        #expect(big.stdout.contains("exceeds the body limit of 100 bytes"), "\(big.stdout)")
        let gz = try curl(["-i", "--data-binary", "{\"project\":\"gz\"}", "-H", "Content-Encoding: gzip", server.url + "/json2video/done"])
        #expect(gz.stdout.hasPrefix("HTTP/1.1 415"), "\(gz.stdout)")
        #expect(gz.stdout.lowercased().contains("accept-encoding: identity"))
        #expect(gz.stdout.contains("Content-Encoding 'gzip' is not accepted"))
        let identity = try curl(["--data-binary", "{\"project\":\"plain\"}", "-H", "Content-Encoding: identity", server.url + "/json2video/done"])
        #expect(identity.stdout == #"{"status":"accepted","key":"plain"}"#)
        let metrics = try curl([server.url + "/metrics"]).stdout
        #expect(metrics.contains("spool_webhooks_rejected_total 2\n"), "\(metrics)")
        #expect(entries(dir + "/new") == ["plain"])
        let log = server.stop().stderr
        #expect(log.contains("method=POST path=/json2video/done status=413 outcome=rejected reason=http"), "the 413 decided from Content-Length is logged with its request line: \(log)")
        #expect(log.contains("method=POST path=/json2video/done status=415 outcome=rejected reason=encoding"), "\(log)")
    }
}
