import SpoolCore
import SpoolWire

/// A protocol violation by the NATS server (or a byte stream claiming to be one): the connection is dropped.
public struct NATSProtocolError: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// One request to send: a publish that expects one reply on an inbox.
public struct NATSRequest: Sendable {
    public var subject: String
    public var headers: NATSHeaders?
    public var payload: [UInt8]
    public init(subject: String, headers: NATSHeaders?, payload: [UInt8]) {
        self.subject = subject
        self.headers = headers
        self.payload = payload
    }
}

/// A message delivered to one of our subscriptions (MSG or HMSG).
public struct NATSMessage: Sendable, Equatable {
    public var subject: String
    public var sid: String
    public var replyTo: String?
    /// The header block of an HMSG; nil for MSG.
    public var headers: NATSHeaders?
    public var payload: [UInt8]

    public init(subject: String, sid: String, replyTo: String?, headers: NATSHeaders?, payload: [UInt8]) {
        self.subject = subject; self.sid = sid; self.replyTo = replyTo; self.headers = headers; self.payload = payload
    }
}

/// One thing the server said.
public enum NATSEvent: Sendable, Equatable {
    case info(NATSServerInfo)
    case message(NATSMessage)
    case ping
    case pong
    case ok
    case err(String)
}

/// The server-to-client side of the NATS protocol as a pure state machine over bytes: feed it whatever `recv`
/// returned, in any split, and get the complete events. Strict: CRLF line ends, known operations only, sizes
/// overflow-checked and bounded, header blocks validated. After an error the parser stays failed.
/// The events completed before an error are returned whatever the split (the fuzzer checks this): a reply that
/// arrived just before garbage is still delivered.
public struct NATSParser: Sendable {
    public struct Limits: Sendable {
        /// Longest control line (an INFO of a large cluster lists many URLs).
        public var maxControlLine = 64 * 1024
        /// Largest message body (headers + payload) accepted; set from INFO's max_payload once known.
        public var maxPayload = 8 << 20
        public init() {}
    }

    public var limits: Limits
    private enum State: Sendable { case line, body(Head) }
    private struct Head: Sendable { var subject: String; var sid: String; var replyTo: String?; var headerBytes: Int; var total: Int }
    private var state = State.line
    private var line: [UInt8] = []
    private var body: [UInt8] = []
    /// Set at the first protocol violation; from then on `feed` returns nothing.
    public private(set) var failure: NATSProtocolError?

    public init(limits: Limits = Limits()) { self.limits = limits }

    /// Consumes `bytes` and returns the events they complete, up to the first violation (then `failure` is set).
    public mutating func feed<C: Collection>(_ bytes: C) -> [NATSEvent] where C.Element == UInt8 {
        if failure != nil { return [] }
        var events: [NATSEvent] = []
        do throws(NATSProtocolError) {
            var i = bytes.startIndex
            while i < bytes.endIndex {
                switch state {
                case .line:
                    let b = bytes[i]
                    i = bytes.index(after: i)
                    if b == ByteClass.lf {
                        guard line.last == ByteClass.cr else { throw NATSProtocolError("control line ends in a bare LF") }
                        line.removeLast()
                        if let e = try controlLine() { events.append(e) }
                        line.removeAll(keepingCapacity: true)
                    } else {
                        guard line.count < limits.maxControlLine else { throw NATSProtocolError("control line longer than \(limits.maxControlLine) bytes") }
                        line.append(b)
                    }
                case .body(let head):
                    let need = head.total + 2 - body.count
                    let end = bytes.index(i, offsetBy: need, limitedBy: bytes.endIndex) ?? bytes.endIndex
                    body.append(contentsOf: bytes[i..<end])
                    i = end
                    if body.count == head.total + 2 {
                        guard body[head.total] == ByteClass.cr, body[head.total + 1] == ByteClass.lf else {
                            throw NATSProtocolError("message body not followed by CRLF")
                        }
                        events.append(.message(try message(head)))
                        body.removeAll(keepingCapacity: true)
                        state = .line
                    }
                }
            }
        } catch {
            failure = error
        }
        return events
    }

    private func message(_ head: Head) throws(NATSProtocolError) -> NATSMessage {
        var headers: NATSHeaders? = nil
        if head.headerBytes >= 0 { headers = try NATSHeaders.parse(body[0..<head.headerBytes]) }
        let start = max(head.headerBytes, 0)
        return NATSMessage(subject: head.subject, sid: head.sid, replyTo: head.replyTo, headers: headers,
                           payload: Array(body[start..<head.total]))
    }

    /// Splits on runs of spaces and tabs (the server pads some sizes with two spaces).
    private static func fields(_ s: ArraySlice<UInt8>) -> [ArraySlice<UInt8>] {
        s.split(whereSeparator: { $0 == ByteClass.sp || $0 == ByteClass.htab })
    }

