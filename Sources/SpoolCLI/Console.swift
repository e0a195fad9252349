import Synchronization
import SpoolSystem
import SpoolWire

/// Where a command writes. The real one goes to fds 1 and 2; tests capture into buffers.
public struct Console: Sendable {
    public var writeOut: @Sendable ([UInt8]) -> Void
    public var writeErr: @Sendable ([UInt8]) -> Void
    public var environment: [String: String]
    public var readStdin: @Sendable () throws -> [UInt8]

    public init(writeOut: @escaping @Sendable ([UInt8]) -> Void, writeErr: @escaping @Sendable ([UInt8]) -> Void,
                environment: [String: String], readStdin: @escaping @Sendable () throws -> [UInt8]) {
        self.writeOut = writeOut; self.writeErr = writeErr; self.environment = environment; self.readStdin = readStdin
    }

    public static var standard: Console {
        var env: [String: String] = [:]
        for s in Spawn.currentEnvironment {
            if let eq = s.firstIndex(of: "=") { env[String(s[..<eq])] = String(s[s.index(after: eq)...]) }
        }
        return Console(
            writeOut: { try? FileDescriptor(rawValue: 1).writeAll($0) },
            writeErr: { try? FileDescriptor(rawValue: 2).writeAll($0) },
            environment: env,
            readStdin: { try FileDescriptor(rawValue: 0).readAll(limit: CLI.maxStdinBytes) })
    }

    func out(_ s: String) { writeOut(Array((s + "\n").utf8)) }
    func err(_ s: String) { writeErr(Array((s + "\n").utf8)) }
}

/// A console that records output, for tests and for embedding.
public final class CapturedConsole: Sendable {
    final class Buffer: Sendable {
        let bytes = Mutex<[UInt8]>([])
        func append(_ b: [UInt8]) { bytes.withLock { $0.append(contentsOf: b) } }
        var value: [UInt8] { bytes.withLock { $0 } }
    }
    private let outBuf = Buffer()
    private let errBuf = Buffer()
    public let console: Console
    public init(environment: [String: String] = [:], stdin: [UInt8] = []) {
        let o = outBuf, e = errBuf
        console = Console(writeOut: { o.append($0) }, writeErr: { e.append($0) }, environment: environment, readStdin: { stdin })
    }
    public var stdout: String { String(decoding: outBuf.value, as: UTF8.self) }
    public var stdoutBytes: [UInt8] { outBuf.value }
    public var stderr: String { String(decoding: errBuf.value, as: UTF8.self) }
}
