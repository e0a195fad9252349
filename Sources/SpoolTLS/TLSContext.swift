import CSpoolTLS
import SpoolSystem

/// A server's TLS configuration (an `SSL_CTX`): certificate chain and key, protocol floor, ALPN. Immutable once
/// made, so one context is shared by every connection and by every thread (OpenSSL allows `SSL_new` on a
/// configured `SSL_CTX` from many threads). A certificate reload builds a new context and hands it to new
/// connections; each open connection keeps a reference to the context it started with.
public final class TLSServerContext: @unchecked Sendable {
    let ctx: OpaquePointer
    /// The files it was made from.
    public let certificateChainFile: String
    public let privateKeyFile: String
    /// The leaf certificate's serial number in upper-case hex, as `openssl x509 -noout -serial` prints it
    /// (how a reload test tells two certificates apart).
    public let certificateSerial: String

    /// Loads a PEM certificate chain (leaf first, then intermediates: `SSL_CTX_use_certificate_chain_file`)
    /// and its PEM private key, and checks that they belong together.
    ///
    /// The choices, each for a reason:
    /// - TLS 1.2 minimum: 1.0 and 1.1 are deprecated (RFC 8996).
    /// - `SSL_OP_CIPHER_SERVER_PREFERENCE`: OpenSSL's default cipher order (AEAD, forward secrecy first) wins
    ///   over a client's odd preferences.
    /// - `SSL_OP_NO_RENEGOTIATION`: TLS 1.2 renegotiation is an attack surface (CPU, state confusion) that a
    ///   webhook receiver never needs; refusing it also means a read never has to wait for a write after the
    ///   handshake.
    /// - ALPN: `http/1.1` is selected when offered; a client offering only other protocols gets no ALPN rather
    ///   than a failed handshake (see `spool_tls_ctx_select_http11`).
    /// - `SSL_MODE_RELEASE_BUFFERS`: OpenSSL frees a session's 16 KB record buffers while they are empty, so
    ///   thousands of idle keep-alive connections stay cheap. `ENABLE_PARTIAL_WRITE`: `SSL_write` encrypts one
    ///   record at a time, so the ciphertext waiting for the socket is bounded. `ACCEPT_MOVING_WRITE_BUFFER`:
    ///   the engine's caller may retry a write from another address (its buffer is not pinned).
    /// - Session cache: OpenSSL's default server cache, capped at 1024 sessions (its default is 20480, about
    ///   20 MB held for clients that may never come back); TLS 1.3 resumption uses stateless tickets anyway.
    public init(certificateChainFile: String, privateKeyFile: String) throws(TLSError) {
        try TLSLibrary.ensureLoaded()
        try checkReadable(certificateChainFile, "certificate chain")
        try checkReadable(privateKeyFile, "private key")
        let ctx = try makeContext(server: true)
        do throws(TLSError) {
            try configureCommon(ctx)
            _ = spool_tls_ctx_set_options(ctx, UInt64(SPOOL_SSL_OP_CIPHER_SERVER_PREFERENCE))
            _ = spool_tls_ctx_set_session_cache_size(ctx, 1024)
            spool_tls_ctx_select_http11(ctx)
            try loadIdentity(ctx, certificate: certificateChainFile, key: privateKeyFile, what: "")
            var buf = [CChar](repeating: 0, count: 256)
            guard spool_tls_ctx_certificate_serial(ctx, &buf, buf.count) == 0 else {
                throw TLSError.certificate("\(certificateChainFile): cannot read the certificate's serial number")
            }
            certificateSerial = cString(buf)
        } catch {
            spool_tls_ctx_free(ctx)
            throw error
        }
        self.ctx = ctx
        self.certificateChainFile = certificateChainFile
        self.privateKeyFile = privateKeyFile
    }

    deinit { spool_tls_ctx_free(ctx) }
}

/// A client's TLS configuration (an `SSL_CTX`): whom to trust, and optionally a certificate to present.
/// Verification of the server is always on (`SSL_VERIFY_PEER`, plus the host name or IP address check the
/// engine sets per connection); there is deliberately no way to turn it off anywhere in this module. A test
/// or a private CA uses `caFile`.
public final class TLSClientContext: @unchecked Sendable {
    let ctx: OpaquePointer
    /// The ALPN protocols offered, in order of preference.
    public let alpnProtocols: [String]

