import SpoolCore
import SpoolWire

/// A positive JetStream publish acknowledgement: the message is stored (or was already, within the window).
public struct JetStreamAck: Sendable, Equatable {
    public var stream: String
    public var sequence: Int64
    /// True when the server recognised the Nats-Msg-Id inside its duplicate window and stored nothing new.
    public var duplicate: Bool
}

/// Reading replies of the JetStream API strictly: a reply is an acknowledgement only when it says so in the
/// expected shape; everything else (no responders, API errors, odd JSON) is an error that says why.
public enum JetStreamAPI {
    /// `err_code` of "stream not found".
    public static let streamNotFound: Int64 = 10059
    /// `err_code`s no retry can fix: the message is larger than the stream accepts.
    static let permanentErrorCodes: Set<Int64> = [10054]
    /// `err_code`s of a server that reaches no working JetStream: "JetStream system temporarily unavailable"
    /// (no meta leader) and "JetStream cluster can not handle request" (not the leader, none known). A server on
    /// the minority side of a partition answers these quickly to every API request.
    static let unavailableErrorCodes: Set<Int64> = [10008, 10009]

    /// The publish acknowledgement in `reply`, or the error it carries.
    public static func ack(_ reply: NATSMessage) throws(BridgeError) -> JetStreamAck {
        let v = try json(reply, what: "publish acknowledgement")
        guard let stream = v["stream"]?.stringValue, !stream.isEmpty else {
            throw BridgeError(.protocolViolation, "publish acknowledgement without a stream name")
        }
        guard let seq = v["seq"]?.intValue, seq >= 1 else { throw BridgeError(.protocolViolation, "publish acknowledgement without a valid seq") }
        var duplicate = false
        if let d = v["duplicate"] {
            guard let b = d.boolValue else { throw BridgeError(.protocolViolation, "publish acknowledgement with a non-boolean duplicate") }
            duplicate = b
        }
        return JetStreamAck(stream: stream, sequence: seq, duplicate: duplicate)
    }

    /// An API reply: its JSON object, or the `error` member it carries.
    public enum Reply: Sendable, Equatable {
        case ok(JSONValue)
        case error(code: Int64, errCode: Int64, description: String)
    }

    /// Parses an API reply; a status reply (503 no responders) or a non-object is an error.
    public static func reply(_ reply: NATSMessage, what: String) throws(BridgeError) -> Reply {
        if let status = reply.headers?.status {
            if status == 503 {
                throw BridgeError(.unavailable, "no responders: no JetStream stream listens on this subject (or JetStream is not enabled)",
                                  status: "no responders")
            }
            let d = reply.headers?.statusDescription ?? ""
            throw BridgeError(.serverError, "NATS status \(status)\(d.isEmpty ? "" : " " + logSafe(d, maxScalars: 512)) instead of a \(what)", status: "nats \(status)")
        }
        let v: JSONValue
        do { v = try JSONParser.parse(reply.payload, maxDepth: 16) } catch {
            throw BridgeError(.protocolViolation, "\(what) is not JSON: \(error)")
        }
        guard case .object = v else { throw BridgeError(.protocolViolation, "\(what) is not a JSON object") }
        if let e = v["error"] {
            return .error(code: e["code"]?.intValue ?? 0, errCode: e["err_code"]?.intValue ?? 0,
                          description: logSafe(e["description"]?.stringValue ?? "unknown error", maxScalars: 512))
        }
        return .ok(v)
    }

    /// The JSON object of a successful API reply; an API error becomes a `BridgeError` (permanent for the few
    /// codes no retry can fix).
    public static func json(_ r: NATSMessage, what: String) throws(BridgeError) -> JSONValue {
        switch try reply(r, what: what) {
        case .ok(let v): return v
        case let .error(code, errCode, text):
            let message = "JetStream error \(code)/\(errCode): \(text)"
            throw apiError(code: code, errCode: errCode, message: message)
        }
    }

    /// The error for a JetStream API error reply: permanent for the few codes no retry can fix, `unavailable`
    /// when no leader is reachable from this server, else a server error (a full stream's 503 is JetStream
    /// answering, not JetStream missing).
    static func apiError(code: Int64, errCode: Int64, message: String) -> BridgeError {
        if permanentErrorCodes.contains(errCode) { return BridgeError(.rejected, message, status: "jetstream \(errCode)") }
        return BridgeError(unavailableErrorCodes.contains(errCode) ? .unavailable : .serverError, message, status: "jetstream \(errCode)")
    }

    /// The stream's message count from a `$JS.API.STREAM.INFO.<name>` reply.
    public static func streamMessages(_ reply: NATSMessage) throws(BridgeError) -> Int64 {
        let v = try json(reply, what: "stream info")
        guard let n = v["state"]?["messages"]?.intValue, n >= 0 else { throw BridgeError(.protocolViolation, "stream info without state.messages") }
        return n
    }

    /// The body of `$JS.API.STREAM.CREATE.<name>`: file storage, one subject, an explicit duplicate window.
    public static func createStreamRequest(name: String, subject: String, duplicateWindowNanos: Int64) -> [UInt8] {
        Array("{\"name\":\(JSONWriter.quote(name)),\"subjects\":[\(JSONWriter.quote(subject))],\"storage\":\"file\",\"retention\":\"limits\",\"duplicate_window\":\(duplicateWindowNanos)}".utf8)
    }

    /// Stream names: what the server accepts in an API subject (no dots, wildcards, spaces or separators).
    public static func isValidStreamName(_ s: String) -> Bool {
        let u = Array(s.utf8)
        return !u.isEmpty && u.count <= 255 && u.allSatisfy { $0 > 0x20 && $0 < 0x7F && $0 != 0x2E && $0 != 0x2A && $0 != 0x3E && $0 != 0x2F && $0 != 0x5C }
    }
}

