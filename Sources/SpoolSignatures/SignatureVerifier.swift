/// The senders' signature schemes `spool serve --verify` knows (docs/http.md has the exact bytes each signs).
public enum SignatureScheme: String, Sendable, CaseIterable {
    /// Standard Webhooks (and Svix): HMAC-SHA256 of `{webhook-id}.{webhook-timestamp}.{body}`, base64.
    case standardWebhooks = "standard-webhooks"
    /// GitHub: HMAC-SHA256 of the body, hex, in `X-Hub-Signature-256`; no timestamp is signed.
    case github
    /// Stripe: HMAC-SHA256 of `{t}.{body}`, hex, in `Stripe-Signature`.
    case stripe

    /// False for GitHub, which signs no timestamp (a tolerance has nothing to apply to).
    public var signsTimestamp: Bool { self != .github }

    /// Why a secret cannot be used (the secret itself is never part of the message).
    public enum SecretError: Error, Equatable, Sendable, CustomStringConvertible {
        case notBase64
        case empty
        public var description: String {
            switch self {
            case .notBase64: "is not base64 after the whsec_ prefix (a Standard Webhooks secret is base64, optionally prefixed whsec_)"
            case .empty: "is empty"
            }
        }
    }

    /// The HMAC key a secret stands for. Standard Webhooks: a `whsec_` prefix is stripped and the rest
    /// base64-decoded (padding may be left out, as the reference library allows). GitHub and Stripe: the
    /// secret's bytes exactly as the provider shows them (Stripe's `whsec_...` included: it is not decoded).
    public func key(fromSecret secret: String) throws(SecretError) -> [UInt8] {
        switch self {
        case .standardWebhooks:
            var text = Array(secret.utf8)
            if text.starts(with: Array("whsec_".utf8)) { text.removeFirst(6) }
            while text.count % 4 != 0 { text.append(UInt8(ascii: "=")) }
            // As the reference libraries (Python's base64.b64decode) do: unused low bits of the last character are
            // ignored in a secret (a signature's base64 stays strict).
            guard let key = Base64.decode(text[...], canonical: false) else { throw .notBase64 }
            guard !key.isEmpty else { throw .empty }
            return key
        case .github, .stripe:
            guard !secret.isEmpty else { throw .empty }
            return Array(secret.utf8)
        }
    }
}

/// Verifies one scheme's signatures against any of several keys (rotation: old and new both verify).
/// Pure: the request is given as a header lookup and the body, the time as Unix seconds.
public struct SignatureVerifier: Sendable {
    public let scheme: SignatureScheme
    /// How far the signed timestamp may be from now, either way (ignored for GitHub).
    public let toleranceSeconds: Int64
    let macs: [HMACSHA256]

    public var keyCount: Int { macs.count }

    public init(scheme: SignatureScheme, keys: [[UInt8]], toleranceSeconds: Int64 = 300) {
        self.scheme = scheme
        self.toleranceSeconds = toleranceSeconds
        self.macs = keys.map { HMACSHA256(key: $0) }
    }

    /// Returns when a signature matches one of the keys and (where one is signed) the timestamp is within the
    /// tolerance. `header(name)` answers every value of a header (case-insensitive name). The signature is
    /// checked before the timestamp, so "timestamp outside tolerance" is only ever said of a genuine delivery
    /// (a replay or a skewed clock); a forger learns nothing from it.
    public func verify(body: [UInt8], nowSeconds: Int64, header: (String) -> [String]) throws(SignatureFailure) {
        let (n, overflow) = nowSeconds.multipliedReportingOverflow(by: 1_000_000_000)
        try verify(body: body, nowNanos: overflow ? (nowSeconds < 0 ? Int64.min : Int64.max) : n, header: header)
    }

    /// `verify` with the time in nanoseconds: a signed timestamp (whole seconds) is compared with the exact time, as
    /// the reference libraries compare it with a fractional `time()`, so one exactly `tolerance` seconds old is
    /// outside it as soon as any fraction of a second has passed.
    public func verify(body: [UInt8], nowNanos: Int64, header: (String) -> [String]) throws(SignatureFailure) {
        switch scheme {
        case .standardWebhooks:
            let id = try Self.single(StandardWebhooksHeaders.id, or: StandardWebhooksHeaders.svixID, header)
            let ts = try Self.single(StandardWebhooksHeaders.timestamp, or: StandardWebhooksHeaders.svixTimestamp, header)
            let sig = try Self.single(StandardWebhooksHeaders.signature, or: StandardWebhooksHeaders.svixSignature, header)
            let t = try StandardWebhooksHeaders.parseTimestamp(ts)
            let signatures = try StandardWebhooksHeaders.parseSignature(sig)
            try match(signatures) { (c: inout HMACSHA256.Computation) in
                c.update(id); c.update("."); c.update(ts); c.update("."); c.update(body)
            }
            try checkTolerance(t, nowNanos)
        case .github:
            let sig = try GitHubHeaders.parseSignature(try Self.single(GitHubHeaders.signature, header))
            try match([sig]) { (c: inout HMACSHA256.Computation) in c.update(body) }
        case .stripe:
            let parsed = try StripeHeaders.parse(try Self.single(StripeHeaders.signature, header))
            try match(parsed.signatures) { (c: inout HMACSHA256.Computation) in
                c.update(String(parsed.timestamp)); c.update("."); c.update(body)
            }
            try checkTolerance(parsed.timestamp, nowNanos)
        }
    }

    /// One tag per key over the signed content, each compared with every signature in constant time; no early
    /// exit, so the time depends only on the counts, not on which (if any) matched.
    func match(_ signatures: [[UInt8]], _ content: (inout HMACSHA256.Computation) -> Void) throws(SignatureFailure) {
        var matched = false
        for mac in macs {
            var c = mac.start()
            content(&c)
            let tag = c.finalize()
            for s in signatures { matched = constantTimeEqual(tag, s) || matched }
        }
        guard matched else { throw .invalidSignature }
    }

    /// `t` in seconds, `nowNanos` in nanoseconds: outside when more than the tolerance apart, either way.
    func checkTolerance(_ t: Int64, _ nowNanos: Int64) throws(SignatureFailure) {
        let (tn, o1) = t.multipliedReportingOverflow(by: 1_000_000_000)
        let (d, o2) = nowNanos.subtractingReportingOverflow(tn)
        let (limit, o3) = toleranceSeconds.magnitude.multipliedReportingOverflow(by: 1_000_000_000)
        guard !o1, !o2, o3 || d.magnitude <= limit else { throw .timestampOutsideTolerance }
    }

    /// `name`'s value, or where it is absent `alias`'s (Svix's branded names); missing names `name`.
    static func single(_ name: String, or alias: String, _ header: (String) -> [String]) throws(SignatureFailure) -> String {
        if header(name).isEmpty && !header(alias).isEmpty { return try single(alias, header) }
        return try single(name, header)
    }

    /// The one value of a header: absent or empty is missing, repeated is malformed.
    static func single(_ name: String, _ header: (String) -> [String]) throws(SignatureFailure) -> String {
        let values = header(name)
        guard values.count <= 1 else { throw .malformed("header \(name) appears more than once") }
        guard let v = values.first, !v.isEmpty else { throw .missing(header: name) }
        return v
    }
}
