/// The configuration file (`--config FILE`, docs/configuration.md): routes in, queues out. Read strictly: unknown
/// keys, wrong types, bad values and duplicates are errors that say `FILE:LINE:COLUMN`, and `check` returns every
/// error in the file, not just the first.
public struct Configuration: Sendable, Equatable {
    public var listen: String?
    public var routes: [Route] = []
    /// Queues with a `[queue.NAME]` table, in file order (a queue a route names needs no table).
    public var queues: [Queue] = []

    public struct Route: Sendable, Equatable {
        public var path: String
        /// Dotted JSON paths of the key, tried in order (`key`); nil: the default (movie.project, then project).
        public var keyPaths: [String]?
        /// A request header that carries the key (`key_header`), instead of the body.
        public var keyHeader: String?
        public var tokenFile: String?
        public var verify: String?
        public var secretFile: String?
        public var toleranceSeconds: Int?
        public var queues: [String]
        public var position: TOMLPosition
    }

    public struct Queue: Sendable, Equatable {
        public var name: String
        /// All must hold for a webhook to enter the queue.
        public var match: [MatchCondition] = []
        public var exec: String?
        public var post: String?
        public var concurrency: Int?
        public var maxAttempts: Int?
        public var backoff: String?
        public var maxBackoff: String?
        public var rate: String?
        public var delay: String?
        /// `consume --retain-done`: done items older than this are purged by the queue's consumers.
        public var retainDone: String?
        /// `consume --keep-keys`: how long after a purged item finished its key is still a duplicate.
        public var keepKeys: String?
        /// `consume --on-failed`: a command run for each item that lands in `failed/`.
        public var onFailed: String?
        public var position: TOMLPosition
    }

    /// The queue table of `name`, if the file has one.
    public func queue(_ name: String) -> Queue? { queues.first { $0.name == name } }

    /// Every queue the file knows: its routes' queues and its `[queue.NAME]` tables, each once, in file order.
    public var queueNames: [String] {
        var out: [String] = []
        for n in routes.flatMap(\.queues) + queues.map(\.name) where !out.contains(n) { out.append(n) }
        return out
    }
}

/// One condition of a queue's `match`: `PATH=VALUE`, `PATH=V1|V2`, `PATH` (present), `!PATH` (absent). PATH is a
/// dotted JSON path or `header:NAME`.
public struct MatchCondition: Sendable, Equatable, CustomStringConvertible {
    public enum Subject: Sendable, Equatable { case json([String]), header(String) }
    public enum Test: Sendable, Equatable { case equals([String]), present, absent }
    public var subject: Subject
    public var test: Test
    public var text: String
    public var description: String { text }

    public static func parse(_ s: String) -> Result<MatchCondition, MatchSyntaxError> {
        var body = Substring(s)
        var negated = false
        if body.first == "!" { negated = true; body = body.dropFirst() }
        var path = body
        var values: [String]?
        if let eq = body.firstIndex(of: "=") {
            if negated { return .failure(.init(message: "'!' takes a path without '=' (absent)")) }
            path = body[..<eq]
            let v = body[body.index(after: eq)...]
            values = v.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
            if values!.contains(where: \.isEmpty) { return .failure(.init(message: "an empty value after '=' or '|'")) }
        }
        let subject: Subject
        if path.hasPrefix("header:") {
            let name = path.dropFirst(7)
            guard !name.isEmpty, name.utf8.allSatisfy(isTokenByte) else { return .failure(.init(message: "'header:' needs a header name")) }
            subject = .header(name.lowercased())
        } else {
            let parts = path.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
            guard !path.isEmpty, !parts.contains(where: \.isEmpty) else { return .failure(.init(message: "a JSON path is names separated by single dots")) }
            subject = .json(parts)
        }
        let test: Test = values.map { .equals($0) } ?? (negated ? .absent : .present)
        return .success(MatchCondition(subject: subject, test: test, text: s))
    }

    static func isTokenByte(_ c: UInt8) -> Bool {
        (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || Array("!#$%&'*+-.^_`|~".utf8).contains(c)
    }
}

public struct MatchSyntaxError: Error, Sendable, Equatable { public var message: String }

/// An error in a configuration file, where it is.
public struct ConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var line: Int, column: Int
    public var message: String
    public var description: String { "\(file):\(line):\(column): \(message)" }
}

/// Every error of a configuration file (`spool validate` prints them all).
public struct ConfigErrors: Error, Sendable, Equatable, CustomStringConvertible {
    public var errors: [ConfigError]
    public var description: String { errors.map(\.description).joined(separator: "\n") }
}

extension Configuration {
    /// Parses and checks a configuration file's bytes; `file` names it in errors.
    public static func parse(_ bytes: [UInt8], file: String) throws(ConfigErrors) -> Configuration {
        let table: TOMLTable
        do { table = try TOML.parse(bytes) } catch {
            throw ConfigErrors(errors: [ConfigError(file: file, line: error.line, column: error.column, message: error.message)])
        }
        var r = Reader(file: file)
        let c = r.configuration(table)
        if !r.errors.isEmpty { throw ConfigErrors(errors: r.errors) }
        return c
    }
}

