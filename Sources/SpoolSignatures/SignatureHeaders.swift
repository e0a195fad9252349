/// Why a signed webhook was refused: the module's one error type, mapped to HTTP by the ingress.
public enum SignatureFailure: Error, Equatable, Sendable, CustomStringConvertible {
    /// A header the scheme needs is absent or empty (answered as an invalid signature: there is none).
    case missing(header: String)
    /// A header is present but not in the scheme's syntax, repeated, or beyond the parsers' bounds.
    case malformed(String)
    /// No signature in the request matches any of the secrets.
    case invalidSignature
    /// The signature matches but its signed timestamp is further from now than the tolerance, either way.
    case timestampOutsideTolerance

    /// The `reason` label of the rejection counter.
    public var reason: String {
        switch self {
        case .missing: "missing"
        case .malformed: "malformed"
        case .invalidSignature: "invalid"
        case .timestampOutsideTolerance: "timestamp"
        }
    }

    /// Every value `reason` takes, in the order /metrics lists them.
    public static let reasons = ["missing", "malformed", "invalid", "timestamp"]

    public var description: String {
        switch self {
        case .missing(let h): "header \(h) is missing"
        case .malformed(let why): why
        case .invalidSignature: "invalid signature"
        case .timestampOutsideTolerance: "timestamp outside tolerance"
        }
    }
}

/// Bounds of the signature header parsers: a longer value, or one with more entries, is malformed. Real senders
/// send one to three signatures of at most 100 bytes each.
public enum SignatureHeaderLimits {
    public static let maxBytes = 8192
    public static let maxEntries = 32
}

/// The Standard Webhooks headers. Svix sends the same scheme under `svix-id`, `svix-timestamp` and
/// `svix-signature` unless the sender pays for the unbranded `webhook-*` names; each is read where its
/// `webhook-` name is absent, as Svix's own libraries do.
public enum StandardWebhooksHeaders {
    public static let id = "webhook-id"
    public static let timestamp = "webhook-timestamp"
    public static let signature = "webhook-signature"
    public static let svixID = "svix-id"
    public static let svixTimestamp = "svix-timestamp"
    public static let svixSignature = "svix-signature"

    /// The `v1` signatures of a `webhook-signature` value: entries `version,base64` separated by single spaces.
    /// Entries of other versions (`v1a`, asymmetric) are skipped, as the specification asks; a `v1` entry that is
    /// not strict base64, an entry without a comma or without a version, an empty entry, more than
    /// `maxEntries` entries or more than `maxBytes` bytes make the value malformed.
    public static func parseSignature(_ value: String) throws(SignatureFailure) -> [[UInt8]] {
        let bytes = Array(value.utf8)
        guard bytes.count <= SignatureHeaderLimits.maxBytes else {
            throw .malformed("\(signature) is longer than \(SignatureHeaderLimits.maxBytes) bytes")
        }
        let entries = bytes.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: false)
        guard entries.count <= SignatureHeaderLimits.maxEntries else {
            throw .malformed("\(signature) has more than \(SignatureHeaderLimits.maxEntries) entries")
        }
        var out: [[UInt8]] = []
        for (n, entry) in entries.enumerated() {
            guard !entry.isEmpty else { throw .malformed("\(signature) has an empty entry (entries are separated by one space)") }
            guard let comma = entry.firstIndex(of: UInt8(ascii: ",")), comma > entry.startIndex else {
                throw .malformed("\(signature) entry \(n + 1) is not 'version,signature'")
            }
            guard entry[..<comma].elementsEqual("v1".utf8) else { continue }
            guard let sig = Base64.decode(entry[(comma + 1)...]), !sig.isEmpty else {
                throw .malformed("\(signature) entry \(n + 1): the v1 signature is not base64")
            }
            out.append(sig)
        }
        return out
    }

    public static func parseTimestamp(_ value: String) throws(SignatureFailure) -> Int64 {
        guard let t = unixSeconds(value) else { throw .malformed("\(timestamp) is not Unix seconds") }
        return t
    }
}

