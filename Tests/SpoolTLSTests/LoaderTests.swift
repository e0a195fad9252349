import Foundation
import Testing
import SpoolTLS
import SpoolSystem
import SpoolTestSupport

struct LoaderTests {
    @Test func aMissingLibraryIsReportedAndDoesNotPoisonTheDefault() throws {
        // Order-independent: a path that cannot be opened is missing whether or not OpenSSL is loaded already.
        #expect(throws: TLSError.self) { try TLSLibrary.load(libsslPath: "/nonexistent/libssl.so.3") }
        do {
            try TLSLibrary.load(libsslPath: "/nonexistent/libssl.so.3")
            Issue.record("loaded a library that does not exist")
        } catch {
            guard case .libraryMissing(let detail) = error else { Issue.record("wrong case: \(error)"); return }
            #expect(detail.contains("/nonexistent/"))
            #expect(error.description == "TLS needs OpenSSL 3 (libssl.so.3); install it with your package manager (Debian/Ubuntu: libssl3)")
            #expect("error: \(error)" == "error: " + TLSError.libraryMissingMessage)
        }
        // libcrypto is looked for next to an explicit libssl: a directory holding only libssl fails on libcrypto.
        let dir = makeTempDir("tls-lib")
        try FileManager.default.createSymbolicLink(atPath: dir + "/libssl.so.3", withDestinationPath: try loadedPath("libssl.so.3"))
        do {
            try TLSLibrary.load(libsslPath: dir + "/libssl.so.3")
            Issue.record("loaded without a libcrypto next to libssl")
        } catch {
            guard case .libraryMissing(let detail) = error else { Issue.record("wrong case: \(error)"); return }
            #expect(detail.contains(dir + "/libcrypto.so.3"))
        }
        // The default load still works after those failures, and loads once.
        try TLSLibrary.load()
        try TLSLibrary.load()
        #expect(TLSLibrary.isLoaded)
        #expect(TLSLibrary.versionText?.hasPrefix("OpenSSL 3.") == true)
    }

    @Test func theSameLibraryByPathLoadsAndAnotherIsRefused() throws {
        try TLSLibrary.load()
        let ssl = try loadedPath("libssl.so.3")
        try TLSLibrary.load(libsslPath: ssl)  // the library already mapped, named by its file
        // NSS ships a file named libssl3.so next to it on Debian: not the OpenSSL in use.
        let nss = (ssl as NSString).deletingLastPathComponent + "/libssl3.so"
        if FileManager.default.fileExists(atPath: nss) {
            #expect(throws: TLSError.self) { try TLSLibrary.load(libsslPath: nss) }
        }
    }

    /// The loader's failures in fresh processes (in this one, OpenSSL is loaded already and stays loaded).
    @Test func loaderFailuresInAFreshProcess() throws {
        let testkit = packageRoot + "/.build/debug/spool-testkit"
        func load(_ args: [String]) throws -> [String] { try runProcess(testkit, ["tls-load"] + args).lines }
        let missingLine = "error: TLS needs OpenSSL 3 (libssl.so.3); install it with your package manager (Debian/Ubuntu: libssl3)"

        #expect(try load(["default"]).first?.hasPrefix("loaded OpenSSL 3.") == true)

        let missing = try load(["/nonexistent/libssl.so.3"])
        #expect(missing.first == missingLine)
        #expect(missing.dropFirst().first?.hasPrefix("detail: /nonexistent/libssl.so.3: ") == true, "\(missing)")

        // A library without the symbols: the error names the first one missing, and nothing stays loaded.
        let crypto = try loadedPath("libcrypto.so.3")
        let noSymbol = try load([crypto, crypto])
        #expect(noSymbol == [missingLine, "detail: \(crypto) has no symbol OPENSSL_init_ssl"])

        // Too old: a stand-in libcrypto that reports OpenSSL 1.1.1w, next to the real libssl.
        let dir = makeTempDir("tls-old")
        try "unsigned long OpenSSL_version_num(void) { return 0x1010117fUL; }\n".write(toFile: dir + "/old.c", atomically: true, encoding: .utf8)
        let cc = try runProcess("/usr/bin/cc", ["-shared", "-fPIC", "-o", dir + "/libcrypto.so.3", dir + "/old.c"])
        try #require(cc.status == 0, "\(cc.stderr)")
        try FileManager.default.createSymbolicLink(atPath: dir + "/libssl.so.3", withDestinationPath: try loadedPath("libssl.so.3"))
        let old = try load([dir + "/libssl.so.3"])
        #expect(old == [missingLine, "detail: \(dir)/libcrypto.so.3 is OpenSSL 0x1010117f; version 3.0.0 or later is needed"])
    }

