import SpoolHTTP
import SpoolSystem
import SpoolWire

/// `--metrics-listen HOST:PORT` of consume and pull: GET /metrics (Prometheus text, rendered by `render` on a thread
/// of its own, since it lists the queue's directories) and GET /healthz; anything else 404, other methods 405.
struct MetricsEndpoint: HTTPHandler {
    let render: @Sendable () -> String

    func checkHead(_ head: HTTPRequestHead, remote: String) -> HTTPResponse? {
        guard head.path == "/metrics" || head.path == "/healthz" else { return .error(status: .notFound, "not found", close: head.hasBody) }
        guard head.method == "GET" || head.method == "HEAD" else {
            return HTTPResponse(status: .methodNotAllowed, headers: ["Allow": "GET, HEAD", "Content-Type": "text/plain"],
                                body: Array("use GET\n".utf8), close: head.hasBody)
        }
        return nil
    }

    func handle(_ request: HTTPRequest, remote: String, respond: @escaping @Sendable (HTTPResponse) -> Void) {
        if request.head.path == "/healthz" {
            respond(HTTPResponse(status: .ok, headers: ["Content-Type": "text/plain"], body: Array("ok\n".utf8)))
            return
        }
        startThread { [render] in
            respond(HTTPResponse(status: .ok, headers: ["Content-Type": "text/plain; version=0.0.4"], body: Array(render().utf8)))
        }
    }

    /// Binds `listen` and serves on a thread of its own until `stop` is called, which waits for that thread.
    static func start(_ listen: CLI.ListenAddress, render: @escaping @Sendable () -> String, ctx: Context) throws -> (port: UInt16, stop: @Sendable () -> Void) {
        let server = HTTPServer(handler: MetricsEndpoint(render: render))
        let port: UInt16
        do { port = try server.bind(host: listen.host, port: listen.port) } catch {
            throw CommandFailure(message: "cannot listen on \(listen.text) for --metrics-listen: \(error)")
        }
        let done = try Wakeup()
        startThread {
            try? server.run()
            done.signal()
        }
        return (port, {
            server.shutdown(grace: .seconds(1))
            _ = try? pollReadable([done.fd], timeoutMillis: 5_000)
        })
    }
}
