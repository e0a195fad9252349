import SpoolCore

/// Property of the key-to-file-name encoding, for any bytes: a key that is accepted gets a name that cannot
/// leave its directory (no `/`, no NUL, not `.`/`..`, no leading dot, short enough for a tmp/ name) and that
/// decodes back to exactly the same key (which makes the encoding injective). Any string read back as a name
/// either does not decode, or decodes to a key whose name is that same string (one canonical name per key).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    if let key = try? SpoolKey(bytes: bytes) {
        let name = key.fileName
        precondition(!name.isEmpty && name.utf8.count <= 255 - 48, "name too long for a tmp/ name")
        precondition(!name.utf8.contains(0x2F) && !name.utf8.contains(0) && !name.utf8.contains(0x2E), "unsafe name")
        precondition(Array(key.value.utf8) == bytes, "key changed")
        guard let back = SpoolKey(fileName: name) else { preconditionFailure("name does not decode") }
        precondition(back.value == key.value && back.fileName == name, "not a round trip")
    }
    let asName = String(decoding: bytes, as: UTF8.self)
    if let k = SpoolKey(fileName: asName) {
        precondition(k.fileName == asName, "non-canonical name accepted")
    }
    return 0
}
