import SpoolBridges
import SpoolWire

/// What downstream peers send to consumers: HTTP responses from forward targets (with their Retry-After) and
/// the NATS server's protocol stream, its messages also read as JetStream replies. Byte 0 picks the parser, byte 1 a split point. Invariants: no crash
/// (bounded sizes, no overflow); the same outcome whether the bytes arrive at once or in two pieces; limits hold.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    guard size > 1 else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data + 2, count: size - 2))
    let cut = bytes.isEmpty ? 0 : Int(data[1]) % (bytes.count + 1)
    if data[0] % 2 == 0 { http(bytes, cut: cut) } else { nats(bytes, cut: cut) }
    return 0
}

struct HTTPOutcome: Equatable {
    var head: HTTPResponseHead?
    var body: [UInt8]
    var bodyBytes: Int
    var complete: Bool
    var error: HTTPResponseError?
}

func parseResponse(_ pieces: [ArraySlice<UInt8>]) -> HTTPOutcome {
    var p = HTTPResponseParser()
    var failure: HTTPResponseError?
    do {
        for piece in pieces { try p.feed(piece) }
        try p.finish()
    } catch { failure = error }
    return HTTPOutcome(head: p.head, body: p.body, bodyBytes: p.bodyBytes, complete: p.isComplete, error: failure)
}

func http(_ bytes: [UInt8], cut: Int) {
    let whole = parseResponse([bytes[...]])
    let split = parseResponse([bytes[..<cut], bytes[cut...]])
    precondition(whole == split, "response parse depends on the split")
    let limits = HTTPResponseParser.Limits()
    precondition(whole.body.count <= limits.maxBodyKept && whole.body.count <= whole.bodyBytes)
    if let h = whole.head {
        precondition(h.status.code >= 200 && h.status.code <= 999, "a final status")
        precondition(h.headers.count <= limits.maxHeaderCount)
        if let ra = h.value("retry-after") {
            for now in [Int64(0), 1_795_942_982_366_140_003, Int64.max / 2, Int64.min / 2] {
                if let d = RetryAfter.parse(ra, nowNanos: now) { precondition(d >= 0 && d <= RetryAfter.maxNanos) }
            }
        }
    }
    // Any text as a Retry-After value: never a trap, never outside 0...maxNanos.
    let text = String(decoding: bytes.prefix(64), as: UTF8.self)
    for now in [Int64(0), 1_795_942_982_366_140_003, Int64.max, Int64.min] {
        if let d = RetryAfter.parse(text, nowNanos: now) { precondition(d >= 0 && d <= RetryAfter.maxNanos) }
    }
}

func parseNATS(_ pieces: [ArraySlice<UInt8>]) -> ([NATSEvent], NATSProtocolError?) {
    var p = NATSParser()
    var events: [NATSEvent] = []
    for piece in pieces { events += p.feed(piece) }
    return (events, p.failure)
}

func nats(_ bytes: [UInt8], cut: Int) {
    let whole = parseNATS([bytes[...]])
    let split = parseNATS([bytes[..<cut], bytes[cut...]])
    precondition(whole.0 == split.0 && whole.1 == split.1, "NATS parse depends on the split")
    for e in whole.0 {
        guard case .message(let m) = e else { continue }
        precondition(m.payload.count <= NATSParser.Limits().maxPayload)
        // Every message as each JetStream reply we read: refused or read, never a trap.
        if let ack = try? JetStreamAPI.ack(m) { precondition(!ack.stream.isEmpty && ack.sequence >= 1) }
        _ = try? JetStreamAPI.reply(m, what: "fuzz")
        _ = try? JetStreamAPI.streamMessages(m)
    }
}
