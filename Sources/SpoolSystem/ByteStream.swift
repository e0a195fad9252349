#if canImport(Glibc)
import Glibc
#endif

/// Why a byte stream failed.
public enum StreamError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The deadline passed first.
    case timedOut
    /// A system call failed (reset, broken pipe, ...).
    case system(Errno)
    /// The layer inside the stream refused what the peer sent (a TLS alert, a bad record): its own words.
    case protocolFailure(String)

    public var description: String {
        switch self {
        case .timedOut: return "timed out"
        case .system(let e): return "\(e)"
        case .protocolFailure(let m): return m
        }
    }
}

/// The result of one nonblocking step on a stream.
public enum StreamProgress: Sendable, Equatable {
    /// This many bytes were read or taken for writing (never 0).
    case bytes(Int)
    /// Nothing can move until the socket underneath is ready for this (a TLS read may need to write first).
    case wouldBlock(PollInterest)
    /// The peer closed its side (reads only).
    case closed
}

/// The seam between a connection and what carries its bytes: a plain socket now, TLS over the socket next. The
/// NATS connection, the HTTP forwarder and the server's connections read and write through it and never touch the
/// socket, so a stream that encrypts is a new implementation, not edits across them. Steps never block; the
/// deadline helpers below poll the descriptor for what a step asked for.
public protocol ByteStream: AnyObject, Sendable {
    /// The socket underneath: what an event loop registers and `poll` waits on.
    var descriptor: FileDescriptor { get }
    /// Reads what is available without blocking.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws(StreamError) -> StreamProgress
    /// Writes without blocking; `.bytes(n)` says how many of `bytes` were taken.
    ///
    /// The retry contract is `SSL_write`'s: after `.wouldBlock`, the caller's next `write` must start with the
    /// same bytes (it may pass more after them, never different ones). A TLS stream may already have encrypted
    /// a prefix and be waiting to hand its ciphertext to the kernel; it then answers `.bytes(n)` for that prefix
    /// without encrypting it again. A plain socket takes nothing on `.wouldBlock`, so the rule costs it nothing.
    func write(_ bytes: UnsafeRawBufferPointer) throws(StreamError) -> StreamProgress
    /// True when a `read` could make progress without the socket becoming readable: the stream holds input
    /// the kernel no longer shows (TLS records already decrypted or received but not yet returned, or a close
    /// or error still to report). An event loop must call `read` again instead of waiting for readability,
    /// or it stalls with data in hand. False for a plain socket.
    var hasBufferedInput: Bool { get }
    /// Ends our sending side once everything written has gone (TCP FIN; TLS sends close_notify first).
    func shutdownWrite()
    /// Makes every thread blocked on this stream return at once (from any thread); the descriptor stays open.
    func interrupt()
    /// Closes the descriptor. Call once, after every other use has ended.
    func close()
}

extension ByteStream {
    /// Reads at least one byte, or 0 when the peer closed, waiting until `deadline` (monotonic nanoseconds).
    public func read(into buffer: UnsafeMutableRawBufferPointer, deadline: Int64) throws(StreamError) -> Int {
        while true {
            switch try read(into: buffer) {
            case .bytes(let n): return n
            case .closed: return 0
            case .wouldBlock(let interest): try wait(interest, deadline: deadline)
            }
        }
    }

    /// Writes every byte before `deadline`.
    public func writeAll(_ bytes: [UInt8], deadline: Int64) throws(StreamError) {
        try bytes.withUnsafeBytes { p in
            Result { () throws(StreamError) in
                var off = 0
                while off < p.count {
                    switch try write(UnsafeRawBufferPointer(rebasing: p[off...])) {
                    case .bytes(let n): off += n
                    case .closed: throw StreamError.system(.brokenPipe)
                    case .wouldBlock(let interest): try wait(interest, deadline: deadline)
                    }
                }
            }
        }.get()
    }

    /// Waits until the descriptor is ready for what a step asked for, or throws `.timedOut` at `deadline`.
    public func wait(_ interest: PollInterest, deadline: Int64) throws(StreamError) {
        let ready: Bool
        do throws(Errno) { ready = try descriptor.poll(interest, deadline: deadline) } catch { throw .system(error) }
        guard ready else { throw .timedOut }
    }
}

/// A plain TCP socket as a byte stream (the descriptor must be nonblocking).
public final class SocketStream: ByteStream {
    public let descriptor: FileDescriptor

    public init(_ descriptor: FileDescriptor) { self.descriptor = descriptor }

    /// A socket keeps nothing back: whatever is unread is in the kernel, where `poll` sees it.
    public var hasBufferedInput: Bool { false }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(StreamError) -> StreamProgress {
        do throws(Errno) {
            let n = try descriptor.recv(into: buffer)
            return n == 0 ? (buffer.isEmpty ? .bytes(0) : .closed) : .bytes(n)
        } catch where error == .wouldBlock {
            return .wouldBlock(.read)
        } catch { throw .system(error) }
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws(StreamError) -> StreamProgress {
        do throws(Errno) {
            return .bytes(try descriptor.send(bytes))
        } catch where error == .wouldBlock {
            return .wouldBlock(.write)
        } catch { throw .system(error) }
    }

    public func shutdownWrite() { try? descriptor.shutdownWrite() }
    public func interrupt() { descriptor.shutdownBoth() }
    public func close() { try? descriptor.close() }
}
