import Testing
import SpoolWire
@testable import SpoolBridges

/// The NATS parser fed bytes: every split of a stream gives the same events; every violation is refused.
@Suite struct NATSParserTests {
    static let info = #"INFO {"server_id":"S1","version":"2.9.10","headers":true,"max_payload":1048576,"jetstream":true} "# + "\r\n"

    func parseWhole(_ s: String, limits: NATSParser.Limits = .init()) throws -> [NATSEvent] {
        var p = NATSParser(limits: limits)
        let events = p.feed(Array(s.utf8))
        if let f = p.failure { throw f }
        return events
    }

    func parseByteByByte(_ s: String) throws -> [NATSEvent] {
        var p = NATSParser()
        var out: [NATSEvent] = []
        for b in s.utf8 { out += p.feed([b]) }
        if let f = p.failure { throw f }
        return out
    }

    func rejects(_ s: String, _ fragment: String, limits: NATSParser.Limits = .init()) {
        var p = NATSParser(limits: limits)
        _ = p.feed(Array(s.utf8))
        guard let error = p.failure else { Issue.record("accepted: \(s.debugDescription)"); return }
        #expect(error.message.contains(fragment), "\(error.message) should mention \(fragment)")
        // A failed parser stays failed.
        #expect(p.feed(Array("PING\r\n".utf8)).isEmpty && p.failure == error)
    }

    @Test func infoPingPongOkErr() throws {
        let stream = NATSParserTests.info + "PING\r\nPONG\r\n+OK\r\n-ERR 'Authorization Violation'\r\n"
        let events = try parseWhole(stream)
        #expect(events.count == 5)
        guard case .info(let info) = events[0] else { Issue.record("no INFO"); return }
        #expect(info.serverID == "S1" && info.version == "2.9.10" && info.headers && info.jetStream && info.maxPayload == 1_048_576)
        #expect(Array(events[1...]) == [.ping, .pong, .ok, .err("Authorization Violation")])
        #expect(try parseByteByByte(stream) == events)
    }

