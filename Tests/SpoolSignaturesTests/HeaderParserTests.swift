import Testing
@testable import SpoolSignatures

/// The header parsers byte by byte: what they accept, and each way they refuse (always `.malformed`, with a
/// message that names the header and never echoes its value).
@Suite struct StandardWebhooksHeaderTests {
    let sigA = "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

    @Test func acceptsV1EntriesAndSkipsOtherVersions() throws {
        let one = try StandardWebhooksHeaders.parseSignature("v1," + sigA)
        #expect(one == [Base64.decode(sigA)!])
        let mixed = try StandardWebhooksHeaders.parseSignature("v1a,AAAA v1,\(sigA) v2,whatever-it-is v1,AAECAw==")
        #expect(mixed == [Base64.decode(sigA)!, [0, 1, 2, 3]])
        // Only other versions: no signature to check (the verifier answers invalid signature).
        #expect(try StandardWebhooksHeaders.parseSignature("v1a,bm90LWJhc2U2NA") == [])
        let most = Array(repeating: "v1," + sigA, count: SignatureHeaderLimits.maxEntries).joined(separator: " ")
        #expect(try StandardWebhooksHeaders.parseSignature(most).count == 32)
    }

    @Test(arguments: [
        "v1",                       // no comma
        "," + "AAAA",               // no version
        "v1,",                      // empty signature
        "v1,AAA",                   // not base64 (length)
        "v1,AAAA=",                 // not base64 (padding)
        "v1,AA==AA==",              // padding inside
        "v1,-_-_",                  // URL-safe alphabet
        "v1,AAAA  v1,AAAA",         // two spaces: an empty entry
        " v1,AAAA",                 // leading space
        "v1,AAAA ",                 // trailing space
        "v1,AAAA\tv1,AAAA",         // a tab is not a separator (and makes the base64 bad)
        "V1 AAAA",
    ])
    func rejectsSignature(value: String) {
        #expect(throws: SignatureFailure.self) { try StandardWebhooksHeaders.parseSignature(value) }
        do { _ = try StandardWebhooksHeaders.parseSignature(value) } catch {
            guard case .malformed(let why) = error else { Issue.record("\(error)"); return }
            #expect(why.hasPrefix("webhook-signature"))
        }
    }

    @Test func bounds() throws {
        let tooMany = Array(repeating: "v1a,x", count: SignatureHeaderLimits.maxEntries + 1).joined(separator: " ")
        #expect(throws: SignatureFailure.malformed("webhook-signature has more than 32 entries")) {
            try StandardWebhooksHeaders.parseSignature(tooMany)
        }
        let tooLong = "v1," + String(repeating: "A", count: 8192)
        #expect(throws: SignatureFailure.malformed("webhook-signature is longer than 8192 bytes")) {
            try StandardWebhooksHeaders.parseSignature(tooLong)
        }
        // Exactly 8192 bytes is still read; one more is not.
        let exact = "v1a," + String(repeating: "A", count: 8188)
        #expect(exact.utf8.count == 8192)
        #expect(try StandardWebhooksHeaders.parseSignature(exact) == [])
        #expect(throws: SignatureFailure.self) { try StandardWebhooksHeaders.parseSignature(exact + "A") }
    }

    @Test func timestamps() throws {
        #expect(try StandardWebhooksHeaders.parseTimestamp("1614265330") == 1_614_265_330)
        #expect(try StandardWebhooksHeaders.parseTimestamp("0") == 0)
        #expect(try StandardWebhooksHeaders.parseTimestamp("999999999999999999") == 999_999_999_999_999_999)
        for bad in ["", "-1", "+1", "01614265330", "1614265330.5", "1e9", " 1", "1 ", "0x10", "1614265330Z",
                    "9999999999999999999", "٣"] {
            #expect(throws: SignatureFailure.malformed("webhook-timestamp is not Unix seconds"), "\(bad)") {
                try StandardWebhooksHeaders.parseTimestamp(bad)
            }
        }
    }
}

