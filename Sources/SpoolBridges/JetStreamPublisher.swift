import Synchronization
import SpoolConsumer
import SpoolCore
import SpoolSystem
import SpoolWire

/// What to publish where.
public struct JetStreamConfiguration: Sendable {
    public var subject: String
    /// The stream expected to store `subject`; checked (or created) before the first publish.
    public var stream: String?
    /// Create `stream` for `subject` when it does not exist.
    public var createStream = false
    /// The duplicate window of a stream we create: a key published twice within it is stored once.
    public var duplicateWindowNanos: Int64 = 120_000_000_000
    /// Per attempt: waiting for a connection, writing, and the acknowledgement.
    public var timeoutNanos: Int64 = 10_000_000_000

    public init(subject: String) { self.subject = subject }

    /// Refuses subjects and stream names the server would reject, before anything runs.
    public func validate() throws(BridgeError) {
        guard NATSCommand.isValidSubject(subject) else {
            throw BridgeError(.configuration, "'\(subject)' is not a NATS subject to publish to (dot-separated tokens, no wildcards or spaces)")
        }
        if let stream, !JetStreamAPI.isValidStreamName(stream) { throw BridgeError(.configuration, "'\(stream)' is not a valid stream name") }
        if createStream && stream == nil { throw BridgeError(.configuration, "creating a stream needs its name") }
    }
}

/// Publishes each item into a JetStream stream: the exact payload bytes to the subject, with `Nats-Msg-Id`
/// set from the key so JetStream's duplicate window stores a re-published item once, and `done/` only after
/// a positive publish acknowledgement. Every failure is a retry except a message the server can never take.
public final class JetStreamPublisher: ItemProcessor {
    public let configuration: JetStreamConfiguration
    let connection: NATSConnection
    /// Whether the stream was seen (or made); reset when JetStream is unavailable ("no responders", a 503) so a deleted stream is made again.
    private let streamReady = Mutex(false)
    private let ensureLock = Mutex(())
    /// Whether the connected server still reaches the stream (see `StrandedServer`).
    private let stranded = Mutex(StrandedServer())

    public init(connection: NATSConnection, configuration: JetStreamConfiguration) throws(BridgeError) {
        try configuration.validate()
        self.connection = connection
        self.configuration = configuration
    }

    /// The headers of one item. `Nats-Msg-Id` is the key's spool file name: the key itself for ordinary keys,
    /// `~hex` for the others, so any key is a safe, unique header value.
    public static func headers(for item: ClaimedItem) -> NATSHeaders {
        var fields = [("Nats-Msg-Id", item.key.fileName)]
        if HTTPField.isValid(name: "Spool-Key", value: item.key.value) { fields.append(("Spool-Key", item.key.value)) }
        fields.append(("Spool-Received-At", RFC3339.format(nanos: item.meta.receivedAtNanos)))
        if let ct = item.meta.header("content-type"), HTTPField.isValid(name: "Content-Type", value: ct) {
            fields.append(("Content-Type", ct))
        }
        return NATSHeaders(fields: HTTPHeaders(fields))
    }

    /// While the connection is down: when it is next tried (nothing is claimed before), or shortly while a
    /// connection attempt is under way.
    public func unavailableUntil(now: Int64) -> Int64? {
        if connection.isConnected { return nil }
        return connection.nextReconnectAt ?? now + 100_000_000
    }

    public func process(_ item: ClaimedItem, cancellation: CancellationFlag) -> ProcessOutcome {
        process(batch: [item], cancellation: cancellation)[0]
    }

    /// Publishes pipeline: the consumer hands over several items at once (`Consumer.pipelineBatch`).
    public var pipelines: Bool { true }

    /// All items in one write, then every acknowledgement awaited together; each item's outcome is its own.
    public func process(batch items: [ClaimedItem], cancellation: CancellationFlag) -> [ProcessOutcome] {
        if cancellation.isCancelled { return items.map { _ in .released } }
        do throws(BridgeError) {
            // Wait out a short outage here, all attempts at once, rather than one by one behind the stream check.
            guard connection.waitUntilConnected(timeoutNanos: configuration.timeoutNanos) else {
                throw BridgeError(.connect, "not connected to \(connection.url): \(connection.lastError)")
            }
            try ensureStream()
            var outcomes = [ProcessOutcome?](repeating: nil, count: items.count)
            var requests: [NATSRequest] = []
            var sent: [Int] = []
            for (i, item) in items.enumerated() {
                do {
                    requests.append(NATSRequest(subject: configuration.subject, headers: JetStreamPublisher.headers(for: item),
                                                payload: try item.readPayload()))
                    sent.append(i)
                } catch {
                    outcomes[i] = BridgeError(.serverError, "cannot read the payload: \(error)", status: "read error").outcome
                }
            }
            let replies = try connection.requests(requests, timeoutNanos: configuration.timeoutNanos)
            for (i, reply) in zip(sent, replies) { outcomes[i] = outcome(reply) }
            noteRound(replies.map { r -> BridgeError? in if case .failure(let e) = r { return e }; return nil })
            return outcomes.map { $0! }
        } catch {
            if error.kind == .unavailable { streamReady.withLock { $0 = false } }
            noteRound([error])
            return items.map { _ in error.outcome }
        }
    }

