import SpoolSystem
import SpoolTLS
import SpoolWire

/// Files that hold secrets (the webhook token, TLS private keys): refused when anyone but the owner and its
/// group can read them, or when the group may write them, as ssh refuses a private key that is too open.
/// Group-readable stays allowed, for Debian's `ssl-cert` convention (keys 0640 root:ssl-cert).
///
/// A symbolic link is followed (certbot's `/etc/letsencrypt/live/` and Kubernetes secret volumes are links): the
/// checks apply to the file it resolves to, read through the same descriptor that is checked, so a link swapped
/// between the check and the read cannot slip another file in. The file must belong to us or to root.
enum SecretFile {
    static func checkMode(_ path: String, what: String) throws(CommandFailure) {
        let fd = try openChecked(path, what: what)
        try? fd.close()
    }

    /// `path` opened (links followed) and checked: a regular file, ours or root's, not open to others.
    static func openChecked(_ path: String, what: String) throws(CommandFailure) -> FileDescriptor {
        let fd: FileDescriptor
        do throws(Errno) { fd = try FileDescriptor.open(path, [.readOnly, .nonBlocking]) } catch {
            throw CommandFailure(message: "cannot read \(what) \(path): \(error)")
        }
        do throws(CommandFailure) {
            let st: FileStat
            do throws(Errno) { st = try fd.stat() } catch { throw CommandFailure(message: "cannot read \(what) \(path): \(error)") }
            guard st.isRegular else { throw CommandFailure(message: "\(what) \(path) is not a regular file") }
            if st.permissions & 0o027 != 0 {
                throw CommandFailure(message: "\(what) \(path) is open to others (mode \(String(st.permissions, radix: 8))); run: chmod 600 \(shellQuoted(path))")
            }
            if st.uid != 0 && st.uid != FS.userID {
                throw CommandFailure(message: "\(what) \(path) belongs to uid \(st.uid), neither to us (uid \(FS.userID)) nor to root")
            }
            return fd
        } catch {
            try? fd.close()
            throw error
        }
    }

    /// The file's bytes, after the checks, read through the checked descriptor; at most `limit` bytes.
    static func read(_ path: String, what: String, limit: Int) throws(CommandFailure) -> [UInt8] {
        let fd = try openChecked(path, what: what)
        do throws(Errno) {
            return try fd.closeAfter { (fd) throws(Errno) in try fd.readAll(limit: limit) }
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
