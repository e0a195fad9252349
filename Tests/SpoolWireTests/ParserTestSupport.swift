@testable import SpoolWire

/// Parses a whole string in one feed.
func events(_ s: String, limits: HTTPParserLimits = HTTPParserLimits()) -> [HTTPParserEvent] {
    var p = HTTPParser(limits: limits)
    return p.feed(Array(s.utf8))
}

/// Parses bytes delivered in the given pieces, merging adjacent body events (their slicing depends on the split).
func events(pieces: [[UInt8]], limits: HTTPParserLimits = HTTPParserLimits()) -> [HTTPParserEvent] {
    var p = HTTPParser(limits: limits)
    var out: [HTTPParserEvent] = []
    for piece in pieces { out += p.feed(piece) }
    return normalized(out)
}

func normalized(_ evs: [HTTPParserEvent]) -> [HTTPParserEvent] {
    var out: [HTTPParserEvent] = []
    for e in evs {
        if case .body(let b) = e, case .body(let prev)? = out.last {
            out[out.count - 1] = .body(prev + b)
        } else if case .body(let b) = e, b.isEmpty {
            continue
        } else {
            out.append(e)
        }
    }
    return out
}

/// The status of the first error event, or nil when the input parsed without error.
func errorStatus(_ s: String, limits: HTTPParserLimits = HTTPParserLimits()) -> Int? {
    for e in events(s, limits: limits) { if case .error(let err) = e { return err.status.code } }
    return nil
}

func heads(_ evs: [HTTPParserEvent]) -> [HTTPRequestHead] {
    evs.compactMap { if case .head(let h) = $0 { return h } else { return nil } }
}

func bodies(_ evs: [HTTPParserEvent]) -> [UInt8] {
    evs.reduce(into: []) { acc, e in if case .body(let b) = e { acc += b } }
}

func ends(_ evs: [HTTPParserEvent]) -> [HTTPHeaders] {
    evs.compactMap { if case .end(let t) = $0 { return t } else { return nil } }
}

/// True when the events are exactly one complete message with no error.
func isComplete(_ evs: [HTTPParserEvent]) -> Bool {
    heads(evs).count == 1 && ends(evs).count == 1 && !evs.contains { if case .error = $0 { return true } else { return false } }
}
