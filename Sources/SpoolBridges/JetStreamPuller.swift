import Synchronization
import SpoolCore
import SpoolSystem
import SpoolWire

/// What `spool pull` reads from: a stream and a durable pull consumer on it.
public struct JetStreamPullConfiguration: Sendable {
    public var stream: String
    public var durable: String
    /// Create the durable consumer (explicit acks) if it does not exist.
    public var createConsumer = false
    public var filterSubject: String?
    /// Messages asked for per pull request.
    public var batch = 64
    /// For a created consumer: messages delivered and not yet acknowledged, across every puller.
    public var maxAckPending = 1024
    /// For a created consumer: redelivery after this long without an ack.
    public var ackWaitNanos: Int64 = 30_000_000_000
    /// How long one pull request stays open on the server (it delivers each message as it comes, until it has
    /// had its count or expires).
    public var expiresNanos: Int64 = 30_000_000_000
    /// While a request waits with nothing to deliver, the server says it is alive this often; missing two in a
    /// row means the requests are gone (a server restarted, a consumer leader moved, or there was no leader to
    /// take them) and are sent again. Two open requests cost two small messages a second when idle.
    public var heartbeatNanos: Int64 = 1_000_000_000
    /// API requests (consumer info and create).
    public var timeoutNanos: Int64 = 5_000_000_000

    public init(stream: String, durable: String) {
        self.stream = stream
        self.durable = durable
    }

    /// Names as JetStream accepts them (no dots, wildcards or whitespace), a subject filter as NATS does.
    public func validate() throws(BridgeError) {
        for (what, name) in [("--stream", stream), ("--consumer", durable)] {
            guard !name.isEmpty, name.utf8.count <= 255,
                  name.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: ".") && $0 != UInt8(ascii: "*") && $0 != UInt8(ascii: ">") }) else {
                throw BridgeError(.configuration, "\(what) '\(logSafe(name))' is not a valid JetStream name")
            }
        }
        if let f = filterSubject, !NATSCommand.isValidSubject(f, wildcards: true) {
            throw BridgeError(.configuration, "--filter '\(logSafe(f))' is not a NATS subject")
        }
        guard (1...1000).contains(batch) else { throw BridgeError(.configuration, "--batch must be 1 to 1000") }
        guard (1...1_000_000).contains(maxAckPending) else { throw BridgeError(.configuration, "--max-ack-pending must be 1 to 1000000") }
        guard heartbeatNanos >= 100_000_000, expiresNanos > heartbeatNanos else {
            throw BridgeError(.configuration, "a pull request's heartbeat must be at least 100ms and shorter than its expiry")
        }
    }
}

/// The bookkeeping of a pull consumer that keeps requests open on the server, as the official clients' "consume"
/// does: messages asked for and not yet delivered, when to ask for more, when the server has been silent too
/// long. Pure: tests drive it with events and instants.
struct PullFlow: Sendable {
    struct Request: Sendable, Equatable { var left: Int; var sentAt: Int64; var expiresAt: Int64 }
    let batch: Int
    let expiresNanos: Int64
    let heartbeatNanos: Int64
    private(set) var requests: [Request] = []
    /// The subscription epoch the requests were sent on (a reconnect makes them void).
    var epoch = 0

    init(batch: Int, expiresNanos: Int64, heartbeatNanos: Int64) {
        self.batch = max(1, batch)
        self.expiresNanos = expiresNanos
        self.heartbeatNanos = heartbeatNanos
    }

    /// Messages asked for and not yet delivered.
    var outstanding: Int { requests.reduce(0) { $0 + $1.left } }

    /// How many to ask for now, recorded as sent; nil while at least a batch is outstanding. Up to two batches are
    /// outstanding, so the next one is on its way while one is being made durable.
    mutating func nextRequest(now: Int64) -> Int? {
        // The server answers an expired request with a 408; one that never came is forgotten a heartbeat later.
        requests.removeAll { $0.expiresAt + heartbeatNanos <= now }
        let have = outstanding
        guard have < batch else { return nil }
        requests.append(Request(left: 2 * batch - have, sentAt: now, expiresAt: now + expiresNanos))
        return 2 * batch - have
    }

    /// A message came: the server fills requests in the order they were made.
    mutating func delivered() {
        guard !requests.isEmpty else { return }  // a request of an earlier connection still delivering
        requests[0].left -= 1
        if requests[0].left <= 0 { requests.removeFirst() }
    }

    /// A status (408 expired, 409) ended the oldest request.
    mutating func ended() {
        if !requests.isEmpty { requests.removeFirst() }
    }

    mutating func reset() { requests.removeAll() }

