import Testing
@testable import SpoolSignatures

/// A header lookup over name/value pairs (case-insensitive, every value), as the ingress gives one.
func lookup(_ pairs: [(String, String)]) -> (String) -> [String] {
    { name in pairs.filter { $0.0.lowercased() == name.lowercased() }.map(\.1) }
}

/// The three verifiers as pure functions, against each provider's published example where there is one and
/// Python's `hmac` module where there is not.
@Suite struct StandardWebhooksVerifierTests {
    // The Standard Webhooks specification's example (also in the reference libraries' tests).
    static let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    static let id = "msg_p5jXN8AQM9LWM0D4loKWxJek"
    static let ts: Int64 = 1_614_265_330
    static let body = bytes(#"{"test": 2432232314}"#)
    static let sig = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

    static func verifier(_ secrets: [String] = [secret], tolerance: Int64 = 300) throws -> SignatureVerifier {
        let keys = try secrets.map { (s) throws(SignatureScheme.SecretError) in try SignatureScheme.standardWebhooks.key(fromSecret: s) }
        return SignatureVerifier(scheme: .standardWebhooks, keys: keys, toleranceSeconds: tolerance)
    }

    static func headers(id: String? = id, ts: String? = String(ts), sig: String? = sig) -> (String) -> [String] {
        var pairs: [(String, String)] = []
        if let id { pairs.append(("webhook-id", id)) }
        if let ts { pairs.append(("Webhook-Timestamp", ts)) }
        if let sig { pairs.append(("WEBHOOK-SIGNATURE", sig)) }
        return lookup(pairs)
    }

    func verify(_ v: SignatureVerifier, body: [UInt8] = body, now: Int64 = ts, _ h: (String) -> [String] = headers()) -> SignatureFailure? {
        do throws(SignatureFailure) { try v.verify(body: body, nowSeconds: now, header: h); return nil } catch { return error }
    }

    @Test func theSpecificationsExample() throws {
        let v = try Self.verifier()
        #expect(verify(v) == nil)
        // The same secret without its prefix, and without base64 padding, is the same key.
        #expect(verify(try Self.verifier(["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"])) == nil)
        #expect(try SignatureScheme.standardWebhooks.key(fromSecret: "whsec_AAE") == [0, 1])
        // Unused low bits set in the last character: the reference library (Python's b64decode) ignores them, and so
        // do we, for secrets; "AAF" is the bytes of "AAE".
        #expect(try SignatureScheme.standardWebhooks.key(fromSecret: "whsec_AAF") == [0, 1])
        #expect(try SignatureScheme.standardWebhooks.key(fromSecret: "whsec_AB==") == [0])
        #expect(Base64.decode("AAF=") == nil, "a signature's base64 stays canonical")
    }

    /// The reference libraries compare the whole-second timestamp with a fractional time(): exactly `tolerance` old
    /// is outside once any fraction of a second has passed.
    @Test func toleranceBoundaryInNanoseconds() throws {
        let v = try Self.verifier()
        func at(_ nanos: Int64) -> SignatureFailure? {
            do throws(SignatureFailure) { try v.verify(body: Self.body, nowNanos: nanos, header: Self.headers()); return nil } catch { return error }
        }
        let t = Self.ts * 1_000_000_000
        #expect(at(t + 300_000_000_000) == nil)
        #expect(at(t + 300_000_000_001) == .timestampOutsideTolerance)
        #expect(at(t - 300_000_000_000) == nil)
        #expect(at(t - 300_000_000_001) == .timestampOutsideTolerance)
        #expect(at(Int64.max) == .timestampOutsideTolerance)
    }

    @Test func refusals() throws {
        let v = try Self.verifier()
        var changed = Self.body
        changed[3] ^= 0x01
        #expect(verify(v, body: changed) == .invalidSignature)
        #expect(verify(v, body: Self.body + [0x0a]) == .invalidSignature)
        #expect(verify(try Self.verifier(["whsec_" + Base64.encode(bytes("another secret"))])) == .invalidSignature)
        // Signed content includes the id and the timestamp.
        #expect(verify(v, Self.headers(id: "msg_other")) == .invalidSignature)
        #expect(verify(v, now: Self.ts + 1, Self.headers(ts: String(Self.ts + 1))) == .invalidSignature)
        // Tolerance either way, inclusive.
        #expect(verify(v, now: Self.ts + 300) == nil)
        #expect(verify(v, now: Self.ts - 300) == nil)
        #expect(verify(v, now: Self.ts + 301) == .timestampOutsideTolerance)
        #expect(verify(v, now: Self.ts - 301) == .timestampOutsideTolerance)
        #expect(verify(v, now: Int64.min) == .timestampOutsideTolerance)
        // A forged request with a stale timestamp is an invalid signature, not a tolerance problem.
        #expect(verify(try Self.verifier(["whsec_AAAA"]), now: Self.ts + 10_000) == .invalidSignature)
        // Missing headers.
        #expect(verify(v, Self.headers(id: nil)) == .missing(header: "webhook-id"))
        #expect(verify(v, Self.headers(ts: nil)) == .missing(header: "webhook-timestamp"))
        #expect(verify(v, Self.headers(sig: nil)) == .missing(header: "webhook-signature"))
        #expect(verify(v, Self.headers(id: "")) == .missing(header: "webhook-id"))
        // No v1 entry at all.
        #expect(verify(v, Self.headers(sig: "v1a,AAAA")) == .invalidSignature)
        // Malformed.
        #expect(verify(v, Self.headers(ts: "1614265330.0")) == .malformed("webhook-timestamp is not Unix seconds"))
        #expect(verify(v, Self.headers(sig: "v1 " + Self.sig)) == .malformed("webhook-signature entry 1 is not 'version,signature'"))
        let twice = lookup([("webhook-id", Self.id), ("webhook-id", Self.id), ("webhook-timestamp", String(Self.ts)), ("webhook-signature", Self.sig)])
        #expect(verify(v, twice) == .malformed("header webhook-id appears more than once"))
    }

    @Test func severalSignaturesAndRotatedSecrets() throws {
        let v = try Self.verifier()
        let wrong = "v1," + Base64.encode([UInt8](repeating: 7, count: 32))
        #expect(verify(v, Self.headers(sig: "\(wrong) v1a,xyz \(Self.sig)")) == nil)
        #expect(verify(v, Self.headers(sig: "\(Self.sig) \(wrong)")) == nil)
        #expect(verify(v, Self.headers(sig: "\(wrong) \(wrong)")) == .invalidSignature)
        // Old and new secret in the file: the delivery signed with either verifies.
        let rotated = try Self.verifier(["whsec_" + Base64.encode(bytes("the new secret")), Self.secret])
        #expect(rotated.keyCount == 2)
        #expect(verify(rotated) == nil)
        // A signature of the right bytes but the wrong length never matches.
        let short = "v1," + Base64.encode(Array(Base64.decode(String(Self.sig.dropFirst(3)))!.prefix(31)))
        #expect(verify(v, Self.headers(sig: short)) == .invalidSignature)
    }

    /// Svix's branded header names, read where the `webhook-` ones are absent.
    @Test func svixBrandedHeaders() throws {
        let v = try Self.verifier()
        let ts = String(Self.ts)
        #expect(verify(v, lookup([("svix-id", Self.id), ("svix-timestamp", ts), ("svix-signature", Self.sig)])) == nil)
        #expect(verify(v, lookup([("webhook-id", Self.id), ("svix-timestamp", ts), ("svix-signature", Self.sig)])) == nil)
        // Where both are sent the webhook- one is read.
        let both = lookup([("webhook-id", "msg_other"), ("svix-id", Self.id), ("svix-timestamp", ts), ("svix-signature", Self.sig)])
        #expect(verify(v, both) == .invalidSignature)
        #expect(verify(v, lookup([("svix-id", Self.id), ("svix-timestamp", ts)])) == .missing(header: "webhook-signature"))
        let twice = lookup([("svix-id", Self.id), ("svix-timestamp", ts), ("svix-signature", Self.sig), ("svix-signature", Self.sig)])
        #expect(verify(v, twice) == .malformed("header svix-signature appears more than once"))
    }

    @Test func secrets() throws {
        #expect(throws: SignatureScheme.SecretError.notBase64) { try SignatureScheme.standardWebhooks.key(fromSecret: "whsec_not base64!") }
        #expect(throws: SignatureScheme.SecretError.notBase64) { try SignatureScheme.standardWebhooks.key(fromSecret: "whsec_A") }
        #expect(throws: SignatureScheme.SecretError.empty) { try SignatureScheme.standardWebhooks.key(fromSecret: "whsec_") }
        #expect(throws: SignatureScheme.SecretError.empty) { try SignatureScheme.github.key(fromSecret: "") }
        // Stripe's secret is the HMAC key as shown, prefix and all.
        #expect(try SignatureScheme.stripe.key(fromSecret: "whsec_abc") == bytes("whsec_abc"))
        #expect(try SignatureScheme.github.key(fromSecret: "It's a Secret to Everybody") == bytes("It's a Secret to Everybody"))
    }
}

@Suite struct GitHubVerifierTests {
    // GitHub's documented example.
    let v = SignatureVerifier(scheme: .github, keys: [bytes("It's a Secret to Everybody")])
    let good = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"

