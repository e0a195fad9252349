/// HMAC-SHA256 (RFC 2104) over our own `SHA256` (see there for why not libcrypto), held to RFC 4231's test
/// cases 1 to 7 in `SpoolSignaturesTests`.
///
/// A value holds the two hash states after the padded key has been absorbed (key XOR ipad, key XOR opad), so
/// each message costs its own blocks plus one outer block, not two more for the key: the ingress keeps one per
/// secret for the life of the process.
public struct HMACSHA256: Sendable {
    public static let byteCount = SHA256.byteCount
    private let inner: SHA256
    private let outer: SHA256

    /// Any key length: longer than a block it is hashed first, shorter it is padded with zeros (RFC 2104 2).
    public init(key: [UInt8]) {
        var k = key.count > SHA256.blockSize ? SHA256.hash(key) : key
        k += [UInt8](repeating: 0, count: SHA256.blockSize - k.count)
        var i = SHA256(), o = SHA256()
        i.update(k.map { $0 ^ 0x36 })
        o.update(k.map { $0 ^ 0x5c })
        inner = i
        outer = o
    }

    /// The 32-byte tag of `message`.
    public func authenticationCode(_ message: [UInt8]) -> [UInt8] {
        var c = start()
        c.update(message)
        return c.finalize()
    }

    /// A tag computed piece by piece (the signed content of a webhook is several parts; the body is not copied).
    public func start() -> Computation { Computation(inner: inner, outer: outer) }

    public struct Computation: Sendable {
        var inner: SHA256
        let outer: SHA256

        public mutating func update(_ bytes: [UInt8]) { inner.update(bytes) }
        public mutating func update(_ bytes: ArraySlice<UInt8>) { inner.update(bytes) }
        public mutating func update(_ text: String) { inner.update(text) }

        public mutating func finalize() -> [UInt8] {
            var o = outer
            o.update(inner.finalize())
            return o.finalize()
        }
    }
}