    private static func isSubjectByte(_ b: UInt8) -> Bool { b > 0x20 && b != 0x7F }

    private enum Operation { case ping, pong, ok, err, info, msg, hmsg }

    /// The operation a control line starts with (ASCII case-insensitive, as the server accepts them), or nil.
    private static func operation(_ op: ArraySlice<UInt8>) -> Operation? {
        switch op.count {
        case 3:
            if ByteClass.equalsLowercase(op, "msg") { return .msg }
            if ByteClass.equalsLowercase(op, "+ok") { return .ok }
        case 4:
            if ByteClass.equalsLowercase(op, "hmsg") { return .hmsg }
            if ByteClass.equalsLowercase(op, "ping") { return .ping }
            if ByteClass.equalsLowercase(op, "pong") { return .pong }
            if ByteClass.equalsLowercase(op, "info") { return .info }
            if ByteClass.equalsLowercase(op, "-err") { return .err }
        default: break
        }
        return nil
    }

    private mutating func controlLine() throws(NATSProtocolError) -> NATSEvent? {
        let all = line[...]
        let parts = NATSParser.fields(all)
        guard let op = parts.first else { throw NATSProtocolError("empty control line") }
        guard let kind = NATSParser.operation(op) else {
            throw NATSProtocolError("unknown operation '\(String(decoding: op.prefix(16), as: UTF8.self))'")
        }
        switch kind {
        case .ping, .pong, .ok:
            guard parts.count == 1 else { throw NATSProtocolError("unexpected arguments after \(String(decoding: op, as: UTF8.self))") }
            return kind == .ping ? .ping : kind == .pong ? .pong : .ok
        case .err:
            var text = ByteClass.trimOWS(all[op.endIndex...])
            if text.count >= 2, text.first == 0x27, text.last == 0x27 { text = text.dropFirst().dropLast() }
            guard text.allSatisfy(ByteClass.isFieldValueByte) else { throw NATSProtocolError("-ERR text has control bytes") }
            return .err(String(decoding: text, as: UTF8.self))
        case .info:
            let json = ByteClass.trimOWS(all[op.endIndex...])
            let info = try NATSServerInfo.parse(json)
            return .info(info)
        case .msg, .hmsg:
            break
        }
        let isHMsg = kind == .hmsg
        // MSG <subject> <sid> [reply-to] <#bytes> ; HMSG <subject> <sid> [reply-to] <#header bytes> <#total bytes>
        let sizes = isHMsg ? 2 : 1
        let args = parts.dropFirst()
        guard args.count == 2 + sizes || args.count == 3 + sizes else { throw NATSProtocolError("wrong number of arguments to \(isHMsg ? "HMSG" : "MSG")") }
        let a = Array(args)
        for t in a where !t.allSatisfy(NATSParser.isSubjectByte) { throw NATSProtocolError("control bytes in a message line") }
        let replyTo = a.count == 3 + sizes ? String(decoding: a[2], as: UTF8.self) : nil
        guard let total = Digits.decimal(a[a.count - 1], max: limits.maxPayload) else {
            throw NATSProtocolError("message size is not a number up to \(limits.maxPayload)")
        }
        var headerBytes = -1
        if isHMsg {
            guard let h = Digits.decimal(a[a.count - 2], max: total) else { throw NATSProtocolError("header size is not a number up to the total size") }
            guard h >= 12 else { throw NATSProtocolError("header block shorter than NATS/1.0 CRLF CRLF") }
            headerBytes = h
        }
        state = .body(Head(subject: String(decoding: a[0], as: UTF8.self), sid: String(decoding: a[1], as: UTF8.self),
                           replyTo: replyTo, headerBytes: headerBytes, total: total))
        return nil
    }
}

/// The client-to-server side: the few commands a publisher sends, built from validated parts.
public enum NATSCommand {
    /// A subject we publish to or subscribe on: dot-separated non-empty tokens of visible ASCII; wildcards
    /// (`*`, `>`) only when `wildcards` is true (subscriptions).
    public static func isValidSubject(_ s: String, wildcards: Bool = false) -> Bool {
        let u = Array(s.utf8)
        guard !u.isEmpty, u.count <= 1024, u.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else { return false }
        let tokens = u.split(separator: 0x2E, omittingEmptySubsequences: false)
        for (i, t) in tokens.enumerated() {
            if t.isEmpty { return false }
            if t.contains(0x2A) || t.contains(0x3E) {
                guard wildcards, t.count == 1 else { return false }
                if t.first == 0x3E && i != tokens.count - 1 { return false }
            }
        }
        return true
    }

