/// Why a TLS operation failed: the one error type of this layer. Each case carries OpenSSL's own reason (or
/// ours) in words; the stream turns it into `StreamError.protocolFailure(description)` at its boundary, so a
/// caller above sees one line that says what went wrong.
public enum TLSError: Error, Sendable, Equatable, CustomStringConvertible {
    /// OpenSSL 3 could not be loaded (not installed, too old, a symbol missing). `detail` is the loader's
    /// reason for logs and tests; the description is the one fixed sentence a user can act on.
    case libraryMissing(String)
    /// A certificate or key file could not be used: which file and why (cannot be read, not PEM, the
    /// private key does not match the certificate).
    case certificate(String)
    /// The handshake failed for a reason other than verifying the peer's certificate (no shared protocol
    /// version or cipher, an alert from the peer, not TLS at all, the connection closed half-way).
    case handshake(String)
    /// The peer's certificate was refused: `certificate verify failed: <OpenSSL's verify result text>`, e.g.
    /// `certificate verify failed: hostname mismatch`.
    case verification(String)
    /// The TLS session failed after the handshake (a bad record, an alert) or could not be set up.
    case protocolFailure(String)

    /// What the CLI prints after `error: ` when OpenSSL is missing. Fixed text, asserted by tests.
    public static let libraryMissingMessage =
        "TLS needs OpenSSL 3 (libssl.so.3); install it with your package manager (Debian/Ubuntu: libssl3)"

    public var description: String {
        switch self {
        case .libraryMissing: return Self.libraryMissingMessage
        case .certificate(let m): return m
        case .handshake(let m): return "TLS handshake failed: \(m)"
        case .verification(let m): return m
        case .protocolFailure(let m): return "TLS: \(m)"
        }
    }
}
