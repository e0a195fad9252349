import Testing
import SpoolWire

/// Decimal writing (sizes in NATS frames, numbers in metadata JSON) against Swift's own formatting, and parsing
/// it back.
@Suite struct DigitsTests {
    @Test func appendWritesExactlyWhatDescriptionWrites() {
        var values: [Int64] = [0, 1, 9, 10, 99, 100, 1024, -1, -10, 1_796_297_028_523_612_642, Int64.max, Int64.min, Int64.min + 1]
        var x: UInt64 = 0x9E37_79B9_7F4A_7C15
        for _ in 0..<1000 {  // xorshift: values of every length and sign
            x ^= x << 13; x ^= x >> 7; x ^= x << 17
            values.append(Int64(bitPattern: x) >> Int64(x % 63))
        }
        for v in values {
            var out = Array("x".utf8)
            Digits.append(v, to: &out)
            #expect(out == Array("x\(v)".utf8), "\(v)")
            if v >= 0 { #expect(Digits.decimal(out.dropFirst()) == Int(v)) }
        }
        var i: [UInt8] = []
        Digits.append(42 as Int, to: &i)
        #expect(i == Array("42".utf8))
    }
}

/// Every status spool sends has its RFC 9110 reason phrase (the UI's redirect once went out as `303 Status`).
@Suite struct HTTPStatusPhraseTests {
    @Test func everyStatusWeSendHasItsPhrase() {
        let sent: [HTTPStatus] = [.ok, .seeOther, .badRequest, .unauthorized, .notFound, .methodNotAllowed, .requestTimeout,
                                  .lengthRequired, .contentTooLarge, .uriTooLong, .unsupportedMediaType, .expectationFailed,
                                  .unprocessableContent, .requestHeaderFieldsTooLarge, .internalServerError, .notImplemented,
                                  .serviceUnavailable, .httpVersionNotSupported, 202, 204]
        for s in sent { #expect(s.reasonPhrase != "Status", "\(s.code)") }
        #expect(HTTPStatus.seeOther.reasonPhrase == "See Other")
    }
}
