import CSpoolTLS

/// One TLS session as a pure byte transform: ciphertext in through `feed`, plaintext out of `read`, plaintext
/// in through `write`, ciphertext out of `takeOutput`. No sockets: the session reads from one memory BIO and
/// writes to another (the swift-nio-ssl model), so the same code serves the epoll server, the blocking bridges
/// and tests that deliver bytes one at a time.
///
/// After every step, `takeOutput` may have bytes to send (handshake flights, alerts, session tickets,
/// close_notify): the caller drains it and sends it. `.needsInput` means "feed me more ciphertext": records
/// arrive in pieces, and a partial record is normal.
///
/// Not thread-safe (an `SSL` object is not): one thread at a time; `TLSStream` adds the lock.
///
/// Errors are `TLSError` with OpenSSL's reason. The per-thread error queue is cleared before each OpenSSL
/// call and read after a failure, so one connection's leftovers never leak into another's diagnosis. After a
/// failure the session is dead and every call throws the same error again (the alert OpenSSL queued, if any,
/// is still in `takeOutput`).
public final class TLSEngine {
    public enum HandshakeStatus: Sendable, Equatable {
        case complete
        /// Feed more ciphertext (after sending whatever `takeOutput` holds).
        case needsInput
    }

    public enum ReadResult: Sendable, Equatable {
        /// This many plaintext bytes were written into the buffer (never 0 for a non-empty buffer).
        case bytes(Int)
        /// No plaintext until more ciphertext is fed.
        case needsInput
        /// The peer sent close_notify: a clean end of its data.
        case closed
        /// The transport ended (`feedEOF`) without close_notify, at a record boundary or in the middle of a
        /// record. OpenSSL 3 reports this as an error unless `SSL_OP_IGNORE_UNEXPECTED_EOF` is set; we leave the
        /// option off and report it as its own outcome instead, so the caller decides: harmless where the
        /// length is known (HTTP with Content-Length, NATS protocol lines), a truncation where the end of the
        /// connection is the end of the data (close-delimited HTTP bodies).
        case unexpectedEOF
    }

    public enum WriteResult: Sendable, Equatable {
        /// This many plaintext bytes were encrypted into `takeOutput` (at most one record, about 16 KB:
        /// `SSL_MODE_ENABLE_PARTIAL_WRITE`).
        case bytes(Int)
        /// The handshake needs the peer's data before anything can be written.
        case needsInput
    }

    private let ssl: OpaquePointer
    private var rbio: OpaquePointer
    private var wbio: OpaquePointer
    public let isServer: Bool
    private var failure: TLSError?
    private var handshakeDone = false
    private var receivedCloseNotify = false
    private var truncated = false
    private var sentCloseNotify = false
    private var transportEOF = false
    /// Ciphertext was fed since OpenSSL last asked for more: a read may make progress without new input.
    private var inputMayProgress = false
    /// The most either BIO held since it was made: a memory BIO keeps its largest allocation, so after a
    /// large transfer an emptied BIO is replaced by a fresh one (see `renewBuffers`).
    private var rbioHighWater = 0
    private var wbioHighWater = 0
    /// A BIO that held more than this is replaced once empty; smaller ones are kept (most requests fit).
    static let keptBufferBytes = 4096

    /// A server session: the handshake starts with the client's first bytes.
    public init(server: TLSServerContext) throws(TLSError) {
        isServer = true
        (ssl, rbio, wbio) = try Self.session(server.ctx, server: true)
    }

    /// A client session for `serverName`: a DNS name is sent as SNI and checked against the certificate's
    /// names; an IP literal (`127.0.0.1`, `::1`, `[::1]`) is checked against its IP addresses and sends no SNI
    /// (RFC 6066 section 3). The handshake starts at the first `handshake`/`read`/`write` (the ClientHello
    /// then waits in `takeOutput`).
    public init(client: TLSClientContext, serverName: String) throws(TLSError) {
        isServer = false
        var name = serverName
        if name.hasPrefix("[") && name.hasSuffix("]") { name = String(name.dropFirst().dropLast()) }
        guard !name.isEmpty, !name.utf8.contains(0) else {
            throw TLSError.protocolFailure("invalid server name \"\(serverName)\"")
        }
        let (ssl, r, w) = try Self.session(client.ctx, server: false)
        spool_tls_err_clear()
        guard spool_tls_set_peer_name(ssl, name) != 0 else {
            let reason = TLSLibrary.drainErrors().text
            spool_tls_free(ssl)  // (self is not initialised yet, so deinit will not free it again)
            throw TLSError.protocolFailure("cannot set the server name \"\(serverName)\": \(reason)")
        }
        (self.ssl, rbio, wbio) = (ssl, r, w)
    }

