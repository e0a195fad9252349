import SpoolCore
import SpoolSystem

/// The payload of an item file (format 2: after its header), read from a path; nil if unreadable.
public func storedPayload(atPath path: String) -> [UInt8]? {
    guard let bytes = try? FileDescriptor.open(path, [.readOnly, .noFollow]).closeAfter({ (fd) throws(Errno) in try fd.readAll(limit: 1 << 30) }),
          let (_, offset) = try? ItemHeader.parse(bytes) else { return nil }
    return Array(bytes[offset...])
}

/// The header of an item file read from a path; nil if unreadable.
public func storedHeader(atPath path: String) -> ItemHeader? {
    guard let bytes = try? FileDescriptor.open(path, [.readOnly, .noFollow]).closeAfter({ (fd) throws(Errno) in try fd.readAll(limit: 1 << 30) }) else { return nil }
    return (try? ItemHeader.parse(bytes))?.header
}