    /// Requests are open and nothing (a message or a heartbeat) came for two heartbeats, counted from the last
    /// activity or from the oldest open request, whichever is later: a request just sent has not been silent yet.
    func isSilent(now: Int64, lastActivity: Int64) -> Bool {
        guard let since = quietSince(lastActivity: lastActivity) else { return false }
        return now - since > 2 * heartbeatNanos
    }

    private func quietSince(lastActivity: Int64) -> Int64? {
        guard let oldest = requests.map(\.sentAt).min() else { return nil }
        return max(lastActivity, oldest)
    }

    /// When to look again if nothing arrives: the silence check, or the first expiry; a while when nothing is open.
    func nextCheck(lastActivity: Int64) -> Int64 {
        guard let since = quietSince(lastActivity: lastActivity), let first = requests.map(\.expiresAt).min() else {
            return lastActivity + 2 * heartbeatNanos + 1
        }
        return min(first + heartbeatNanos, since + 2 * heartbeatNanos + 1)
    }
}

/// What one pull did.
public struct PullReport: Sendable, Equatable {
    public var fetched = 0, enqueued = 0, duplicates = 0, acked = 0, naked = 0
    public init() {}
}

/// Moves messages of a JetStream pull consumer into the local spool: each message becomes an item under its key,
/// payload byte for byte, and is acknowledged only after the enqueue is durable (accepted, or already there);
/// a local failure (a full disk) is a `-NAK` with a delay, never an ack. Several pullers on one durable share the
/// work; within one spool a key is stored once, so redeliveries are duplicates, and acked.
public final class JetStreamPuller: Sendable {
    public let configuration: JetStreamPullConfiguration
    let connection: NATSConnection
    let spool: Spool
    let log: @Sendable (String) -> Void
    private struct State {
        var totals = PullReport()
        var flow: PullFlow
        var inbox: NATSSubscription?
        /// The consumer is to be looked up (and created when asked) before the next requests: at the start, and
        /// after the server said it is gone.
        var consumerUnchecked = true
        var consumerFound = false
        /// Whether the connected server still reaches the consumer (see `StrandedServer`).
        var stranded = StrandedServer()
    }
    /// Stepped by one thread; the lock is for the totals and `hasFoundConsumer`, read from others.
    private let state: Mutex<State>
    /// The consumer was found (or created) at least once: a later "not found" is an outage, not a mistake.
    public var hasFoundConsumer: Bool { state.withLock { $0.consumerFound } }

    public init(connection: NATSConnection, spool: Spool, configuration: JetStreamPullConfiguration, log: @escaping @Sendable (String) -> Void) {
        self.connection = connection
        self.spool = spool
        self.configuration = configuration
        self.log = log
        self.state = Mutex(State(flow: PullFlow(batch: configuration.batch, expiresNanos: configuration.expiresNanos,
                                                heartbeatNanos: configuration.heartbeatNanos)))
    }

    public var total: PullReport { state.withLock { $0.totals } }

    /// Checks that the durable consumer exists, creating it when asked.
    public func ensureConsumer() throws(BridgeError) {
        let c = configuration
        let info = try connection.request(subject: "$JS.API.CONSUMER.INFO.\(c.stream).\(c.durable)", headers: nil, payload: [],
                                          timeoutNanos: c.timeoutNanos)
        switch try JetStreamAPI.reply(info, what: "consumer info") {
        case .ok: return
        case let .error(code, errCode, text):
            guard code == 404, c.createConsumer else {
                let message = "consumer \(c.durable) on stream \(c.stream): JetStream error \(code)/\(errCode): \(text)"
                if code == 404 { throw BridgeError(.notFound, message + "; create it or pass --create-consumer") }
                throw JetStreamAPI.apiError(code: code, errCode: errCode, message: message)
            }
        }
        var config = ["\"durable_name\":\(JSONText.quote(c.durable))", "\"ack_policy\":\"explicit\"", "\"deliver_policy\":\"all\"",
                      "\"ack_wait\":\(c.ackWaitNanos)", "\"max_ack_pending\":\(c.maxAckPending)"]
        if let f = c.filterSubject { config.append("\"filter_subject\":\(JSONText.quote(f))") }
        let body = Array("{\"stream_name\":\(JSONText.quote(c.stream)),\"config\":{\(config.joined(separator: ","))}}".utf8)
        let created = try connection.request(subject: "$JS.API.CONSUMER.DURABLE.CREATE.\(c.stream).\(c.durable)", headers: nil,
                                             payload: body, timeoutNanos: c.timeoutNanos)
        _ = try JetStreamAPI.json(created, what: "consumer create reply")
        log("nats: created durable consumer \(c.durable) on stream \(c.stream)")
    }

