// spool-testkit: small drivers of the library API for process-level tests and benchmarks.
// Not installed for users; every subcommand prints one line per durable result so a test can kill it
// at any moment and still know exactly what was acknowledged.
#if canImport(Glibc)
import Glibc
#endif
import SpoolCore
import SpoolSignatures
import SpoolSystem
import SpoolTLS

/// The payload a test expects for a key: deterministic, so intactness can be checked without a side channel.
func payloadFor(_ key: String, size: Int) -> [UInt8] {
    var out = Array("{\"project\":\"\(key)\",\"pad\":\"".utf8)
    var x: UInt32 = 2166136261
    for b in key.utf8 { x = (x ^ UInt32(b)) &* 16777619 }
    while out.count < size - 2 { x = x &* 1103515245 &+ 12345; out.append(UInt8(97 + (x >> 16) % 26)) }
    out += Array("\"}".utf8)
    return out
}

func say(_ s: String) { try? FileDescriptor(rawValue: 1).writeAll(Array((s + "\n").utf8)) }
func fail(_ s: String) -> Never { try? FileDescriptor(rawValue: 2).writeAll(Array(("spool-testkit: " + s + "\n").utf8)); exit(64) }

let args = Array(CommandLine.arguments.dropFirst())
guard args.count >= 2 else {
    fail("usage: spool-testkit enqueue DIR KEY... | enqueue-range DIR PREFIX FROM COUNT [SIZE] | fill DIR PREFIX COUNT [SIZE] | claim-loop DIR [--hold | --quiet [--limit N]] | payload KEY SIZE | tls-load LIBSSL|default [LIBCRYPTO] | verify-bench COUNT BODYSIZE")
}
let dir = args[1]
switch args[0] {
case "payload":
    // Prints the expected payload for KEY (used by shell handlers to verify what they were given).
    try? FileDescriptor(rawValue: 1).writeAll(payloadFor(args[1], size: Int(args[2]) ?? 256))
case "enqueue", "enqueue-range":
    let spool: Spool
    do { spool = try Spool(path: dir) } catch { fail("\(error)") }
    var keys: [String] = []
    var size = 256
    if args[0] == "enqueue" { keys = Array(args.dropFirst(2)) } else {
        guard args.count >= 5, let from = Int(args[3]), let count = Int(args[4]) else { fail("enqueue-range DIR PREFIX FROM COUNT [SIZE]") }
        keys = (from..<(from + count)).map { "\(args[2])\($0)" }
        if args.count >= 6, let s = Int(args[5]) { size = s }
    }
    for k in keys {
        do {
            let outcome = try spool.enqueue(key: SpoolKey(k), payload: payloadFor(k, size: size))
            say("\(outcome.rawValue) \(k)")
        } catch { say("error \(k) \(error)") }
    }
case "fill":
    // Enqueues COUNT items in group-commit batches of 256 (fast set-up for benchmarks); prints one JSON line.
    guard args.count >= 4, let count = Int(args[3]) else { fail("fill DIR PREFIX COUNT [SIZE]") }
    let size = args.count >= 5 ? Int(args[4]) ?? 1024 : 1024
    let spool: Spool
    do { spool = try Spool(path: dir) } catch { fail("\(error)") }
    let t0 = monotonicNanos()
    var accepted = 0
    var i = 0
    while i < count {
        let n = min(256, count - i)
        let reqs = (i..<(i + n)).map { EnqueueRequest(key: try! SpoolKey("\(args[2])\($0)"), payload: payloadFor("\(args[2])\($0)", size: size)) }
        for r in spool.enqueueBatch(reqs) { if (try? r.get()) == .accepted { accepted += 1 } }
        i += n
    }
    let secs = Double(monotonicNanos() - t0) / 1e9
    say("{\"accepted\":\(accepted),\"seconds\":\(secs),\"per_second\":\(Double(accepted) / secs)}")
case "claim-loop":
    // Claims and completes items in-process until none is due, printing each key; with --hold it claims one
    // item, prints it and then sleeps for ever (a claimant to kill with SIGKILL).
    let spool: Spool
    do { spool = try Spool(path: dir) } catch { fail("\(error)") }
    let hold = args.contains("--hold")
    let quiet = args.contains("--quiet")
    var limit = Int.max
    if let i = args.firstIndex(of: "--limit"), i + 1 < args.count, let n = Int(args[i + 1]) { limit = n }
    let t0 = monotonicNanos()
    var processed = 0
    while processed < limit {
        let item: ClaimedItem?
        do { item = try spool.claim() } catch { fail("\(error)") }
        guard let item else { break }
        if hold { say("claimed \(item.key.value)"); while true { sleep(1000) } }
        do { try spool.complete(item) } catch { fail("\(error)") }
        processed += 1
        if !quiet { say("done \(item.key.value)") }
    }
    if quiet {
        let secs = Double(monotonicNanos() - t0) / 1e9
        say("{\"processed\":\(processed),\"seconds\":\(secs),\"per_second\":\(Double(processed) / max(secs, 1e-9))}")
    }
case "verify-bench":
    // Times COUNT Standard Webhooks verifications of one BODYSIZE-byte delivery (2 secrets, the second matching,
    // as during a rotation) and COUNT SHA-256 digests of the body; prints ns per verification and SHA-256 MB/s.
    guard args.count >= 3, let count = Int(args[1]), let size = Int(args[2]), count > 0 else { fail("verify-bench COUNT BODYSIZE") }
    let body = payloadFor("msg_bench", size: size)
    let key = Array("benchmark secret of 32 bytes....".utf8)
    let ts = "1700000000"
    let sig = "v1," + Base64.encode(HMACSHA256(key: key).authenticationCode(Array("msg_bench.\(ts).".utf8) + body))
    let headers = ["webhook-id": "msg_bench", "webhook-timestamp": ts, "webhook-signature": sig]
    let verifier = SignatureVerifier(scheme: .standardWebhooks, keys: [Array("the old secret".utf8), key], toleranceSeconds: 300)
    let start = monotonicNanos()
    for _ in 0..<count {
        do throws(SignatureFailure) { try verifier.verify(body: body, nowSeconds: 1_700_000_000) { headers[$0].map { [$0] } ?? [] } } catch { fail("\(error)") }
    }
    let mid = monotonicNanos()
    var sink: UInt8 = 0
    for _ in 0..<count { sink ^= SHA256.hash(body)[0] }
    let end = monotonicNanos()
    let mbps = Double(count * size) / (Double(end - mid) / 1e9) / 1e6
    say("verify \((mid - start) / Int64(count)) ns per delivery of \(size) bytes with 2 secrets; sha256 \(Int(mbps)) MB/s (\(sink))")
case "tls-load":
    // Loads OpenSSL in a fresh process (the loader keeps its first success for the process) and prints
    // `loaded <version>` or `error: <description>` and `detail: <detail>`.
    do throws(TLSError) {
        try TLSLibrary.load(libsslPath: args[1] == "default" ? nil : args[1], libcryptoPath: args.count > 2 ? args[2] : nil)
        say("loaded \(TLSLibrary.versionText ?? "?")")
    } catch {
        say("error: \(error)")
        if case .libraryMissing(let detail) = error { say("detail: \(detail)") }
    }
default:
    fail("unknown subcommand \(args[0])")
}
