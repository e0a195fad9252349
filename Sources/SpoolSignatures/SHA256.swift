/// SHA-256 (FIPS 180-4), streaming, in pure Swift.
///
/// Why our own and not libcrypto: the ingress must keep working without OpenSSL (OpenSSL is only opened at run
/// time, for TLS, and a host without it must still verify signed webhooks over plain HTTP behind a proxy). A
/// dependency-free hash keeps `--verify` independent of the TLS loader and its failure modes, and it is small:
/// one compression function and its padding, held byte for byte to the NIST vectors (empty, "abc", the 448- and
/// 896-bit messages, the 55/56/63/64/65-byte padding boundaries, a million 'a') in `SpoolSignaturesTests`.
/// It is not constant-time with respect to the message length (nothing here needs that); the key never
/// influences a branch or an index.
public struct SHA256: Sendable {
    public static let byteCount = 32
    static let blockSize = 64

    struct State: Sendable {
        var a: UInt32 = 0x6a09e667, b: UInt32 = 0xbb67ae85, c: UInt32 = 0x3c6ef372, d: UInt32 = 0xa54ff53a
        var e: UInt32 = 0x510e527f, f: UInt32 = 0x9b05688c, g: UInt32 = 0x1f83d9ab, h: UInt32 = 0x5be0cd19
    }

    private var state = State()
    /// Bytes of a block not yet compressed (the first `pending`): 64 bytes kept inline, never on the heap.
    private var buffer: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)
    private var pending = 0
    /// Message length so far, in bytes (the padding records it in bits, modulo 2^64 as the standard says).
    private var length: UInt64 = 0

    public init() {}

    /// The digest of `bytes` in one call.
    public static func hash(_ bytes: [UInt8]) -> [UInt8] {
        var h = SHA256()
        h.update(bytes)
        return h.finalize()
    }

    public mutating func update(_ bytes: [UInt8]) { bytes.withUnsafeBytes { update(raw: $0) } }
    public mutating func update(_ bytes: ArraySlice<UInt8>) { bytes.withUnsafeBytes { update(raw: $0) } }
    public mutating func update(_ text: String) {
        var t = text
        t.withUTF8 { update(raw: UnsafeRawBufferPointer($0)) }
    }

    public mutating func update(raw input: UnsafeRawBufferPointer) {
        let n = input.count
        guard n > 0 else { return }
        length &+= UInt64(n)
        var offset = 0
        if pending > 0 {
            let take = min(Self.blockSize - pending, n)
            let at = pending
            withUnsafeMutableBytes(of: &buffer) { b in
                for i in 0..<take { b[at + i] = input[i] }
            }
            pending += take
            offset = take
            guard pending == Self.blockSize else { return }
            let block = buffer
            withUnsafeBytes(of: block) { Self.compress(&state, $0) }
            pending = 0
        }
        while n - offset >= Self.blockSize {
            Self.compress(&state, UnsafeRawBufferPointer(rebasing: input[offset..<(offset + Self.blockSize)]))
            offset += Self.blockSize
        }
        if offset < n {
            let rest = n - offset
            withUnsafeMutableBytes(of: &buffer) { b in
                for i in 0..<rest { b[i] = input[offset + i] }
            }
            pending = rest
        }
    }

    /// Pads, compresses the last block(s) and answers the 32-byte digest. The value is spent afterwards.
    public mutating func finalize() -> [UInt8] {
        let bits = length &* 8
        // 0x80, zeros up to 56 mod 64, then the length in bits as a big-endian 64-bit number.
        let padding = pending < 56 ? 56 - pending : 120 - pending
        withUnsafeTemporaryAllocation(byteCount: padding + 8, alignment: 8) { p in
            p.initializeMemory(as: UInt8.self, repeating: 0)
            p[0] = 0x80
            for i in 0..<8 { p[padding + i] = UInt8(truncatingIfNeeded: bits >> (56 - 8 * UInt64(i))) }
            let savedLength = length
            update(raw: UnsafeRawBufferPointer(p))
            length = savedLength
        }
        var out = [UInt8](repeating: 0, count: Self.byteCount)
        let words = [state.a, state.b, state.c, state.d, state.e, state.f, state.g, state.h]
        for (i, w) in words.enumerated() {
            out[4 * i] = UInt8(truncatingIfNeeded: w >> 24)
            out[4 * i + 1] = UInt8(truncatingIfNeeded: w >> 16)
            out[4 * i + 2] = UInt8(truncatingIfNeeded: w >> 8)
            out[4 * i + 3] = UInt8(truncatingIfNeeded: w)
        }
        return out
    }

    @inline(__always) static func rotr(_ x: UInt32, _ n: UInt32) -> UInt32 { (x &>> n) | (x &<< (32 &- n)) }

    /// One round of FIPS 180-4 6.2.2 step 3, written so that the eight working variables never move: each
    /// round updates `d` and `h` in place and the caller rotates the argument order (the classic unrolling).
    @inline(__always)
    static func round(_ a: UInt32, _ b: UInt32, _ c: UInt32, _ d: inout UInt32,
                      _ e: UInt32, _ f: UInt32, _ g: UInt32, _ h: inout UInt32, _ kw: UInt32) {
        let t1 = h &+ (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) &+ (g ^ (e & (f ^ g))) &+ kw
        d = d &+ t1
        h = t1 &+ (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) &+ ((a & b) | (c & (a | b)))
    }

    /// One 64-byte block into the state (FIPS 180-4, 6.2.2).
    static func compress(_ s: inout State, _ block: UnsafeRawBufferPointer) {
        withUnsafeTemporaryAllocation(of: UInt32.self, capacity: 64) { w in
            for i in 0..<16 { w[i] = UInt32(bigEndian: block.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)) }
            for i in 16..<64 {
                let x = w[i - 15], y = w[i - 2]
                let s0 = rotr(x, 7) ^ rotr(x, 18) ^ (x &>> 3)
                let s1 = rotr(y, 17) ^ rotr(y, 19) ^ (y &>> 10)
                w[i] = w[i - 16] &+ s0 &+ w[i - 7] &+ s1
            }
            var a = s.a, b = s.b, c = s.c, d = s.d, e = s.e, f = s.f, g = s.g, h = s.h
            roundConstants.withUnsafeBufferPointer { k in
                var i = 0
                while i < 64 {
                    round(a, b, c, &d, e, f, g, &h, k[i] &+ w[i])
                    round(h, a, b, &c, d, e, f, &g, k[i + 1] &+ w[i + 1])
                    round(g, h, a, &b, c, d, e, &f, k[i + 2] &+ w[i + 2])
                    round(f, g, h, &a, b, c, d, &e, k[i + 3] &+ w[i + 3])
                    round(e, f, g, &h, a, b, c, &d, k[i + 4] &+ w[i + 4])
                    round(d, e, f, &g, h, a, b, &c, k[i + 5] &+ w[i + 5])
                    round(c, d, e, &f, g, h, a, &b, k[i + 6] &+ w[i + 6])
                    round(b, c, d, &e, f, g, h, &a, k[i + 7] &+ w[i + 7])
                    i += 8
                }
            }
            s.a &+= a; s.b &+= b; s.c &+= c; s.d &+= d; s.e &+= e; s.f &+= f; s.g &+= g; s.h &+= h
        }
    }

    /// The first 32 bits of the fractional parts of the cube roots of the first 64 primes.
    static let roundConstants: [UInt32] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
    ]
}