    /// A machine without OpenSSL: in a private mount namespace, both libraries are hidden behind /dev/null.
    /// The program still runs; only loading TLS fails, with the message. Needs permission to unshare (root
    /// in a container); skipped otherwise.
    @Test(.enabled(if: canUnshareMounts())) func aMachineWithoutOpenSSL() throws {
        let testkit = packageRoot + "/.build/debug/spool-testkit"
        let ssl = try loadedPath("libssl.so.3"), crypto = try loadedPath("libcrypto.so.3")
        let script = "mount --bind /dev/null \(ssl) && mount --bind /dev/null \(crypto) && \(testkit) tls-load default && \(testkit) payload k 16"
        let r = try runProcess("/usr/bin/unshare", ["-m", "/bin/sh", "-c", script])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.lines.first == "error: TLS needs OpenSSL 3 (libssl.so.3); install it with your package manager (Debian/Ubuntu: libssl3)")
        #expect(r.lines.dropFirst().first?.hasPrefix("detail: ") == true)
        #expect(r.stdout.hasSuffix("{\"project\":\"k\",\"pad\":\"\"}"))  // and the rest of the program works
    }

    /// The point of dlopen: nothing in the build links OpenSSL. The test binary holds every module,
    /// SpoolTLS included.
    @Test func nothingLinksOpenSSL() throws {
        let exe = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        let dynamic = try runProcess("/usr/bin/readelf", ["-d", "-W", exe])
        #expect(dynamic.status == 0)
        let needed = dynamic.lines.filter { $0.contains("(NEEDED)") }
        #expect(!needed.isEmpty)
        #expect(!needed.contains { $0.contains("libssl") || $0.contains("libcrypto") }, "\(needed)")
        let undefined = try runProcess("/usr/bin/nm", ["-D", "--undefined-only", exe])
        let openssl = undefined.lines.filter { l in
            ["SSL_", "BIO_", "ERR_", "EVP_", "OPENSSL_", "X509_"].contains { l.contains(" " + $0) }
        }
        #expect(openssl.isEmpty, "\(openssl.prefix(5))")
    }

    @Test func ed25519MatchesRFC8032() throws {
        // RFC 8032 section 7.1, TEST 1 (empty message) and TEST 2 (one byte, 0x72).
        let seed1 = hex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
        #expect(try Ed25519.publicKey(seed: seed1) == hex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"))
        #expect(try Ed25519.sign(seed: seed1, message: []) == hex(
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"))
        let seed2 = hex("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb")
        #expect(try Ed25519.publicKey(seed: seed2) == hex("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c"))
        #expect(try Ed25519.sign(seed: seed2, message: [0x72]) == hex(
            "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"))
        #expect(throws: TLSError.self) { try Ed25519.sign(seed: [1, 2, 3], message: []) }
    }
}

/// The file a library was mapped from in this process (after loading it).
func loadedPath(_ soname: String) throws -> String {
    try TLSLibrary.load()
    // Read in full with our own reads (procfs files report size 0; a reader trusting the size may stop short).
    let fd = try FileDescriptor.open("/proc/self/maps", .readOnly)
    let maps = String(decoding: try fd.closeAfter { try $0.readAll(limit: 1 << 24) }, as: UTF8.self)
    for line in maps.split(separator: "\n") where line.hasSuffix("/" + soname) {
        if let slash = line.firstIndex(of: "/") { return String(line[slash...]) }
    }
    throw TestCertificates.ToolFailure(description: "\(soname) is not mapped")
}

/// The package root, found from this file's path (the tests run the built `spool-testkit`).
let packageRoot: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.path
}()

/// True when this process may make a private mount namespace and bind-mount in it.
func canUnshareMounts() -> Bool {
    guard FileManager.default.isExecutableFile(atPath: "/usr/bin/unshare") else { return false }
    let r = try? runProcess("/usr/bin/unshare", ["-m", "/bin/sh", "-c", "mount --bind /dev/null /dev/null"])
    return r?.status == 0
}
