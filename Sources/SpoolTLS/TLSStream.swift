import SpoolSystem
import Synchronization

/// TLS over a nonblocking TCP socket, as a `ByteStream`: a `TLSEngine` for the cryptography and a
/// `SocketStream` for the raw socket I/O. The handshake happens inside the first reads and writes (or in
/// `handshake(deadline:)`, which a client calls so that a certificate problem surfaces before it sends a
/// request).
///
/// Every step takes an internal lock: one TLS session has one state, and the NATS connection reads on its
/// reader thread while publishers write from others. Steps never block, so the lock is held only for
/// the time of a few system calls and some cryptography.
///
/// The contract (what `ByteStream` asks, and what TLS adds):
/// - `read(into:)` first sends any ciphertext still waiting (a handshake flight, a session ticket, an
///   alert): if the socket cannot take it, `.wouldBlock(.write)`, and the caller calls `read` again once the
///   socket is writable. Then it decrypts as much as fits, pulling ciphertext from the socket as needed, and
///   answers `.bytes(n)` as soon as it has plaintext and the socket has no more, `.wouldBlock(.read)` when it
///   has none, `.closed` at the peer's close_notify or at end of file (`closedWithoutCloseNotify` tells the two
///   apart). Plaintext or records may remain inside afterwards: `hasBufferedInput`.
/// - `write(_:)` encrypts at most one record (16 KB) of `bytes` and answers `.bytes(n)` only once all of its
///   ciphertext is in the kernel. If the socket blocks part-way, it keeps the rest of the ciphertext and
///   answers `.wouldBlock(.write)`; the next call (which must start with the same bytes) finishes sending it
///   and answers `.bytes(n)` without encrypting again. During the handshake it may answer `.wouldBlock(.read)`
///   (the peer's flight is needed first), reading the socket itself. After the handshake a write never reads
///   the socket (renegotiation is refused), so a writer cannot take data a reader thread is waiting for.
/// - `shutdownWrite()` sends close_notify (best effort, without blocking) and then the TCP FIN.
/// - Errors: socket errors stay `StreamError.system`; every `TLSError` becomes
///   `StreamError.protocolFailure(description)`, e.g. `certificate verify failed: hostname mismatch`.
public final class TLSStream: ByteStream {
    public let descriptor: FileDescriptor
    private let socket: SocketStream
    private let state: Mutex<State>

    private struct State {
        var engine: TLSEngine
        /// Ciphertext taken from the engine that the socket has not taken yet.
        var outbox: [UInt8] = []
        var outboxOffset = 0
        /// Plaintext bytes of an earlier `write` whose ciphertext is still (partly) in `outbox`.
        var encryptedNotReported: Int?
        /// An outcome that came after plaintext already returned, reported by the next read.
        var pendingEnd: StreamProgress?
        var pendingError: StreamError?
        var socketEOF = false
        var receivedCiphertext = false
        var closedWithoutNotify = false
    }

    /// Wraps a connected nonblocking socket and a session (`TLSEngine(server:)` or `(client:serverName:)`).
    public init(descriptor: FileDescriptor, engine: sending TLSEngine) {
        self.descriptor = descriptor
        socket = SocketStream(descriptor)
        state = Mutex(State(engine: engine))
    }

    /// The server side of an accepted connection.
    public convenience init(descriptor: FileDescriptor, server: TLSServerContext) throws(TLSError) {
        self.init(descriptor: descriptor, engine: try TLSEngine(server: server))
    }

    /// The client side of a connection to `serverName` (a DNS name or an IP literal, checked against the
    /// server's certificate).
    public convenience init(descriptor: FileDescriptor, client: TLSClientContext, serverName: String) throws(TLSError) {
        self.init(descriptor: descriptor, engine: try TLSEngine(client: client, serverName: serverName))
    }

    // MARK: - What the session says