    /// Leaves a server that is up but reaches no stream: a round in which every request got "no responders" or
    /// timed out counts against it, any answer from JetStream clears it (`StrandedServer`).
    private func noteRound(_ failures: [BridgeError?]) {
        guard !failures.isEmpty else { return }
        // JetStream answered when a publish was acknowledged or refused by it (an API error, a rejection).
        let answered = failures.contains { e in
            guard let e else { return true }
            return !e.isNoAnswerFromJetStream && (e.kind == .serverError || e.kind == .rejected)
        }
        let unanswered = failures.allSatisfy { $0?.isNoAnswerFromJetStream ?? false }
        let leave = stranded.withLock { st -> Bool in
            if answered { st.answered(); return false }
            return unanswered && st.unanswered(now: monotonicNanos())
        }
        if leave {
            streamReady.withLock { $0 = false }
            connection.leaveServer(reason: "no answer from JetStream (no responders or timeouts) in several rounds of publishes")
        }
    }

    /// The outcome of one publish from its reply: done with the stream sequence, or the error's retry or failure.
    private func outcome(_ reply: Result<NATSMessage, BridgeError>) -> ProcessOutcome {
        do throws(BridgeError) {
            let ack = try JetStreamAPI.ack(try reply.get())
            if let s = configuration.stream, ack.stream != s {
                // Stored, but not where the operator said: keep it (it is durable) and say so.
                return .done(status: "stored in stream \(ack.stream) (expected \(s)) seq \(ack.sequence)")
            }
            return .done(status: ack.duplicate ? "duplicate of seq \(ack.sequence)" : "seq \(ack.sequence)")
        } catch {
            if error.kind == .unavailable { streamReady.withLock { $0 = false } }
            return error.outcome
        }
    }

    /// The stream check of `consume --nats` at start (issue 25): a missing stream is said at once (`.notFound`, the
    /// CLI exits 1) instead of costing every item an attempt, and `--create-stream` creates it before any publish,
    /// so a `spool pull` started meanwhile finds it. Waits for the connection up to the publish timeout.
    public func checkAtStart() throws(BridgeError) {
        guard configuration.stream != nil else { return }
        guard connection.waitUntilConnected(timeoutNanos: configuration.timeoutNanos) else {
            throw BridgeError(.connect, "not connected to \(connection.url): \(connection.lastError)")
        }
        try ensureStream()
    }

    /// Checks the configured stream exists, creating it with `createStream`; once per process, again after
    /// "no responders".
    func ensureStream() throws(BridgeError) {
        guard let name = configuration.stream else { return }
        if streamReady.withLock({ $0 }) { return }
        try ensureLock.withLock { _ throws(BridgeError) in
            if streamReady.withLock({ $0 }) { return }
            let info = try connection.request(subject: "$JS.API.STREAM.INFO.\(name)", headers: nil, payload: [],
                                              timeoutNanos: configuration.timeoutNanos)
            switch try JetStreamAPI.reply(info, what: "stream info") {
            case .ok:
                break
            case let .error(_, errCode, text) where errCode == JetStreamAPI.streamNotFound:
                guard configuration.createStream else {
                    throw BridgeError(.notFound, "stream \(name) does not exist (\(text)); create it or pass --create-stream", status: "no stream")
                }
                let body = JetStreamAPI.createStreamRequest(name: name, subject: configuration.subject,
                                                            duplicateWindowNanos: configuration.duplicateWindowNanos)
                let created = try connection.request(subject: "$JS.API.STREAM.CREATE.\(name)", headers: nil, payload: body,
                                                     timeoutNanos: configuration.timeoutNanos)
                _ = try JetStreamAPI.json(created, what: "stream create reply")
                connection.log("nats: created stream \(name) for subject \(configuration.subject)")
            case let .error(code, errCode, text):
                throw JetStreamAPI.apiError(code: code, errCode: errCode, message: "stream info for \(name): JetStream error \(code)/\(errCode): \(text)")
            }
            streamReady.withLock { $0 = true }
        }
    }

    /// The number of messages in `stream` (`state.messages` of `$JS.API.STREAM.INFO`), for tests and tools.
    public static func streamMessageCount(_ connection: NATSConnection, stream: String, timeoutNanos: Int64 = 5_000_000_000) throws(BridgeError) -> Int64 {
        let r = try connection.request(subject: "$JS.API.STREAM.INFO.\(stream)", headers: nil, payload: [], timeoutNanos: timeoutNanos)
        return try JetStreamAPI.streamMessages(r)
    }
}
