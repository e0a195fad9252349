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
        .library(name: "SpoolConfig", targets: ["SpoolConfig"]),
        .library(name: "SpoolConsumer", targets: ["SpoolConsumer"]),
        .library(name: "SpoolWire", targets: ["SpoolWire"]),
        .library(name: "SpoolHTTP", targets: ["SpoolHTTP"]),
        .library(name: "SpoolBridges", targets: ["SpoolBridges"]),
        .library(name: "SpoolTLS", targets: ["SpoolTLS"]),
        .library(name: "SpoolSignatures", targets: ["SpoolSignatures"]),
        .library(name: "SpoolReconcile", targets: ["SpoolReconcile"]),
    ],
    targets: [
        // Linux calls Glibc does not export (renameat2, epoll, eventfd, accept4, inotify, pipe2).
        .target(name: "CSpoolShims"),
        // The only door to the kernel: thin, typed syscall wrappers (Errno, FileDescriptor, directory handles,
        // sockets and byte streams, epoll, inotify, spawn, signals). The only module that imports CSpoolShims.
        .target(name: "SpoolSystem", dependencies: ["CSpoolShims"]),
        // OpenSSL 3 opened at run time (dlopen of libssl.so.3 / libcrypto.so.3, as .NET does): no OpenSSL header,
        // no link-time dependency, so spool builds and runs without OpenSSL and only TLS fails. Imported by
        // SpoolTLS only. (dlopen lives in glibc's libc since 2.34: no -ldl.)
        .target(name: "CSpoolTLS"),
        // TLS as a byte transform over memory BIOs (TLSEngine), contexts, the TLS ByteStream, Ed25519 signing.
        .target(name: "SpoolTLS", dependencies: ["SpoolSystem", "CSpoolTLS"]),
        // Pure wire formats, no I/O: byte classes, digits, header fields, log-safe text, the HTTP request and
        // response parsers and status codes. Shared by the server and the bridges.
        .target(name: "SpoolWire"),
        // Webhook signatures, pure and dependency-free: SHA-256, HMAC-SHA256, strict base64, constant-time
        // comparison, the Standard Webhooks / GitHub / Stripe header parsers and verifiers. Imports nothing.
        .target(name: "SpoolSignatures"),
        // The configuration file: a strict parser of the TOML subset it uses (line:column errors), pure, imports nothing.
        .target(name: "SpoolConfig"),
        // The spool directory protocol: key encoding, metadata, enqueue/claim/complete/fail/recover.
        .target(name: "SpoolCore", dependencies: ["SpoolSystem", "SpoolWire"]),
        // Consumers: the claim loop (inotify, retries, dead-claim recovery) and the `--exec` handler runner.
        .target(name: "SpoolConsumer", dependencies: ["SpoolCore", "SpoolSystem", "SpoolWire"]),
        // Sinks for consumers: NATS JetStream publisher and HTTP forwarder, over byte streams.
        .target(name: "SpoolBridges", dependencies: ["SpoolConsumer", "SpoolCore", "SpoolSystem", "SpoolTLS", "SpoolWire"]),
        // `spool reconcile`: the JSON2Video list client (over SpoolBridges' HTTP exchange), the strict movie-list
        // parser and the round loop that enqueues what no webhook delivered.
        .target(name: "SpoolReconcile", dependencies: ["SpoolBridges", "SpoolCore", "SpoolSystem", "SpoolTLS", "SpoolWire"]),
        // Our own epoll HTTP/1.1 server (the parser is SpoolWire's).
        .target(name: "SpoolHTTP", dependencies: ["SpoolSystem", "SpoolWire"]),
        // The webhook ingress: key extraction, token and signature checks, group commit, metrics, on the HTTP server.
        .target(name: "SpoolIngress", dependencies: ["SpoolConfig", "SpoolCore", "SpoolHTTP", "SpoolSignatures", "SpoolSystem", "SpoolWire"]),
        // `spool ui`: the operator's web pages and JSON API over a cached scan of the spool, on the HTTP server.
        .target(name: "SpoolUI", dependencies: ["SpoolCore", "SpoolHTTP", "SpoolSignatures", "SpoolSystem", "SpoolWire"]),
        // The command line: argument parsing and every `spool` subcommand.
        .target(name: "SpoolCLI", dependencies: ["SpoolConfig", "SpoolCore", "SpoolConsumer", "SpoolBridges", "SpoolReconcile", "SpoolIngress", "SpoolHTTP", "SpoolSignatures", "SpoolSystem", "SpoolTLS", "SpoolUI", "SpoolWire"]),
        .executableTarget(name: "spool", dependencies: ["SpoolCLI"]),
        // Drivers of the library API for process-level tests and benchmarks (not a user tool).
        .executableTarget(name: "spool-testkit", dependencies: ["SpoolCore", "SpoolSignatures", "SpoolSystem", "SpoolTLS"]),
        // Child processes for the tests (posix_spawn and waitpid on known pids; not Foundation's Process).
        .target(name: "SpoolTestSupport", dependencies: ["SpoolCore", "SpoolSystem"], path: "Tests/SpoolTestSupport"),
        .testTarget(name: "SpoolSystemTests", dependencies: ["SpoolSystem", "SpoolTestSupport"]),
        .testTarget(name: "SpoolWireTests", dependencies: ["SpoolWire"]),
        .testTarget(name: "SpoolSignaturesTests", dependencies: ["SpoolSignatures"]),
        .testTarget(name: "SpoolConfigTests", dependencies: ["SpoolConfig"]),
        // mallinfo2 for the tests' memory measurements (malloc.h is not in Swift's Glibc module).
        .target(name: "CSpoolTestShims", path: "Tests/CSpoolTestShims"),
        .testTarget(name: "SpoolTLSTests", dependencies: ["SpoolTLS", "SpoolSystem", "SpoolTestSupport", "CSpoolTestShims", "spool-testkit"]),
        .testTarget(name: "SpoolCoreTests", dependencies: ["SpoolCore", "SpoolSystem", "SpoolWire", "SpoolTestSupport"]),
        .testTarget(name: "SpoolHTTPTests", dependencies: ["SpoolHTTP", "SpoolSystem", "SpoolTLS", "SpoolWire", "SpoolTestSupport"]),
        .testTarget(name: "SpoolIngressTests", dependencies: ["SpoolConfig", "SpoolIngress", "SpoolHTTP", "SpoolCore", "SpoolSignatures", "SpoolSystem", "SpoolWire", "SpoolTestSupport"]),
        .testTarget(name: "SpoolUITests", dependencies: ["SpoolUI", "SpoolCore", "SpoolHTTP", "SpoolSystem", "SpoolWire", "SpoolTestSupport", "spool", "spool-testkit"]),
        .testTarget(name: "SpoolConsumerTests", dependencies: ["SpoolConsumer", "SpoolCore", "SpoolSystem", "SpoolTestSupport"]),
        .testTarget(name: "SpoolBridgesTests", dependencies: ["SpoolBridges", "SpoolConsumer", "SpoolCore", "SpoolHTTP", "SpoolSystem", "SpoolTLS", "SpoolWire", "SpoolTestSupport"]),
        .testTarget(name: "SpoolReconcileTests", dependencies: ["SpoolReconcile", "SpoolCore", "SpoolSystem", "SpoolWire", "SpoolTestSupport"]),
        .testTarget(name: "SpoolCLITests", dependencies: ["SpoolCLI", "SpoolConfig", "SpoolCore", "SpoolConsumer", "SpoolBridges", "SpoolIngress", "SpoolSignatures", "SpoolSystem", "SpoolTLS", "SpoolWire", "SpoolTestSupport", "spool", "spool-testkit"]),
    ]
)
