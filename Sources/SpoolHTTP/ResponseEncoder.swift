import SpoolSystem
import SpoolWire

/// Serialises responses. Header names and values with CR, LF or NUL are dropped, so a handler can never split a response.
enum ResponseEncoder {
    static let continue100: [UInt8] = Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)

    static func encode(_ r: HTTPResponse, close: Bool, http10KeepAlive: Bool, date: String?) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(128 + r.body.count + r.headers.count * 32)
        func put(_ s: String) { out.append(contentsOf: s.utf8) }
        put("HTTP/1.1 \(r.status.code) \(r.status.reasonPhrase)\r\n")
        for f in r.headers {
            if HTTPHeaders.sameName(f.name, "content-length") || HTTPHeaders.sameName(f.name, "transfer-encoding")
                || HTTPHeaders.sameName(f.name, "connection") || HTTPHeaders.sameName(f.name, "date") { continue }
            guard HTTPField.isValid(name: f.name, value: f.value) else { continue }
            put(f.name); put(": "); put(f.value); put("\r\n")
        }
        if let date { put("Date: "); put(date); put("\r\n") }
        put("Content-Length: \(r.body.count)\r\n")
        if close { put("Connection: close\r\n") } else if http10KeepAlive { put("Connection: keep-alive\r\n") }
        put("\r\n")
        out.append(contentsOf: r.body)
        return out
    }
}

/// IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), recomputed at most once per second by the loop.
struct HTTPDateCache {
    private var second: Int = -1
    private var cached = ""

    mutating func current() -> String {
        let s = Int(SystemClock().nowNanos() / 1_000_000_000)
        if s == second { return cached }
        cached = HTTPDate.format(secondsSinceEpoch: Int64(s))
        second = s
        return cached
    }
}
