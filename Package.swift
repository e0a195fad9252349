// swift-tools-version:6.0
// spool: a webhook-to-queue bridge on a file-backed spool directory.
// No package dependencies by design: only the Swift toolchain and our own C shim.
import PackageDescription

let package = Package(
    name: "spool",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "spool", targets: ["spool"]),
        .library(name: "SpoolCore", targets: ["SpoolCore"]),
        .library(name: "SpoolConsumer", targets: ["SpoolConsumer"]),
        .library(name: "SpoolHTTP", targets: ["SpoolHTTP"]),
        .library(name: "SpoolBridges", targets: ["SpoolBridges"]),
    ],
    targets: [
        // Linux calls Glibc does not export (renameat2, epoll, eventfd, accept4, inotify, pipe2).
        .target(name: "CSpoolShims"),
        // Thin, typed syscall wrappers (Errno, FileDescriptor, directory handles).
        .target(name: "SpoolSystem", dependencies: ["CSpoolShims"]),
        // The spool directory protocol: key encoding, metadata, enqueue/claim/complete/fail/recover.
        .target(name: "SpoolCore", dependencies: ["SpoolSystem"]),
        // Consumers: the claim loop (inotify, retries, dead-claim recovery) and the `--exec` handler runner.
        .target(name: "SpoolConsumer", dependencies: ["SpoolCore", "SpoolSystem", "CSpoolShims"]),
        // Sinks for consumers: NATS JetStream publisher and HTTP forwarder, on our own sockets.
        .target(name: "SpoolBridges", dependencies: ["SpoolConsumer", "SpoolCore", "SpoolSystem", "CSpoolShims"]),
        // Our own strict HTTP/1.1 parser and epoll server.
        .target(name: "SpoolHTTP", dependencies: ["SpoolSystem", "CSpoolShims"]),
        // The webhook ingress: key extraction, token check, group commit, metrics, on the HTTP server.
        .target(name: "SpoolIngress", dependencies: ["SpoolCore", "SpoolHTTP", "SpoolSystem"]),
        // The command line: argument parsing and every `spool` subcommand.
        .target(name: "SpoolCLI", dependencies: ["SpoolCore", "SpoolConsumer", "SpoolBridges", "SpoolIngress", "SpoolHTTP", "SpoolSystem"]),
        .executableTarget(name: "spool", dependencies: ["SpoolCLI"]),
        // Drivers of the library API for process-level tests and benchmarks (not a user tool).
        .executableTarget(name: "spool-testkit", dependencies: ["SpoolCore", "SpoolSystem"]),
        // Child processes for the tests (posix_spawn and waitpid on known pids; not Foundation's Process).
        .target(name: "SpoolTestSupport", dependencies: ["SpoolSystem"], path: "Tests/SpoolTestSupport"),
        .testTarget(name: "SpoolCoreTests", dependencies: ["SpoolCore", "SpoolSystem"]),
        .testTarget(name: "SpoolHTTPTests", dependencies: ["SpoolHTTP", "SpoolSystem", "SpoolTestSupport"]),
        .testTarget(name: "SpoolBridgesTests", dependencies: ["SpoolBridges", "SpoolConsumer", "SpoolCore", "SpoolHTTP", "SpoolSystem", "SpoolTestSupport"]),
        .testTarget(name: "SpoolCLITests", dependencies: ["SpoolCLI", "SpoolCore", "SpoolConsumer", "SpoolBridges", "SpoolIngress", "SpoolSystem", "SpoolTestSupport", "spool", "spool-testkit"]),
    ]
)
