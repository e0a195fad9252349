/// What the parser produced; `feed` returns these, with body bytes copied out.
public enum HTTPParserEvent: Sendable, Hashable {
    case head(HTTPRequestHead)
    case body([UInt8])
    /// The message is complete; trailers (chunked only) are kept apart from the head's fields.
    case end(trailers: HTTPHeaders)
    case error(HTTPParseError)
}

/// An incremental, strict HTTP/1.1 request parser (RFC 9112): a byte-driven state machine with no I/O.
///
/// Every decision is taken byte by byte in arrival order, so any split of the input yields the same
/// events (body bytes may arrive in different slices). Body bytes are streamed, never buffered: only
/// the current line (bounded by the limits) is held. After an error the parser stays failed.
public struct HTTPParser: Sendable {
    /// One step of `next`: at most one event per call, so a caller can pause after a head or a message end.
    public enum Step: Sendable, Hashable {
        case needMore
        case head(HTTPRequestHead)
        /// Body bytes: this range of the buffer passed to `next`.
        case body(Range<Int>)
        case end(trailers: HTTPHeaders)
        case error(HTTPParseError)
    }

    enum State: Sendable {
        case requestLine
        case headerLine
        case body(remaining: Int)
        case chunkSize
        case chunkData(remaining: Int)
        case chunkDataCR
        case chunkDataLF
        case trailerLine
        case messageEnd
        case failed(HTTPParseError)
    }

    public let limits: HTTPParserLimits
    var state: State = .requestLine
    /// The line being accumulated (request line, field line, chunk-size line or trailer line), without CRLF.
    var line: [UInt8] = []
    var sawCR = false
    var leadingEmptyLines = 0
    var headerBytes = 0
    var fields: [HTTPField] = []
    var method = "", target = "", path = ""
    var query: String?
    var version: HTTPVersion = .http1_1
    var bodyReceived = 0
    var chunkExtensionBytes = 0
    var trailers: [HTTPField] = []

    public init(limits: HTTPParserLimits = HTTPParserLimits()) { self.limits = limits }

    /// The error the parser stopped on, if any.
    public var error: HTTPParseError? {
        if case .failed(let e) = state { return e }
        return nil
    }

    /// True between messages with no byte of the next one seen (a keep-alive connection is idle).
    public var isAtMessageStart: Bool {
        if case .requestLine = state { return line.isEmpty && !sawCR && leadingEmptyLines == 0 }
        return false
    }

    /// The method and path of the message being parsed once its request line was accepted (also after a later
    /// error in its head, so a refusal such as a 413 decided from `Content-Length` can be logged with them).
    public var requestLineSeen: (method: String, path: String)? {
        method.isEmpty ? nil : (method, path)
    }

    /// True while the head (request line and fields) is still being read.
    public var isReadingHead: Bool {
        switch state {
        case .requestLine, .headerLine: return true
        default: return false
        }
    }

    // MARK: Convenience

    /// Parses all of `bytes`, returning every event; stops at the first error.
    public mutating func feed(_ bytes: [UInt8]) -> [HTTPParserEvent] {
        bytes.withUnsafeBytes { feed($0) }
    }

    public mutating func feed(_ buffer: UnsafeRawBufferPointer) -> [HTTPParserEvent] {
        var events: [HTTPParserEvent] = []
        var offset = 0
        while true {
            let rest = UnsafeRawBufferPointer(rebasing: buffer[offset...])
            let (consumed, step) = next(rest)
            offset += consumed
            switch step {
            case .needMore: return events
            case .head(let h): events.append(.head(h))
            case .body(let r): events.append(.body(Array(rest[r])))
            case .end(let t): events.append(.end(trailers: t))
            case .error(let e):
                events.append(.error(e))
                return events
            }
        }
    }

    // MARK: Core

