import SpoolTLS

/// A NATS NKEY user seed (`SU…`) and what the CONNECT handshake needs from it: the public key (`U…`) and a
/// signature of the server's nonce. The text encoding (base32 without padding of two prefix bytes, the 32-byte
/// Ed25519 seed and a little-endian CRC-16/XMODEM) is NATS's, written here from its description; the signing is
/// libcrypto's Ed25519 through the run-time loader (`SpoolTLS.Ed25519`), never code of our own.
public struct NKeySeed: Sendable {
    /// The 32-byte Ed25519 seed. Kept only as long as the connection needs it (every reconnect signs again).
    private(set) var seed: [UInt8]

    static let seedPrefix: UInt8 = 18 << 3   // "S"
    static let userPrefix: UInt8 = 20 << 3   // "U"

    /// Parses a seed's text (surrounding whitespace allowed); only user seeds (`SU`) authenticate a client.
    public init(text: some StringProtocol) throws(BridgeError) {
        var chars = Array(text.utf8)
        while let last = chars.last, last == 0x0A || last == 0x0D || last == 0x20 || last == 0x09 { chars.removeLast() }
        while let first = chars.first, first == 0x20 || first == 0x09 || first == 0x0A || first == 0x0D { chars.removeFirst() }
        defer { for i in chars.indices { chars[i] = 0 } }
        guard chars.count == 58, var raw = Base32.decode(chars[...]), raw.count == 36 else {
            throw BridgeError(.configuration, "not an NKEY seed (expected 58 base32 characters starting with SU)")
        }
        defer { for i in raw.indices { raw[i] = 0 } }
        let body = raw[0..<34]
        let crc = UInt16(raw[34]) | UInt16(raw[35]) << 8
        guard CRC16.xmodem(body) == crc else { throw BridgeError(.configuration, "the NKEY seed's checksum does not match") }
        guard raw[0] & 0xF8 == NKeySeed.seedPrefix else { throw BridgeError(.configuration, "not an NKEY seed (it must start with S)") }
        let kind = (raw[0] & 0x07) << 5 | (raw[1] & 0xF8) >> 3
        guard kind == NKeySeed.userPrefix else { throw BridgeError(.configuration, "the NKEY seed is not a user seed (SU...)") }
        seed = Array(raw[2..<34])
    }

    /// The public key as NATS writes it (`U` + 55 characters).
    public func publicKey() throws(BridgeError) -> String {
        let pub: [UInt8]
        do { pub = try Ed25519.publicKey(seed: seed) } catch { throw BridgeError(.configuration, "NKEY: \(error)") }
        return NKeySeed.encode(prefix: NKeySeed.userPrefix, pub)
    }

    /// The server's nonce signed, base64url without padding, as CONNECT's `sig` wants it.
    public func sign(_ nonce: [UInt8]) throws(BridgeError) -> String {
        let sig: [UInt8]
        do { sig = try Ed25519.sign(seed: seed, message: nonce) } catch { throw BridgeError(.connect, "NKEY signature: \(error)") }
        return Base64URL.encode(sig)
    }

    static func encode(prefix: UInt8, _ key: [UInt8]) -> String {
        let body = [prefix] + key
        let crc = CRC16.xmodem(body[...])
        return Base32.encode(body + [UInt8(crc & 0xFF), UInt8(crc >> 8)])
    }

    /// The seed's text for a user seed (tests make seeds with it; spool itself only reads them).
    static func encodeSeed(_ seed: [UInt8]) -> String {
        let b1 = seedPrefix | userPrefix >> 5
        let b2 = (userPrefix & 31) << 3
        let body = [b1, b2] + seed
        let crc = CRC16.xmodem(body[...])
        return Base32.encode(body + [UInt8(crc & 0xFF), UInt8(crc >> 8)])
    }
}

/// A `.creds` file as the NATS tools write it: a user JWT and the NKEY seed that signs for it.
public struct NATSCredentials: Sendable {
    public let jwt: String
    public let seed: NKeySeed

