/// A response head: status line and header fields (in order, repeats kept, names as sent).
public struct HTTPResponseHead: Sendable, Hashable {
    public var minorVersion: Int
    public var status: HTTPStatus
    public var reason: String
    public var headers: HTTPHeaders

    public init(minorVersion: Int, status: HTTPStatus, reason: String, headers: HTTPHeaders) {
        self.minorVersion = minorVersion
        self.status = status
        self.reason = reason
        self.headers = headers
    }

    /// The first value of a field (name in any case).
    public func value(_ name: String) -> String? { headers[name] }
}

/// Why the response parser refused what a server sent (the item is retried): one named case per rule.
public enum HTTPResponseError: Error, Sendable, Hashable, CustomStringConvertible {
    case headTooLarge(limit: Int)
    case tooManyHeaderFields(limit: Int)
    case chunkSizeLineTooLong(limit: Int)
    case trailersTooLarge(limit: Int)
    case tooManyInterimResponses(limit: Int)
    case chunkDataNotFollowedByCRLF
    case bareLF
    case badField(HTTPField.LineError)
    case switchedProtocols
    case transferEncodingWithContentLength
    case invalidContentLength
    case conflictingContentLength
    case controlBytesInChunkExtension
    case invalidChunkSize
    case notAStatusLine
    case unsupportedVersion
    case badStatusCode
    case badStatusLine
    case controlBytesInReason
    case closedBeforeHead
    case closedInBody

    public var message: String {
        switch self {
        case .headTooLarge(let n): return "response head larger than \(n) bytes"
        case .tooManyHeaderFields(let n): return "more than \(n) header fields"
        case .chunkSizeLineTooLong(let n): return "chunk size line longer than \(n) bytes"
        case .trailersTooLarge(let n): return "trailers larger than \(n) bytes"
        case .tooManyInterimResponses(let n): return "more than \(n) interim responses"
        case .chunkDataNotFollowedByCRLF: return "chunk data not followed by CRLF"
        case .bareLF: return "line ends in a bare LF"
        case .badField(.obsoleteLineFolding): return "obsolete line folding in a header"
        case .badField(.noColon): return "header line without a colon"
        case .badField(.emptyName), .badField(.invalidName): return "bad header name"
        case .badField(.controlCharacterInValue): return "control bytes in a header value"
        case .switchedProtocols: return "the server switched protocols (101)"
        case .transferEncodingWithContentLength: return "both Transfer-Encoding and Content-Length"
        case .invalidContentLength: return "Content-Length is not a number"
        case .conflictingContentLength: return "conflicting Content-Length values"
        case .controlBytesInChunkExtension: return "control bytes in a chunk extension"
        case .invalidChunkSize: return "chunk size is not a hexadecimal number"
        case .notAStatusLine: return "not an HTTP/1.x status line"
        case .unsupportedVersion: return "unsupported HTTP version"
        case .badStatusCode: return "bad status code"
        case .badStatusLine: return "bad status line"
        case .controlBytesInReason: return "control bytes in the reason phrase"
        case .closedBeforeHead: return "the connection closed before a complete response head"
        case .closedInBody: return "the connection closed in the middle of the response body"
        }
    }

    public var description: String { message }
}

/// An HTTP/1.1 response parser as a pure state machine over bytes, for one response to one request (POST, so
/// never a HEAD): interim 1xx responses are skipped, the body is framed by Content-Length, chunked coding or
/// the connection's end, and only its first `maxBodyKept` bytes are kept. Strict: CRLF line ends, token
/// header names, no obs-fold, no control bytes, overflow-checked sizes, bounded head, lines and trailers.
public struct HTTPResponseParser: Sendable {
    public struct Limits: Sendable {
        public var maxHeadBytes = 32 * 1024
        public var maxHeaderCount = 100
        public var maxBodyKept = 64 * 1024
        public var maxInterimResponses = 8
        public var maxChunkLine = 1024
        public var maxTrailerBytes = 8 * 1024
        public init() {}
    }

