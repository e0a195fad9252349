import SpoolCore

/// Key extraction and the JSON parser on arbitrary bodies. The first byte picks the Content-Type (JSON, form,
/// none). Invariants: no crash; an extracted key is a valid key; a document the parser accepts is written back
/// by JSONWriter into text that parses to the same value; item metadata read member by member (`ItemMeta.parse`)
/// is exactly what the whole-tree reference reads (both refuse, or both give the same metadata).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    guard size > 0 else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    let contentType: String? = [nil, "application/json", "application/x-www-form-urlencoded"][Int(data[0] % 3)]
    let extractor = KeyExtractor(paths: ["movie.project", "project", "a.b.c"])
    if let key = try? extractor.extract(body: bytes, contentType: contentType) {
        precondition((try? SpoolKey(key.value)) != nil, "extracted an invalid key")
    }
    if let v = try? JSONParser.parse(bytes) {
        let text = JSONWriter.write(v)
        guard let again = try? JSONParser.parse(text) else { preconditionFailure("writer produced invalid JSON") }
        precondition(again == v, "JSON round trip changed the value")
    }
    let fast = try? ItemMeta.parse(bytes)
    let tree = try? ItemMeta._parseReference(bytes)
    precondition(fast?.jsonBytes == tree?.jsonBytes, "ItemMeta.parse disagrees with the tree reference")
    // Format 2's on-disk inputs: an item header (the bytes after a valid first line, and the bytes as they are)
    // and a delivery state. What parses must encode back to bytes that parse to the same value.
    for candidate in [bytes, Array("spool/2 \(bytes.count)\n".utf8) + bytes + [0x0A]] {
        if let (h, offset) = try? ItemHeader.parse(candidate) {
            precondition(offset <= candidate.count, "payload offset beyond the input")
            let again = try? ItemHeader.parse(h.encoded())
            precondition(again?.header == h, "ItemHeader round trip changed the header")
        }
    }
    if let st = try? DeliveryState.parse(bytes) {
        precondition((try? DeliveryState.parse(st.jsonBytes)) == st, "DeliveryState round trip changed the state")
    }
    return 0
}