    @Test func msgWithAndWithoutReplyAndTheServersDoubleSpace() throws {
        // nats-server 2.9 pads the size with a second space: `MSG _INBOX.x.3 1  24`.
        let stream = "MSG _INBOX.x.3 1  24\r\n{\"stream\":\"S1\", \"seq\":1}\r\nMSG a.b 7 reply.to 0\r\n\r\n"
        let events = try parseWhole(stream)
        #expect(events == [
            .message(NATSMessage(subject: "_INBOX.x.3", sid: "1", replyTo: nil, headers: nil, payload: Array(#"{"stream":"S1", "seq":1}"#.utf8))),
            .message(NATSMessage(subject: "a.b", sid: "7", replyTo: "reply.to", headers: nil, payload: [])),
        ])
        #expect(try parseByteByByte(stream) == events)
    }

    @Test func payloadMayContainCRLFAndProtocolWords() throws {
        let body = "PING\r\nMSG x 1 3\r\n"
        let stream = "MSG s 1 \(body.utf8.count)\r\n\(body)\r\nPONG\r\n"
        let events = try parseByteByByte(stream)
        #expect(events == [.message(NATSMessage(subject: "s", sid: "1", replyTo: nil, headers: nil, payload: Array(body.utf8))), .pong])
    }

    @Test func hmsgNoResponders() throws {
        let stream = "HMSG _INBOX.x.5 1 16 16\r\nNATS/1.0 503\r\n\r\n\r\n"
        let events = try parseByteByByte(stream)
        guard case .message(let m) = events.first, events.count == 1 else { Issue.record("\(events)"); return }
        #expect(m.headers?.status == 503 && m.headers?.fields.isEmpty == true && m.payload.isEmpty)
    }

    @Test func hmsgWithFieldsAndPayload() throws {
        let headers = "NATS/1.0\r\nNats-Msg-Id: k1\r\nSpool-Key:  a b \r\n\r\n"
        let stream = "HMSG s.t 9 r \(headers.utf8.count) \(headers.utf8.count + 5)\r\n\(headers)hello\r\n"
        let events = try parseWhole(stream)
        guard case .message(let m) = events.first else { Issue.record("\(events)"); return }
        #expect(m.replyTo == "r" && m.payload == Array("hello".utf8))
        #expect(m.headers?.status == nil)
        #expect(m.headers?.value("nats-msg-id") == "k1" && m.headers?.value("Spool-Key") == "a b")
        #expect(try parseByteByByte(stream) == events)
    }

    @Test func everySplitGivesTheSameEvents() throws {
        let headers = "NATS/1.0 503 No Responders\r\n\r\n"
        let stream = NATSParserTests.info + "MSG a 1 r 3\r\nabc\r\nHMSG b 2 \(headers.utf8.count) \(headers.utf8.count + 2)\r\n\(headers)xy\r\nPING\r\n"
        let whole = try parseWhole(stream)
        #expect(whole.count == 4)
        let bytes = Array(stream.utf8)
        for cut in 0...bytes.count {
            var p = NATSParser()
            let events = p.feed(bytes[0..<cut]) + p.feed(bytes[cut...])
            #expect(events == whole && p.failure == nil, "split at \(cut)")
        }
    }

    /// Found by the peer fuzzer: events completed before a violation in the same read were dropped when the
    /// whole stream came at once, and delivered when it came in two reads. Now they are delivered either way.
    @Test func eventsBeforeAViolationAreTheSameInAnySplit() {
        let bytes = Array((NATSParserTests.info + "PING\r\nMSG a 1 r 3\r\nabc\r\nHMSG b 2\r\n").utf8)
        var whole = NATSParser()
        let expected = whole.feed(bytes)
        #expect(expected.count == 3 && whole.failure != nil, "\(expected) \(String(describing: whole.failure))")
        for cut in 0...bytes.count {
            var p = NATSParser()
            let events = p.feed(bytes[0..<cut]) + p.feed(bytes[cut...])
            #expect(events == expected && p.failure == whole.failure, "split at \(cut)")
        }
    }

    @Test func refusesBareLFAndUnknownOperations() {
        rejects("PING\n", "bare LF")
        rejects("HELLO world\r\n", "unknown operation")
        rejects("\r\n", "empty control line")
        rejects("PING extra\r\n", "unexpected arguments")
    }

    @Test func operationsAreCaseInsensitiveAndExact() throws {
        var p = NATSParser()
        let events = p.feed(Array("ping\r\nPoNg\r\n+ok\r\n-err 'x'\r\nmsg a 1 2\r\nhi\r\nhMsG b 2 12 12\r\nNATS/1.0\r\n\r\n\r\n".utf8))
        #expect(p.failure == nil)
        #expect(events.count == 6)
        #expect(Array(events.prefix(4)) == [.ping, .pong, .ok, .err("x")])
        guard case .message(let m) = events[4], case .message(let h) = events[5] else { Issue.record("\(events)"); return }
        #expect(m.payload == Array("hi".utf8) && m.headers == nil && h.headers == NATSHeaders() && h.payload.isEmpty)
        // Near misses of each operation: one byte off, a prefix, one byte longer.
        for op in ["PIN", "PINGS", "PINH", "PONF", "+OKK", "OK", "-ER", "INF", "INFOS", "MSGS", "MS", "HMS", "HMSGX", "NSG", "+0K"] {
            rejects("\(op)\r\n", "unknown operation")
        }
    }

    @Test func refusesBadSizes() {
        rejects("MSG a 1 99999999999999999999999\r\n", "message size")
        rejects("MSG a 1 -1\r\n", "message size")
        rejects("MSG a 1 +5\r\n", "message size")
        rejects("MSG a 1 0x10\r\n", "message size")
        var small = NATSParser.Limits()
        small.maxPayload = 10
        rejects("MSG a 1 11\r\n", "message size", limits: small)
        rejects("HMSG a 1 20 10\r\n", "header size")
        rejects("HMSG a 1 4 10\r\n", "header block shorter")
        rejects("MSG a 1\r\n", "wrong number of arguments")
        rejects("MSG a 1 b c 3\r\n", "wrong number of arguments")
        rejects("HMSG a 1 3\r\n", "wrong number of arguments")
    }

    @Test func refusesBodyWithoutCRLF() {
        rejects("MSG a 1 3\r\nabcXY", "not followed by CRLF")
    }

    @Test func boundsTheControlLine() {
        var l = NATSParser.Limits()
        l.maxControlLine = 64
        rejects("INFO {" + String(repeating: " ", count: 100), "longer than 64", limits: l)
        // Exactly at the bound (64 bytes before the LF, CR included) is fine; one more is not.
        var p = NATSParser(limits: l)
        #expect(p.feed(Array(("PING" + String(repeating: " ", count: 59) + "\r\n").utf8)) == [.ping] && p.failure == nil)
        rejects("PING" + String(repeating: " ", count: 60) + "\r\n", "longer than 64", limits: l)
    }

    @Test func refusesBadInfo() {
        rejects("INFO not json\r\n", "not JSON")
        rejects("INFO [1]\r\n", "not a JSON object")
        rejects(#"INFO {"headers":"yes"}"# + "\r\n", "headers is not a boolean")
        rejects(#"INFO {"max_payload":-1}"# + "\r\n", "max_payload")
        rejects(#"INFO {"max_payload":1.5}"# + "\r\n", "max_payload")
    }

    @Test func refusesBadHeaderBlocks() {
        func hmsg(_ h: String) -> String { "HMSG s 1 \(h.utf8.count) \(h.utf8.count)\r\n\(h)\r\n" }
        rejects(hmsg("HTTP/1.1 200\r\n\r\n"), "NATS/1.0")
        rejects(hmsg("NATS/1.0 5x3\r\n\r\n"), "status code")
        rejects(hmsg("NATS/1.0\r\nNo-Colon\r\n\r\n"), "colon")
        rejects(hmsg("NATS/1.0\r\nBad Name: v\r\n\r\n"), "header name")
        rejects(hmsg("NATS/1.0\r\nA: b\u{1}c\r\n\r\n"), "header value")
        rejects(hmsg("NATS/1.0\r\nA: b\nC: d\r\n\r\n"), "CRLF")
        rejects(hmsg("NATS/1.0\r\nA: b\r\nxx"), "CRLF")
    }

    @Test func headerEncodingRoundTrips() throws {
        let h = NATSHeaders(fields: HTTPHeaders([("Nats-Msg-Id", "~612f62"), ("Spool-Key", "a/b"), ("Spool-Received-At", "2026-01-02T03:04:05.678Z")]))
        let enc = h.encoded()
        #expect(String(decoding: enc, as: UTF8.self) == "NATS/1.0\r\nNats-Msg-Id: ~612f62\r\nSpool-Key: a/b\r\nSpool-Received-At: 2026-01-02T03:04:05.678Z\r\n\r\n")
        #expect(try NATSHeaders.parse(enc[...]) == h)
        #expect(!HTTPField.isValid(name: "X", value: "a\r\nInjected: 1"))
        #expect(!HTTPField.isValid(name: "X Y", value: "v"))
    }

    @Test func publishCommandFraming() throws {
        let h = NATSHeaders(fields: HTTPHeaders([("Nats-Msg-Id", "k")]))
        let cmd = String(decoding: NATSCommand.publish(subject: "a.b", replyTo: "_INBOX.z.1", headers: h, payload: Array("\r\nxy".utf8)), as: UTF8.self)
        let hb = "NATS/1.0\r\nNats-Msg-Id: k\r\n\r\n"
        #expect(cmd == "HPUB a.b _INBOX.z.1 \(hb.utf8.count) \(hb.utf8.count + 4)\r\n\(hb)\r\nxy\r\n")
        #expect(String(decoding: NATSCommand.publish(subject: "s", replyTo: nil, headers: nil, payload: []), as: UTF8.self) == "PUB s 0\r\n\r\n")
        // A batch is appended into one buffer: each command framed exactly as on its own.
        var batch = Array("PING\r\n".utf8)
        NATSCommand.appendPublish(subject: "a.b", replyTo: "_INBOX.z.1", headerBlock: h.encoded(), payload: Array("\r\nxy".utf8), to: &batch)
        NATSCommand.appendPublish(subject: "s", replyTo: "r", headerBlock: nil, payload: Array("12345678901".utf8), to: &batch)
        #expect(String(decoding: batch, as: UTF8.self) == "PING\r\n" + cmd + "PUB s r 11\r\n12345678901\r\n")
        let status = NATSHeaders(status: 503, statusDescription: "No Responders", fields: HTTPHeaders([("A", "b")]))
        #expect(String(decoding: status.encoded(), as: UTF8.self) == "NATS/1.0 503 No Responders\r\nA: b\r\n\r\n")
        #expect(try NATSHeaders.parse(status.encoded()[...]) == status)
        #expect(String(decoding: NATSHeaders(status: 100).encoded(), as: UTF8.self) == "NATS/1.0 100\r\n\r\n")
        let connect = String(decoding: try NATSCommand.connect({ var o = NATSCommand.ConnectOptions(); o.token = "t\"x"; return o }()), as: UTF8.self)
        #expect(connect.hasPrefix("CONNECT {") && connect.hasSuffix("}\r\n") && connect.contains(#""auth_token":"t\"x""#) && connect.contains(#""headers":true"#))
    }

    @Test func subjects() {
        for ok in ["a", "hooks.in", "a.b-c_d.E9", "$JS.API.STREAM.INFO.X"] { #expect(NATSCommand.isValidSubject(ok), "\(ok)") }
        for bad in ["", "a b", "a..b", ".a", "a.", "a.*", "a.>", "a\tb", "ä"] { #expect(!NATSCommand.isValidSubject(bad), "\(bad)") }
        #expect(NATSCommand.isValidSubject("_INBOX.x.*", wildcards: true) && NATSCommand.isValidSubject("a.>", wildcards: true))
        #expect(!NATSCommand.isValidSubject("a.>.b", wildcards: true) && !NATSCommand.isValidSubject("a.b*", wildcards: true))
    }

    /// `-ERR` text is classified once, at the codec: the connection decides on the case, never on the text.
    @Test func serverErrorTextIsClassifiedOnce() {
        for t in ["Authorization Violation", "authorization violation", "Authentication Timeout", "User Authentication Expired",
                  "Authentication Revoked"] {
            #expect(NATSServerError(text: t) == .unauthorized, "\(t)")
        }
        for t in ["Stale Connection", "Maximum Connections Exceeded", "Unknown Protocol Operation", "", "Permissions Violation for Publish to x"] {
            #expect(NATSServerError(text: t) == .other, "\(t)")
        }
        #expect(BridgeError(.unauthorized, "x").isAuthorizationFailure && !BridgeError(.connect, "Authorization Violation").isAuthorizationFailure)
    }
}
