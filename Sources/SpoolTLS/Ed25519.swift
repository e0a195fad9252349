import CSpoolTLS

/// Ed25519 signatures (RFC 8032) through OpenSSL, for NATS NKEY authentication: the server sends a nonce,
/// the client signs it with the private key whose 32-byte seed is in the `.creds` file. We write no
/// cryptography of our own; this is `EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519)` and a one-shot
/// `EVP_DigestSign`.
public enum Ed25519 {
    /// The 64-byte signature of `message` by the key with this 32-byte seed.
    public static func sign(seed: [UInt8], message: [UInt8]) throws(TLSError) -> [UInt8] {
        try TLSLibrary.ensureLoaded()
        guard seed.count == 32 else { throw TLSError.protocolFailure("an Ed25519 seed has 32 bytes, not \(seed.count)") }
        spool_tls_err_clear()
        var sig = [UInt8](repeating: 0, count: 64)
        let r = message.withUnsafeBufferPointer { m in
            spool_tls_ed25519_sign(seed, m.baseAddress, m.count, &sig)
        }
        guard r == 0 else { throw TLSError.protocolFailure("Ed25519 signing failed: \(TLSLibrary.drainErrors().text)") }
        return sig
    }

    /// The 32-byte public key of the key with this seed.
    public static func publicKey(seed: [UInt8]) throws(TLSError) -> [UInt8] {
        try TLSLibrary.ensureLoaded()
        guard seed.count == 32 else { throw TLSError.protocolFailure("an Ed25519 seed has 32 bytes, not \(seed.count)") }
        spool_tls_err_clear()
        var pub = [UInt8](repeating: 0, count: 32)
        guard spool_tls_ed25519_public(seed, &pub) == 0 else {
            throw TLSError.protocolFailure("Ed25519 key derivation failed: \(TLSLibrary.drainErrors().text)")
        }
        return pub
    }
}