    /// Consumes a prefix of `input` and returns how much, plus at most one step.
    /// `.needMore` means all of `input` was consumed; on `.error` the parser is failed for good.
    ///
    /// Each state has a step function below; it consumes bytes from `i` on and returns the step to report, or
    /// nil when it moved to another state without an event (the loop then goes on with that state).
    public mutating func next(_ input: UnsafeRawBufferPointer) -> (consumed: Int, step: Step) {
        var i = 0
        while true {
            let step: Step?
            switch state {
            case .failed: return (i, .needMore)
            case .messageEnd: step = endMessage()
            case .requestLine: step = requestLine(input, &i)
            case .headerLine: step = headerLine(input, &i)
            case .body(let remaining): step = bodyBytes(input, &i, remaining: remaining, chunked: false)
            case .chunkSize: step = chunkSizeLine(input, &i)
            case .chunkData(let remaining): step = bodyBytes(input, &i, remaining: remaining, chunked: true)
            case .chunkDataCR: step = chunkDataEnd(input, &i, expected: ByteClass.cr, then: .chunkDataLF, else: .missingCRLFAfterChunkData)
            case .chunkDataLF: step = chunkDataEnd(input, &i, expected: ByteClass.lf, then: .chunkSize, else: .bareCRAfterChunkData)
            case .trailerLine: step = trailerLine(input, &i)
            }
            if let step { return (i, step) }
        }
    }

    // MARK: Steps, one per state

    /// The message is complete: report it with its trailers and get ready for the next one.
    @inline(__always)
    mutating func endMessage() -> Step {
        let t = HTTPHeaders(trailers)
        resetForNextMessage()
        return .end(trailers: t)
    }

    /// The request line, after at most `maxLeadingEmptyLines` empty lines (RFC 9112 2.2).
    @inline(__always)
    mutating func requestLine(_ input: UnsafeRawBufferPointer, _ i: inout Int) -> Step? {
        if let wait = awaitLine(input, &i, limit: limits.maxRequestLine, tooLong: .requestLineTooLong) { return wait }
        if line.isEmpty {
            leadingEmptyLines += 1
            if leadingEmptyLines > limits.maxLeadingEmptyLines { return fail(.tooManyLeadingEmptyLines) }
            return nil
        }
        if let e = parseRequestLine() { return fail(e) }
        line.removeAll(keepingCapacity: true)
        state = .headerLine
        return nil
    }

    /// One field line of the head, or the empty line that ends it (then the head is reported).
    @inline(__always)
    mutating func headerLine(_ input: UnsafeRawBufferPointer, _ i: inout Int) -> Step? {
        let budget = limits.maxHeaderBytes - headerBytes - 2
        if let wait = awaitLine(input, &i, limit: budget, tooLong: .headerSectionTooLarge) { return wait }
        if line.isEmpty {
            switch finishHead() {
            case .success(let head): return .head(head)
            case .failure(let e): return fail(e)
            }
        }
        return takeFieldLine(trailer: false)
    }

    /// Body bytes, as many as `input` holds of what remains of the Content-Length body or of the current chunk
    /// (`chunked`); then the message end, or the CRLF after the chunk.
    @inline(__always)
    mutating func bodyBytes(_ input: UnsafeRawBufferPointer, _ i: inout Int, remaining: Int, chunked: Bool) -> Step {
        if i == input.count { return .needMore }
        let start = i, k = min(remaining, input.count - i), left = remaining - k
        if chunked {
            state = left == 0 ? .chunkDataCR : .chunkData(remaining: left)
        } else {
            state = left == 0 ? .messageEnd : .body(remaining: left)
        }
        i += k
        return .body(start..<i)
    }

    /// A chunk-size line (with extensions); size 0 starts the trailer section.
    @inline(__always)
    mutating func chunkSizeLine(_ input: UnsafeRawBufferPointer, _ i: inout Int) -> Step? {
        if let wait = awaitLine(input, &i, limit: limits.maxChunkLine, tooLong: .chunkSizeLineTooLong) { return wait }
        switch parseChunkSizeLine() {
        case .failure(let e): return fail(e)
        case .success(let size):
            line.removeAll(keepingCapacity: true)
            if size == 0 {
                headerBytes = 0
                state = .trailerLine
            } else {
                state = .chunkData(remaining: size)
            }
            return nil
        }
    }

    /// One byte of the CRLF after a chunk's data: `expected`, then state `next`; any other byte fails with `error`.
    @inline(__always)
    mutating func chunkDataEnd(_ input: UnsafeRawBufferPointer, _ i: inout Int, expected: UInt8, then next: State,
                               else error: HTTPParseError) -> Step? {
        if i == input.count { return .needMore }
        let b = input[i]
        i += 1
        guard b == expected else { return fail(error) }
        state = next
        return nil
    }

