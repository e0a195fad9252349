import SpoolSystem

/// Reading an item's header and reading and replacing its delivery state (docs/spool-format.md, "The item file",
/// "Delivery state").
extension Spool {
    /// Reads the header at the start of an open item file: one `pread` of `ItemHeader.probeBytes`, a second only
    /// for a header larger than that. Checks the header's size against the file's.
    static func readHeader(_ fd: FileDescriptor, fileSize: Int64) throws(SpoolError) -> (header: ItemHeader, payloadOffset: Int) {
        var prefix = try sys("read item header") { () throws(Errno) in try fd.read(at: 0, upTo: ItemHeader.probeBytes) }
        if case .needs(let n) = try ItemHeader.extent(of: prefix) {
            guard n <= ItemHeader.maxBytes + 64 else { throw .corrupt("item header too large") }
            prefix = try sys("read item header") { () throws(Errno) in try fd.read(at: 0, upTo: n) }
        }
        let parsed = try ItemHeader.parse(prefix)
        guard Int64(parsed.payloadOffset) + parsed.header.size == fileSize else {
            throw .corrupt("item file is \(fileSize) bytes, its header says \(Int64(parsed.payloadOffset) + parsed.header.size)")
        }
        return parsed
    }

    /// Reads the header of `name` in `state` of this queue.
    func readHeader(name: String, state: ItemState) throws(SpoolError) -> (header: ItemHeader, payloadOffset: Int) {
        try withItemFile(name: name, in: dir(state)) { (fd, st) throws(SpoolError) in try Spool.readHeader(fd, fileSize: st.size) }
    }

    /// Opens an item file read-only (no symlinks, no FIFOs), checks it is a regular file, runs `body`, closes it.
    func withItemFile<R>(name: String, in d: FileDescriptor, _ body: (FileDescriptor, FileStat) throws(SpoolError) -> R) throws(SpoolError) -> R {
        let fd = try sys("open \(name)") { () throws(Errno) in try FileDescriptor.open(name, in: d, [.readOnly, .noFollow, .nonBlocking]) }
        return try fd.closeAfter { (fd) throws(SpoolError) -> R in
            let st = try sys("stat \(name)") { () throws(Errno) in try fd.stat() }
            guard st.isRegular else { throw .corrupt("\(name) is not a regular file") }
            return try body(fd, st)
        }
    }

    /// The delivery state of `name` in queue `qd`; nil when it has none (it never failed there).
    func readState(name: String, in qd: QueueDirectories) throws(SpoolError) -> DeliveryState? {
        let bytes: [UInt8]
        do throws(Errno) {
            bytes = try FileDescriptor.open(name, in: qd.state, [.readOnly, .noFollow, .nonBlocking]).closeAfter { (fd) throws(Errno) in
                guard try fd.stat().isRegular else { throw Errno.invalidArgument }
                return try fd.readAll(limit: DeliveryState.maxBytes + 1)
            }
        } catch where error == .noEntry {
            return nil
        } catch {
            throw SpoolError.system(operation: "read delivery state of \(name)", errno: error)
        }
        return try DeliveryState.parse(bytes)
    }

    /// Replaces `state/<name>` of queue `qd` atomically: written in `tmp/` as `<name>.<unique>.s`, flushed, its mtime
    /// set to the not-before time (`dueAt`, or now), renamed over the old one. Only the holder of the item's claim
    /// lock in that queue (or an operator command holding it) writes it. Flushed because it carries the attempt
    /// count that dead-letters a poison item; its rename is not (a power cut may roll it back, like any transition).
    func writeState(_ state: DeliveryState, name: String, in qd: QueueDirectories, dueAt: Int64? = nil) throws(SpoolError) {
        let t = tmpName(for: name, kind: "s")
        try sys("write delivery state of \(name)") { () throws(Errno) in
            try faults.check(.open)
            let fd = try FileDescriptor.open(t, in: tmp, [.writeOnly, .create, .exclusive, .noFollow], mode: 0o600)
            do throws(Errno) {
                try fd.closeAfter { (fd) throws(Errno) in
                    try faults.check(.write)
                    try fd.writeAll(state.jsonBytes)
                    try fd.setModificationTime(nanos: dueAt ?? now())
                    try faults.check(.fsync)
                    try fd.fsync()
                }
                try faults.check(.rename)
                try FS.rename(t, in: tmp, to: name, in: qd.state)
            } catch {
                try? FS.unlink(t, in: tmp)
                throw error
            }
        }
    }

    /// The combined view of an item (header and this queue's delivery state) that listings, `show` and handlers see.
    static func meta(header h: ItemHeader, state: DeliveryState?) -> ItemMeta {
        var m = ItemMeta(key: h.key, receivedAtNanos: h.receivedAtNanos, size: h.size, headers: h.headers)
        m.source = h.source == .webhook ? nil : h.source.rawValue
        m.queues = h.queues
        if let state, state.belongs(toItemReceivedAt: h.receivedAtNanos) {
            m.attempts = state.attempts
            m.nextAttemptAtNanos = state.nextAttemptAtNanos
            m.lastError = state.lastError
            m.lastStatus = state.lastStatus
            m.lastAttemptAtNanos = state.lastAttemptAtNanos
            m.finishedAtNanos = state.finishedAtNanos
            m.history = state.history
        }
        return m
    }

    /// Header and delivery state of `name` in `state` of this queue, as one `ItemMeta`. `attempts` counts attempts
    /// started, as listings always have: a claimed item's running attempt, and a done item's one successful attempt
    /// that (going well) wrote no state. `fd` is the item already open (else it is opened); `hasState: false` skips
    /// looking for a state file a listing of `state/` did not show.
    func readMeta(name: String, state: ItemState, fd: FileDescriptor? = nil, fileSize: Int64 = 0, hasState: Bool? = nil) throws(SpoolError) -> ItemMeta {
        let h: ItemHeader
        if let fd { h = try Spool.readHeader(fd, fileSize: fileSize).header } else { h = try readHeader(name: name, state: state).header }
        var m = Spool.meta(header: h, state: hasState == false ? nil : try readState(name: name, in: q))
        if state == .claimed { m.attempts += 1 } else if state == .done { m.attempts = max(m.attempts, 1) }
        return m
    }
}