    public struct ConnectOptions: Sendable {
        public var name = "spool"
        public var token: String?
        public var user: String?
        public var password: String?
        /// NKEY authentication: the seed signs the server's nonce; with `jwt` (a `.creds` file) the JWT goes along.
        public var nkey: NKeySeed?
        public var jwt: String?
        public init() {}
    }

    /// `CONNECT {...}`: no verbose +OK, headers on, and `no_responders` so a publish nobody stores fails fast (503).
    /// With an NKEY, `nonce` (from INFO) is signed: `sig`, plus `jwt` (creds) or `nkey` (the public key).
    public static func connect(_ o: ConnectOptions, tls: Bool = false, nonce: String? = nil) throws(BridgeError) -> [UInt8] {
        var fields = ["\"verbose\":false", "\"pedantic\":false", "\"tls_required\":\(tls)", "\"lang\":\"swift\"",
                      "\"version\":\"1\"", "\"protocol\":1", "\"headers\":true", "\"no_responders\":true",
                      "\"name\":\(JSONText.quote(o.name))"]
        if let t = o.token { fields.append("\"auth_token\":\(JSONText.quote(t))") }
        if let u = o.user { fields.append("\"user\":\(JSONText.quote(u))") }
        if let p = o.password { fields.append("\"pass\":\(JSONText.quote(p))") }
        if let seed = o.nkey {
            guard let nonce, !nonce.isEmpty else {
                throw BridgeError(.unauthorized, "the server sent no nonce to sign: it is not configured for NKEY or JWT authentication")
            }
            if let jwt = o.jwt { fields.append("\"jwt\":\(JSONText.quote(jwt))") } else { fields.append("\"nkey\":\(JSONText.quote(try seed.publicKey()))") }
            fields.append("\"sig\":\(JSONText.quote(try seed.sign(Array(nonce.utf8))))")
        }
        return Array("CONNECT {\(fields.joined(separator: ","))}\r\n".utf8)
    }

    public static let ping = Array("PING\r\n".utf8)
    public static let pong = Array("PONG\r\n".utf8)

    public static func sub(_ subject: String, sid: String) -> [UInt8] { Array("SUB \(subject) \(sid)\r\n".utf8) }

    /// `PUB` without headers, or `HPUB` with them; `payload` is sent exactly.
    public static func publish(subject: String, replyTo: String?, headers: NATSHeaders?, payload: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        appendPublish(subject: subject, replyTo: replyTo, headerBlock: headers?.encoded(), payload: payload, to: &out)
        return out
    }

    /// Appends one `PUB`/`HPUB` to `out`, with the header block already encoded (`NATSHeaders.encode`): a batch of
    /// publishes is one buffer and one `write(2)`.
    public static func appendPublish(subject: String, replyTo: String?, headerBlock: [UInt8]?, payload: [UInt8],
                                     to out: inout [UInt8]) {
        let h = headerBlock?.count ?? 0
        out.reserveCapacity(out.count + subject.utf8.count + (replyTo?.utf8.count ?? 0) + h + payload.count + 32)
        out.append(contentsOf: headerBlock == nil ? "PUB ".utf8 : "HPUB ".utf8)
        out.append(contentsOf: subject.utf8)
        if let replyTo { out.append(ByteClass.sp); out.append(contentsOf: replyTo.utf8) }
        out.append(ByteClass.sp)
        if let headerBlock { Digits.append(h, to: &out); out.append(ByteClass.sp) }
        Digits.append(h + payload.count, to: &out)
        out.append(ByteClass.cr); out.append(ByteClass.lf)
        if let headerBlock { out.append(contentsOf: headerBlock) }
        out.append(contentsOf: payload)
        out.append(ByteClass.cr); out.append(ByteClass.lf)
    }

    /// `UNSUB <sid>`: ends a subscription.
    public static func unsub(sid: String) -> [UInt8] { Array("UNSUB \(sid)\r\n".utf8) }
}

/// JSON string quoting through SpoolCore's writer (one escaping rule for the whole program).
enum JSONText {
    static func quote(_ s: String) -> String { JSONWriter.quote(s) }
}

/// What a server's `-ERR` text means, decided once here, where the protocol's text is read: the NATS protocol has no
/// error codes, only the messages its documentation lists. Everything above switches on this.
public enum NATSServerError: Equatable, Sendable {
    /// `Authorization Violation`, `Authentication Timeout`, `User Authentication Expired` (and the other
    /// authentication messages): our credentials were refused.
    case unauthorized
    case other

    public init(text: String) {
        let t = text.lowercased()
        self = t.hasPrefix("authorization violation") || t.hasPrefix("authentication") || t.hasPrefix("user authentication")
            ? .unauthorized : .other
    }
}