/// GitHub's `X-Hub-Signature-256` and the delivery id header.
public enum GitHubHeaders {
    public static let signature = "X-Hub-Signature-256"
    public static let delivery = "X-GitHub-Delivery"

    /// `sha256=` and 64 hex digits (either case): the 32-byte HMAC of the raw body.
    public static func parseSignature(_ value: String) throws(SignatureFailure) -> [UInt8] {
        let bytes = Array(value.utf8)
        let prefix = Array("sha256=".utf8)
        guard bytes.count == prefix.count + 2 * HMACSHA256.byteCount, bytes.starts(with: prefix),
              let sig = Hex.decode(bytes[prefix.count...]) else {
            throw .malformed("\(signature) is not 'sha256=' and 64 hex digits")
        }
        return sig
    }
}

/// Stripe's `Stripe-Signature`: `t=<Unix seconds>,v1=<hex>[,v1=<hex>...]`, other schemes (`v0`) ignored.
public enum StripeHeaders {
    public static let signature = "Stripe-Signature"

    public struct Parsed: Equatable, Sendable {
        public let timestamp: Int64
        /// The `v1` signatures (possibly none: then nothing can match).
        public let signatures: [[UInt8]]
    }

    /// Strict: elements `key=value` separated by commas, keys of letters, digits, `_` and `-`, exactly one `t`
    /// of canonical Unix seconds, every `v1` 64 hex digits, at most `maxEntries` elements and `maxBytes` bytes.
    public static func parse(_ value: String) throws(SignatureFailure) -> Parsed {
        let bytes = Array(value.utf8)
        guard bytes.count <= SignatureHeaderLimits.maxBytes else {
            throw .malformed("\(signature) is longer than \(SignatureHeaderLimits.maxBytes) bytes")
        }
        let elements = bytes.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false)
        guard elements.count <= SignatureHeaderLimits.maxEntries else {
            throw .malformed("\(signature) has more than \(SignatureHeaderLimits.maxEntries) elements")
        }
        var timestamp: Int64? = nil
        var signatures: [[UInt8]] = []
        for (n, element) in elements.enumerated() {
            guard let eq = element.firstIndex(of: UInt8(ascii: "=")), eq > element.startIndex,
                  element[..<eq].allSatisfy(isKeyByte) else {
                throw .malformed("\(signature) element \(n + 1) is not 'key=value'")
            }
            let key = element[..<eq], v = element[(eq + 1)...]
            if key.elementsEqual("t".utf8) {
                guard timestamp == nil else { throw .malformed("\(signature) has more than one t=") }
                guard let t = unixSeconds(String(decoding: v, as: UTF8.self)) else {
                    throw .malformed("\(signature): t= is not Unix seconds")
                }
                timestamp = t
            } else if key.elementsEqual("v1".utf8) {
                guard v.count == 2 * HMACSHA256.byteCount, let sig = Hex.decode(v) else {
                    throw .malformed("\(signature): a v1= is not 64 hex digits")
                }
                signatures.append(sig)
            }
        }
        guard let timestamp else { throw .malformed("\(signature) has no t=") }
        return Parsed(timestamp: timestamp, signatures: signatures)
    }

    static func isKeyByte(_ c: UInt8) -> Bool {
        switch c {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "-"): true
        default: false
        }
    }
}

/// Canonical decimal Unix seconds: 1 to 18 digits, no sign, no leading zero (so the signed text and the number
/// are one spelling), nothing else. Nil otherwise.
func unixSeconds(_ s: String) -> Int64? {
    let d = Array(s.utf8)
    guard !d.isEmpty, d.count <= 18, d[0] != UInt8(ascii: "0") || d.count == 1 else { return nil }
    var v: Int64 = 0
    for c in d {
        guard c >= UInt8(ascii: "0"), c <= UInt8(ascii: "9") else { return nil }
        v = v * 10 + Int64(c - UInt8(ascii: "0"))
    }
    return v
}
