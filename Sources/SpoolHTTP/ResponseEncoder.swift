#if canImport(Glibc)
import Glibc
#endif

/// Serialises responses. Header names and values with CR, LF or NUL are dropped, so a handler can never split a response.
enum ResponseEncoder {
    static let continue100: [UInt8] = Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)

    static func encode(_ r: HTTPResponse, close: Bool, http10KeepAlive: Bool, date: String?) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(128 + r.body.count + r.headers.count * 32)
        func put(_ s: String) { out.append(contentsOf: s.utf8) }
        put("HTTP/1.1 \(r.status) \(reasonPhrase(r.status))\r\n")
        for f in r.headers {
            if HTTPHeaders.sameName(f.name, "content-length") || HTTPHeaders.sameName(f.name, "transfer-encoding")
                || HTTPHeaders.sameName(f.name, "connection") || HTTPHeaders.sameName(f.name, "date") { continue }
            guard !f.name.isEmpty, f.name.utf8.allSatisfy(ByteClass.isTChar),
                  f.value.utf8.allSatisfy({ ByteClass.isFieldValueByte($0) }) else { continue }
            put(f.name); put(": "); put(f.value); put("\r\n")
        }
        if let date { put("Date: "); put(date); put("\r\n") }
        put("Content-Length: \(r.body.count)\r\n")
        if close { put("Connection: close\r\n") } else if http10KeepAlive { put("Connection: keep-alive\r\n") }
        put("\r\n")
        out.append(contentsOf: r.body)
        return out
    }

    static func reasonPhrase(_ status: Int) -> String {
        switch status {
        case 100: return "Continue"
        case 200: return "OK"
        case 201: return "Created"
        case 202: return "Accepted"
        case 204: return "No Content"
        case 301: return "Moved Permanently"
        case 302: return "Found"
        case 304: return "Not Modified"
        case 400: return "Bad Request"
        case 401: return "Unauthorized"
        case 403: return "Forbidden"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 408: return "Request Timeout"
        case 409: return "Conflict"
        case 411: return "Length Required"
        case 413: return "Content Too Large"
        case 414: return "URI Too Long"
        case 415: return "Unsupported Media Type"
        case 417: return "Expectation Failed"
        case 422: return "Unprocessable Content"
        case 429: return "Too Many Requests"
        case 431: return "Request Header Fields Too Large"
        case 500: return "Internal Server Error"
        case 501: return "Not Implemented"
        case 502: return "Bad Gateway"
        case 503: return "Service Unavailable"
        case 504: return "Gateway Timeout"
        case 505: return "HTTP Version Not Supported"
        default: return "Status"
        }
    }
}

/// IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), recomputed at most once per second by the loop.
struct HTTPDateCache {
    private var second: Int = -1
    private var cached = ""

    mutating func current() -> String {
        var t = time(nil)
        let s = Int(t)
        if s == second { return cached }
        var tm = Glibc.tm()
        gmtime_r(&t, &tm)
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        cached = "\(days[Int(tm.tm_wday)]), \(two(tm.tm_mday)) \(months[Int(tm.tm_mon)]) \(tm.tm_year + 1900) "
            + "\(two(tm.tm_hour)):\(two(tm.tm_min)):\(two(tm.tm_sec)) GMT"
        second = s
        return cached
    }
}