    func verify(_ body: String, _ pairs: [(String, String)], now: Int64 = 0) -> SignatureFailure? {
        do throws(SignatureFailure) { try v.verify(body: bytes(body), nowSeconds: now, header: lookup(pairs)); return nil } catch { return error }
    }

    @Test func documentedExampleAndRefusals() {
        #expect(verify("Hello, World!", [("x-hub-signature-256", good)]) == nil)
        // No timestamp is signed: any clock verifies.
        #expect(verify("Hello, World!", [("X-Hub-Signature-256", good)], now: Int64.max) == nil)
        #expect(verify("Hello, World?", [("X-Hub-Signature-256", good)]) == .invalidSignature)
        #expect(verify("Hello, World!", []) == .missing(header: "X-Hub-Signature-256"))
        // The SHA-1 header alone is not accepted.
        #expect(verify("Hello, World!", [("X-Hub-Signature", "sha1=01dc10d0c83e72ed246219cdd91669667fe2ca59")]) == .missing(header: "X-Hub-Signature-256"))
        #expect(verify("Hello, World!", [("X-Hub-Signature-256", "sha256=xyz")]) == .malformed("X-Hub-Signature-256 is not 'sha256=' and 64 hex digits"))
        #expect(verify("Hello, World!", [("X-Hub-Signature-256", good), ("X-Hub-Signature-256", good)]) == .malformed("header X-Hub-Signature-256 appears more than once"))
    }
}

@Suite struct StripeVerifierTests {
    // Python: hmac.new(b'whsec_plain_stripe_secret', b'1700000000.' + body, hashlib.sha256).hexdigest()
    let body = #"{"id":"evt_1","object":"event"}"#
    let sig = "b1b2a6939baff652f45ecd4d8cafc2bf93e4b0a92eb07f4b54d3e6e84cfa2e62"
    let v = SignatureVerifier(scheme: .stripe, keys: [bytes("whsec_plain_stripe_secret")], toleranceSeconds: 300)

