/// An idempotency key and the file name it maps to.
///
/// The encoding is injective and can never name anything outside its state directory:
/// - a key of 1 to 128 characters from `[A-Za-z0-9_-]` is its own name (`ls spool/done` shows project IDs);
/// - any other key of 1 to 100 bytes is `~` followed by the lowercase hex of its UTF-8 bytes (so that the name
///   plus the suffix of a `tmp/` name stays under the 255-byte limit of file names);
/// - empty keys, keys with control characters (C0, DEL), invalid UTF-8 and longer keys are rejected.
/// Plain names never start with `~` and encoded names always do, so the two forms cannot collide, and
/// neither form can contain `/`, `.`, NUL or start with a dot.
public struct SpoolKey: Sendable, Hashable, CustomStringConvertible {
    public static let maxPlainLength = 128
    public static let maxEncodedBytes = 100

    /// The key as the sender gave it.
    public let value: String
    /// The file name in every state directory and in `keys/`.
    public let fileName: String

    public var description: String { value }

    public init(_ key: String) throws(SpoolError) {
        try self.init(bytes: Array(key.utf8))
    }

    public init(bytes: [UInt8]) throws(SpoolError) {
        guard !bytes.isEmpty else { throw SpoolError.invalidKey("key is empty") }
        if bytes.count <= SpoolKey.maxPlainLength, bytes.allSatisfy(SpoolKey.isPlainByte) {
            let s = String(decoding: bytes, as: UTF8.self)
            value = s
            fileName = s
            return
        }
        if let bad = bytes.first(where: { $0 < 0x20 || $0 == 0x7F }) {
            throw SpoolError.invalidKey("key contains control character 0x\(String(bad, radix: 16))")
        }
        guard let s = String(validating: bytes, as: UTF8.self) else {
            throw SpoolError.invalidKey("key is not valid UTF-8")
        }
        guard bytes.count <= SpoolKey.maxEncodedBytes else {
            throw SpoolError.invalidKey("key is \(bytes.count) bytes; at most \(SpoolKey.maxPlainLength) characters of [A-Za-z0-9_-] or \(SpoolKey.maxEncodedBytes) bytes otherwise")
        }
        value = s
        fileName = "~" + SpoolKey.hex(bytes)
    }

    /// Decodes a file name back to its key; nil for names this encoding never produces (foreign files).
    public init?(fileName name: String) {
        let u = Array(name.utf8)
        if u.first == UInt8(ascii: "~") {
            let h = u.dropFirst()
            guard !h.isEmpty, h.count % 2 == 0, h.count / 2 <= SpoolKey.maxEncodedBytes else { return nil }
            var bytes: [UInt8] = []
            bytes.reserveCapacity(h.count / 2)
            var it = h.makeIterator()
            while let a = it.next(), let b = it.next() {
                guard let x = SpoolKey.lowerHexValue(a), let y = SpoolKey.lowerHexValue(b) else { return nil }
                bytes.append(x << 4 | y)
            }
            // Only the canonical form: a key that would be plain must not also have an encoded name.
            guard let k = try? SpoolKey(bytes: bytes), k.fileName == name else { return nil }
            self = k
        } else {
            guard let k = try? SpoolKey(bytes: u), k.fileName == name else { return nil }
            self = k
        }
    }

    static func isPlainByte(_ c: UInt8) -> Bool {
        (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x2D || c == 0x5F
    }

    private static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        for b in bytes { out.append(digits[Int(b >> 4)]); out.append(digits[Int(b & 15)]) }
        return String(decoding: out, as: UTF8.self)
    }

    private static func lowerHexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: return c - 0x30
        case 0x61...0x66: return c - 0x61 + 10
        default: return nil
        }
    }
}