    private static func session(_ ctx: OpaquePointer, server: Bool) throws(TLSError) -> (OpaquePointer, OpaquePointer, OpaquePointer) {
        spool_tls_err_clear()
        var r: OpaquePointer?
        var w: OpaquePointer?
        guard let ssl = spool_tls_new(ctx, server ? 1 : 0, &r, &w), let r, let w else {
            throw TLSError.protocolFailure("cannot create a TLS session: \(TLSLibrary.drainErrors().text)")
        }
        return (ssl, r, w)
    }

    /// Frees the session and both BIOs (`SSL_free`); the context lives on while other sessions use it
    /// (`SSL_new` took a reference).
    deinit { spool_tls_free(ssl) }

    // MARK: - State

    /// True once the handshake finished (and stays true).
    public var isHandshakeComplete: Bool { handshakeDone }

    /// The protocol ALPN selected (`http/1.1`), nil if none was.
    public var negotiatedALPN: String? {
        var p: UnsafePointer<UInt8>?
        var len: UInt32 = 0
        spool_tls_alpn_selected(ssl, &p, &len)
        guard let p, len > 0 else { return nil }
        return String(decoding: UnsafeBufferPointer(start: p, count: Int(len)), as: UTF8.self)
    }

    /// "TLSv1.3", "TLSv1.2" once the handshake is complete; nil before.
    public var protocolVersion: String? {
        guard handshakeDone, let p = spool_tls_protocol_version(ssl) else { return nil }
        return String(cString: p)
    }

    /// Decrypted bytes held inside the session, ready for `read` (`SSL_pending`).
    public var bufferedPlaintext: Int { Int(spool_tls_pending(ssl)) }

    /// True when `read` could return something other than `.needsInput` without new ciphertext: plaintext
    /// already decrypted, ciphertext fed but not yet looked at, or an end or failure still to report.
    public var hasBufferedInput: Bool {
        if failure != nil || receivedCloseNotify || truncated || spool_tls_pending(ssl) > 0 { return true }
        // Fed ciphertext still in the BIO (OpenSSL reads record by record, without read-ahead), or an end of
        // file the session has not seen yet.
        return inputMayProgress && (transportEOF || spool_tls_bio_pending(rbio) > 0)
    }

    /// Ciphertext waiting to be sent.
    public var pendingOutputCount: Int { Int(spool_tls_bio_pending(wbio)) }

    /// True once the peer's close_notify was read.
    public var peerSentCloseNotify: Bool { receivedCloseNotify }

    // MARK: - Ciphertext in and out

    /// Hands ciphertext received from the peer to the session (copied).
    public func feed(_ ciphertext: UnsafeRawBufferPointer) {
        guard !ciphertext.isEmpty, let base = ciphertext.baseAddress, !transportEOF else { return }
        var off = 0
        while off < ciphertext.count {
            let chunk = Int32(clamping: ciphertext.count - off)
            let n = spool_tls_bio_write(rbio, base + off, chunk)
            if n <= 0 {  // a memory BIO fails only when malloc does
                if failure == nil { failure = .protocolFailure("out of memory buffering received data") }
                return
            }
            off += Int(n)
        }
        inputMayProgress = true
        rbioHighWater = max(rbioHighWater, Int(spool_tls_bio_pending(rbio)))
    }

    public func feed(_ ciphertext: [UInt8]) {
        ciphertext.withUnsafeBytes { feed($0) }
    }

    /// The transport reached end of file: once the fed ciphertext is used up, the session sees EOF (a read
    /// then answers `.closed` after close_notify, `.unexpectedEOF` without; a handshake fails).
    public func feedEOF() {
        guard !transportEOF else { return }
        transportEOF = true
        spool_tls_bio_set_eof(rbio)
        inputMayProgress = true
    }

    /// Takes every byte of ciphertext waiting to be sent.
    public func takeOutput() -> [UInt8] {
        let n = pendingOutputCount
        guard n > 0 else { return [] }
        let out = [UInt8](unsafeUninitializedCapacity: n) { buf, count in
            count = Int(max(0, spool_tls_bio_read(wbio, buf.baseAddress, Int32(clamping: n))))
        }
        renewBuffers()
        return out
    }

    /// Moves up to `buffer.count` bytes of ciphertext waiting to be sent into `buffer`; returns the count.
    public func takeOutput(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        guard !buffer.isEmpty, pendingOutputCount > 0 else { return 0 }
        let n = Int(max(0, spool_tls_bio_read(wbio, buffer.baseAddress, Int32(clamping: buffer.count))))
        renewBuffers()
        return n
    }

    // MARK: - Steps

    /// Advances the handshake as far as the fed ciphertext allows.
    public func handshake() throws(TLSError) -> HandshakeStatus {
        if let failure { throw failure }
        if handshakeDone { return .complete }
        spool_tls_err_clear()
        let r = spool_tls_do_handshake(ssl)
        noteOutput()
        if r == 1 {
            handshakeDone = true
            return .complete
        }
        let code = spool_tls_get_error(ssl, r)
        if code == SPOOL_SSL_ERROR_WANT_READ {
            inputMayProgress = false
            return .needsInput
        }
        throw fail(code)
    }

