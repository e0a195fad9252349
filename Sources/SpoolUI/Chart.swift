/// The arrivals / completions / failures per minute of the last hour as an inline SVG: no script, no styles
/// (presentation attributes only, which a `style-src` policy does not govern), nothing fetched.
public enum Chart {
    public static let width = 720, height = 160

    public static func svg(arrivals: [Int], completions: [Int], failures: [Int]) -> String {
        let left = 40, right = 10, top = 10, bottom = 24
        let w = width - left - right, h = height - top - bottom
        let peak = max(1, (arrivals + completions + failures).max() ?? 1)
        let n = max(2, arrivals.count)
        func x(_ i: Int) -> Int { left + i * w / (n - 1) }
        func y(_ v: Int) -> Int { top + h - v * h / peak }
        func line(_ values: [Int], _ color: String, _ name: String) -> String {
            let points = values.enumerated().map { "\(x($0.offset)),\(y($0.element))" }.joined(separator: " ")
            return "<polyline class=\"series-\(name)\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\" points=\"\(points)\"/>"
        }
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" id=\"chart\" width=\"\(width)\" height=\"\(height)\" viewBox=\"0 0 \(width) \(height)\" role=\"img\" aria-labelledby=\"chart-title\">"
        s += "<title id=\"chart-title\">per minute, last hour: \(arrivals.reduce(0, +)) arrivals, \(completions.reduce(0, +)) completions, \(failures.reduce(0, +)) failures</title>"
        s += "<rect x=\"\(left)\" y=\"\(top)\" width=\"\(w)\" height=\"\(h)\" fill=\"#fafafa\" stroke=\"#ccc\"/>"
        for frac in [0, 1, 2] {
            let v = peak * frac / 2
            s += "<text x=\"\(left - 4)\" y=\"\(y(v) + 4)\" text-anchor=\"end\" font-size=\"11\" fill=\"#555\">\(v)</text>"
        }
        for m in stride(from: 0, through: 60, by: 15) {
            let i = min(n - 1, (n - 1) - m * (n - 1) / 60)
            s += "<text x=\"\(x(i))\" y=\"\(height - 6)\" text-anchor=\"middle\" font-size=\"11\" fill=\"#555\">\(m == 0 ? "now" : "-\(m)m")</text>"
        }
        s += line(arrivals, "#1f6feb", "arrivals")
        s += line(completions, "#2da44e", "completions")
        s += line(failures, "#cf222e", "failures")
        return s + "</svg>"
    }
}