    func verify(_ header: String?, body: String? = nil, now: Int64 = 1_700_000_000) -> SignatureFailure? {
        let pairs = header.map { [("Stripe-Signature", $0)] } ?? []
        do throws(SignatureFailure) { try v.verify(body: bytes(body ?? self.body), nowSeconds: now, header: lookup(pairs)); return nil } catch { return error }
    }

    @Test func verifiesAndRefuses() {
        let other = String(repeating: "00", count: 32)
        #expect(verify("t=1700000000,v1=\(sig)") == nil)
        #expect(verify("t=1700000000,v1=\(other),v1=\(sig),v0=\(other)") == nil)
        #expect(verify("t=1700000000,v1=\(other)") == .invalidSignature)
        #expect(verify("t=1700000000,v0=\(sig)") == .invalidSignature)   // v0 is never checked
        #expect(verify("t=1700000001,v1=\(sig)") == .invalidSignature)   // the timestamp is signed
        #expect(verify("t=1700000000,v1=\(sig)", body: body + " ") == .invalidSignature)
        #expect(verify("t=1700000000,v1=\(sig)", now: 1_700_000_300) == nil)
        #expect(verify("t=1700000000,v1=\(sig)", now: 1_700_000_301) == .timestampOutsideTolerance)
        #expect(verify("t=1700000000,v1=\(sig)", now: 1_699_999_699) == .timestampOutsideTolerance)
        #expect(verify(nil) == .missing(header: "Stripe-Signature"))
        #expect(verify("v1=\(sig)") == .malformed("Stripe-Signature has no t="))
        // The secret is not base64-decoded: the decoded form of the same text does not verify.
        let decoded = SignatureVerifier(scheme: .stripe, keys: [Base64.decode("cGxhaW4=")!])
        #expect(throws: SignatureFailure.invalidSignature) {
            try decoded.verify(body: bytes(body), nowSeconds: 1_700_000_000, header: lookup([("Stripe-Signature", "t=1700000000,v1=\(sig)")]))
        }
    }
}

@Suite struct FailureTests {
    @Test func reasonsAndDescriptions() {
        #expect(SignatureFailure.missing(header: "x").reason == "missing")
        #expect(SignatureFailure.malformed("m").reason == "malformed")
        #expect(SignatureFailure.invalidSignature.reason == "invalid")
        #expect(SignatureFailure.timestampOutsideTolerance.reason == "timestamp")
        #expect(SignatureFailure.reasons == ["missing", "malformed", "invalid", "timestamp"])
        #expect(SignatureFailure.invalidSignature.description == "invalid signature")
        #expect(SignatureFailure.timestampOutsideTolerance.description == "timestamp outside tolerance")
        #expect(SignatureScheme(rawValue: "standard-webhooks") == .standardWebhooks)
        #expect(!SignatureScheme.github.signsTimestamp && SignatureScheme.stripe.signsTimestamp)
    }
}