    public let limits: Limits
    /// The final (non-1xx) response head, once parsed.
    public private(set) var head: HTTPResponseHead?
    /// The first `maxBodyKept` bytes of the body.
    public private(set) var body: [UInt8] = []
    /// Body bytes seen so far (kept or not).
    public private(set) var bodyBytes = 0
    public private(set) var isComplete = false
    /// More body arrived than is kept: the caller has what it needs and may stop reading.
    public var bodyTruncated: Bool { bodyBytes > body.count }

    private enum State: Sendable { case head, fixed(Int), chunkSize, chunkData(Int), chunkDataEnd, trailers, untilClose, done }
    private var state = State.head
    private var line: [UInt8] = []
    private var headBytes = 0
    private var interim = 0
    private var statusLine: (Int, Int, String)?
    private var fields = HTTPHeaders()
    private var trailerBytes = 0
    private var failure: HTTPResponseError?

    public init(limits: Limits = Limits()) { self.limits = limits }

    /// Consumes bytes as they arrive. Bytes after a complete response are ignored (we sent `Connection: close`).
    public mutating func feed<C: Collection>(_ bytes: C) throws(HTTPResponseError) where C.Element == UInt8 {
        if let failure { throw failure }
        do throws(HTTPResponseError) {
            var i = bytes.startIndex
            while i < bytes.endIndex {
                switch state {
                case .done:
                    return
                case .fixed(let left):
                    let end = bytes.index(i, offsetBy: left, limitedBy: bytes.endIndex) ?? bytes.endIndex
                    let n = bytes.distance(from: i, to: end)
                    keep(bytes[i..<end])
                    i = end
                    if left - n == 0 { finishBody() } else { state = .fixed(left - n) }
                case .chunkData(let left):
                    let end = bytes.index(i, offsetBy: left, limitedBy: bytes.endIndex) ?? bytes.endIndex
                    let n = bytes.distance(from: i, to: end)
                    keep(bytes[i..<end])
                    i = end
                    state = left - n == 0 ? .chunkDataEnd : .chunkData(left - n)
                case .untilClose:
                    keep(bytes[i...])
                    i = bytes.endIndex
                case .head, .chunkSize, .chunkDataEnd, .trailers:
                    let b = bytes[i]
                    i = bytes.index(after: i)
                    try lineByte(b)
                }
            }
        } catch {
            failure = error
            throw error
        }
    }

    /// The peer closed the connection: completes a close-delimited body; anything else unfinished is an error.
    public mutating func finish() throws(HTTPResponseError) {
        if let failure { throw failure }
        if case .untilClose = state { finishBody() }
        guard isComplete else {
            let e: HTTPResponseError = head == nil ? .closedBeforeHead : .closedInBody
            failure = e
            throw e
        }
    }

    private mutating func keep<C: Collection>(_ s: C) where C.Element == UInt8 {
        let room = limits.maxBodyKept - body.count
        if room > 0 { body.append(contentsOf: s.prefix(room)) }
        bodyBytes += s.count
    }

    private mutating func finishBody() {
        state = .done
        isComplete = true
    }

    private mutating func lineByte(_ b: UInt8) throws(HTTPResponseError) {
        switch state {
        case .head:
            headBytes += 1
            guard headBytes <= limits.maxHeadBytes else { throw .headTooLarge(limit: limits.maxHeadBytes) }
        case .chunkSize:
            guard line.count < limits.maxChunkLine else { throw .chunkSizeLineTooLong(limit: limits.maxChunkLine) }
        case .trailers:
            trailerBytes += 1
            guard trailerBytes <= limits.maxTrailerBytes else { throw .trailersTooLarge(limit: limits.maxTrailerBytes) }
        case .chunkDataEnd:
            guard b == ByteClass.lf || (b == ByteClass.cr && line.isEmpty) else { throw .chunkDataNotFollowedByCRLF }
        default: break
        }
        if b != ByteClass.lf { line.append(b); return }
        guard line.last == ByteClass.cr else { throw .bareLF }
        line.removeLast()
        defer { line.removeAll(keepingCapacity: true) }
        switch state {
        case .head: try headLine()
        case .chunkSize: try chunkSizeLine()
        case .chunkDataEnd:
            guard line.isEmpty else { throw .chunkDataNotFollowedByCRLF }
            state = .chunkSize
        case .trailers:
            if line.isEmpty { finishBody() } else { _ = try HTTPResponseParser.field(line[...]) }
        default: break
        }
    }

