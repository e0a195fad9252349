import Testing
import SpoolWire
@testable import SpoolHTTP

/// The connection's exchange driven with bytes and instants alone: no socket, no clock.
@Suite struct ConnectionStateMachineTests {
    static let t = ConnectionStateMachine.Timeouts(header: 10, body: 30, idle: 15, linger: 2)
    func machine(now: Int64 = 0) -> ConnectionStateMachine {
        ConnectionStateMachine(limits: HTTPParserLimits(), timeouts: Self.t, now: now)
    }

    func feed(_ m: inout ConnectionStateMachine, _ text: String, now: Int64 = 0,
              check: (HTTPRequestHead) -> HTTPResponse? = { _ in nil }) -> ConnectionStateMachine.Action {
        Array(text.utf8).withUnsafeBytes { m.received($0, now: now, check: check) }
    }

    @Test func pipelinedRequestsWaitForTheResponseAndThenResume() {
        var m = machine()
        let a = feed(&m, "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhiGET /b HTTP/1.1\r\nHost: x\r\n\r\n")
        guard case .dispatch(let request, let seq) = a else { Issue.record("expected dispatch, got \(a)"); return }
        #expect(request.head.path == "/a" && request.body == Array("hi".utf8) && seq == 1)
        #expect(m.state == .handling(sequence: 1) && !m.wantsRead && m.hasPending)
        guard case .respond(_, let close)? = m.handlerResponded(.init(status: 200), sequence: 1) else { Issue.record("no respond"); return }
        #expect(!close && m.state == .responding(closeAfter: false))
        guard case .parsePending = m.outputDrained(now: 5) else { Issue.record("expected parsePending"); return }
        #expect(m.deadline == .idle(20))
        let rest = m.takePending()
        let b = rest.withUnsafeBytes { m.received($0, now: 6, check: { _ in nil }) }
        guard case .dispatch(let second, 2) = b else { Issue.record("expected second dispatch, got \(b)"); return }
        #expect(second.head.path == "/b" && !m.hasPending)
    }

    @Test func staleOrDuplicateAnswersAreIgnored() {
        var m = machine()
        _ = feed(&m, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(m.handlerResponded(.init(status: 200), sequence: 7) == nil)
        #expect(m.handlerResponded(.init(status: 200), sequence: 1) != nil)
        #expect(m.handlerResponded(.init(status: 200), sequence: 1) == nil)
    }

    @Test func earlyAnswerKeepsABodilessConnectionButClosesOneWithAnUnreadBody() {
        let reject: (HTTPRequestHead) -> HTTPResponse? = { _ in .error(status: 401, "no") }
        var m = machine()
        guard case .respond(let r, false) = feed(&m, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", check: reject) else { Issue.record("keep"); return }
        #expect(r.status == 401)
        guard case .readMore = m.outputDrained(now: 1) else { Issue.record("expected keep-alive"); return }
        #expect(m.state == .head)
        var n = machine()
        guard case .respond(_, true) = feed(&n, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n", check: reject) else { Issue.record("close"); return }
        guard case .linger = n.outputDrained(now: 1) else { Issue.record("expected linger"); return }
        #expect(n.state == .lingering && n.deadline == .linger(3))
        guard case .readMore = feed(&n, "garbage that is dropped") else { Issue.record("lingering drops input"); return }
        guard case .close = n.deadlinePassed(now: 3) else { Issue.record("linger ends"); return }
    }

    @Test func expectContinueAsksForTheInterimResponseAndKeepsTheRest() {
        var m = machine()
        guard case .sendContinue = feed(&m, "POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nab") else {
            Issue.record("expected 100"); return
        }
        #expect(m.takePending() == Array("ab".utf8))
        _ = feed(&m, "ab")
        guard case .dispatch(let req, _) = feed(&m, "c") else { Issue.record("expected dispatch"); return }
        #expect(req.body == Array("abc".utf8))
    }

    @Test func headerDeadlineClosesQuietlyOnlyWhenNothingArrived() {
        var quiet = machine(now: 100)
        guard case .readMore = quiet.deadlinePassed(now: 109) else { Issue.record("early"); return }
        guard case .close = quiet.deadlinePassed(now: 110) else { Issue.record("expected close"); return }
        var partial = machine(now: 100)
        _ = feed(&partial, "GET / HT", now: 101)
        guard case .respond(let r, true) = partial.deadlinePassed(now: 110) else { Issue.record("expected 408"); return }
        #expect(r.status == 408)
    }

    @Test func bodyDeadlineCountsFromTheEndOfTheHead() {
        var m = machine()
        _ = feed(&m, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\nab", now: 4)
        #expect(m.deadline == .body(34))
        guard case .respond(let r, true) = m.deadlinePassed(now: 34) else { Issue.record("expected 408"); return }
        #expect(r.status == 408)
    }

    @Test func idleConnectionGetsAFreshHeaderDeadlineFromItsFirstByte() {
        var m = machine()
        _ = feed(&m, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        _ = m.handlerResponded(.init(status: 204), sequence: 1)
        _ = m.outputDrained(now: 50)
        #expect(m.deadline == .idle(65) && m.isIdle)
        _ = feed(&m, "GE", now: 60)
        #expect(m.deadline == .header(70) && !m.isIdle)
    }

    @Test func parseErrorsAnswerWithTheirStatusAndClose() {
        var m = machine()
        guard case .respond(let r, true) = feed(&m, "GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n") else {
            Issue.record("expected error response"); return
        }
        #expect(r.status == 400)
    }

    @Test func shutdownMakesTheNextResponseClose() {
        var m = machine()
        _ = feed(&m, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        m.beginShutdown()
        guard case .respond(_, true)? = m.handlerResponded(.init(status: 200), sequence: 1) else { Issue.record("expected close"); return }
    }

    @Test func http10WithoutKeepAliveCloses() {
        var m = machine()
        _ = feed(&m, "GET / HTTP/1.0\r\n\r\n")
        guard case .respond(_, true)? = m.handlerResponded(.init(status: 200), sequence: 1) else { Issue.record("expected close"); return }
    }
}