    /// Decrypts into `buffer` (driving the handshake first if it is not finished).
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(TLSError) -> ReadResult {
        if let failure { throw failure }
        if receivedCloseNotify { return .closed }
        if truncated { return .unexpectedEOF }
        guard !buffer.isEmpty else { return .bytes(0) }
        spool_tls_err_clear()
        var n = 0
        let r = spool_tls_read(ssl, buffer.baseAddress, buffer.count, &n)
        noteOutput()
        if r == 1 {
            handshakeDone = true
            return .bytes(n)
        }
        let code = spool_tls_get_error(ssl, r)
        switch code {
        case SPOOL_SSL_ERROR_WANT_READ:
            inputMayProgress = false
            if spool_tls_is_init_finished(ssl) != 0 { handshakeDone = true }
            renewBuffers()
            return .needsInput
        case SPOOL_SSL_ERROR_ZERO_RETURN:
            receivedCloseNotify = true
            return .closed
        default:
            if handshakeDone, isUnexpectedEOF(code) {
                _ = TLSLibrary.drainErrors()
                truncated = true
                return .unexpectedEOF
            }
            throw fail(code)
        }
    }

    /// Encrypts a prefix of `bytes` (at most one record) into the output (driving the handshake first if
    /// it is not finished).
    public func write(_ bytes: UnsafeRawBufferPointer) throws(TLSError) -> WriteResult {
        if let failure { throw failure }
        guard !bytes.isEmpty else { return .bytes(0) }
        spool_tls_err_clear()
        var n = 0
        let r = spool_tls_write(ssl, bytes.baseAddress, bytes.count, &n)
        noteOutput()
        if r == 1 {
            handshakeDone = true
            return .bytes(n)
        }
        let code = spool_tls_get_error(ssl, r)
        if code == SPOOL_SSL_ERROR_WANT_READ {
            inputMayProgress = false
            return .needsInput
        }
        throw fail(code)
    }

    /// Queues close_notify in the output (once; only after a completed handshake and without a failure:
    /// otherwise there is no session to close cleanly). Writing afterwards fails.
    public func close() {
        guard failure == nil, handshakeDone, !sentCloseNotify else { return }
        sentCloseNotify = true
        spool_tls_err_clear()
        _ = spool_tls_shutdown(ssl)  // 0: sent, the peer's not yet seen; 1: both; never blocks on memory BIOs
        _ = TLSLibrary.drainErrors()
        noteOutput()
    }

    // MARK: - Errors

    private func isUnexpectedEOF(_ code: Int32) -> Bool {
        let e = spool_tls_err_peek()
        if code == SPOOL_SSL_ERROR_SYSCALL && e == 0 { return true }
        return spool_tls_err_lib(e) == SPOOL_ERR_LIB_SSL && spool_tls_err_reason(e) == SPOOL_SSL_R_UNEXPECTED_EOF_WHILE_READING
    }

    /// Turns a failed call into the error of this session (and remembers it).
    private func fail(_ code: Int32) -> TLSError {
        let eof = isUnexpectedEOF(code)
        let (text, e) = TLSLibrary.drainErrors()
        let verify = spool_tls_verify_result(ssl)
        let error: TLSError
        if verify != 0 || (spool_tls_err_lib(e) == SPOOL_ERR_LIB_SSL && spool_tls_err_reason(e) == SPOOL_SSL_R_CERTIFICATE_VERIFY_FAILED) {
            let why = verify != 0 ? spool_tls_verify_error_text(verify).map { String(cString: $0) } ?? "error \(verify)" : text
            error = .verification("certificate verify failed: \(why)")
        } else if eof {
            error = handshakeDone ? .protocolFailure("connection closed without close_notify")
                : .handshake("the connection closed during the handshake")
        } else {
            let why = text.isEmpty ? "SSL error \(code)" : text
            error = handshakeDone ? .protocolFailure(why) : .handshake(why)
        }
        failure = error
        return error
    }

    // MARK: - Buffers

    private func noteOutput() {
        wbioHighWater = max(wbioHighWater, Int(spool_tls_bio_pending(wbio)))
    }

    /// Gives back a BIO buffer that grew during a large transfer, once it is empty: a memory BIO never
    /// shrinks, and an idle connection must not keep tens of KB for a request it served an hour ago.
    private func renewBuffers() {
        guard handshakeDone else { return }
        if wbioHighWater > Self.keptBufferBytes, spool_tls_bio_pending(wbio) == 0, let b = spool_tls_renew_wbio(ssl) {
            wbio = b
            wbioHighWater = 0
        }
        if rbioHighWater > Self.keptBufferBytes, !transportEOF, spool_tls_bio_pending(rbio) == 0, let b = spool_tls_renew_rbio(ssl) {
            rbio = b
            rbioHighWater = 0
        }
    }
}
