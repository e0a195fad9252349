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
        #expect(a.key.value == "a/b" && a.payload == [1, 2, 3] && a.source == "pull")
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

    @Test func aBatchEndsAtItsSizeOrAtAStatusButNotAtAHeartbeat() throws {
        let slot = try BatchSlot(limit: 2)
        func status(_ code: Int) -> NATSMessage {
            NATSMessage(subject: "_INBOX.x.b1", sid: "b1", replyTo: nil, headers: NATSHeaders(status: code), payload: [])
        }
        slot.add(status(100))
        slot.add(message([]))
        #expect(slot.wait(until: monotonicNanos()).count == 1, "a heartbeat neither ends the batch nor counts")
        let full = try BatchSlot(limit: 2)
        full.add(message([])); full.add(message([])); full.add(message([]))
        #expect(full.wait(until: monotonicNanos() + 5_000_000_000).count == 2)
        let ended = try BatchSlot(limit: 10)
        ended.add(message([])); ended.add(status(408)); ended.add(message([]))
        let t0 = monotonicNanos()
        #expect(ended.wait(until: t0 + 5_000_000_000).count == 1)
        #expect(monotonicNanos() - t0 < 1_000_000_000, "a 408 ends the wait at once")
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
