import SpoolWire

/// Small limits so the fuzzer reaches every limit path with short inputs.
let fuzzLimits = HTTPParserLimits(maxRequestLine: 200, maxHeaderBytes: 400, maxHeaderCount: 8, maxBody: 1000,
                                  maxChunkLine: 64, maxChunkExtensionBytes: 200, maxTrailerBytes: 120, maxLeadingEmptyLines: 3)

/// Parses `data` delivered as `pieces` and returns the events with adjacent body events merged.
func run(_ data: UnsafeRawBufferPointer, cuts: [Int]) -> [HTTPParserEvent] {
    var parser = HTTPParser(limits: fuzzLimits)
    var out: [HTTPParserEvent] = []
    var start = 0
    for cut in cuts + [data.count] {
        for e in parser.feed(UnsafeRawBufferPointer(rebasing: data[start..<cut])) {
            if case .body(let b) = e, case .body(let prev)? = out.last {
                out[out.count - 1] = .body(prev + b)
            } else if case .body(let b) = e, b.isEmpty {
                continue
            } else {
                out.append(e)
            }
        }
        start = cut
    }
    return out
}

/// Invariants that must hold for any input, whatever the split.
func check(_ events: [HTTPParserEvent]) {
    var inMessage = false
    var bodyBytes = 0
    for (i, e) in events.enumerated() {
        switch e {
        case .head(let h):
            precondition(!inMessage, "head inside a message")
            precondition(h.path.first == "/" || h.path == "*", "bad path")
            precondition(h.headers.count <= fuzzLimits.maxHeaderCount)
            if h.version == .http1_1 { precondition(h.headers.values(for: "host").count == 1, "Host rule") }
            inMessage = true
            bodyBytes = 0
        case .body(let b):
            precondition(inMessage, "body outside a message")
            bodyBytes += b.count
            precondition(bodyBytes <= fuzzLimits.maxBody, "body limit")
        case .end(let trailers):
            precondition(inMessage, "end outside a message")
            precondition(trailers.count <= fuzzLimits.maxHeaderCount)
            inMessage = false
        case .error(let err):
            precondition(i == events.count - 1, "events after an error")
            precondition([400, 413, 414, 431, 501, 505].contains(err.status.code), "unexpected status")
        }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    guard let start, count > 0 else { return 0 }
    let all = UnsafeRawBufferPointer(start: start, count: count)
    // The first byte picks the split point; the rest is the request stream.
    let data = UnsafeRawBufferPointer(rebasing: all[1...])
    let cut = data.isEmpty ? 0 : Int(all[0]) * data.count / 255
    let whole = run(data, cuts: [])
    check(whole)
    let split = run(data, cuts: [cut])
    precondition(split == whole, "split at \(cut) changed the events")
    if data.count <= 128 {  // byte-at-a-time is slow; short inputs still cover every state
        let bytewise = run(data, cuts: Array(0..<data.count))
        precondition(bytewise == whole, "byte-at-a-time changed the events")
    }
    return 0
}
