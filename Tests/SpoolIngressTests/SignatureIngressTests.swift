import Foundation
import Testing
import SpoolCore
import SpoolHTTP
import SpoolSignatures
import SpoolSystem
import SpoolTestSupport
import SpoolWire
@testable import SpoolIngress

/// A clock that says what the test says.
struct FixedClock: WallClock {
    let seconds: Int64
    func nowNanos() -> Int64 { seconds * 1_000_000_000 }
}

/// `--verify` in the handler, in-process: where verification sits (after the body, before the key, after the
/// token), how each failure is answered, that nothing of a refused request is stored, and the per-reason counter.
@Suite struct SignatureIngressTests {
    typealias Harness = IngressHandlerTests.Harness
    // The Standard Webhooks specification's example.
    static let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    static let id = "msg_p5jXN8AQM9LWM0D4loKWxJek"
    static let ts: Int64 = 1_614_265_330
    static let body = #"{"test": 2432232314}"#
    static let sig = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

    static func standardWebhooks(now: Int64 = ts, token: String? = nil) throws -> Harness {
        let key = try SignatureScheme.standardWebhooks.key(fromSecret: secret)
        return try Harness {
            $0.signature = SignatureVerifier(scheme: .standardWebhooks, keys: [key], toleranceSeconds: 300)
            $0.clock = FixedClock(seconds: now)
            $0.keyHeader = "webhook-id"
            $0.token = token
        }
    }

    static func headers(id: String = id, ts: Int64 = ts, sig: String = sig) -> [String] {
        ["webhook-id: \(id)", "webhook-timestamp: \(ts)", "webhook-signature: \(sig)"]
    }

    static func text(_ r: HTTPResponse) -> String { String(decoding: r.body, as: UTF8.self) }

    @Test func validThenDuplicateStoredUnderWebhookID() throws {
        let h = try Self.standardWebhooks()
        defer { h.handler.stop() }
        let first = try h.post(Self.body, headers: Self.headers())
        #expect(first.status == .ok && Self.text(first) == #"{"status":"accepted","key":"msg_p5jXN8AQM9LWM0D4loKWxJek"}"#)
        let again = try h.post(Self.body, headers: Self.headers())
        #expect(again.status == .ok && Self.text(again) == #"{"status":"duplicate","key":"msg_p5jXN8AQM9LWM0D4loKWxJek"}"#)
        #expect(Data(try #require(storedPayload(atPath: h.dir + "/new/" + Self.id))) == Data(Self.body.utf8))
    }

    @Test func refusalsAnsweredAndNothingStored() throws {
        let h = try Self.standardWebhooks()
        defer { h.handler.stop() }
        let cases: [(String, [String], HTTPStatus, String)] = [
            (#"{"test": 2432232315}"#, Self.headers(), .unauthorized, "invalid signature"),
            (Self.body, Self.headers(id: "msg_other"), .unauthorized, "invalid signature"),
            (Self.body, ["webhook-id: \(Self.id)", "webhook-timestamp: \(Self.ts)"], .unauthorized, "invalid signature"),
            (Self.body, [], .unauthorized, "invalid signature"),
            (Self.body, Self.headers(sig: "v1,AAAA="), .badRequest, "malformed signature: webhook-signature entry 1: the v1 signature is not base64"),
            (Self.body, Self.headers() + ["webhook-signature: \(Self.sig)"], .badRequest, "malformed signature: header webhook-signature appears more than once"),
        ]
        for (body, headers, status, message) in cases {
            let r = try h.post(body, headers: headers)
            #expect(r.status == status && Self.text(r) == #"{"error":"\#(message)"}"#, "\(headers): \(r.status) \(Self.text(r))")
        }
        // The same genuine delivery, 301 s later: a replay.
        let late = try Self.standardWebhooks(now: Self.ts + 301)
        defer { late.handler.stop() }
        let stale = try late.post(Self.body, headers: Self.headers())
        #expect(stale.status == .unauthorized && Self.text(stale) == #"{"error":"timestamp outside tolerance"}"#)
        for dir in [h.dir, late.dir] {
            #expect(entries(dir + "/new").isEmpty && entries(dir + "/keys").isEmpty && entries(dir + "/tmp").isEmpty)
        }
        let metrics = Self.text(try h.send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"))
        #expect(metrics.contains("# TYPE spool_signature_rejected_total counter\n"))
        #expect(metrics.contains(#"spool_signature_rejected_total{reason="missing"} 2"#))
        #expect(metrics.contains(#"spool_signature_rejected_total{reason="malformed"} 2"#))
        #expect(metrics.contains(#"spool_signature_rejected_total{reason="invalid"} 2"#))
        #expect(metrics.contains(#"spool_signature_rejected_total{reason="timestamp"} 0"#))
        let lateMetrics = Self.text(try late.send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"))
        #expect(lateMetrics.contains(#"spool_signature_rejected_total{reason="timestamp"} 1"#))
    }

    /// The signature is checked before the key is read: a forged request without a key is 401, not 422, and a
    /// signed one whose key is unusable gets the key's error.
    @Test func verificationComesBeforeKeyExtraction() throws {
        let h = try Self.standardWebhooks()
        defer { h.handler.stop() }
        let noKey = try h.post(Self.body, headers: ["webhook-timestamp: \(Self.ts)", "webhook-signature: \(Self.sig)"])
        #expect(noKey.status == .unauthorized)
        let stripe = try Harness {
            $0.signature = SignatureVerifier(scheme: .stripe, keys: [Array("whsec_plain_stripe_secret".utf8)])
            $0.clock = FixedClock(seconds: 1_700_000_000)
            $0.keyPaths = ["id"]
        }
        defer { stripe.handler.stop() }
        // Python: hmac.new(b'whsec_plain_stripe_secret', b'1700000000.{"id":"evt_1","object":"event"}', 'sha256')
        let good = "Stripe-Signature: t=1700000000,v1=b1b2a6939baff652f45ecd4d8cafc2bf93e4b0a92eb07f4b54d3e6e84cfa2e62"
        let r = try stripe.post(#"{"id":"evt_1","object":"event"}"#, headers: [good])
        #expect(r.status == .ok && Self.text(r) == #"{"status":"accepted","key":"evt_1"}"#)
        #expect(try stripe.post("{not json", headers: [good]).status == .unauthorized)
    }

    /// With a token as well, both must pass; the token is still checked first, before the body is read.
    @Test func tokenAndSignatureBothRequired() throws {
        let h = try Self.standardWebhooks(token: "s3cret")
        defer { h.handler.stop() }
        let auth = "Authorization: Bearer s3cret"
        let noToken = try h.post(Self.body, headers: Self.headers())
        #expect(noToken.status == .unauthorized && Self.text(noToken) == #"{"error":"missing or wrong token"}"#)
        let wrongSig = try h.post(Self.body + " ", headers: Self.headers() + [auth])
        #expect(wrongSig.status == .unauthorized && Self.text(wrongSig) == #"{"error":"invalid signature"}"#)
        #expect(entries(h.dir + "/new").isEmpty)
        #expect(try h.post(Self.body, headers: Self.headers() + [auth]).status == .ok)
    }
}
