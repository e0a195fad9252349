import SpoolSystem

/// `serve --trusted-proxy CIDR`: the peers whose `X-Forwarded-For` the access log believes. The client is the
/// right-most address of the chain (socket peer first, then the header's entries from the right) that is not a
/// trusted proxy; a peer outside every range is the client whatever its header says, so nobody else can
/// put an address of their choosing into the log.
public struct TrustedProxies: Sendable, Equatable {
    struct Range: Sendable, Equatable {
        let bytes: [UInt8]
        let bits: Int
        func contains(_ a: [UInt8]) -> Bool {
            guard a.count == bytes.count else { return false }
            var left = bits
            for i in 0..<a.count where left > 0 {
                let n = min(8, left)
                let mask: UInt8 = n == 8 ? 0xFF : ~(0xFF >> UInt8(n))
                if a[i] & mask != bytes[i] & mask { return false }
                left -= n
            }
            return true
        }
    }
    let ranges: [Range]

    public static let none = TrustedProxies(ranges: [])

    init(ranges: [Range]) { self.ranges = ranges }

    /// `10.0.0.0/8`, `192.168.1.7` (a /32), `fd00::/8`, `::1`; nil for anything else (a host name, a prefix
    /// longer than the address, bits set beyond the prefix are allowed and ignored).
    public init?(_ cidrs: [String]) {
        var out: [Range] = []
        for c in cidrs {
            let parts = c.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count <= 2, let bytes = TrustedProxies.address(String(parts[0])) else { return nil }
            var bits = bytes.count * 8
            if parts.count == 2 {
                guard !parts[1].isEmpty, parts[1].count <= 3, parts[1].allSatisfy({ $0.isASCII && $0.isNumber }),
                      let n = Int(parts[1]), n <= bits else { return nil }
                bits = n
            }
            out.append(Range(bytes: bytes, bits: bits))
        }
        ranges = out
    }

    /// The address bytes of a numeric IPv4 or IPv6 address (an IPv4-mapped IPv6 address as IPv4).
    static func address(_ s: String) -> [UInt8]? {
        guard !s.isEmpty, s.utf8.count <= 64, s != "localhost" else { return nil }
        switch Socket.Address(host: s, port: 0) {
        case .v4(let a, _)?: return withUnsafeBytes(of: a) { Array($0) }
        case .v6(let b, _)?:
            if b.prefix(10).allSatisfy({ $0 == 0 }) && b[10] == 0xFF && b[11] == 0xFF { return Array(b.suffix(4)) }
            return b
        case nil: return nil
        }
    }

    func trusted(_ a: [UInt8]) -> Bool { ranges.contains { $0.contains(a) } }

    /// The host part of a socket peer as the server writes it: `1.2.3.4:5678` or `[::1]:5678`.
    static func host(ofPeer peer: String) -> String {
        if peer.hasPrefix("["), let close = peer.firstIndex(of: "]") { return String(peer[peer.index(after: peer.startIndex)..<close]) }
        if let colon = peer.lastIndex(of: ":") { return String(peer[..<colon]) }
        return peer
    }

    /// The client of a request from `peer` with these `X-Forwarded-For` field values (in order); nil when the peer
    /// is the client (no range trusts it, or there is no header).
    public func client(peer: String, forwardedFor: [String]) -> String? {
        guard !ranges.isEmpty, !forwardedFor.isEmpty, let p = TrustedProxies.address(TrustedProxies.host(ofPeer: peer)), trusted(p) else { return nil }
        let hops = forwardedFor.joined(separator: ",").split(separator: ",").map { $0.trimmingCharacters(in: " \t") }
        var client: String? = nil
        for hop in hops.reversed() {
            // A hop that is not an address ends the walk: the last trusted proxy is the one that added it.
            guard let a = TrustedProxies.address(hop) else { break }
            client = hop
            if !trusted(a) { break }
        }
        return client
    }
}

private extension Substring {
    func trimmingCharacters(in set: String) -> String {
        var s = self[...]
        while let f = s.first, set.contains(f) { s = s.dropFirst() }
        while let l = s.last, set.contains(l) { s = s.dropLast() }
        return String(s)
    }
}