    /// - `caFile`: nil trusts the system's roots (`SSL_CTX_set_default_verify_paths`: OpenSSL's directory,
    ///   `/usr/lib/ssl/certs` → `/etc/ssl/certs` on Debian, package `ca-certificates`); a PEM file trusts only
    ///   the CAs in it.
    /// - `clientCertificateFile`/`clientKeyFile`: a PEM chain and key for mutual TLS; both or neither.
    /// - `alpnProtocols`: offered in the ClientHello (e.g. `["http/1.1"]`); none by default.
    /// TLS 1.2 minimum, renegotiation refused, the same buffer modes as the server.
    public init(caFile: String? = nil, clientCertificateFile: String? = nil, clientKeyFile: String? = nil,
                alpnProtocols: [String] = []) throws(TLSError) {
        try TLSLibrary.ensureLoaded()
        if (clientCertificateFile == nil) != (clientKeyFile == nil) {
            throw TLSError.certificate("a client certificate and its private key must be given together")
        }
        if let caFile { try checkReadable(caFile, "CA file") }
        if let c = clientCertificateFile, let k = clientKeyFile {
            try checkReadable(c, "client certificate")
            try checkReadable(k, "client private key")
        }
        var wire: [UInt8] = []
        for p in alpnProtocols {
            guard !p.utf8.isEmpty, p.utf8.count < 256 else { throw TLSError.protocolFailure("invalid ALPN protocol name \"\(p)\"") }
            wire.append(UInt8(p.utf8.count))
            wire.append(contentsOf: p.utf8)
        }
        let ctx = try makeContext(server: false)
        do throws(TLSError) {
            try configureCommon(ctx)
            spool_tls_ctx_verify_peer(ctx)
            if let caFile {
                guard spool_tls_ctx_load_verify_file(ctx, caFile) == 1 else {
                    throw TLSError.certificate("CA file \(caFile): \(TLSLibrary.drainErrors().text)")
                }
            } else {
                guard spool_tls_ctx_set_default_verify_paths(ctx) == 1 else {
                    throw TLSError.certificate("cannot load the system's trusted CAs: \(TLSLibrary.drainErrors().text)")
                }
            }
            if let c = clientCertificateFile, let k = clientKeyFile {
                try loadIdentity(ctx, certificate: c, key: k, what: "client ")
            }
            if !wire.isEmpty {
                guard spool_tls_ctx_set_alpn_protos(ctx, wire, UInt32(wire.count)) == 1 else {
                    throw TLSError.protocolFailure("cannot set ALPN: \(TLSLibrary.drainErrors().text)")
                }
            }
        } catch {
            spool_tls_ctx_free(ctx)
            throw error
        }
        self.ctx = ctx
        self.alpnProtocols = alpnProtocols
    }

    deinit { spool_tls_ctx_free(ctx) }
}

// MARK: - Shared steps

private func makeContext(server: Bool) throws(TLSError) -> OpaquePointer {
    spool_tls_err_clear()
    guard let ctx = spool_tls_ctx_new(server ? 1 : 0) else {
        throw TLSError.protocolFailure("cannot create a TLS context: \(TLSLibrary.drainErrors().text)")
    }
    return ctx
}

private func configureCommon(_ ctx: OpaquePointer) throws(TLSError) {
    guard spool_tls_ctx_set_min_proto_version(ctx, SPOOL_TLS1_2_VERSION) == 1 else {
        throw TLSError.protocolFailure("cannot set TLS 1.2 as the minimum version: \(TLSLibrary.drainErrors().text)")
    }
    _ = spool_tls_ctx_set_options(ctx, UInt64(SPOOL_SSL_OP_NO_RENEGOTIATION) | UInt64(SPOOL_SSL_OP_NO_COMPRESSION))
    _ = spool_tls_ctx_set_mode(ctx, SPOOL_SSL_MODE_RELEASE_BUFFERS | SPOOL_SSL_MODE_ENABLE_PARTIAL_WRITE
                                    | SPOOL_SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER)
}

/// Certificate chain, key, and the check that they match.
private func loadIdentity(_ ctx: OpaquePointer, certificate: String, key: String, what: String) throws(TLSError) {
    spool_tls_err_clear()
    guard spool_tls_ctx_use_certificate_chain_file(ctx, certificate) == 1 else {
        let (reason, code) = TLSLibrary.drainErrors()
        let why = isNoPEM(code) ? "no PEM certificate in it (\(reason))" : reason
        throw TLSError.certificate("\(what)certificate chain \(certificate): \(why)")
    }
    guard spool_tls_ctx_use_private_key_file(ctx, key) == 1 else {
        let (reason, code) = TLSLibrary.drainErrors()
        // OpenSSL checks the key against the certificate already loaded while loading it: X509_R_KEY_VALUES_MISMATCH
        // or X509_R_KEY_TYPE_MISMATCH, decided on the error code, never on its text.
        if spool_tls_err_lib(code) == SPOOL_ERR_LIB_X509
            && [SPOOL_X509_R_KEY_VALUES_MISMATCH, SPOOL_X509_R_KEY_TYPE_MISMATCH].contains(spool_tls_err_reason(code)) {
            throw TLSError.certificate("\(what)private key \(key) does not match the certificate in \(certificate)")
        }
        let why = isNoPEM(code) ? "no PEM private key in it (\(reason))" : reason
        throw TLSError.certificate("\(what)private key \(key): \(why)")
    }
    guard spool_tls_ctx_check_private_key(ctx) == 1 else {
        _ = TLSLibrary.drainErrors()
        throw TLSError.certificate("\(what)private key \(key) does not match the certificate in \(certificate)")
    }
}

/// A file with nothing PEM in it: PEM_R_NO_START_LINE, or OpenSSL 3's decoders' ERR_R_UNSUPPORTED (nothing decoded).
private func isNoPEM(_ code: UInt) -> Bool {
    (spool_tls_err_lib(code) == SPOOL_ERR_LIB_PEM && spool_tls_err_reason(code) == SPOOL_PEM_R_NO_START_LINE)
        || spool_tls_err_reason(code) == SPOOL_ERR_R_UNSUPPORTED
}

/// Opens the file once to say plainly why it cannot be used (OpenSSL's "system lib" is less helpful).
private func checkReadable(_ path: String, _ what: String) throws(TLSError) {
    do throws(Errno) {
        let fd = try FileDescriptor.open(path, .readOnly)
        try? fd.close()
    } catch {
        throw TLSError.certificate("\(what) \(path): \(error)")
    }
}

func cString(_ buf: [CChar]) -> String {
    String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
