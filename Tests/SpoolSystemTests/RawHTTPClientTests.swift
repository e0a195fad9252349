import Testing
import SpoolSystem
import SpoolTestSupport

/// The shared raw HTTP test client reads what the HTTP and CLI tests rely on: interim responses, Content-Length
/// framing with several responses in one read, and a body framed by the server closing the connection.
@Suite struct RawHTTPClientTests {
    @Test func framesByContentLengthAndByClose() throws {
        let listener = try Socket.listen(Socket.Address(host: "127.0.0.1", port: 0)!, backlog: 1)
        defer { try? listener.close() }
        let port = try listener.localPort()
        let c = try RawHTTPClient(port: port)
        let peer = try #require(try waitForConnection(listener))
        try peer.sendAll(Array(("HTTP/1.1 100 Continue\r\n\r\n"
            + "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: \t v \r\n\r\nhi"
            + "HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\nuntil close").utf8))
        try peer.close()

        let interim = try #require(c.readResponse())
        #expect(interim.status == 100 && interim.body.isEmpty)
        let sized = try #require(c.readResponse())
        #expect(sized.status == 200 && sized.text == "hi" && sized.header("x-a") == "v" && sized.header("X-B") == nil)
        let closed = try #require(c.readResponse())
        #expect(closed.status == 404 && closed.text == "until close" && closed.header("connection") == "close")
        #expect(c.readResponse() == nil)
        #expect(c.buffer.isEmpty)
    }

    @Test func refusedConnectionThrowsErrno() throws {
        let port = try freePort()
        #expect(throws: Errno.self) { _ = try RawHTTPClient(port: port) }
    }

    private func waitForConnection(_ listener: FileDescriptor) throws -> FileDescriptor? {
        var accepted: FileDescriptor?
        _ = try waitUntil(timeout: 5) { () throws -> Bool in
            accepted = try Socket.accept(listener)
            return accepted != nil
        }
        return accepted
    }
}
