import Foundation
import Glibc
import SpoolTestSupport

/// Headless Chromium driven over the DevTools protocol on `--remote-debugging-pipe` (fd 3 in, fd 4 out, one
/// JSON message per NUL), through two FIFOs: no WebSocket needed. Just enough to open a page, evaluate an
/// expression in it (DevTools evaluation is not subject to the page's CSP) and read the result.
final class DevToolsBrowser {
    let child: Child
    let input: FileHandle
    let output: Int32
    var buffer: [UInt8] = []
    var nextID = 1
    let dir = makeTempDir("cdp")

    init(chromium: String) throws {
        let inPath = dir + "/in", outPath = dir + "/out"
        guard mkfifo(inPath, 0o600) == 0, mkfifo(outPath, 0o600) == 0 else { throw POSIXError(.EIO) }
        let args = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-dev-shm-usage",
                    "--user-data-dir=\(dir)/profile", "--remote-debugging-pipe", "about:blank"]
        child = try Child("/bin/sh", ["-c", "exec \"$0\" \"$@\" 3<\(inPath) 4>\(outPath)", chromium] + args)
        // Same order as the shell: its fd 3 (our writer) first, then its fd 4 (our reader).
        input = try FileHandle(forWritingTo: URL(fileURLWithPath: inPath))
        output = Glibc.open(outPath, O_RDONLY)
        guard output >= 0 else { throw POSIXError(.EIO) }
    }

    deinit {
        try? input.close()
        close(output)
        child.signal(SIGKILL)
        _ = child.wait(timeout: 10)
    }

    struct Timeout: Error {}

    /// Sends a command and waits for its answer (events in between are dropped).
    @discardableResult
    func send(_ method: String, _ params: [String: Any] = [:], session: String? = nil, timeout: Double = 20) throws -> [String: Any] {
        let id = nextID
        nextID += 1
        var message: [String: Any] = ["id": id, "method": method, "params": params]
        if let session { message["sessionId"] = session }
        var data = try JSONSerialization.data(withJSONObject: message)
        data.append(0)
        input.write(data)
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            while let nul = buffer.firstIndex(of: 0) {
                let one = Array(buffer[..<nul])
                buffer.removeSubrange(...nul)
                if let obj = try JSONSerialization.jsonObject(with: Data(one)) as? [String: Any], obj["id"] as? Int == id { return obj }
            }
            let left = deadline.timeIntervalSinceNow
            guard left > 0 else { throw Timeout() }
            var p = pollfd(fd: output, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, Int32(left * 1000)) > 0 else { throw Timeout() }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let n = read(output, &chunk, chunk.count)
            guard n > 0 else { throw Timeout() }
            buffer += chunk[0..<n]
        }
    }

    /// A new tab on `url`, attached: returns the session to send page commands to.
    func open(_ url: String) throws -> String {
        let target = try send("Target.createTarget", ["url": url])
        let targetID = (target["result"] as? [String: Any])?["targetId"] as? String ?? ""
        let attached = try send("Target.attachToTarget", ["targetId": targetID, "flatten": true])
        return (attached["result"] as? [String: Any])?["sessionId"] as? String ?? ""
    }

    /// The value of a JavaScript expression in the page (as DevTools evaluates it).
    func evaluate(_ expression: String, session: String) throws -> Any? {
        let r = try send("Runtime.evaluate", ["expression": expression, "returnByValue": true], session: session)
        return ((r["result"] as? [String: Any])?["result"] as? [String: Any])?["value"]
    }
}

import SpoolHTTP
import SpoolWire
import Synchronization

/// A one-page site on another port: the attacker's page in the CSRF browser test.
final class HTTPServerForTests: HTTPHandler, @unchecked Sendable {
    let html: String
    let count = Atomic<Int>(0)
    var server: HTTPServer?
    init(html: String) { self.html = html }
    var served: Int { count.load(ordering: .relaxed) }

    func handle(_ request: HTTPRequest, remote: String, respond: @escaping @Sendable (HTTPResponse) -> Void) {
        count.add(1, ordering: .relaxed)
        respond(HTTPResponse(status: 200, headers: ["Content-Type": "text/html"], body: Array(html.utf8)))
    }

    func start() throws -> UInt16 {
        let s = HTTPServer(handler: self)
        let port = try s.bind(host: "127.0.0.1", port: 0)
        server = s
        Thread.detachNewThread { try? s.run() }
        return port
    }

    func stop() { server?.shutdown(grace: .seconds(1)) }
}
