import Testing
import SpoolCore
import SpoolWire
import SpoolSystem
@testable import SpoolBridges

/// The pure parts of `spool pull`: ack subjects, the key of a pulled message, and when a pull batch ends.
@Suite struct JetStreamPullTests {
    @Test func streamSequenceFromAckSubjects() {
        #expect(JetStreamPuller.streamSequence("$JS.ACK.HOOKS.WORK.1.42.7.1733200000000000000.3") == 42)
        #expect(JetStreamPuller.streamSequence("$JS.ACK.hub.ACCHASH.HOOKS.WORK.2.99.8.1733200000000000000.0.tok") == 99)
        for bad in ["$JS.ACK.HOOKS.WORK.1", "$JS.NAK.HOOKS.WORK.1.42.7.1.3", "JS.ACK.HOOKS.WORK.1.42.7.1.3", "$JS.ACK.HOOKS.WORK.1.x.7.1.3", ""] {
            #expect(JetStreamPuller.streamSequence(bad) == nil, "\(bad)")
        }
    }

    func message(_ headers: [(String, String)], reply: String = "$JS.ACK.S.C.1.17.1.1.0") -> NATSMessage {
        NATSMessage(subject: "hooks.in", sid: "b1", replyTo: reply, headers: NATSHeaders(fields: HTTPHeaders(headers)), payload: [1, 2, 3])
    }

    @Test func keyFromSpoolKeyThenMessageIdThenSequence() {
        let a = JetStreamPuller.request(for: message([("Spool-Key", "a/b"), ("Nats-Msg-Id", "other"), ("Content-Type", "application/json")]), stream: "S")
        #expect(a.key.value == "a/b" && a.payload == [1, 2, 3] && a.source == .pull)
        #expect(a.headers.contains { $0 == ("content-type", "application/json") })
        // Nats-Msg-Id is the key's spool file name (`~` + hex for keys that are not plain).
        let b = JetStreamPuller.request(for: message([("Nats-Msg-Id", "~612f62")]), stream: "S")
        #expect(b.key.value == "a/b")
        let c = JetStreamPuller.request(for: message([("Spool-Received-At", "2026-12-03T08:00:00.000Z")]), stream: "S")
        #expect(c.key.value == "js-S-17")
        #expect(c.headers.contains { $0 == ("spool-received-at", "2026-12-03T08:00:00.000Z") })
        let d = JetStreamPuller.request(for: message([("Spool-Key", "")], reply: "$JS.ACK.S.C.1"), stream: "S")
        #expect(d.key.value == "js-S-0", "never dropped, even without a readable sequence")
    }

    @Test func theFlowKeepsOneToTwoBatchesOutstanding() {
        var f = PullFlow(batch: 4, expiresNanos: 30_000, heartbeatNanos: 5_000)
        #expect(f.nextRequest(now: 0) == 8, "two batches at first")
        #expect(f.nextRequest(now: 1) == nil, "nothing more while a batch or more is outstanding")
        for _ in 0..<4 { f.delivered() }
        #expect(f.outstanding == 4 && f.nextRequest(now: 2) == nil)
        f.delivered()
        #expect(f.outstanding == 3)
        #expect(f.nextRequest(now: 3) == 5, "topped up to two batches")
        #expect(f.requests.map(\.left) == [3, 5])
        for _ in 0..<3 { f.delivered() }
        #expect(f.requests == [PullFlow.Request(left: 5, sentAt: 3, expiresAt: 30_003)], "filled in order: the first request is done")
        f.delivered()  // more than was asked for: never below zero, never crashes
        f.ended()
        #expect(f.outstanding == 0)
        f.delivered()
        #expect(f.outstanding == 0 && f.requests.isEmpty)
    }

    @Test func theFlowForgetsEndedExpiredAndSilentRequests() {
        var f = PullFlow(batch: 2, expiresNanos: 30_000, heartbeatNanos: 5_000)
        #expect(f.nextRequest(now: 0) == 4)
        f.ended()  // a 408 or a 409
        #expect(f.outstanding == 0 && f.nextRequest(now: 10) == 4)
        #expect(f.nextRequest(now: 30_010 + 4_999) == nil, "expired, but the 408 may still be on its way")
        #expect(f.nextRequest(now: 30_010 + 5_000) == 4, "no 408 a heartbeat after the expiry: forgotten")
        // The open request was sent at 35_010.
        #expect(!f.isSilent(now: 45_010, lastActivity: 35_011), "two heartbeats since the last word, not more")
        #expect(f.isSilent(now: 45_012, lastActivity: 35_011), "two heartbeats without a word")
        #expect(f.nextCheck(lastActivity: 35_011) == 45_012)
        #expect(!f.isSilent(now: 45_009, lastActivity: 0), "silence is counted from the request when nothing came since")
        #expect(f.isSilent(now: 45_011, lastActivity: 0))
        f.reset()
        #expect(!f.isSilent(now: 1_000_000, lastActivity: 0), "silence without open requests is no fault")
        #expect(f.nextCheck(lastActivity: 100) == 10_101)
        #expect(f.nextRequest(now: 1_000_000) == 4)
        #expect(!f.isSilent(now: 1_000_001, lastActivity: 0), "a request just sent after a long silence is not silent yet")
        #expect(f.nextCheck(lastActivity: 0) == 1_010_001, "its silence check is two heartbeats after it")
        #expect(f.nextCheck(lastActivity: 1_000_000 + 30_000) == 1_030_000 + 5_000, "the expiry check comes first")
    }

    @Test func aSubscriptionQueuesMessagesAndStatusesUpToItsLimit() throws {
        let sub = try NATSSubscription(subject: "_INBOX.x.p.1", sid: "p1", limit: 3)
        #expect(!sub.isReady && sub.epoch == 0)
        sub.connection(ready: true)
        #expect(sub.isReady && sub.epoch == 1)
        sub.add(NATSMessage(subject: "_INBOX.x.p.1", sid: "p1", replyTo: nil, headers: NATSHeaders(status: 100), payload: []))
        for _ in 0..<3 { sub.add(message([])) }
        #expect(try pollReadable([sub.fd], timeoutMillis: 0).first == true, "the owner is woken")
        let first = sub.take(max: 2)
        #expect(first.messages.count == 2 && first.messages[0].headers?.status == 100 && first.dropped == 1)
        #expect(try pollReadable([sub.fd], timeoutMillis: 0).first == true, "still readable: one is left")
        let rest = sub.take(max: 10)
        #expect(rest.messages.count == 1 && rest.dropped == 0)
        #expect(try pollReadable([sub.fd], timeoutMillis: 0).first == false)
        sub.connection(ready: false)
        #expect(!sub.isReady && sub.epoch == 1)
        sub.connection(ready: true)
        #expect(sub.epoch == 2, "a new connection: requests sent before are void")
    }

    @Test func configurationIsChecked() {
        var c = JetStreamPullConfiguration(stream: "HOOKS", durable: "WORK")
        #expect(throws: Never.self) { try c.validate() }
        for (s, d) in [("a.b", "W"), ("S", "w*"), ("", "W"), ("S", "has space")] {
            c.stream = s; c.durable = d
            #expect(throws: BridgeError.self, "\(s) \(d)") { try c.validate() }
        }
        c = JetStreamPullConfiguration(stream: "S", durable: "W")
        c.batch = 0
        #expect(throws: BridgeError.self) { try c.validate() }
    }
}
