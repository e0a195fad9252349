import SpoolSystem
import SpoolWire

/// The format version a spool records at its root (`format`), and what a binary does with each
/// (docs/spool-format.md, "Versions").
public enum SpoolFormat {
    /// What the root says about its format.
    public enum Found: Equatable, Sendable {
        /// No format file and no format 1 directories: a new spool.
        case empty
        /// No format file, but `keys/` or a `meta/` directory: format 1, written before the version file existed.
        case version1
        case version(Int)
    }

    /// Reads the root's format without changing anything.
    public static func detect(root: FileDescriptor) throws(SpoolError) -> Found {
        let bytes: [UInt8]
        do throws(Errno) {
            bytes = try FileDescriptor.open(Spool.formatFile, in: root, [.readOnly, .noFollow, .nonBlocking]).closeAfter { (fd) throws(Errno) in
                guard try fd.stat().isRegular else { throw Errno.invalidArgument }
                return try fd.readAll(limit: 64)
            }
        } catch where error == .noEntry {
            let keys = try? FS.stat(Spool.keysDir, in: root)
            let meta = try? FS.stat(Spool.guardFile, in: root)
            if keys != nil || meta?.isDirectory == true { return .version1 }
            return .empty
        } catch {
            throw SpoolError.system(operation: "read \(Spool.formatFile)", errno: error)
        }
        guard bytes.last == 0x0A, let v = Digits.decimal(bytes.dropLast(), max: 1_000_000), v > 0 else {
            throw .corrupt("the \(Spool.formatFile) file does not hold a version number")
        }
        return .version(v)
    }

    /// Checks that the spool at `root` is format 2, making a new one format 2 (durably: the guard file, then the
    /// format file, each written, flushed and linked into place, then the root flushed).
    /// Without `create`, a root with no spool in it is refused (`notASpool`).
    static func ensure(root: FileDescriptor, path: String, create: Bool = true) throws(SpoolError) {
        switch try detect(root: root) {
        case .version(Spool.formatVersion): return
        case .version(let v): throw .unsupportedFormat(path: path, found: v)
        case .version1: throw .needsMigration(path: path, found: 1)
        case .empty:
            guard create else { throw .notASpool(path: path, missing: false) }
            try writeFile(Spool.guardFile, guardText, in: root)
            try writeFile(Spool.formatFile, Array("\(Spool.formatVersion)\n".utf8), in: root)
            // Another process may have made it something else in the meantime: check what is there now.
            if try detect(root: root) != .version(Spool.formatVersion) { throw .needsMigration(path: path, found: 1) }
        }
    }

    static let guardText = Array("""
        This spool directory is in format 2: see the file "format" and docs/spool-format.md.
        This file stands where format 1 had the directory meta/, so that spool releases before format 2 refuse the
        directory instead of misreading its items. Do not remove it.

        """.utf8)

    /// Writes a small root file durably: a temporary name, data flushed, linked under `name` (an existing file
    /// of that name wins: two processes creating a spool at once agree), the directory flushed.
    public static func writeFile(_ name: String, _ bytes: [UInt8], in dir: FileDescriptor) throws(SpoolError) {
        let temp = ".\(name).\(FS.processID).\(UInt32.random(in: 0...UInt32.max))"
        try sys("write \(name)") { () throws(Errno) in
            let fd = try FileDescriptor.open(temp, in: dir, [.writeOnly, .create, .exclusive, .noFollow], mode: 0o600)
            defer { try? FS.unlink(temp, in: dir) }
            try fd.closeAfter { (fd) throws(Errno) in try fd.writeAll(bytes); try fd.fsync() }
            do throws(Errno) { try FS.link(temp, in: dir, to: name, in: dir) } catch where error == .exists {}
        }
        try sys("flush the spool directory") { () throws(Errno) in try dir.fsync() }
    }
}