    /// One trailer field line, or the empty line that ends the message.
    @inline(__always)
    mutating func trailerLine(_ input: UnsafeRawBufferPointer, _ i: inout Int) -> Step? {
        let budget = limits.maxTrailerBytes - headerBytes - 2
        if let wait = awaitLine(input, &i, limit: budget, tooLong: .trailerSectionTooLarge) { return wait }
        if line.isEmpty {
            state = .messageEnd
            return nil
        }
        return takeFieldLine(trailer: true)
    }

    // MARK: Lines

    enum LineResult { case incomplete, complete, failed(HTTPParseError) }

    /// `readLine` for a step function: the step to report while the line is not complete (`.needMore`, or
    /// `.error` with the parser failed), nil once `line` holds the whole line.
    @inline(__always)
    mutating func awaitLine(_ input: UnsafeRawBufferPointer, _ i: inout Int, limit: Int, tooLong: HTTPParseError) -> Step? {
        switch readLine(input, &i, limit: limit, tooLong: tooLong) {
        case .incomplete: return .needMore
        case .failed(let e): return .error(e)
        case .complete: return nil
        }
    }

    /// Appends bytes to `line` until CRLF. Bare CR, bare LF and NUL fail with 400; more than `limit` bytes fails with `tooLong`.
    /// On `.complete` the caller owns `line` (it must clear it before the next line).
    mutating func readLine(_ input: UnsafeRawBufferPointer, _ i: inout Int, limit: Int, tooLong: HTTPParseError) -> LineResult {
        let n = input.count
        while i < n {
            if sawCR {
                let b = input[i]
                i += 1
                sawCR = false
                guard b == ByteClass.lf else { return .failed(failed(.bareCR)) }
                return .complete
            }
            // Bulk-copy the run of ordinary bytes.
            var j = i
            while j < n {
                let b = input[j]
                if b == ByteClass.cr || b == ByteClass.lf || b == 0 { break }
                j += 1
            }
            if j > i {
                if line.count + (j - i) > limit { return .failed(failed(tooLong)) }
                line.append(contentsOf: UnsafeRawBufferPointer(rebasing: input[i..<j]))
                i = j
            }
            if i == n { break }
            let b = input[i]
            i += 1
            if b == ByteClass.cr {
                sawCR = true
            } else if b == ByteClass.lf {
                return .failed(failed(.bareLF))
            } else {
                return .failed(failed(.nulByte))
            }
        }
        return .incomplete
    }

    // MARK: Request line

    mutating func parseRequestLine() -> HTTPParseError? {
        let l = line
        guard let s1 = l.firstIndex(of: ByteClass.sp) else { return .malformedRequestLine }
        guard let s2 = l[(s1 + 1)...].firstIndex(of: ByteClass.sp) else {
            return .missingHTTPVersion
        }
        let m = l[..<s1], t = l[(s1 + 1)..<s2], v = l[(s2 + 1)...]
        guard !m.isEmpty, m.allSatisfy(ByteClass.isTChar) else { return .invalidMethod }
        guard !t.isEmpty, t.allSatisfy(ByteClass.isVisible) else { return .invalidRequestTarget }
        if v.elementsEqual("HTTP/1.1".utf8) {
            version = .http1_1
        } else if v.elementsEqual("HTTP/1.0".utf8) {
            version = .http1_0
        } else {
            let a = Array(v)
            if a.count == 8, a[0..<5].elementsEqual("HTTP/".utf8), ByteClass.isDigit(a[5]), a[6] == 0x2E, ByteClass.isDigit(a[7]) {
                return .httpVersionNotSupported
            }
            return .invalidHTTPVersion
        }
        method = String(decoding: m, as: UTF8.self)
        if t.first == 0x2F {  // origin-form
            if t.contains(0x23) { return .fragmentInRequestTarget }
            target = String(decoding: t, as: UTF8.self)
            if let q = t.firstIndex(of: 0x3F) {
                path = String(decoding: t[..<q], as: UTF8.self)
                query = String(decoding: t[(q + 1)...], as: UTF8.self)
            } else {
                path = target
                query = nil
            }
        } else if t.count == 1, t.first == 0x2A, method == "OPTIONS" {  // asterisk-form
            target = "*"
            path = "*"
            query = nil
        } else {
            return .unsupportedTargetForm
        }
        return nil
    }