    /// One turn: keep requests open on the server, wait (at most until the next check, or until `stop` is
    /// readable) for what they deliver, make every message that came durable in one group commit, then ack each.
    public func step(stop: FileDescriptor) throws(BridgeError) -> PullReport {
        do throws(BridgeError) { return try turn(stop: stop) } catch {
            if error.isNoAnswerFromJetStream { noteJetStream(answered: false) }
            throw error
        }
    }

    /// A turn in which JetStream answered (a message, a heartbeat, a status) or did not (silence, no responders,
    /// a timed-out API request): a server cut off from its cluster is left for another (`StrandedServer`).
    private func noteJetStream(answered: Bool) {
        let leave = state.withLock { st -> Bool in
            if answered { st.stranded.answered(); return false }
            return st.stranded.unanswered(now: monotonicNanos())
        }
        if leave {
            state.withLock { $0.flow.reset(); $0.consumerUnchecked = true }
            connection.leaveServer(reason: "no answer from JetStream (no responders, silence or timeouts) to several rounds of pull requests")
        }
    }

    private func turn(stop: FileDescriptor) throws(BridgeError) -> PullReport {
        let sub = try subscription()
        if state.withLock({ $0.consumerUnchecked }) {
            try ensureConsumer()
            state.withLock { $0.consumerUnchecked = false; $0.consumerFound = true }
        }
        let now = monotonicNanos()
        var wakeAt = now + 1_000_000_000
        if sub.isReady {
            try sendRequests(sub, now: now)
            let lastActivity = sub.lastActivityNanos
            wakeAt = state.withLock { $0.flow.nextCheck(lastActivity: lastActivity) }
        }
        let ms = max(0, min(Int64(Int32.max), (wakeAt - monotonicNanos() + 999_999) / 1_000_000))
        _ = try? pollReadable([sub.fd, stop], timeoutMillis: Int32(ms))
        return try store(sub)
    }

    /// After a stop: ends the subscription (the server drops the open requests), then stores and acks what had
    /// already arrived. A message the server sent after the UNSUB crossed it is redelivered after the ack wait.
    public func finish() -> PullReport {
        guard let sub = state.withLock({ st in defer { st.inbox = nil }; return st.inbox }) else { return PullReport() }
        connection.unsubscribe(sub)
        return (try? store(sub)) ?? PullReport()
    }

    private func subscription() throws(BridgeError) -> NATSSubscription {
        if let sub = state.withLock({ $0.inbox }) { return sub }
        let sub = try connection.subscribe(limit: 4 * configuration.batch + 64)
        state.withLock { $0.inbox = sub }
        return sub
    }

    /// Asks for more when fewer than a batch are outstanding; first forgets requests of an earlier connection,
    /// and requests after a silence of two heartbeats.
    private func sendRequests(_ sub: NATSSubscription, now: Int64) throws(BridgeError) {
        let c = configuration
        let epoch = sub.epoch
        let lastActivity = sub.lastActivityNanos
        let (count, silent) = state.withLock { st -> (Int?, Bool) in
            if st.flow.epoch != epoch { st.flow.reset(); st.flow.epoch = epoch }
            let silent = st.flow.isSilent(now: now, lastActivity: lastActivity)
            if silent { st.flow.reset() }
            return (st.flow.nextRequest(now: now), silent)
        }
        if silent {
            log("nats: no message or heartbeat on the pull requests for \(2 * c.heartbeatNanos / 1_000_000_000)s; asking again")
            noteJetStream(answered: false)
        }
        guard let count else { return }
        let body = "{\"batch\":\(count),\"expires\":\(c.expiresNanos),\"idle_heartbeat\":\(c.heartbeatNanos)}"
        do throws(BridgeError) {
            try connection.publish(subject: "$JS.API.CONSUMER.MSG.NEXT.\(c.stream).\(c.durable)", replyTo: sub.subject, payload: Array(body.utf8))
        } catch {
            state.withLock { $0.flow.reset() }
            throw error
        }
    }