/// Reads the tree into a `Configuration`, collecting every error.
struct Reader {
    let file: String
    var errors: [ConfigError] = []

    mutating func error(_ at: TOMLPosition, _ message: String) {
        errors.append(ConfigError(file: file, line: at.line, column: at.column, message: message))
    }

    /// Refuses members not in `known` (a typo is an error, never silently ignored).
    mutating func onlyKnown(_ t: TOMLTable, _ known: [String], in what: String) {
        for (k, n) in t.entries where !known.contains(k) {
            error(n.keyPosition ?? n.position, "unknown key '\(k)' in \(what) (known: \(known.joined(separator: ", ")))")
        }
    }

    mutating func string(_ t: TOMLTable, _ key: String) -> String? {
        guard let n = t[key] else { return nil }
        guard case .string(let s) = n.value else { error(n.position, "'\(key)' must be a string, not \(n.value.typeName)"); return nil }
        return s
    }

    mutating func integer(_ t: TOMLTable, _ key: String, in range: ClosedRange<Int64>) -> Int? {
        guard let n = t[key] else { return nil }
        guard case .integer(let v) = n.value else { error(n.position, "'\(key)' must be an integer, not \(n.value.typeName)"); return nil }
        guard range.contains(v) else { error(n.position, "'\(key)' must be between \(range.lowerBound) and \(range.upperBound)"); return nil }
        return Int(v)
    }

    mutating func strings(_ t: TOMLTable, _ key: String) -> [(String, TOMLPosition)]? {
        guard let n = t[key] else { return nil }
        guard case .array(let items) = n.value else { error(n.position, "'\(key)' must be an array of strings, not \(n.value.typeName)"); return nil }
        var out: [(String, TOMLPosition)] = []
        for item in items {
            guard case .string(let s) = item.value else { error(item.position, "'\(key)' must hold strings, not \(item.value.typeName)"); continue }
            out.append((s, item.position))
        }
        return out
    }

