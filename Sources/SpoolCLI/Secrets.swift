import SpoolSystem
import SpoolTLS
import SpoolWire

/// Files that hold secrets (the webhook token, TLS private keys): refused when anyone but the owner and its
/// group can read them, or when the group may write them, as ssh refuses a private key that is too open.
/// Group-readable stays allowed, for Debian's `ssl-cert` convention (keys 0640 root:ssl-cert).
enum SecretFile {
    static func checkMode(_ path: String, what: String) throws(CommandFailure) {
        let st: FileStat
        do throws(Errno) { st = try FS.stat(path) } catch { throw CommandFailure(message: "cannot read \(what) \(path): \(error)") }
        guard st.isRegular else { throw CommandFailure(message: "\(what) \(path) is not a regular file") }
        if st.permissions & 0o027 != 0 {
            throw CommandFailure(message: "\(what) \(path) is open to others (mode \(String(st.permissions, radix: 8))); run: chmod 600 \(shellQuoted(path))")
        }
    }

    /// The file's bytes, after the mode check; at most `limit` bytes.
    static func read(_ path: String, what: String, limit: Int) throws(CommandFailure) -> [UInt8] {
        try checkMode(path, what: what)
        do throws(Errno) {
            return try FileDescriptor.open(path, [.readOnly]).closeAfter { (fd) throws(Errno) in try fd.readAll(limit: limit) }
        } catch {
            throw CommandFailure(message: "cannot read \(what) \(path): \(error)")
        }
    }
}

extension SecretFile {
    /// A one-line secret (a token, a password): the file's first line, without its line end or trailing spaces
    /// (what `echo` leaves); an empty one is an error. The bytes read are wiped.
    static func readLine(_ path: String, what: String) throws(CommandFailure) -> String {
        var bytes = try read(path, what: what, limit: 4096)
        defer { for i in bytes.indices { bytes[i] = 0 } }
        let end = bytes.firstIndex { $0 == 0x0A || $0 == 0x0D } ?? bytes.endIndex
        var t = String(decoding: bytes[..<end], as: UTF8.self)
        while t.last == " " { t.removeLast() }
        guard !t.isEmpty else { throw CommandFailure(message: "\(what) \(path) is empty") }
        return t
    }
}

/// Loading OpenSSL for a command that asked for TLS: `SPOOL_LIBSSL` names another libssl.so.3 (tests use it to
/// force the failure). A failure is exit 1 with the one sentence that says what to install.
enum TLSSetup {
    static func loadLibrary(env: [String: String]) throws(CommandFailure) {
        let override = env["SPOOL_LIBSSL"].flatMap { $0.isEmpty ? nil : $0 }
        do throws(TLSError) { try TLSLibrary.load(libsslPath: override) } catch {
            throw CommandFailure(message: error.description)
        }
    }

    /// `--ca-file`, `--client-cert`, `--client-key` as a profile (the key's mode checked), the context made now
    /// so that a bad file is reported at start, not at the first delivery.
    static func clientProfile(_ args: ParsedArguments, env: [String: String], alpn: [String]) throws(CommandFailure) -> TLSClientProfile {
        try loadLibrary(env: env)
        if let key = args.value("--client-key") { try SecretFile.checkMode(key, what: "--client-key") }
        let profile = TLSClientProfile(caFile: args.value("--ca-file"), clientCertificateFile: args.value("--client-cert"),
                                       clientKeyFile: args.value("--client-key"), alpnProtocols: alpn)
        do throws(TLSError) { _ = try profile.context() } catch { throw CommandFailure(message: "TLS: \(error)") }
        return profile
    }
}
