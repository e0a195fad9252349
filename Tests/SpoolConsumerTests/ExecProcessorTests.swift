import Foundation
import Synchronization
import Testing
import SpoolCore
import SpoolSystem
import SpoolTestSupport
@testable import SpoolConsumer

/// The `--exec` handler contract, in-process: a real `/bin/sh` handler per item, the outcome it maps to, and
/// what it is given (stdin, environment).
@Suite struct ExecProcessorTests {
    final class Lines: Sendable {
        let all = Mutex<[String]>([])
        func add(_ s: String) { all.withLock { $0.append(s) } }
    }

    /// Enqueues one item, runs one consumer in `.once` mode with `command`, and returns the item's final state and
    /// the consumer's log.
    func runOnce(_ command: String, key: String = "K1", payload: String = "hello", timeoutNanos: Int64 = 10_000_000_000) throws -> (ItemInfo, [String]) {
        let dir = makeTempDir("exec") + "/s"
        let spool = try Spool(path: dir)
        _ = try spool.enqueue(key: try SpoolKey(key), payload: Array(payload.utf8))
        let lines = Lines()
        let exec = ExecProcessor(command: command, spoolDir: dir, timeoutNanos: timeoutNanos, killAfterNanos: 500_000_000,
                                 environment: ["PATH": "/usr/bin:/bin"], log: { lines.add($0) })
        var config = ConsumerConfiguration()
        config.mode = .once
        config.policy.maxAttempts = 1
        let consumer = try Consumer(spool: spool, processor: exec, configuration: config, log: { lines.add($0) })
        _ = consumer.run()
        return (try spool.find(key: try SpoolKey(key)), lines.all.withLock { $0 })
    }

    @Test func exitZeroIsDoneAndTheHandlerSeesPayloadAndEnvironment() throws {
        let (info, log) = try runOnce(#"test "$(cat)" = hello && test "$SPOOL_KEY" = K1 && test "$SPOOL_ATTEMPT" = 1 && echo seen-$SPOOL_KEY"#)
        #expect(info.state == .done)
        #expect(log.contains { $0.contains("stdout: seen-K1") })
    }

    @Test func exit65IsAPermanentFailureWithStderrKept() throws {
        let (info, _) = try runOnce("echo 'bad payload' >&2; exit 65")
        #expect(info.state == .failed)
        #expect(info.meta?.lastError == "bad payload")
        #expect(info.meta?.lastStatus == "exit 65")
    }

    @Test func otherExitsAndSignalsAreRetryableFailures() throws {
        let (exit3, _) = try runOnce("exit 3")
        #expect(exit3.meta?.lastStatus == "exit 3")
        let (killed, _) = try runOnce("kill -9 $$")
        #expect(killed.meta?.lastStatus == "signal 9")
    }

    @Test func aHandlerOverItsTimeoutIsStoppedWithItsChildren() throws {
        let start = monotonicNanos()
        let (info, _) = try runOnce("sleep 30 & sleep 30", timeoutNanos: 300_000_000)
        #expect(info.meta?.lastStatus == "timeout")
        #expect(monotonicNanos() - start < 10_000_000_000)
    }

    @Test func lineAndTailBuffersBoundWhatTheyKeep() {
        var lines = LineBuffer()
        #expect(lines.feed(Array("a\nbc".utf8)) == ["a"])
        #expect(lines.feed(Array("d\n".utf8)) == ["bcd"])
        #expect(lines.feed(Array(repeating: 0x78, count: LineBuffer.maxLine + 10) + [0x0A]).first?.utf8.count == LineBuffer.maxLine)
        var tail = TailBuffer(limit: 4)
        tail.append(Array("0123456789\n".utf8))
        #expect(tail.text == "789")
    }
}