    static func isQueueName(_ s: String) -> Bool {
        let u = s.utf8
        guard (1...64).contains(u.count), let f = u.first, (f >= 0x30 && f <= 0x39) || (f >= 0x61 && f <= 0x7A) else { return false }
        return u.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x5F || $0 == 0x2D }
    }

    mutating func configuration(_ root: TOMLTable) -> Configuration {
        var c = Configuration()
        onlyKnown(root, ["listen", "route", "queue"], in: "the file")
        c.listen = string(root, "listen")
        if let n = root["route"] {
            if case .array(let items) = n.value, items.allSatisfy({ if case .table = $0.value { true } else { false } }) {
                for item in items { if case .table(let t) = item.value, let r = route(t) { c.routes.append(r) } }
            } else {
                error(n.position, "'route' must be [[route]] tables")
            }
        }
        var paths: [String: TOMLPosition] = [:]
        for r in c.routes {
            if let first = paths[r.path] { error(r.position, "route path \(r.path) is already used by the route at line \(first.line)") }
            paths[r.path] = paths[r.path] ?? r.position
        }
        if let n = root["queue"] {
            if case .table(let qs) = n.value {
                for (name, qn) in qs.entries {
                    guard Self.isQueueName(name) else {
                        error(qn.position, "queue name '\(name)' must be 1 to 64 of a-z, 0-9, _ and -, starting with a letter or digit"); continue
                    }
                    guard case .table(let t) = qn.value else { error(qn.position, "'queue.\(name)' must be a table"); continue }
                    c.queues.append(queue(name, t, at: qn.position))
                }
            } else {
                error(n.position, "'queue' must be [queue.NAME] tables")
            }
        }
        return c
    }

    mutating func route(_ t: TOMLTable) -> Configuration.Route? {
        onlyKnown(t, ["path", "key", "key_header", "token_file", "verify", "secret_file", "tolerance", "queues"], in: "a [[route]]")
        let path = string(t, "path")
        if path == nil, t["path"] == nil { error(t.position, "a [[route]] needs a 'path'") }
        if let p = path, !(p.hasPrefix("/") && p.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != 0x3F && $0 != 0x23 })) {
            error(t["path"]!.position, "'path' must start with '/' and hold no spaces, '?' or '#'")
        }
        if let p = path, p == "/healthz" || p == "/metrics" { error(t["path"]!.position, "'path' \(p) is spool's own (health and metrics)") }
        let keys = strings(t, "key")
        let keyHeader = string(t, "key_header")
        if keys != nil && keyHeader != nil { error(t["key_header"]!.position, "a route takes 'key' or 'key_header', not both") }
        for (k, at) in keys ?? [] where k.isEmpty || k.split(separator: ".", omittingEmptySubsequences: false).contains(where: \.isEmpty) {
            error(at, "key path '\(k)' must be names separated by single dots")
        }
        if let h = keyHeader, h.isEmpty || !h.utf8.allSatisfy(MatchCondition.isTokenByte) { error(t["key_header"]!.position, "'key_header' must be a header name") }
        let verify = string(t, "verify")
        if let v = verify, !["standard-webhooks", "github", "stripe"].contains(v) {
            error(t["verify"]!.position, "'verify' must be standard-webhooks, github or stripe")
        }
        let secret = string(t, "secret_file")
        if verify != nil && secret == nil { error(t["verify"]!.position, "'verify' needs 'secret_file'") }
        if secret != nil && verify == nil { error(t["secret_file"]!.position, "'secret_file' needs 'verify'") }
        var tolerance: Int?
        if let n = t["tolerance"] {
            if case .string(let s) = n.value, let secs = Self.seconds(s) { tolerance = secs } else {
                error(n.position, "'tolerance' must be a duration such as \"5m\" or \"300s\"")
            }
        }
        var queues: [String] = []
        if let qs = strings(t, "queues") {
            for (q, at) in qs {
                if !Self.isQueueName(q) { error(at, "queue name '\(q)' must be 1 to 64 of a-z, 0-9, _ and -, starting with a letter or digit") }
                else if queues.contains(q) { error(at, "queue '\(q)' is named twice") }
                else { queues.append(q) }
            }
            if qs.isEmpty { error(t["queues"]!.position, "'queues' must name at least one queue") }
        } else {
            queues = ["default"]
        }
        guard let path else { return nil }
        return Configuration.Route(path: path, keyPaths: keys.map { $0.map(\.0) }, keyHeader: keyHeader, tokenFile: string(t, "token_file"),
                                   verify: verify, secretFile: secret, toleranceSeconds: tolerance, queues: queues, position: t.position)
    }

    mutating func queue(_ name: String, _ t: TOMLTable, at: TOMLPosition) -> Configuration.Queue {
        onlyKnown(t, ["match", "exec", "post", "concurrency", "max_attempts", "backoff", "max_backoff", "rate", "delay", "retain_done", "keep_keys", "on_failed"], in: "[queue.\(name)]")
        var q = Configuration.Queue(name: name, position: at)
        for (text, pos) in strings(t, "match") ?? [] {
            switch MatchCondition.parse(text) {
            case .success(let m): q.match.append(m)
            case .failure(let e): error(pos, "match condition '\(text)': \(e.message)")
            }
        }
        q.exec = string(t, "exec")
        q.post = string(t, "post")
        q.onFailed = string(t, "on_failed")
        if q.exec != nil && q.post != nil { error(t["post"]!.position, "a queue takes 'exec' or 'post', not both") }
        q.concurrency = integer(t, "concurrency", in: 1...1024)
        q.maxAttempts = integer(t, "max_attempts", in: 1...1_000_000)
        for key in ["backoff", "max_backoff", "delay", "retain_done", "keep_keys"] {
            guard let n = t[key] else { continue }
            guard case .string(let s) = n.value, Self.seconds(s) != nil || Self.isSubsecond(s) else {
                error(n.position, "'\(key)' must be a duration such as \"500ms\", \"30s\", \"5m\", \"1h\""); continue
            }
            switch key {
            case "backoff": q.backoff = s
            case "max_backoff": q.maxBackoff = s
            case "retain_done": q.retainDone = s
            case "keep_keys": q.keepKeys = s
            default: q.delay = s
            }
        }
        if q.keepKeys != nil && q.retainDone == nil { error(t["keep_keys"]!.position, "'keep_keys' needs 'retain_done'") }
        if let n = t["rate"] {
            if case .string(let s) = n.value, Self.isRate(s) { q.rate = s } else {
                error(n.position, "'rate' must be a count per second, minute or hour, such as \"10/s\"")
            }
        }
        return q
    }

    /// "300s", "5m", "1h", "2d" to seconds.
    static func seconds(_ s: String) -> Int? {
        guard let unit = s.last, let n = Int(s.dropLast()), s.dropLast().allSatisfy(\.isASCII), s.dropLast().allSatisfy(\.isNumber), n >= 0 else { return nil }
        switch unit { case "s": return n; case "m": return n * 60; case "h": return n * 3600; case "d": return n * 86400; default: return nil }
    }

    static func isSubsecond(_ s: String) -> Bool {
        s.hasSuffix("ms") && !s.dropLast(2).isEmpty && s.dropLast(2).allSatisfy { $0.isASCII && $0.isNumber }
    }

    static func isRate(_ s: String) -> Bool {
        let parts = s.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, parts[0].count <= 9, parts[0].allSatisfy({ $0.isASCII && $0.isNumber }),
              let n = Int(parts[0]), n > 0 else { return false }
        return ["s", "m", "h"].contains(parts[1])
    }
}
