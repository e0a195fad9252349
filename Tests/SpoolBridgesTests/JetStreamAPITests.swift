import Testing
import SpoolWire
@testable import SpoolBridges

/// Publish acknowledgements and API replies: only the documented positive shape counts as stored.
@Suite struct JetStreamAPITests {
    func reply(_ json: String, status: Int? = nil) -> NATSMessage {
        NATSMessage(subject: "_INBOX.x.1", sid: "1", replyTo: nil, headers: status.map { NATSHeaders(status: $0) }, payload: Array(json.utf8))
    }

    @Test func positiveAcks() throws {
        #expect(try JetStreamAPI.ack(reply(#"{"stream":"S1", "seq":1}"#)) == JetStreamAck(stream: "S1", sequence: 1, duplicate: false))
        #expect(try JetStreamAPI.ack(reply(#"{"stream":"S1", "seq":7,"duplicate": true}"#)) == JetStreamAck(stream: "S1", sequence: 7, duplicate: true))
        #expect(try JetStreamAPI.ack(reply(#"{"stream":"S","seq":2,"domain":"d","extra":[1]}"#)).sequence == 2)
    }

    func error(_ r: NATSMessage) -> BridgeError? {
        do { _ = try JetStreamAPI.ack(r); return nil } catch { return error }
    }

    @Test func noRespondersIsARetry() throws {
        let e = try #require(error(reply("", status: 503)))
        #expect(e.status == "no responders" && e.isRetryable && e.kind == .unavailable && e.isNoAnswerFromJetStream)
        guard case .retry = e.outcome else { Issue.record("\(e.outcome)"); return }
    }

    /// A server cut off from its cluster answers API requests at once with "temporarily unavailable": that is no
    /// answer from JetStream (StrandedServer counts it), while a full stream's 503 is JetStream answering.
    @Test func leaderlessRepliesAreUnavailable() throws {
        for errCode in [10008, 10009] {
            let e = try #require(error(reply(#"{"error":{"code":503,"err_code":\#(errCode),"description":"JetStream system temporarily unavailable"}}"#)))
            #expect(e.kind == .unavailable && e.isNoAnswerFromJetStream && e.isRetryable && e.status == "jetstream \(errCode)")
        }
        let full = try #require(error(reply(#"{"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"}}"#)))
        #expect(full.kind == .serverError && !full.isNoAnswerFromJetStream)
    }

    @Test func apiErrorsAndOddShapesAreNotAcks() throws {
        let e = try #require(error(reply(#"{"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"},"stream":"S","seq":0}"#)))
        #expect(e.isRetryable && e.message.contains("10077") && e.message.contains("maximum messages exceeded"))
        let tooBig = try #require(error(reply(#"{"error":{"code":400,"err_code":10054,"description":"message size exceeds maximum allowed"}}"#)))
        #expect(!tooBig.isRetryable, "a message the stream can never take is a permanent failure")
        for bad in ["", "null", "[]", #"{"seq":1}"#, #"{"stream":"S"}"#, #"{"stream":"S","seq":0}"#, #"{"stream":"S","seq":"1"}"#,
                    #"{"stream":"","seq":1}"#, #"{"stream":"S","seq":1,"duplicate":"yes"}"#, #"{"stream":"S","seq":1.5}"#,
                    #"{"stream":"S","stream":"T","seq":1}"#] {
            let e = error(reply(bad))
            #expect(e != nil && e!.isRetryable, "\(bad) must not count as stored")
        }
        #expect(error(reply("", status: 408))?.status == "nats 408")
    }

    @Test func streamInfoReply() throws {
        #expect(try JetStreamAPI.streamMessages(reply(#"{"config":{},"state":{"messages":1000,"bytes":5}}"#)) == 1000)
        guard case .error(_, let errCode, _) = try JetStreamAPI.reply(reply(#"{"error":{"code":404,"err_code":10059,"description":"stream not found"}}"#), what: "x") else {
            Issue.record("not an error"); return
        }
        #expect(errCode == JetStreamAPI.streamNotFound)
        let body = String(decoding: JetStreamAPI.createStreamRequest(name: "S", subject: "a.b", duplicateWindowNanos: 120_000_000_000), as: UTF8.self)
        #expect(body == #"{"name":"S","subjects":["a.b"],"storage":"file","retention":"limits","duplicate_window":120000000000}"#)
        #expect(JetStreamAPI.isValidStreamName("HOOKS_1") && !JetStreamAPI.isValidStreamName("a.b") && !JetStreamAPI.isValidStreamName("a b"))
    }
}
