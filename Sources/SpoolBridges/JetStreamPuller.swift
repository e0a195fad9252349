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
    /// How long one pull request waits on the server for messages.
    public var expiresNanos: Int64 = 5_000_000_000
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
    private let totals = Mutex(PullReport())

    public init(connection: NATSConnection, spool: Spool, configuration: JetStreamPullConfiguration, log: @escaping @Sendable (String) -> Void) {
        self.connection = connection
        self.spool = spool
        self.configuration = configuration
        self.log = log
    }

    public var total: PullReport { totals.withLock { $0 } }

    /// Checks that the durable consumer exists, creating it when asked.
    public func ensureConsumer() throws(BridgeError) {
        let c = configuration
        let info = try connection.request(subject: "$JS.API.CONSUMER.INFO.\(c.stream).\(c.durable)", headers: nil, payload: [],
                                          timeoutNanos: c.timeoutNanos)
        switch try JetStreamAPI.reply(info, what: "consumer info") {
        case .ok: return
        case let .error(code, errCode, text):
            guard code == 404, c.createConsumer else {
                throw BridgeError(.serverError, "consumer \(c.durable) on stream \(c.stream): JetStream error \(code)/\(errCode): \(text)"
                                  + (code == 404 ? "; create it or pass --create-consumer" : ""))
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

    /// One pull request: fetch up to `batch` messages, make them durable in one group commit, then ack each.
    public func pullOnce() throws(BridgeError) -> PullReport {
        let c = configuration
        // What is there now, without waiting (`no_wait`: the server answers 404 after the last one); when nothing
        // is, a long poll for one message, then at once the rest of a batch. A request for a whole batch that
        // waits would hold the first messages of a small burst until it expires.
        var messages = try fetch(c.batch, wait: false)
        if messages.isEmpty {
            messages = try fetch(1, wait: true)
            if !messages.isEmpty && c.batch > 1 { messages += try fetch(c.batch - 1, wait: false) }
        }
        var report = PullReport()
        var requests: [EnqueueRequest] = []
        var replies: [String] = []
        for m in messages {
            guard let reply = m.replyTo, reply.hasPrefix("$JS.ACK.") else { continue }  // not a stream message: nothing to ack
            report.fetched += 1
            requests.append(JetStreamPuller.request(for: m, stream: c.stream))
            replies.append(reply)
        }
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
            try connection.publish(answers)
        }
        totals.withLock { t in
            t.fetched += report.fetched; t.enqueued += report.enqueued; t.duplicates += report.duplicates
            t.acked += report.acked; t.naked += report.naked
        }
        return report
    }

    /// One pull request: `count` messages, waiting up to `expiresNanos` for them, or only for what is there now.
    private func fetch(_ count: Int, wait: Bool) throws(BridgeError) -> [NATSMessage] {
        let c = configuration
        let body = wait ? "{\"batch\":\(count),\"expires\":\(c.expiresNanos)}" : "{\"batch\":\(count),\"no_wait\":true}"
        let deadline = monotonicNanos() + (wait ? c.expiresNanos : 0) + c.timeoutNanos
        return try connection.collect(subject: "$JS.API.CONSUMER.MSG.NEXT.\(c.stream).\(c.durable)", payload: Array(body.utf8),
                                      maxMessages: count, deadline: deadline).filter { $0.replyTo?.hasPrefix("$JS.ACK.") == true }
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
        return EnqueueRequest(key: key!, payload: m.payload, headers: headers, source: "pull")
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
