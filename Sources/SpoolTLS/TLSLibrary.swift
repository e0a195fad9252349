import CSpoolTLS
import SpoolSystem
import Synchronization

/// OpenSSL 3, opened at run time.
///
/// spool never links libssl: building needs no OpenSSL headers and the binary starts on a machine without
/// OpenSSL. The first TLS use (or the CLI, early, with the `SPOOL_LIBSSL` override) calls `load`, which
/// dlopens `libcrypto.so.3` and `libssl.so.3`, resolves every function this module calls and checks the version
/// is 3.0 or later. When that fails, TLS fails with `TLSError.libraryMissing`, whose description tells the user
/// what to install; everything else in spool keeps working.
public enum TLSLibrary {
    /// Outcome of each load attempt, by the paths asked for ("" for the default soname); nil = success.
    private static let attempts = Mutex<[String: TLSError?]>([:])

    /// Loads OpenSSL 3 once per process. Thread-safe.
    ///
    /// - `libsslPath`: nil for the soname `libssl.so.3` (the dynamic loader's search path); otherwise a file.
    /// - `libcryptoPath`: nil means `libcrypto.so.3` next to `libsslPath` when that names a file in a
    ///   directory (a private OpenSSL build keeps both together), else the soname `libcrypto.so.3`.
    ///
    /// Results are cached per path pair, success and failure alike: a wrong override fails the same way every
    /// time without touching the file system again, and does not poison a later load of another path (the
    /// default, say). Once a library is loaded, loading the same one again succeeds; loading a different one
    /// is refused (`protocolFailure`): one process uses one OpenSSL.
    public static func load(libsslPath: String? = nil, libcryptoPath: String? = nil) throws(TLSError) {
        let crypto = libcryptoPath ?? libsslPath.flatMap(siblingCrypto)
        let key = "\(libsslPath ?? "")\u{0}\(crypto ?? "")"
        let outcome: TLSError? = attempts.withLock { cache in
            if let cached = cache[key] { return cached }
            // A file named explicitly that cannot be opened is missing whatever else is loaded already (the
            // answer must not depend on which load of the process came first).
            for path in [libsslPath, crypto].compactMap({ $0 }) where path.contains("/") {
                do throws(Errno) {
                    try FileDescriptor.open(path, .readOnly).close()
                } catch {
                    let missing = TLSError.libraryMissing("\(path): \(error)")
                    cache[key] = .some(missing)
                    return missing
                }
            }
            var err = [CChar](repeating: 0, count: 512)
            let r = spool_tls_load(libsslPath, crypto, &err, err.count)
            let detail = String(decoding: err.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            let result: TLSError?
            if r == 0 {
                result = nil
            } else if detail.hasPrefix("another OpenSSL") {
                result = .protocolFailure(detail)
            } else {
                result = .libraryMissing(detail)
            }
            cache[key] = .some(result)  // (assigning a nil Optional would remove the entry)
            return result
        }
        if let outcome { throw outcome }
    }

    /// `libcrypto.so.3` in the directory of `libssl`, or nil when `libssl` is a bare soname.
    static func siblingCrypto(_ libssl: String) -> String? {
        guard let slash = libssl.lastIndex(of: "/") else { return nil }
        return String(libssl[...slash]) + "libcrypto.so.3"
    }

    /// True once a load succeeded.
    public static var isLoaded: Bool { spool_tls_is_loaded() != 0 }

    /// The loaded OpenSSL's version text ("OpenSSL 3.0.19 27 Jan 2026"), nil before a successful load.
    public static var versionText: String? {
        guard isLoaded, let p = spool_tls_version_text() else { return nil }
        return String(cString: p)
    }

    /// What every TLS entry point calls first: nothing when a library is loaded (whatever path the CLI
    /// chose), else a load of the default sonames.
    static func ensureLoaded() throws(TLSError) {
        if isLoaded { return }
        try load()
    }

    /// Takes every error off this thread's OpenSSL error queue and returns the first one's reason text
    /// ("" when the queue was empty) and code.
    static func drainErrors() -> (text: String, code: UInt) {
        var buf = [CChar](repeating: 0, count: 256)
        let code = spool_tls_err_drain(&buf, buf.count)
        return (String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self), code)
    }
}