    private mutating func headLine() throws(HTTPResponseError) {
        guard let status = statusLine else {
            statusLine = try HTTPResponseParser.statusLine(line[...])
            return
        }
        if !line.isEmpty {
            guard fields.count < limits.maxHeaderCount else { throw .tooManyHeaderFields(limit: limits.maxHeaderCount) }
            let f = try HTTPResponseParser.field(line[...])
            fields.add(name: f.name, value: f.value)
            return
        }
        // End of a head.
        let h = HTTPResponseHead(minorVersion: status.0, status: HTTPStatus(status.1), reason: status.2, headers: fields)
        statusLine = nil
        fields = HTTPHeaders()
        if h.status.isInformational {
            guard h.status.code != 101 else { throw .switchedProtocols }
            interim += 1
            guard interim <= limits.maxInterimResponses else { throw .tooManyInterimResponses(limit: limits.maxInterimResponses) }
            return
        }
        head = h
        try frameBody(h)
    }

    private mutating func frameBody(_ h: HTTPResponseHead) throws(HTTPResponseError) {
        if h.status.code == 204 || h.status.code == 304 { finishBody(); return }
        let te = h.headers.values(for: "transfer-encoding").flatMap { $0.split(separator: ",") }.map { String(ByteClass.trimOWS(Array($0.utf8)[...]).map { Character(UnicodeScalar(ByteClass.lower($0))) }) }
        let cl = h.headers.values(for: "content-length").flatMap { $0.split(separator: ",", omittingEmptySubsequences: false) }.map { ByteClass.trimOWS(Array($0.utf8)[...]) }
        if !te.isEmpty {
            guard cl.isEmpty else { throw .transferEncodingWithContentLength }
            state = te.last == "chunked" ? .chunkSize : .untilClose
            return
        }
        if !cl.isEmpty {
            guard let n = Digits.decimal(cl[0], max: 1 << 53) else { throw .invalidContentLength }
            for other in cl.dropFirst() where Digits.decimal(other, max: 1 << 53) != n {
                throw .conflictingContentLength
            }
            if n == 0 { finishBody() } else { state = .fixed(n) }
            return
        }
        state = .untilClose
    }

    private mutating func chunkSizeLine() throws(HTTPResponseError) {
        var digits = line[...]
        var ext = line[line.endIndex...]
        if let semi = line.firstIndex(of: 0x3B) { digits = line[..<semi]; ext = line[(semi + 1)...] }
        digits = ByteClass.trimOWS(digits)
        guard ext.allSatisfy(ByteClass.isFieldValueByte) else { throw .controlBytesInChunkExtension }
        guard let size = Digits.hex(digits, max: 1 << 53) else { throw .invalidChunkSize }
        state = size == 0 ? .trailers : .chunkData(size)
    }

    /// `HTTP/1.x SP 3DIGIT [SP reason]`.
    static func statusLine(_ l: ArraySlice<UInt8>) throws(HTTPResponseError) -> (Int, Int, String) {
        let prefix = Array("HTTP/1.".utf8)
        guard l.count >= 12, l.starts(with: prefix) else { throw .notAStatusLine }
        let s = l.startIndex
        let minor = l[s + 7]
        guard minor == 0x30 || minor == 0x31 else { throw .unsupportedVersion }
        guard l[s + 8] == ByteClass.sp, let status = Digits.decimal(l[(s + 9)..<(s + 12)]), status >= 100, status <= 999 else {
            throw .badStatusCode
        }
        var reason = l[(s + 12)...]
        if !reason.isEmpty {
            guard reason.first == ByteClass.sp else { throw .badStatusLine }
            reason = reason.dropFirst()
            guard reason.allSatisfy(ByteClass.isFieldValueByte) else { throw .controlBytesInReason }
        }
        return (Int(minor - 0x30), status, String(decoding: reason, as: UTF8.self))
    }

    /// A field line through the one field-line reader (`HTTPField.parse`).
    static func field(_ l: ArraySlice<UInt8>) throws(HTTPResponseError) -> HTTPField {
        switch HTTPField.parse(l) {
        case .success(let f): return f
        case .failure(let e): throw .badField(e)
        }
    }
}