    /// Reads the `-----BEGIN NATS USER JWT-----` and `-----BEGIN USER NKEY SEED-----` blocks (END lines with five
    /// or six dashes, as the tools write them); anything else in the file is ignored, as the official clients do.
    public init(text: String) throws(BridgeError) {
        func block(_ name: String) -> String? {
            let lines = text.split(whereSeparator: { $0 == "\n" || $0 == "\r" }).map { String($0).trimmingSpaces }
            guard let start = lines.firstIndex(where: { $0.hasPrefix("-----BEGIN") && $0.contains(name) && $0.hasSuffix("-----") }) else { return nil }
            var body: [String] = []
            for line in lines[(start + 1)...] {
                if line.hasPrefix("-----END") || line.hasPrefix("------END") { return body.first }
                if !line.isEmpty { body.append(line) }
            }
            return nil
        }
        guard let jwt = block("NATS USER JWT") else { throw BridgeError(.configuration, "no NATS USER JWT block in the creds file") }
        guard let seedText = block("USER NKEY SEED") else { throw BridgeError(.configuration, "no USER NKEY SEED block in the creds file") }
        let parts = jwt.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, jwt.utf8.allSatisfy({ Base64URL.isURLSafe($0) || $0 == UInt8(ascii: ".") }) else {
            throw BridgeError(.configuration, "the creds file's JWT is not three base64url parts")
        }
        self.jwt = jwt
        self.seed = try NKeySeed(text: seedText)
    }
}

extension String {
    fileprivate var trimmingSpaces: String {
        String(decoding: Array(utf8).drop(while: { $0 == 0x20 || $0 == 0x09 }).reversed().drop(while: { $0 == 0x20 || $0 == 0x09 }).reversed(), as: UTF8.self)
    }
}

/// RFC 4648 base32 (upper-case alphabet, no padding), strict.
enum Base32 {
    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".utf8)

    static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        var buffer = 0, bits = 0
        for b in bytes {
            buffer = buffer << 8 | Int(b); bits += 8
            while bits >= 5 { bits -= 5; out.append(alphabet[(buffer >> bits) & 31]) }
            buffer &= (1 << bits) - 1
        }
        if bits > 0 { out.append(alphabet[(buffer << (5 - bits)) & 31]) }
        return String(decoding: out, as: UTF8.self)
    }

    static func decode(_ text: ArraySlice<UInt8>) -> [UInt8]? {
        var out: [UInt8] = []
        var buffer = 0, bits = 0
        for c in text {
            let v: Int
            switch c {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): v = Int(c - UInt8(ascii: "A"))
            case UInt8(ascii: "2")...UInt8(ascii: "7"): v = Int(c - UInt8(ascii: "2")) + 26
            default: return nil
            }
            buffer = buffer << 5 | v; bits += 5
            if bits >= 8 { bits -= 8; out.append(UInt8((buffer >> bits) & 0xFF)) }
            buffer &= (1 << bits) - 1
        }
        // Leftover bits must be zero padding of the last character, never data.
        return buffer == 0 ? out : nil
    }
}

/// CRC-16/XMODEM (polynomial 0x1021, initial 0), the checksum of NKEY texts.
enum CRC16 {
    static func xmodem(_ bytes: ArraySlice<UInt8>) -> UInt16 {
        var crc: UInt16 = 0
        for b in bytes {
            crc ^= UInt16(b) << 8
            for _ in 0..<8 { crc = crc & 0x8000 != 0 ? crc << 1 ^ 0x1021 : crc << 1 }
        }
        return crc
    }
}

/// base64url without padding (RFC 4648 section 5), for the CONNECT signature.
enum Base64URL {
    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        var i = 0
        while i + 3 <= bytes.count {
            let n = Int(bytes[i]) << 16 | Int(bytes[i + 1]) << 8 | Int(bytes[i + 2])
            out += [alphabet[n >> 18 & 63], alphabet[n >> 12 & 63], alphabet[n >> 6 & 63], alphabet[n & 63]]
            i += 3
        }
        let rest = bytes.count - i
        if rest == 1 {
            let n = Int(bytes[i]) << 16
            out += [alphabet[n >> 18 & 63], alphabet[n >> 12 & 63]]
        } else if rest == 2 {
            let n = Int(bytes[i]) << 16 | Int(bytes[i + 1]) << 8
            out += [alphabet[n >> 18 & 63], alphabet[n >> 12 & 63], alphabet[n >> 6 & 63]]
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func isURLSafe(_ b: UInt8) -> Bool { alphabet.contains(b) }
}
