import SpoolSystem
import SpoolWire

/// One accepted connection, owned by the loop thread only: its byte stream, what waits to be written, and the
/// HTTP exchange (`machine`). Kept small (no buffers while idle) so thousands of idle or slow clients cost little.
final class Connection {
    /// The bytes of this connection: a plain socket, or TLS over it. The loop never touches the socket.
    let stream: any ByteStream
    let id: UInt64
    let remote: String
    var machine: ConnectionStateMachine
    var output: [UInt8] = []
    var outputOffset = 0
    /// 0 when nothing is waiting to be written.
    var writeDeadline: Int64 = 0
    /// The stream cannot read until the socket is writable (TLS must send before it can decrypt more).
    var readWaitsForWrite = false
    /// The stream cannot write until the socket is readable (TLS must receive before it can encrypt more).
    var writeWaitsForRead = false
    /// The epoll interest currently registered.
    var interest: Epoll.Events
    var requestStartMono: Int64 = 0
    var requestStartWall: Int64 = 0
    var closed = false
    /// Queued on the loop's resume list (bytes to parse, or buffered input to read, at top level).
    var resumeQueued = false

    init(stream: any ByteStream, id: UInt64, remote: String, machine: ConnectionStateMachine, interest: Epoll.Events) {
        self.stream = stream
        self.id = id
        self.remote = remote
        self.machine = machine
        self.interest = interest
    }

    var hasOutput: Bool { outputOffset < output.count }

    /// The epoll interest this connection needs now.
    var wantedInterest: Epoll.Events {
        var want: Epoll.Events = []
        if machine.wantsRead || writeWaitsForRead { want.insert(.readable) }
        if hasOutput || readWaitsForWrite { want.insert(.writable) }
        return want
    }
}
