import SpoolTLS

/// What a client sends to `spool serve --tls-cert` before anything is decrypted: random bytes fed to the server
/// side of the TLS engine (OpenSSL 3 loaded at run time, driven over memory buffers), in pieces whose size byte 0
/// picks. Invariants: no crash, no hang, every outcome a clean `TLSError` or a bounded result; the engine's
/// output stays bounded (no amplification beyond a handshake flight per input).
nonisolated(unsafe) let context: TLSServerContext = {
    // A throwaway certificate and key that Fuzz/run.sh makes in Fuzz/.build/tls before running this target.
    let fuzz = String(#filePath.split(separator: "/", omittingEmptySubsequences: false).dropLast(3).joined(separator: "/"))
    do { return try TLSServerContext(certificateChainFile: fuzz + "/.build/tls/server.pem", privateKeyFile: fuzz + "/.build/tls/server.key") } catch {
        fatalError("TLSFuzzer needs OpenSSL 3 and Fuzz/.build/tls/server.{pem,key} (Fuzz/run.sh makes them): \(error)")
    }
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    guard size > 1 else { return 0 }
    let piece = Int(data[0]) % 64 + 1
    let input = UnsafeRawBufferPointer(start: data + 1, count: size - 1)
    guard let engine = try? TLSEngine(server: context) else { return 0 }
    var plain = [UInt8](repeating: 0, count: 4096)
    var produced = 0
    var offset = 0
    steps: while offset < input.count {
        let end = min(input.count, offset + piece)
        engine.feed(UnsafeRawBufferPointer(rebasing: input[offset..<end]))
        offset = end
        for _ in 0..<8 {
            let step: TLSEngine.ReadResult
            do {
                step = try plain.withUnsafeMutableBytes { p in
                    try Result { () throws(TLSError) in try engine.read(into: p) }.get()
                }
            } catch { break steps }  // a clean error: the connection would be closed
            produced += engine.takeOutput().count
            switch step {
            case .bytes(let n): precondition(n <= plain.count)
            default: continue steps
            }
        }
    }
    engine.feedEOF()
    _ = plain.withUnsafeMutableBytes { p in try? engine.read(into: p) }
    produced += engine.takeOutput().count
    // A server answers at most one handshake flight (certificate, key share, alerts) per connection here.
    precondition(produced < 16_384, "the engine produced \(produced) bytes for \(size) bytes of input")
    return 0
}