    // MARK: Fields

    /// A complete field line of the head or (`trailer`) of the trailer section: counted against the section's
    /// byte budget, at most `maxHeaderCount` fields, then parsed and kept.
    @inline(__always)
    mutating func takeFieldLine(trailer: Bool) -> Step? {
        headerBytes += line.count + 2
        if (trailer ? trailers.count : fields.count) >= limits.maxHeaderCount {
            return fail(trailer ? .tooManyTrailerFields : .tooManyHeaderFields)
        }
        switch parseFieldLine() {
        case .success(let f): if trailer { trailers.append(f) } else { fields.append(f) }
        case .failure(let e): return fail(e)
        }
        line.removeAll(keepingCapacity: true)
        return nil
    }

    /// field-line = field-name ":" OWS field-value OWS, with no obs-fold and no whitespace before the colon.
    func parseFieldLine() -> Result<HTTPField, HTTPParseError> {
        HTTPField.parse(line[...]).mapError { e -> HTTPParseError in
            switch e {
            case .obsoleteLineFolding: return .obsoleteLineFolding
            case .noColon: return .fieldLineWithoutColon
            case .emptyName: return .emptyFieldName
            case .invalidName: return .invalidFieldName
            case .controlCharacterInValue: return .controlCharacterInFieldValue
            }
        }
    }

    /// Derives framing, persistence and expectations from the fields (RFC 9112 sections 3.2, 6.1, 6.3, 9.3).
    mutating func finishHead() -> Result<HTTPRequestHead, HTTPParseError> {
        let headers = HTTPHeaders(fields)
        var hosts: [String] = [], lengths: [String] = [], codings: [String] = []
        var expect: [String] = [], connection: [String] = []
        for f in fields {
            let u = f.name.utf8
            if ByteClass.equalsLowercase(u, "host") { hosts.append(f.value) }
            else if ByteClass.equalsLowercase(u, "content-length") { lengths.append(f.value) }
            else if ByteClass.equalsLowercase(u, "transfer-encoding") { codings.append(f.value) }
            else if ByteClass.equalsLowercase(u, "expect") { expect.append(f.value) }
            else if ByteClass.equalsLowercase(u, "connection") { connection.append(f.value) }
        }
        if hosts.count > 1 { return .failure(.multipleHostFields) }
        if version == .http1_1 && hosts.isEmpty { return .failure(.missingHost) }
        if let h = hosts.first, !h.utf8.allSatisfy(Self.isHostByte) { return .failure(.invalidHost) }
        if lengths.count > 1 { return .failure(.multipleContentLengthFields) }
        if !codings.isEmpty && !lengths.isEmpty { return .failure(.contentLengthWithTransferEncoding) }

        var framing = HTTPFraming.none
        if !codings.isEmpty {
            if version == .http1_0 { return .failure(.transferEncodingInHTTP10) }
            var elements: [ArraySlice<UInt8>] = []
            for c in codings { elements += ByteClass.listElements(Array(c.utf8)[...]) }
            var names: [ArraySlice<UInt8>] = []
            for e in elements {
                // A coding may carry parameters (`gzip;q=1`); only the name matters here.
                let name = ByteClass.trimOWS(e[..<(e.firstIndex(of: 0x3B) ?? e.endIndex)])
                guard !name.isEmpty, name.allSatisfy(ByteClass.isTChar) else { return .failure(.invalidTransferEncoding) }
                names.append(name)
            }
            guard let last = names.last else { return .failure(.emptyTransferEncoding) }
            let chunkedCount = names.filter { ByteClass.equalsLowercase($0, "chunked") }.count
            if chunkedCount > 1 { return .failure(.chunkedAppliedTwice) }
            if !ByteClass.equalsLowercase(last, "chunked") { return .failure(.finalCodingNotChunked) }
            if names.count > 1 { return .failure(.transferCodingNotImplemented) }
            framing = .chunked
        } else if let cl = lengths.first {
            let v: Int
            switch Digits.parseDecimal(cl.utf8) {
            case .success(let n): v = n
            case .failure(.tooLarge): return .failure(.contentLengthOverflow)
            case .failure: return .failure(.invalidContentLength)
            }
            if v > limits.maxBody { return .failure(.contentLengthOverLimit) }
            framing = .length(v)
        }

        var expectation = HTTPExpectation.none
        if !expect.isEmpty {
            let all = expect.flatMap { ByteClass.listElements(Array($0.utf8)[...]) }
            if all.count == 1, ByteClass.equalsLowercase(all[0], "100-continue") {
                // RFC 9110 10.1.1: a 100-continue expectation in an HTTP/1.0 request is ignored.
                expectation = version == .http1_1 ? .continue100 : .none
            } else {
                expectation = .unsupported
            }
        }

        var close = false, keepAliveToken = false
        for c in connection {
            for t in ByteClass.listElements(Array(c.utf8)[...]) {
                if ByteClass.equalsLowercase(t, "close") { close = true }
                if ByteClass.equalsLowercase(t, "keep-alive") { keepAliveToken = true }
            }
        }
        let keepAlive = version == .http1_1 ? !close : (keepAliveToken && !close)

        let head = HTTPRequestHead(method: method, target: target, path: path, query: query, version: version,
                                   headers: headers, framing: framing, keepAlive: keepAlive, expectation: expectation)
        line.removeAll(keepingCapacity: true)
        fields = []
        switch framing {
        case .none, .length(0): state = .messageEnd
        case .length(let n): state = .body(remaining: n)
        case .chunked: state = .chunkSize
        }
        return .success(head)
    }

