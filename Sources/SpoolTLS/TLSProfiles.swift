import Synchronization

/// A client's TLS settings as the user gave them (`--ca-file`, `--client-cert`, `--client-key`); the context
/// is made on first use, loading OpenSSL then, and kept for every later connection. The bridges hold one of
/// these and never touch OpenSSL themselves.
public final class TLSClientProfile: Sendable {
    public let caFile: String?
    public let clientCertificateFile: String?
    public let clientKeyFile: String?
    public let alpnProtocols: [String]
    private let made = Mutex<TLSClientContext?>(nil)

    public init(caFile: String? = nil, clientCertificateFile: String? = nil, clientKeyFile: String? = nil, alpnProtocols: [String] = []) {
        self.caFile = caFile
        self.clientCertificateFile = clientCertificateFile
        self.clientKeyFile = clientKeyFile
        self.alpnProtocols = alpnProtocols
    }

    /// The context (made once; a failure is not cached, so a CA file fixed later is picked up).
    public func context() throws(TLSError) -> TLSClientContext {
        if let c = made.withLock({ $0 }) { return c }
        let c = try TLSClientContext(caFile: caFile, clientCertificateFile: clientCertificateFile, clientKeyFile: clientKeyFile,
                                     alpnProtocols: alpnProtocols)
        return made.withLock { slot in
            if let existing = slot { return existing }
            slot = c
            return c
        }
    }
}

/// The server's certificate and key, swappable while serving: `reload` (on SIGHUP) reads both files again and
/// only a pair that loads replaces the old one, for connections accepted from then on.
public final class TLSServerCertificate: Sendable {
    public let certificateChainFile: String
    public let privateKeyFile: String
    private let slot: Mutex<TLSServerContext>

    public init(certificateChainFile: String, privateKeyFile: String) throws(TLSError) {
        self.certificateChainFile = certificateChainFile
        self.privateKeyFile = privateKeyFile
        slot = Mutex(try TLSServerContext(certificateChainFile: certificateChainFile, privateKeyFile: privateKeyFile))
    }

    /// The context new connections use.
    public var current: TLSServerContext { slot.withLock { $0 } }

    /// Loads the files again; on failure the old pair stays in use and the error says why. Returns the new
    /// certificate's serial number (hex).
    @discardableResult
    public func reload() throws(TLSError) -> String {
        let fresh = try TLSServerContext(certificateChainFile: certificateChainFile, privateKeyFile: privateKeyFile)
        slot.withLock { $0 = fresh }
        return fresh.certificateSerial
    }
}
