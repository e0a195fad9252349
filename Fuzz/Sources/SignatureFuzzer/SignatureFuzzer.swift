import SpoolSignatures

/// The signature header parsers and the verifiers behind `spool serve --verify`. Byte 0 picks what is fed the rest:
/// 0 webhook-signature, 1 webhook-timestamp, 2 X-Hub-Signature-256, 3 Stripe-Signature, 4 base64, 5 a whole
/// request (headers split from the bytes) through each verifier, 6 a round trip: a delivery signed with our HMAC
/// must verify, and one flipped byte must not. Invariants: no trap; the bounds hold; what is accepted has one
/// spelling (re-encoding gives the input back).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    guard size > 0 else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    let text = String(decoding: bytes, as: UTF8.self)
    switch data[0] % 7 {
    case 0: standardSignature(text)
    case 1: timestamp(text)
    case 2: github(text)
    case 3: stripe(text)
    case 4: base64(bytes)
    case 5: request(bytes)
    default: roundTrip(bytes)
    }
    return 0
}

func standardSignature(_ text: String) {
    guard let sigs = try? StandardWebhooksHeaders.parseSignature(text) else { return }
    precondition(text.utf8.count <= SignatureHeaderLimits.maxBytes)
    precondition(sigs.count <= SignatureHeaderLimits.maxEntries)
    let entries = text.split(separator: " ", omittingEmptySubsequences: false)
    let v1 = entries.filter { $0.hasPrefix("v1,") }.map { String($0.dropFirst(3)) }
    precondition(v1 == sigs.map(Base64.encode), "a v1 signature is not its canonical base64")
}

func timestamp(_ text: String) {
    guard let t = try? StandardWebhooksHeaders.parseTimestamp(text) else { return }
    precondition(t >= 0 && String(t) == text, "accepted a timestamp that is not canonical")
}

func github(_ text: String) {
    guard let sig = try? GitHubHeaders.parseSignature(text) else { return }
    precondition(sig.count == 32 && "sha256=" + Hex.encode(sig) == text.lowercased())
}

func stripe(_ text: String) {
    guard let p = try? StripeHeaders.parse(text) else { return }
    precondition(text.utf8.count <= SignatureHeaderLimits.maxBytes)
    precondition(p.signatures.count <= SignatureHeaderLimits.maxEntries && p.signatures.allSatisfy { $0.count == 32 })
    precondition(p.timestamp >= 0 && text.split(separator: ",").contains { $0 == "t=\(p.timestamp)" })
}

func base64(_ bytes: [UInt8]) {
    if let decoded = Base64.decode(bytes[...]) {
        precondition(Array(Base64.encode(decoded).utf8) == bytes, "two spellings of the same bytes")
    }
    precondition(Base64.decode(Base64.encode(bytes)) == bytes)
    if let h = Hex.decode(bytes[...]) { precondition(Hex.encode(h) == String(decoding: bytes, as: UTF8.self).lowercased()) }
}

/// Lines `name: value` (split on newline and the first colon) as the request's headers, the rest of the bytes
/// after an empty line as the body.
func request(_ bytes: [UInt8]) {
    let parts = bytes.split(separator: 0x0A, maxSplits: 64, omittingEmptySubsequences: false)
    var headers: [(String, String)] = []
    var body: [UInt8] = []
    for (i, line) in parts.enumerated() {
        if line.isEmpty { body = Array(parts[(i + 1)...].joined(separator: [0x0A])); break }
        guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else { continue }
        headers.append((String(decoding: line[..<colon], as: UTF8.self), String(decoding: line[(colon + 1)...], as: UTF8.self)))
    }
    let lookup: (String) -> [String] = { name in headers.filter { $0.0.lowercased() == name.lowercased() }.map(\.1) }
    for scheme in SignatureScheme.allCases {
        let v = SignatureVerifier(scheme: scheme, keys: [Array("k".utf8), []], toleranceSeconds: 300)
        for now in [Int64(0), 1_700_000_000, Int64.max, Int64.min] {
            _ = try? v.verify(body: body, nowSeconds: now, header: lookup)
        }
    }
}

/// A delivery signed by our HMAC verifies (all three schemes); with one byte of the body flipped it does not.
func roundTrip(_ bytes: [UInt8]) {
    guard bytes.count >= 2 else { return }
    let key = Array(bytes.prefix(Int(bytes[0]) % 80)), body = Array(bytes.dropFirst(Int(bytes[0]) % 80))
    let mac = HMACSHA256(key: key)
    let t: Int64 = 1_700_000_000
    let id = "msg_" + Hex.encode(Array(bytes.prefix(8)))
    let std = "v1," + Base64.encode(mac.authenticationCode(Array("\(id).\(t).".utf8) + body))
    let gh = "sha256=" + Hex.encode(mac.authenticationCode(body))
    let st = "t=\(t),v1=" + Hex.encode(mac.authenticationCode(Array("\(t).".utf8) + body))
    let headers: [String: String] = ["webhook-id": id, "webhook-timestamp": String(t), "webhook-signature": std,
                                     "x-hub-signature-256": gh, "stripe-signature": st]
    let lookup: (String) -> [String] = { name in headers[name.lowercased()].map { [$0] } ?? [] }
    for scheme in SignatureScheme.allCases {
        let v = SignatureVerifier(scheme: scheme, keys: [Array("not the key".utf8), key])
        do throws(SignatureFailure) { try v.verify(body: body, nowSeconds: t + 1, header: lookup) } catch {
            preconditionFailure("\(scheme) refused its own signature: \(error)")
        }
        guard !body.isEmpty, !key.elementsEqual("not the key".utf8) else { continue }
        var flipped = body
        flipped[Int(bytes[1]) % flipped.count] ^= 0x01
        precondition((try? v.verify(body: flipped, nowSeconds: t, header: lookup)) == nil, "\(scheme) accepted a changed body")
    }
}
