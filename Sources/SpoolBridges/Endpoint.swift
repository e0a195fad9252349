import SpoolWire
/// A host and port from a URL, plus the path for HTTP; parsed strictly because it comes from the command line
/// and ends up in request lines and Host headers.
public struct Endpoint: Sendable, Equatable {
    public var host: String
    public var port: UInt16
    /// `/path?query` for HTTP (never empty); "" for NATS.
    public var target: String
    /// TLS from the start (`https://`, `tls://`); a NATS server may still ask for it on a `nats://` URL.
    public var secure: Bool
    /// The scheme's port (80, 443, 4222), left out of the Host header when it is the one used.
    public var defaultPort: UInt16

    public init(host: String, port: UInt16, target: String = "", secure: Bool = false, defaultPort: UInt16) {
        self.host = host
        self.port = port
        self.target = target
        self.secure = secure
        self.defaultPort = defaultPort
    }

    /// `host:port` as it goes into a Host header (IPv6 in brackets; the port left out when it is the default).
    public var authority: String {
        let h = host.contains(":") ? "[\(host)]" : host
        return port == defaultPort ? h : "\(h):\(port)"
    }

    /// The endpoint as a URL for log lines (never with credentials: they are not accepted in URLs).
    public var natsURL: String { "\(secure ? "tls" : "nats")://\(host.contains(":") ? "[\(host)]" : host):\(port)" }

    /// `nats://HOST[:PORT]` or `tls://HOST[:PORT]` (default port 4222). Credentials go in flags, not in the URL,
    /// so they are not logged.
    public static func nats(_ url: String) throws(BridgeError) -> Endpoint {
        let lower = url.lowercased()
        let secure = lower.hasPrefix("tls://")
        guard secure || lower.hasPrefix("nats://") else {
            throw BridgeError(.configuration, "the NATS URL must start with nats:// or tls:// (got '\(url)')")
        }
        let rest = String(url.dropFirst(secure ? "tls://".count : "nats://".count))
        let (host, port) = try hostPort(rest, defaultPort: 4222, url: url)
        return Endpoint(host: host, port: port, secure: secure, defaultPort: 4222)
    }

    /// `http://` or `https://HOST[:PORT][/PATH][?QUERY]`.
    public static func http(_ url: String) throws(BridgeError) -> Endpoint {
        let lower = url.lowercased()
        let secure = lower.hasPrefix("https://")
        guard secure || lower.hasPrefix("http://") else {
            throw BridgeError(.configuration, "the URL must start with http:// or https:// (got '\(url)')")
        }
        let defaultPort: UInt16 = secure ? 443 : 80
        var rest = Substring(url.dropFirst(secure ? "https://".count : "http://".count))
        if let hash = rest.firstIndex(of: "#") { rest = rest[..<hash] }
        let cut = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) ?? rest.endIndex
        let authority = String(rest[..<cut])
        var target = String(rest[cut...])
        if target.isEmpty { target = "/" } else if target.hasPrefix("?") { target = "/" + target }
        // Only visible ASCII in the request target: no spaces, no control bytes (request smuggling), no raw UTF-8.
        guard target.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw BridgeError(.configuration, "the URL path must be visible ASCII without spaces (percent-encode the rest)")
        }
        let (host, port) = try hostPort(authority, defaultPort: defaultPort, url: url)
        return Endpoint(host: host, port: port, target: target, secure: secure, defaultPort: defaultPort)
    }

    private static func hostPort(_ s: String, defaultPort: UInt16, url: String) throws(BridgeError) -> (String, UInt16) {
        guard !s.contains("@") else { throw BridgeError(.configuration, "credentials in the URL are not supported; use the flags") }
        var host = s
        var portText: Substring? = nil
        if s.hasPrefix("[") {
            guard let close = s.firstIndex(of: "]") else { throw BridgeError(.configuration, "bad IPv6 address in '\(url)'") }
            host = String(s[s.index(after: s.startIndex)..<close])
            let after = s[s.index(after: close)...]
            if !after.isEmpty {
                guard after.first == ":" else { throw BridgeError(.configuration, "bad address in '\(url)'") }
                portText = after.dropFirst()
            }
        } else if let colon = s.lastIndex(of: ":") {
            host = String(s[..<colon])
            portText = s[s.index(after: colon)...]
        }
        guard !host.isEmpty, host.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x2E || $0 == 0x2D || $0 == 0x3A || $0 == 0x5F }) else {
            throw BridgeError(.configuration, "bad host in '\(url)'")
        }
        var port = defaultPort
        if let portText {
            guard let p = Digits.decimal(portText.utf8, max: 65535), p > 0 else { throw BridgeError(.configuration, "bad port in '\(url)'") }
            port = UInt16(p)
        }
        return (host, port)
    }
}
