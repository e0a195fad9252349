import Foundation
import Testing

/// The module rules that keep the kernel (and OpenSSL) behind one door, checked on the source tree (a rule nobody checks
/// erodes one convenient `import Glibc` at a time).
@Suite struct LayeringTests {
    static let sources = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Sources")

    /// (module, file, text) for every Swift file of every library module.
    static func files() throws -> [(String, String, String)] {
        var out: [(String, String, String)] = []
        for module in try FileManager.default.contentsOfDirectory(atPath: sources.path).sorted() {
            let dir = sources.appendingPathComponent(module)
            guard let e = FileManager.default.enumerator(atPath: dir.path) else { continue }
            for case let f as String in e where f.hasSuffix(".swift") {
                out.append((module, f, try String(contentsOf: dir.appendingPathComponent(f), encoding: .utf8)))
            }
        }
        return out
    }

    @Test func onlySpoolSystemReachesTheKernel() throws {
        let all = try Self.files()
        #expect(all.contains { $0.0 == "SpoolSystem" } && all.count > 40)
        // The two executables' main.swift may import Glibc for exit(); nothing else outside SpoolSystem may.
        let allowed: Set<String> = ["SpoolSystem", "spool", "spool-testkit"]
        for (module, file, text) in all where !allowed.contains(module) {
            #expect(!text.contains("import CSpoolShims"), "\(module)/\(file) imports CSpoolShims")
            #expect(!text.contains("import Glibc"), "\(module)/\(file) imports Glibc")
        }
    }

    /// OpenSSL is reached through one door too: CSpoolTLS, imported by SpoolTLS alone.
    @Test func onlySpoolTLSReachesOpenSSL() throws {
        for (module, file, text) in try Self.files() where module != "SpoolTLS" {
            #expect(!text.contains("import CSpoolTLS"), "\(module)/\(file) imports CSpoolTLS")
        }
    }

    /// OpenSSL is opened at run time (dlopen), never linked and never compiled against: a machine without
    /// libssl-dev builds spool, and one without libssl3 runs it (only TLS fails). No OpenSSL header in the C
    /// shim, no ssl/crypto library in the manifest.
    @Test func nothingCompilesOrLinksAgainstOpenSSL() throws {
        let shim = Self.sources.appendingPathComponent("CSpoolTLS")
        let e = try #require(FileManager.default.enumerator(atPath: shim.path))
        var cFiles = 0
        for case let f as String in e where f.hasSuffix(".c") || f.hasSuffix(".h") {
            cFiles += 1
            let text = try String(contentsOf: shim.appendingPathComponent(f), encoding: .utf8)
            #expect(!text.contains("<openssl/") && !text.contains("\"openssl/"), "CSpoolTLS/\(f) includes an OpenSSL header")
        }
        #expect(cFiles >= 2)
        let manifest = try String(contentsOf: Self.sources.deletingLastPathComponent().appendingPathComponent("Package.swift"), encoding: .utf8)
        for lib in ["\"ssl\"", "\"crypto\"", "-lssl", "-lcrypto"] {
            #expect(!manifest.contains(lib), "Package.swift links \(lib)")
        }
    }

    @Test func theWireModuleIsPure() throws {
        for (module, file, text) in try Self.files() where module == "SpoolWire" {
            for line in text.split(separator: "\n") where line.hasPrefix("import ") {
                Issue.record("SpoolWire/\(file) imports \(line.dropFirst(7)): the wire formats must not depend on anything")
            }
        }
    }

    /// Signature verification (SHA-256, HMAC, the header parsers) is pure too: no OpenSSL, no system module, so
    /// `--verify` works wherever spool runs and the parsers can be fuzzed alone.
    @Test func theSignaturesModuleIsPure() throws {
        var seen = 0
        for (module, file, text) in try Self.files() where module == "SpoolSignatures" {
            seen += 1
            for line in text.split(separator: "\n") where line.hasPrefix("import ") {
                Issue.record("SpoolSignatures/\(file) imports \(line.dropFirst(7)): signature verification must not depend on anything")
            }
        }
        #expect(seen > 0)
    }

    @Test func libraryTargetsUseFoundationEssentialsOnly() throws {
        for (module, file, text) in try Self.files() {
            #expect(!text.contains("import Foundation\n"), "\(module)/\(file) imports Foundation")
        }
    }
}