    /// Stores what arrived: stream messages durably in one group commit, then one write of acks; status messages
    /// end requests (408 expired, 409 for reasons such as a leader change), or say the consumer is gone.
    private func store(_ sub: NATSSubscription) throws(BridgeError) -> PullReport {
        let c = configuration
        let (messages, dropped) = sub.take(max: 4 * c.batch + 64)
        if dropped > 0 { log("nats: \(dropped) messages beyond what was asked for were dropped (they are delivered again)") }
        var report = PullReport()
        var requests: [EnqueueRequest] = []
        var replies: [String] = []
        var consumerGone: String? = nil
        var noResponders = false
        /// What the messages did to the open requests, in order (true: delivered one; false: ended one), applied
        /// under one lock.
        var effects: [Bool] = []
        for m in messages {
            if let status = m.headers?.status {
                if status == 100 { continue }  // a heartbeat: the requests are alive
                effects.append(false)
                // Nobody on this server's side of the cluster serves the consumer (its stream's servers are gone,
                // or this server is cut off from them): asking again at once would loop.
                if status == 503 { noResponders = true; continue }
                let text = m.headers?.statusDescription ?? ""
                if status == 409 && (text.lowercased().contains("deleted") || text.lowercased().contains("push based")) {
                    consumerGone = "\(status) \(logSafe(text, maxScalars: 120))"
                }
                continue
            }
            guard let reply = m.replyTo, reply.hasPrefix("$JS.ACK.") else { continue }  // not a stream message: nothing to ack
            effects.append(true)
            report.fetched += 1
            requests.append(JetStreamPuller.request(for: m, stream: c.stream))
            replies.append(reply)
        }
        if !effects.isEmpty {
            state.withLock { st in for delivered in effects { if delivered { st.flow.delivered() } else { st.flow.ended() } } }
        }
        if messages.contains(where: { $0.headers?.status != 503 }) { noteJetStream(answered: true) }
        if !requests.isEmpty {
            // The batch is durable when enqueueBatch returns; its acks then go out in one write.
            var answers: [(subject: String, payload: [UInt8])] = []
            for (reply, result) in zip(replies, spool.enqueueBatch(requests)) {
                switch result {
                case .success(let outcome):
                    if outcome == .accepted { report.enqueued += 1 } else { report.duplicates += 1 }
                    answers.append((reply, Array("+ACK".utf8)))
                    report.acked += 1
                case .failure(let e):
                    // Not stored: the server must deliver it again later, here or to another puller.
                    log("nats: cannot store a message (\(e)); asking for redelivery in 5s")
                    answers.append((reply, Array("-NAK {\"delay\":5000000000}".utf8)))
                    report.naked += 1
                }
            }
            do throws(BridgeError) { try connection.publish(answers) } catch {
                // Stored but not acked: the server delivers them again after the ack wait, and they are duplicates.
                report.acked = 0
                report.naked = 0
                add(report)
                throw error
            }
        }
        add(report)
        if let consumerGone {
            state.withLock { $0.flow.reset(); $0.consumerUnchecked = true }
            throw BridgeError(.serverError, "the server ended the pull requests: \(consumerGone)")
        }
        if noResponders {
            throw BridgeError(.unavailable, "no responders for the pull requests: nothing reachable from \(connection.url) serves consumer \(c.durable) of stream \(c.stream)",
                              status: "no responders")
        }
        return report
    }

    private func add(_ report: PullReport) {
        state.withLock { st in
            st.totals.fetched += report.fetched; st.totals.enqueued += report.enqueued; st.totals.duplicates += report.duplicates
            st.totals.acked += report.acked; st.totals.naked += report.naked
        }
    }

    /// The item for one message: key from `Spool-Key`, else from `Nats-Msg-Id` (a spool file name), else
    /// `js-<stream>-<stream sequence>`; payload byte for byte; `Content-Type` and `Spool-Received-At` kept.
    static func request(for m: NATSMessage, stream: String) -> EnqueueRequest {
        let h = m.headers?.fields
        var key: SpoolKey? = nil
        if let k = h?["spool-key"] { key = try? SpoolKey(k) }
        if key == nil, let id = h?["nats-msg-id"] { key = SpoolKey(fileName: id) ?? (try? SpoolKey(id)) }
        if key == nil {
            let seq = m.replyTo.flatMap(streamSequence) ?? 0
            key = try? SpoolKey("js-\(stream)-\(seq)")
        }
        var headers: [(String, String)] = []
        if let ct = h?["content-type"] { headers.append(("content-type", ct)) }
        if let at = h?["spool-received-at"] { headers.append(("spool-received-at", at)) }
        // `js-…` keys are always valid; the force is on a name we built.
        return EnqueueRequest(key: key!, payload: m.payload, headers: headers, source: .pull)
    }

    /// The stream sequence in a JetStream ack subject: `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.…` (9
    /// tokens), or with a domain and account hash in front (12 tokens and more).
    static func streamSequence(_ ackSubject: String) -> UInt64? {
        let t = ackSubject.split(separator: ".", omittingEmptySubsequences: false)
        guard t.count >= 9, t[0] == "$JS", t[1] == "ACK" else { return nil }
        let index = t.count == 9 ? 5 : 7
        return Digits.decimal(t[index].utf8, max: Int.max).map { UInt64($0) }
    }
}
