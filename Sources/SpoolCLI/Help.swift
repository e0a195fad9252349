/// `spool COMMAND --help`, generated from the command's declarations (never written by hand, so every option
/// the parser accepts is listed, with the value it takes, its help and its default).
extension Command {
    /// Help text starts in this column; a longer label gets a line of its own.
    static let helpColumn = 24
    /// A default that would make its line longer than this goes on a line of its own.
    static let helpWidth = 110

    var help: String {
        var lines = [usageLine, ""]
        lines += description.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        for group in allGroups where !group.options.isEmpty {
            lines += ["", group.title + ":"]
            for o in group.options { lines += Command.helpRows(label: o.label, text: o.help, defaultValue: o.defaultValue) }
        }
        lines += Command.helpRows(label: "-h, --help", text: "print this help")
        lines += ["", "environment:"]
        for v in allEnvironment { lines += Command.helpRows(label: v.name, text: v.help) }
        if !examples.isEmpty {
            lines += ["", "examples:"]
            for e in examples { lines += ["  " + e.command, "      " + e.what] }
        }
        return lines.joined(separator: "\n")
    }

    /// `  LABEL   first line` then the further lines of `text` aligned under the first, then `(default ...)`.
    static func helpRows(label: String, text: String, defaultValue: String? = nil) -> [String] {
        let indent = String(repeating: " ", count: helpColumn)
        var textLines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if let d = defaultValue.map({ "(default \($0))" }) {
            let defaultLines = d.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            if let last = textLines.last, helpColumn + last.count + 1 + defaultLines[0].count <= helpWidth {
                textLines[textLines.count - 1] += " " + defaultLines[0]
                textLines += defaultLines.dropFirst()
            } else {
                textLines += defaultLines
            }
        }
        var head = "  " + label
        if head.count + 2 <= helpColumn, !textLines.isEmpty {
            head += String(repeating: " ", count: helpColumn - head.count) + textLines.removeFirst()
        }
        return [head] + textLines.map { indent + $0 }
    }
}
