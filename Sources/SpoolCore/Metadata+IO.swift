import SpoolSystem

/// Reading and replacing an item's metadata (docs/spool-format.md, "Metadata").
extension Spool {
    /// Reads an item's metadata. The payload's `user.spool.meta` attribute is authoritative; `meta/<name>` is read
    /// when the attribute says the metadata spilled into a file (too large), or when there is no attribute
    /// (a file system without them). `payload` is the open payload, or it is opened from `state`.
    func readMeta(name: String, payload: FileDescriptor? = nil, state: ItemState? = nil) throws(SpoolError) -> ItemMeta {
        let attr: [UInt8]? = try sys("read metadata of \(name)") { () throws(Errno) -> [UInt8]? in
            if let payload { return try payload.attribute(Spool.metaAttribute, limit: ItemMeta.maxBytes) }
            guard let state else { return nil }
            return try FS.attribute(atPath: payloadPath(state: state, name: name), Spool.metaAttribute, limit: ItemMeta.maxBytes)
        }
        if let attr, !ItemMeta.isSpilledStub(attr) { return try ItemMeta.parse(attr) }
        let bytes = try sys("read metadata file of \(name)") { () throws(Errno) in
            try FileDescriptor.open(name, in: metas, [.readOnly, .noFollow, .nonBlocking]).closeAfter { (fd) throws(Errno) in try fd.readAll(limit: ItemMeta.maxBytes + 1) }
        }
        return try ItemMeta.parse(bytes)
    }

    /// Replaces an item's metadata; only the holder of the item's lock calls this. Usually one `fsetxattr` on the
    /// payload (atomic, no new inode); metadata too large for an attribute goes to `meta/<name>` and the attribute
    /// becomes a stub pointing there. Not fsynced: see "Durability of later transitions" in docs/spool-format.md.
    func writeMeta(_ meta: ItemMeta, payload: FileDescriptor, name: String) throws(SpoolError) {
        let json = meta.jsonBytes
        if attributesUsable.load(ordering: .relaxed) {
            do throws(Errno) {
                try faults.check(.write)
                try payload.setAttribute(Spool.metaAttribute, json)
                return
            } catch where error == .notSupported {
                attributesUsable.store(false, ordering: .relaxed)
                try writeMetaFile(meta, name: name)
                return
            } catch where error == .attributeTooLarge || error == .resultOutOfRange || error == .noSpace {
                try writeMetaFile(meta, name: name)
                try sys("write metadata stub of \(name)") { () throws(Errno) in try payload.setAttribute(Spool.metaAttribute, ItemMeta.spilledStub) }
                return
            } catch {
                throw SpoolError.system(operation: "write metadata of \(name)", errno: error)
            }
        }
        try writeMetaFile(meta, name: name)
        // An attribute left from a time attributes were used would shadow the file: point it at the file.
        try? payload.setAttribute(Spool.metaAttribute, ItemMeta.spilledStub)
    }

    /// Replaces `meta/<name>` atomically (write a file in `tmp/`, rename it over): readers see the old or the new
    /// file, never a torn one.
    func writeMetaFile(_ meta: ItemMeta, name: String, sync: Bool = false) throws(SpoolError) {
        let t = tmpName(for: name, kind: "m")
        try sys("write metadata of \(name)") { () throws(Errno) in
            try faults.check(.open)
            let fd = try FileDescriptor.open(t, in: tmp, [.writeOnly, .create, .exclusive, .noFollow], mode: 0o600)
            do throws(Errno) {
                try fd.closeAfter { (fd) throws(Errno) in
                    try faults.check(.write)
                    try fd.writeAll(meta.jsonBytes)
                    if sync { try faults.check(.fsync); try fd.fsync() }
                }
                try faults.check(.rename)
                try FS.rename(t, in: tmp, to: name, in: metas)
            } catch {
                try? FS.unlink(t, in: tmp)
                throw error
            }
        }
    }
}
