import SpoolCore
import SpoolReconcile
import SpoolWire

/// What the JSON2Video API sends reconcile: the first byte picks a whole HTTP response (status mapping, then the
/// list) or a body alone. Invariants: no crash; a list accepted by `MovieListPage.parse` is a document the tree
/// parser accepts, its movies are exactly the tree's `movies` array, each movie's kept bytes parse to that same
/// value (byte-for-byte copying took the right range), the webhook payload built from them is valid JSON, and a
/// page that says `has_next` has a token.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    guard size > 0 else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    var body = bytes
    if data[0] & 1 == 1 {
        var limits = HTTPResponseParser.Limits()
        limits.maxBodyKept = 2048
        var p = HTTPResponseParser(limits: limits)
        do throws(HTTPResponseError) { try p.feed(bytes); try p.finish() } catch { return 0 }
        guard let head = p.head else { return 0 }
        do throws(ReconcileError) {
            body = try JSON2VideoClient.check(head: head, body: p.body, truncated: p.bodyTruncated, nowNanos: 1_700_000_000_000_000_000)
        } catch {
            precondition(!error.message.isEmpty)
            return 0
        }
    }
    guard let page = try? MovieListPage.parse(body) else { return 0 }
    guard let tree = try? JSONParser.parse(body) else { preconditionFailure("a list the tree parser refuses was accepted") }
    guard case .array(let values)? = tree["movies"] else { preconditionFailure("accepted without one movies array") }
    precondition(values == page.movies.map(\.value), "movies differ from the tree's")
    for m in page.movies {
        guard let again = try? JSONParser.parse(m.raw) else { preconditionFailure("a movie's bytes are not its JSON") }
        precondition(again == m.value, "a movie's bytes parse to another value")
        guard let payload = try? JSONParser.parse(m.webhookPayload) else { preconditionFailure("webhook payload is not JSON") }
        precondition(payload["movie"] == m.value && payload["success"] == .bool(true))
        precondition((try? SpoolKey(m.project)) != nil)
    }
    precondition(!page.hasNext || !(page.nextToken ?? "").isEmpty)
    return 0
}