    /// The ALPN protocol the handshake selected.
    public var negotiatedALPN: String? { state.withLock { $0.engine.negotiatedALPN } }
    public var isHandshakeComplete: Bool { state.withLock { $0.engine.isHandshakeComplete } }
    /// "TLSv1.3" / "TLSv1.2" after the handshake.
    public var protocolVersion: String? { state.withLock { $0.engine.protocolVersion } }
    /// True when a read answered `.closed` because the connection ended without close_notify. Harmless for
    /// framed data (HTTP with Content-Length, NATS); a truncation where the end marks the end of the data.
    public var closedWithoutCloseNotify: Bool { state.withLock { $0.closedWithoutNotify } }

    public var hasBufferedInput: Bool {
        state.withLock { s in s.pendingEnd != nil || s.pendingError != nil || s.engine.hasBufferedInput }
    }

    // MARK: - ByteStream

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(StreamError) -> StreamProgress {
        try state.withLock { (s: inout State) throws(StreamError) -> StreamProgress in
            if let e = s.pendingError { throw e }
            if let end = s.pendingEnd { return end }
            var total = 0
            do throws(StreamError) {
                return try read(&s, into: buffer, total: &total)
            } catch {
                // Plaintext already in the caller's buffer is handed over; the failure comes with the next call.
                s.pendingError = error
                if total > 0 { return .bytes(total) }
                throw error
            }
        }
    }

