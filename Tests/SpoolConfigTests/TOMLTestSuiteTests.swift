import Foundation
import Testing
@testable import SpoolConfig

/// The toml-test suite (github.com/toml-lang/toml-test) as an oracle for the TOML 1.0 files it lists: every invalid
/// file must be refused, and every valid file must either parse to exactly the value its JSON gives or be refused as
/// a feature outside spool's subset (floats, dates, multi-line strings, non-decimal integers), never as invalid.
/// The suite is not copied into this repository: `.ci/run` clones it and sets TOML_TEST_DIR to its `tests/`
/// directory; without it the test says SKIPPED.
@Suite struct TOMLTestSuiteTests {
    @Test func tomlTestSuiteAsAnOracle() throws {
        guard let dir = ProcessInfo.processInfo.environment["TOML_TEST_DIR"], !dir.isEmpty,
              let list = try? String(contentsOfFile: dir + "/files-toml-1.0.0", encoding: .utf8) else {
            print("**** SKIPPED: TOML_TEST_DIR is not set to toml-test's tests/ directory ****")
            return
        }
        var invalid = 0, valid = 0, parsed = 0, unsupported = 0
        var problems: [String] = []
        for name in list.split(separator: "\n").map(String.init) where name.hasSuffix(".toml") {
            let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: dir + "/" + name)))
            if name.hasPrefix("invalid/") {
                invalid += 1
                if let t = try? TOML.parse(bytes) { problems.append("\(name): accepted, read as \(tagged(.table(t)))") }
                continue
            }
            valid += 1
            do {
                let t = try TOML.parse(bytes)
                let json = try Data(contentsOf: URL(fileURLWithPath: dir + "/" + name.dropLast(5) + ".json"))
                let want = try JSONSerialization.jsonObject(with: json, options: [.fragmentsAllowed])
                if !same(tagged(.table(t)), want) { problems.append("\(name): read as \(tagged(.table(t))), expected \(want)") }
                parsed += 1
            } catch {
                if (error as? TOMLError)?.unsupported != nil { unsupported += 1 } else { problems.append("\(name): refused: \(error)") }
            }
        }
        print("toml-test: \(invalid) invalid files refused, \(valid) valid files: \(parsed) read exactly, \(unsupported) outside the subset; \(problems.count) problem(s)")
        #expect(invalid > 300 && valid > 150, "the suite's list looks incomplete")
        #expect(problems.isEmpty, "\(problems.prefix(20).joined(separator: "\n"))")
    }

    /// toml-test's JSON encoding: tables as objects, arrays as arrays, scalars as {"type", "value"} with the value
    /// as a string.
    func tagged(_ v: TOMLValue) -> Any {
        switch v {
        case .string(let s): return ["type": "string", "value": s]
        case .integer(let n): return ["type": "integer", "value": String(n)]
        case .bool(let b): return ["type": "bool", "value": b ? "true" : "false"]
        case .array(let a): return a.map { tagged($0.value) }
        case .table(let t):
            var d: [String: Any] = [:]
            for (k, n) in t.entries { d[k] = tagged(n.value) }
            return d
        }
    }

    func same(_ a: Any, _ b: Any) -> Bool {
        if let x = a as? [String: Any], let y = b as? [String: Any] {
            return x.count == y.count && x.allSatisfy { k, v in y[k].map { same(v, $0) } ?? false }
        }
        if let x = a as? [Any], let y = b as? [Any] { return x.count == y.count && zip(x, y).allSatisfy(same) }
        if let x = a as? String, let y = b as? String { return x.unicodeScalars.elementsEqual(y.unicodeScalars) }
        return false
    }
}
