/// A response head: status line and header fields (names lowercased, in order, repeats kept).
public struct HTTPResponseHead: Sendable, Equatable {
    public var minorVersion: Int
    public var status: Int
    public var reason: String
    public var headers: [(String, String)]

    public static func == (a: HTTPResponseHead, b: HTTPResponseHead) -> Bool {
        a.minorVersion == b.minorVersion && a.status == b.status && a.reason == b.reason
            && a.headers.count == b.headers.count && zip(a.headers, b.headers).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
    }

    /// The first value of a field (name in any case).
    public func value(_ name: String) -> String? {
        let n = name.lowercased()
        return headers.first { $0.0 == n }?.1
    }

    func values(_ name: String) -> [String] { headers.filter { $0.0 == name }.map { $0.1 } }
}

/// The response side of an HTTP exchange refused by the parser (the item is retried).
public struct HTTPResponseError: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
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
    private var fields: [(String, String)] = []
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
            let e = HTTPResponseError(head == nil ? "the connection closed before a complete response head" : "the connection closed in the middle of the response body")
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
            guard headBytes <= limits.maxHeadBytes else { throw HTTPResponseError("response head larger than \(limits.maxHeadBytes) bytes") }
        case .chunkSize:
            guard line.count < limits.maxChunkLine else { throw HTTPResponseError("chunk size line longer than \(limits.maxChunkLine) bytes") }
        case .trailers:
            trailerBytes += 1
            guard trailerBytes <= limits.maxTrailerBytes else { throw HTTPResponseError("trailers larger than \(limits.maxTrailerBytes) bytes") }
        case .chunkDataEnd:
            guard b == Bytes.lf || (b == Bytes.cr && line.isEmpty) else { throw HTTPResponseError("chunk data not followed by CRLF") }
        default: break
        }
        if b != Bytes.lf { line.append(b); return }
        guard line.last == Bytes.cr else { throw HTTPResponseError("line ends in a bare LF") }
        line.removeLast()
        defer { line.removeAll(keepingCapacity: true) }
        switch state {
        case .head: try headLine()
        case .chunkSize: try chunkSizeLine()
        case .chunkDataEnd:
            guard line.isEmpty else { throw HTTPResponseError("chunk data not followed by CRLF") }
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
            guard line.first != Bytes.sp && line.first != Bytes.tab else { throw HTTPResponseError("obsolete line folding in a header") }
            guard fields.count < limits.maxHeaderCount else { throw HTTPResponseError("more than \(limits.maxHeaderCount) header fields") }
            fields.append(try HTTPResponseParser.field(line[...]))
            return
        }
        // End of a head.
        let h = HTTPResponseHead(minorVersion: status.0, status: status.1, reason: status.2, headers: fields)
        statusLine = nil
        fields = []
        if h.status < 200 {
            guard h.status != 101 else { throw HTTPResponseError("the server switched protocols (101)") }
            interim += 1
            guard interim <= limits.maxInterimResponses else { throw HTTPResponseError("more than \(limits.maxInterimResponses) interim responses") }
            return
        }
        head = h
        try frameBody(h)
    }

    private mutating func frameBody(_ h: HTTPResponseHead) throws(HTTPResponseError) {
        if h.status == 204 || h.status == 304 { finishBody(); return }
        let te = h.values("transfer-encoding").flatMap { $0.split(separator: ",") }.map { String(Bytes.trimmed(Array($0.utf8)[...]).map { Character(UnicodeScalar(Bytes.lowercased($0))) }) }
        let cl = h.values("content-length").flatMap { $0.split(separator: ",", omittingEmptySubsequences: false) }.map { Bytes.trimmed(Array($0.utf8)[...]) }
        if !te.isEmpty {
            guard cl.isEmpty else { throw HTTPResponseError("both Transfer-Encoding and Content-Length") }
            state = te.last == "chunked" ? .chunkSize : .untilClose
            return
        }
        if !cl.isEmpty {
            guard let n = Digits.decimal(cl[0], max: 1 << 53) else { throw HTTPResponseError("Content-Length is not a number") }
            for other in cl.dropFirst() where Digits.decimal(other, max: 1 << 53) != n {
                throw HTTPResponseError("conflicting Content-Length values")
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
        digits = Bytes.trimmed(digits)
        guard ext.allSatisfy(Bytes.isFieldValue) else { throw HTTPResponseError("control bytes in a chunk extension") }
        guard let size = Digits.hex(digits, max: 1 << 53) else { throw HTTPResponseError("chunk size is not a hexadecimal number") }
        state = size == 0 ? .trailers : .chunkData(size)
    }

    /// `HTTP/1.x SP 3DIGIT [SP reason]`.
    static func statusLine(_ l: ArraySlice<UInt8>) throws(HTTPResponseError) -> (Int, Int, String) {
        let prefix = Array("HTTP/1.".utf8)
        guard l.count >= 12, l.starts(with: prefix) else { throw HTTPResponseError("not an HTTP/1.x status line") }
        let s = l.startIndex
        let minor = l[s + 7]
        guard minor == 0x30 || minor == 0x31 else { throw HTTPResponseError("unsupported HTTP version") }
        guard l[s + 8] == Bytes.sp, let status = Digits.decimal(l[(s + 9)..<(s + 12)]), status >= 100, status <= 999 else {
            throw HTTPResponseError("bad status code")
        }
        var reason = l[(s + 12)...]
        if !reason.isEmpty {
            guard reason.first == Bytes.sp else { throw HTTPResponseError("bad status line") }
            reason = reason.dropFirst()
            guard reason.allSatisfy(Bytes.isFieldValue) else { throw HTTPResponseError("control bytes in the reason phrase") }
        }
        return (Int(minor - 0x30), status, String(decoding: reason, as: UTF8.self))
    }

    /// `name ":" OWS value OWS` with a token name (no space before the colon) and no control bytes.
    static func field(_ l: ArraySlice<UInt8>) throws(HTTPResponseError) -> (String, String) {
        guard let colon = l.firstIndex(of: Bytes.colon) else { throw HTTPResponseError("header line without a colon") }
        let name = l[l.startIndex..<colon]
        guard !name.isEmpty, name.allSatisfy(Bytes.isToken) else { throw HTTPResponseError("bad header name") }
        let value = Bytes.trimmed(l[(colon + 1)...])
        guard value.allSatisfy(Bytes.isFieldValue) else { throw HTTPResponseError("control bytes in a header value") }
        return (String(decoding: name.map(Bytes.lowercased), as: UTF8.self), String(decoding: value, as: UTF8.self))
    }
}
