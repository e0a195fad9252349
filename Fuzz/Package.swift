// swift-tools-version:6.0
// libFuzzer harnesses for spool's parsers. Build and run with `Fuzz/run.sh SECONDS` (from the repository root).
// Depends only on this repository's own package, by path (no third-party packages).
import PackageDescription

let package = Package(
    name: "spool-fuzz",
    dependencies: [
        .package(name: "spool", path: ".."),
    ],
    targets: [
        // No main: libFuzzer's main calls LLVMFuzzerTestOneInput, hence -parse-as-library.
        .executableTarget(
            name: "HTTPParserFuzzer",
            dependencies: [.product(name: "SpoolWire", package: "spool")],
            swiftSettings: [.unsafeFlags(["-parse-as-library"])]
        ),
        .executableTarget(
            name: "KeyFuzzer",
            dependencies: [.product(name: "SpoolCore", package: "spool")],
            swiftSettings: [.unsafeFlags(["-parse-as-library"])]
        ),
        .executableTarget(
            name: "PeerFuzzer",
            dependencies: [.product(name: "SpoolBridges", package: "spool"), .product(name: "SpoolWire", package: "spool")],
            swiftSettings: [.unsafeFlags(["-parse-as-library"])]
        ),
        .executableTarget(
            name: "TLSFuzzer",
            dependencies: [.product(name: "SpoolTLS", package: "spool")],
            swiftSettings: [.unsafeFlags(["-parse-as-library"])]
        ),
        .executableTarget(
            name: "SignatureFuzzer",
            dependencies: [.product(name: "SpoolSignatures", package: "spool")],
            swiftSettings: [.unsafeFlags(["-parse-as-library"])]
        ),
        .executableTarget(
            name: "ExtractFuzzer",
            dependencies: [.product(name: "SpoolCore", package: "spool")],
            swiftSettings: [.unsafeFlags(["-parse-as-library"])]
        ),
        .executableTarget(
            name: "ConfigFuzzer",
            dependencies: [.product(name: "SpoolConfig", package: "spool")],
            swiftSettings: [.unsafeFlags(["-parse-as-library"])]
        ),
        .executableTarget(
            name: "ReconcileFuzzer",
            dependencies: [.product(name: "SpoolReconcile", package: "spool"), .product(name: "SpoolCore", package: "spool"),
                           .product(name: "SpoolWire", package: "spool")],
            swiftSettings: [.unsafeFlags(["-parse-as-library"])]
        ),
    ]
)