    /// Host bytes: no whitespace, CTLs, DEL or characters that would change the authority (`/ @ ? # \`).
    static func isHostByte(_ b: UInt8) -> Bool {
        switch b {
        case 0x00...0x20, 0x7F, 0x2F, 0x40, 0x3F, 0x23, 0x5C: return false
        default: return true
        }
    }

    // MARK: Chunks

    /// chunk-size [ chunk-ext ]: 1*16HEXDIG, then optional BWS ";" extensions without CTLs.
    mutating func parseChunkSizeLine() -> Result<Int, HTTPParseError> {
        let l = line
        var k = 0
        var size: UInt64 = 0
        while k < l.count, let h = ByteClass.hexValue(l[k]) {
            if k == 16 { return .failure(.chunkSizeTooManyDigits) }
            size = size << 4 | h
            k += 1
        }
        if k == 0 { return .failure(.invalidChunkSize) }
        var e = k
        while e < l.count, ByteClass.isWhitespace(l[e]) { e += 1 }
        if e < l.count {
            guard l[e] == 0x3B else { return .failure(.invalidChunkSize) }
            guard l[e...].allSatisfy(ByteClass.isFieldValueByte) else { return .failure(.controlCharacterInChunkExtension) }
            chunkExtensionBytes += l.count - e
            if chunkExtensionBytes > limits.maxChunkExtensionBytes { return .failure(.chunkExtensionsTooLarge) }
        } else if e != k {
            return .failure(.whitespaceAfterChunkSize)
        }
        let budget = UInt64(limits.maxBody - bodyReceived)
        if size > budget { return .failure(.chunkedBodyOverLimit) }
        bodyReceived += Int(size)
        return .success(Int(size))
    }

    // MARK: State

    mutating func resetForNextMessage() {
        state = .requestLine
        line.removeAll(keepingCapacity: false)
        sawCR = false
        leadingEmptyLines = 0
        headerBytes = 0
        fields = []
        method = ""; target = ""; path = ""; query = nil
        bodyReceived = 0
        chunkExtensionBytes = 0
        trailers = []
    }

    /// Enters the failed state and returns the error (for `readLine`).
    mutating func failed(_ e: HTTPParseError) -> HTTPParseError {
        _ = fail(e)
        return e
    }

    mutating func fail(_ e: HTTPParseError) -> Step {
        state = .failed(e)
        line = []
        fields = []
        trailers = []
        return .error(e)
    }
}

