import SpoolCore
import SpoolWire

/// The fields of the server's INFO we act on, read strictly from its JSON (a wrong type is an error, not a default).
public struct NATSServerInfo: Sendable, Equatable {
    public var serverID = ""
    public var version = ""
    /// The server understands HPUB/HMSG; required (message ids travel in headers).
    public var headers = false
    /// Largest message (headers + payload) the server accepts.
    public var maxPayload = 1 << 20
    public var authRequired = false
    public var tlsRequired = false
    public var jetStream = false
    /// Lame-duck mode: the server is about to shut down; reconnect soon.
    public var lameDuck = false
    /// What an NKEY or JWT client must sign (present only when the server asks for it).
    public var nonce: String?
    /// Other servers of the cluster clients may use, as `host:port` (discovery).
    public var connectURLs: [String] = []

    public init() {}

    public static func parse(_ json: ArraySlice<UInt8>) throws(NATSProtocolError) -> NATSServerInfo {
        let v: JSONValue
        do { v = try JSONParser.parse(Array(json)) } catch { throw NATSProtocolError("INFO is not JSON: \(error)") }
        guard case .object = v else { throw NATSProtocolError("INFO is not a JSON object") }
        var info = NATSServerInfo()
        func str(_ n: String) throws(NATSProtocolError) -> String? {
            guard let m = v[n] else { return nil }
            guard let s = m.stringValue else { throw NATSProtocolError("INFO \(n) is not a string") }
            return s
        }
        func bool(_ n: String) throws(NATSProtocolError) -> Bool? {
            guard let m = v[n] else { return nil }
            guard let b = m.boolValue else { throw NATSProtocolError("INFO \(n) is not a boolean") }
            return b
        }
        info.serverID = try str("server_id") ?? ""
        info.version = try str("version") ?? ""
        info.headers = try bool("headers") ?? false
        info.authRequired = try bool("auth_required") ?? false
        info.tlsRequired = try bool("tls_required") ?? false
        info.jetStream = try bool("jetstream") ?? false
        info.lameDuck = try bool("ldm") ?? false
        info.nonce = try str("nonce")
        if let nonce = info.nonce, nonce.utf8.count > 256 || !nonce.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) {
            throw NATSProtocolError("INFO nonce is not short visible ASCII")
        }
        if let m = v["connect_urls"] {
            guard case .array(let items) = m, items.count <= 64 else { throw NATSProtocolError("INFO connect_urls is not an array of at most 64") }
            for item in items {
                guard let u = item.stringValue, !u.isEmpty, u.utf8.count <= 300 else { throw NATSProtocolError("INFO connect_urls holds a non-string") }
                info.connectURLs.append(u)
            }
        }
        if let m = v["max_payload"] {
            guard let n = m.intValue, n > 0, n <= 1 << 30 else { throw NATSProtocolError("INFO max_payload is not a positive integer") }
            info.maxPayload = Int(n)
        }
        return info
    }
}