    /// The body of `read`: `total` counts the plaintext already in `buffer`.
    private func read(_ s: inout State, into buffer: UnsafeMutableRawBufferPointer, total: inout Int) throws(StreamError) -> StreamProgress {
        guard try flush(&s) else { return .wouldBlock(.write) }
        while true {
            if !s.engine.isHandshakeComplete {
                let step: TLSEngine.HandshakeStatus
                do throws(TLSError) { step = try s.engine.handshake() } catch { throw failed(&s, error) }
                guard try flush(&s) else { return .wouldBlock(.write) }
                if step == .needsInput {
                    if let p = try pull(&s, scratch: buffer) { return p }
                    // A connection that ends before sending a single byte is closed, not failed (a port probe,
                    // a TCP health check), exactly as on a plain socket.
                    if s.socketEOF && !s.receivedCiphertext {
                        s.pendingEnd = .closed
                        return .closed
                    }
                    continue
                }
            }
            if total == buffer.count { return .bytes(total) }
            let r: TLSEngine.ReadResult
            do throws(TLSError) {
                r = try s.engine.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[total...]))
            } catch { throw failed(&s, error) }
            // Reading may produce output (a TLS 1.3 key update answer): send it if the socket takes it.
            let flushed = try flush(&s)
            switch r {
            case .bytes(let n):
                total += n
            case .needsInput:
                if !flushed { return total > 0 ? .bytes(total) : .wouldBlock(.write) }
                if let p = try pull(&s, scratch: UnsafeMutableRawBufferPointer(rebasing: buffer[total...])) {
                    return total > 0 ? .bytes(total) : p
                }
            case .closed, .unexpectedEOF:
                if r == .unexpectedEOF { s.closedWithoutNotify = true }
                if total > 0 {
                    s.pendingEnd = .closed
                    return .bytes(total)
                }
                return .closed
            }
        }
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws(StreamError) -> StreamProgress {
        try state.withLock { (s: inout State) throws(StreamError) -> StreamProgress in
            if let e = s.pendingError { throw e }
            if let n = s.encryptedNotReported {
                // The retry contract: these n bytes were encrypted already and must not be encrypted again.
                precondition(bytes.count >= n, "TLSStream.write retried with fewer bytes than before its .wouldBlock")
                guard try flush(&s) else { return .wouldBlock(.write) }
                s.encryptedNotReported = nil
                return .bytes(n)
            }
            guard try flush(&s) else { return .wouldBlock(.write) }
            if bytes.isEmpty { return .bytes(0) }
            while true {
                let r: TLSEngine.WriteResult
                do throws(TLSError) { r = try s.engine.write(bytes) } catch {
                    _ = try? flush(&s)  // the alert, if the socket takes it
                    throw failed(&s, error)
                }
                switch r {
                case .bytes(let n):
                    guard try flush(&s) else {
                        s.encryptedNotReported = n
                        return .wouldBlock(.write)
                    }
                    return .bytes(n)
                case .needsInput:
                    guard try flush(&s) else { return .wouldBlock(.write) }
                    // Only during the handshake: the peer's flight is needed. Read it into a scratch buffer.
                    let p = try withUnsafeTemporaryAllocation(byteCount: 16_709, alignment: 1) {
                        (scratch: UnsafeMutableRawBufferPointer) throws(StreamError) -> StreamProgress? in
                        try pull(&s, scratch: scratch)
                    }
                    if let p { return p }
                }
            }
        }
    }

    public func shutdownWrite() {
        state.withLock { s in
            s.engine.close()
            _ = try? flush(&s)
        }
        socket.shutdownWrite()
    }

    public func interrupt() { socket.interrupt() }
    public func close() { socket.close() }

    /// Completes the handshake before `deadline` (monotonic nanoseconds): a client calls it right after
    /// connecting so that a certificate problem is reported as such (`certificate verify failed: ...`) before
    /// anything is sent. Returns at once when the handshake is already complete.
    public func handshake(deadline: Int64) throws(StreamError) {
        while true {
            let interest = try state.withLock { (s: inout State) throws(StreamError) -> PollInterest? in
                if let e = s.pendingError { throw e }
                guard try flush(&s) else { return .write }
                if s.engine.isHandshakeComplete { return nil }
                let step: TLSEngine.HandshakeStatus
                do throws(TLSError) { step = try s.engine.handshake() } catch { throw failed(&s, error) }
                guard try flush(&s) else { return .write }
                if step == .complete { return nil }
                let p = try withUnsafeTemporaryAllocation(byteCount: 16_709, alignment: 1) {
                    (scratch: UnsafeMutableRawBufferPointer) throws(StreamError) -> StreamProgress? in
                    try pull(&s, scratch: scratch)
                }
                if case .wouldBlock(let i) = p { return i }
                return []  // fed something: step again at once
            }
            guard let interest else { return }
            if !interest.isEmpty { try wait(interest, deadline: deadline) }
        }
    }

    // MARK: - Steps under the lock

    /// Sends the outbox and whatever the engine has produced; false when the socket would block (the rest
    /// stays in the outbox).
    private func flush(_ s: inout State) throws(StreamError) -> Bool {
        while true {
            if s.outboxOffset == s.outbox.count {
                s.outbox = s.engine.takeOutput()  // [] when there is nothing: no allocation kept
                s.outboxOffset = 0
                if s.outbox.isEmpty { return true }
            }
            let progress = try s.outbox.withUnsafeBytes { p in
                Result { () throws(StreamError) in
                    try socket.write(UnsafeRawBufferPointer(rebasing: p[s.outboxOffset...]))
                }
            }.get()
            switch progress {
            case .bytes(let n): s.outboxOffset += n
            case .wouldBlock: return false
            case .closed: throw StreamError.system(.brokenPipe)
            }
        }
    }

    /// Reads ciphertext from the socket into `scratch` and feeds it to the engine. nil when something was fed
    /// (or the end of file was), else what the caller should answer.
    private func pull(_ s: inout State, scratch: UnsafeMutableRawBufferPointer) throws(StreamError) -> StreamProgress? {
        if s.socketEOF { return .closed }  // the engine has seen the EOF already; reached only defensively
        if scratch.count < 4096 {
            return try withUnsafeTemporaryAllocation(byteCount: 16_709, alignment: 1) {
                (big: UnsafeMutableRawBufferPointer) throws(StreamError) -> StreamProgress? in
                try pull(&s, scratch: big)
            }
        }
        switch try socket.read(into: scratch) {
        case .bytes(let n):
            s.receivedCiphertext = true
            s.engine.feed(UnsafeRawBufferPointer(rebasing: scratch[..<n]))
            return nil
        case .closed:
            s.socketEOF = true
            s.engine.feedEOF()
            return nil
        case .wouldBlock(let i):
            return .wouldBlock(i)
        }
    }

    /// Records a TLS failure as this stream's error, after a best-effort send of the alert OpenSSL queued.
    private func failed(_ s: inout State, _ error: TLSError) -> StreamError {
        _ = try? flush(&s)
        let e = StreamError.protocolFailure(error.description)
        s.pendingError = e
        return e
    }
}