@Suite struct GitHubHeaderTests {
    let hexSig = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"

    @Test func accepts() throws {
        #expect(try GitHubHeaders.parseSignature("sha256=" + hexSig) == unhex(hexSig))
        #expect(try GitHubHeaders.parseSignature("sha256=" + hexSig.uppercased()) == unhex(hexSig))
    }

    @Test func rejects() {
        for bad in ["", hexSig, "sha1=" + hexSig, "SHA256=" + hexSig, "sha256=" + hexSig.dropLast(),
                    "sha256=" + hexSig + "0", "sha256=" + hexSig + "00", "sha256= " + hexSig.dropLast(),
                    "sha256=" + hexSig.dropLast() + "g", "sha256=" + hexSig + ",sha256=" + hexSig] {
            #expect(throws: SignatureFailure.malformed("X-Hub-Signature-256 is not 'sha256=' and 64 hex digits"), "\(bad)") {
                try GitHubHeaders.parseSignature(bad)
            }
        }
    }
}

@Suite struct StripeHeaderTests {
    let a = String(repeating: "ab", count: 32), b = String(repeating: "0F", count: 32)

    @Test func accepts() throws {
        let p = try StripeHeaders.parse("t=1492774577,v1=\(a),v0=6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39")
        #expect(p == StripeHeaders.Parsed(timestamp: 1_492_774_577, signatures: [unhex(a)]))
        let two = try StripeHeaders.parse("v1=\(a),t=5,v1=\(b),future_scheme-2=anything=at all")
        #expect(two.timestamp == 5 && two.signatures == [unhex(a), unhex(b)])
        #expect(try StripeHeaders.parse("t=1").signatures == [])
    }

    @Test func rejects() {
        let cases: [(String, String)] = [
            ("v1=\(a)", "Stripe-Signature has no t="),
            ("t=1,t=1,v1=\(a)", "Stripe-Signature has more than one t="),
            ("t=,v1=\(a)", "Stripe-Signature: t= is not Unix seconds"),
            ("t=01,v1=\(a)", "Stripe-Signature: t= is not Unix seconds"),
            ("t=-1,v1=\(a)", "Stripe-Signature: t= is not Unix seconds"),
            ("t=1,v1=\(a.dropLast())", "Stripe-Signature: a v1= is not 64 hex digits"),
            ("t=1,v1=\(a)00", "Stripe-Signature: a v1= is not 64 hex digits"),
            ("t=1,v1=\(a.dropLast())z", "Stripe-Signature: a v1= is not 64 hex digits"),
            ("t=1,v1=", "Stripe-Signature: a v1= is not 64 hex digits"),
            ("t=1,,v1=\(a)", "Stripe-Signature element 2 is not 'key=value'"),
            ("t=1,v1=\(a),", "Stripe-Signature element 3 is not 'key=value'"),
            ("t=1, v1=\(a)", "Stripe-Signature element 2 is not 'key=value'"),
            ("t=1,=\(a)", "Stripe-Signature element 2 is not 'key=value'"),
            ("t=1,v1", "Stripe-Signature element 2 is not 'key=value'"),
            ("t=1;v1=\(a)", "Stripe-Signature: t= is not Unix seconds"),
            ("t:1,v1=\(a)", "Stripe-Signature element 1 is not 'key=value'"),
            ("", "Stripe-Signature element 1 is not 'key=value'"),
        ]
        for (value, why) in cases {
            #expect(throws: SignatureFailure.malformed(why), "\(value)") { try StripeHeaders.parse(value) }
        }
        let many = "t=1" + String(repeating: ",v0=x", count: SignatureHeaderLimits.maxEntries)
        #expect(throws: SignatureFailure.malformed("Stripe-Signature has more than 32 elements")) { try StripeHeaders.parse(many) }
        let long = "t=1,v0=" + String(repeating: "x", count: 8200)
        #expect(throws: SignatureFailure.malformed("Stripe-Signature is longer than 8192 bytes")) { try StripeHeaders.parse(long) }
    }
}
