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
    ],
    targets: [
        // Linux calls Glibc does not export (renameat2, epoll, eventfd, accept4, inotify, pipe2).
        .target(name: "CSpoolShims"),
        // Thin, typed syscall wrappers (Errno, FileDescriptor, directory handles).
        .target(name: "SpoolSystem", dependencies: ["CSpoolShims"]),
        // The spool directory protocol: key encoding, metadata, enqueue/claim/complete/fail/recover.
        .target(name: "SpoolCore", dependencies: ["SpoolSystem"]),
        // Our own strict HTTP/1.1 parser and epoll server.
        .target(name: "SpoolHTTP", dependencies: ["SpoolSystem", "CSpoolShims"]),
        // The command line: argument parsing and every `spool` subcommand.
        .target(name: "SpoolCLI", dependencies: ["SpoolCore", "SpoolHTTP", "SpoolSystem"]),
        .executableTarget(name: "spool", dependencies: ["SpoolCLI"]),
        .testTarget(name: "SpoolCoreTests", dependencies: ["SpoolCore", "SpoolSystem"]),
        .testTarget(name: "SpoolHTTPTests", dependencies: ["SpoolHTTP", "SpoolSystem"]),
        .testTarget(name: "SpoolCLITests", dependencies: ["SpoolCLI", "SpoolCore"]),
    ]
)
