import SpoolWire
/// A host and port from a URL, plus the path for HTTP; parsed strictly because it comes from the command line
/// and ends up in request lines and Host headers.
public struct Endpoint: Sendable, Equatable {
    public var host: String
    public var port: UInt16
    /// `/path?query` for HTTP (never empty); "" for NATS.
    public var target: String

    /// `host:port` as it goes into a Host header (IPv6 in brackets; the port left out when it is the default).
    public func authority(defaultPort: UInt16) -> String {
        let h = host.contains(":") ? "[\(host)]" : host
        return port == defaultPort ? h : "\(h):\(port)"
    }

    /// `nats://HOST[:PORT]` (default port 4222). Credentials go in flags, not in the URL, so they are not logged.
    public static func nats(_ url: String) throws(BridgeError) -> Endpoint {
        let lower = url.lowercased()
        if lower.hasPrefix("tls://") { throw BridgeError(.configuration, "tls:// is not supported yet; use nats://") }
        guard lower.hasPrefix("nats://") else { throw BridgeError(.configuration, "the NATS URL must start with nats:// (got '\(url)')") }
        let rest = String(url.dropFirst("nats://".count))
        let (host, port) = try hostPort(rest, defaultPort: 4222, url: url)
        return Endpoint(host: host, port: port, target: "")
    }

    /// `http://HOST[:PORT][/PATH][?QUERY]`; `https://` is refused with a clear message (not supported yet).
    public static func http(_ url: String) throws(BridgeError) -> Endpoint {
        let lower = url.lowercased()
        if lower.hasPrefix("https://") {
            throw BridgeError(.configuration, "https:// is not supported yet; use http:// (for example to a local TLS-terminating proxy)")
        }
        guard lower.hasPrefix("http://") else { throw BridgeError(.configuration, "the URL must start with http:// (got '\(url)')") }
        var rest = Substring(url.dropFirst("http://".count))
        if let hash = rest.firstIndex(of: "#") { rest = rest[..<hash] }
        let cut = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) ?? rest.endIndex
        let authority = String(rest[..<cut])
        var target = String(rest[cut...])
        if target.isEmpty { target = "/" } else if target.hasPrefix("?") { target = "/" + target }
        // Only visible ASCII in the request target: no spaces, no control bytes (request smuggling), no raw UTF-8.
        guard target.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw BridgeError(.configuration, "the URL path must be visible ASCII without spaces (percent-encode the rest)")
        }
        let (host, port) = try hostPort(authority, defaultPort: 80, url: url)
        return Endpoint(host: host, port: port, target: target)
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
