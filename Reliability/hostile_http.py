#!/usr/bin/env python3
"""Hostile HTTP corpus against a live `spool serve`, with a one-way differential check against h11.

Each case is raw bytes sent on a fresh connection and the status spool must answer (the first response on
the connection). Then every case is fed to h11 (PyPI), a strict reference parser: whatever h11 rejects,
spool must reject too (h11 accepts a few things spool refuses on purpose: CL+TE, identical duplicate
Content-Length, obs-fold, bare LF). Usage:

    Reliability/hostile_http.py [--spool .build/debug/spool]      (pip install h11 for the differential)
"""
import argparse, os, socket, subprocess, sys, tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import loop_mount_permitted, start_serve  # noqa: E402
P = "POST /json2video/done HTTP/1.1\r\n"
H = "Host: x\r\n"
J = '{"project":"k1"}'
OK = f"{P}{H}Content-Type: application/json\r\nContent-Length: {len(J)}\r\n\r\n{J}"


def req(head, body=""):
    return (head + "\r\n" + body).encode("latin-1")


CASES = [
    # (name, bytes, expected status)
    ("valid POST", OK.encode(), 200),
    ("valid chunked POST", f"{P}{H}Transfer-Encoding: chunked\r\n\r\n{len(J):x}\r\n{J}\r\n0\r\n\r\n".encode(), 200),
    ("leading empty lines tolerated", ("\r\n\r\n" + OK).encode(), 200),
    ("CL and TE together", req(f"{P}{H}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n"), 400),
    ("TE and CL together", req(f"{P}{H}Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", "0\r\n\r\n"), 400),
    ("CL +5", req(f"{P}{H}Content-Length: +5\r\n", "hello"), 400),
    ("CL -0", req(f"{P}{H}Content-Length: -0\r\n"), 400),
    ("CL 0x5", req(f"{P}{H}Content-Length: 0x5\r\n", "hello"), 400),
    ("CL 5 5", req(f"{P}{H}Content-Length: 5 5\r\n", "hello"), 400),
    ("CL 5.0", req(f"{P}{H}Content-Length: 5.0\r\n", "hello"), 400),
    ("CL empty", req(f"{P}{H}Content-Length: \r\n"), 400),
    ("CL list 5,5", req(f"{P}{H}Content-Length: 5,5\r\n", "hello"), 400),
    ("CL twice equal", req(f"{P}{H}Content-Length: 5\r\nContent-Length: 5\r\n", "hello"), 400),
    ("CL twice different", req(f"{P}{H}Content-Length: 5\r\nContent-Length: 6\r\n", "hello!"), 400),
    ("CL overflow", req(f"{P}{H}Content-Length: 99999999999999999999999\r\n"), 413),
    ("CL over body limit", req(f"{P}{H}Content-Length: 2000000\r\n"), 413),
    ("TE gzip", req(f"{P}{H}Transfer-Encoding: gzip\r\n"), 400),
    ("TE chunked, gzip", req(f"{P}{H}Transfer-Encoding: chunked, gzip\r\n"), 400),
    ("TE gzip, chunked", req(f"{P}{H}Transfer-Encoding: gzip, chunked\r\n", "0\r\n\r\n"), 501),
    ("TE chunked twice one field", req(f"{P}{H}Transfer-Encoding: chunked, chunked\r\n", "0\r\n\r\n"), 400),
    ("TE chunked twice two fields", req(f"{P}{H}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n"), 400),
    ("TE empty", req(f"{P}{H}Transfer-Encoding: \r\n"), 400),
    ("TE xchunked", req(f"{P}{H}Transfer-Encoding: xchunked\r\n"), 400),
    ("TE on HTTP/1.0", req(f"POST /json2video/done HTTP/1.0\r\n{H}Transfer-Encoding: chunked\r\n", "0\r\n\r\n"), 400),
    ("TE with CL in trailer", req(f"{P}{H}Transfer-Encoding: chunked\r\n", f"{len(J):x}\r\n{J}\r\n0\r\nContent-Length: 5\r\n\r\n"), 200),
    ("obs-fold", req(f"{P}{H}X-A: 1\r\n b\r\nContent-Length: 0\r\n"), 400),
    ("obs-fold with tab", req(f"{P}{H}X-A: 1\r\n\tb\r\nContent-Length: 0\r\n"), 400),
    ("space before colon", req(f"{P}{H}Content-Length : 0\r\n"), 400),
    ("tab before colon", req(f"{P}{H}Content-Length\t: 0\r\n"), 400),
    ("empty field name", req(f"{P}{H}: v\r\nContent-Length: 0\r\n"), 400),
    ("field name with space", req(f"{P}{H}X A: v\r\nContent-Length: 0\r\n"), 400),
    ("field name with (", req(f"{P}{H}X(A): v\r\nContent-Length: 0\r\n"), 400),
    ("line without colon", req(f"{P}{H}garbage\r\nContent-Length: 0\r\n"), 400),
    ("bare LF line ending", (P + H + "Content-Length: 0\n\r\n").encode(), 400),
    ("all bare LF", ("POST /json2video/done HTTP/1.1\nHost: x\nContent-Length: 0\n\n").encode(), 400),
    ("bare CR in value", req(f"{P}{H}X-A: a\rb\r\nContent-Length: 0\r\n"), 400),
    ("bare CR in request line", (f"POST /json2video/done\rHTTP/1.1\r\n{H}\r\n").encode(), 400),
    ("NUL in value", req(f"{P}{H}X-A: a\x00b\r\nContent-Length: 0\r\n"), 400),
    ("NUL in target", req(f"POST /json2video/\x00done HTTP/1.1\r\n{H}Content-Length: 0\r\n"), 400),
    ("CTL in value", req(f"{P}{H}X-A: a\x01b\r\nContent-Length: 0\r\n"), 400),
    ("DEL in value", req(f"{P}{H}X-A: a\x7fb\r\nContent-Length: 0\r\n"), 400),
    ("missing Host on 1.1", req(f"{P}Content-Length: 0\r\n"), 400),
    ("two Host fields", req(f"{P}{H}{H}Content-Length: 0\r\n"), 400),
    ("Host with space", req(f"{P}Host: a b\r\nContent-Length: 0\r\n"), 400),
    ("Host with @", req(f"{P}Host: user@x\r\nContent-Length: 0\r\n"), 400),
    ("Host with /", req(f"{P}Host: x/y\r\nContent-Length: 0\r\n"), 400),
    ("HTTP/0.9 request", b"GET /\r\n\r\n", 400),
    ("HTTP/2.0 version", req(f"POST /json2video/done HTTP/2.0\r\n{H}Content-Length: 0\r\n"), 505),
    ("HTTP/1.2 version", req(f"POST /json2video/done HTTP/1.2\r\n{H}Content-Length: 0\r\n"), 505),
    ("lowercase version", req(f"POST /json2video/done http/1.1\r\n{H}Content-Length: 0\r\n"), 400),
    ("version with suffix", req(f"POST /json2video/done HTTP/1.1x\r\n{H}Content-Length: 0\r\n"), 400),
    ("double space in request line", req(f"POST  /json2video/done HTTP/1.1\r\n{H}Content-Length: 0\r\n"), 400),
    ("trailing space in request line", req(f"POST /json2video/done HTTP/1.1 \r\n{H}Content-Length: 0\r\n"), 400),
    ("method not a token", req(f"PO(ST /json2video/done HTTP/1.1\r\n{H}Content-Length: 0\r\n"), 400),
    ("absolute-form target", req(f"POST http://x/json2video/done HTTP/1.1\r\n{H}Content-Length: 0\r\n"), 400),
    ("asterisk target on POST", req(f"POST * HTTP/1.1\r\n{H}Content-Length: 0\r\n"), 400),
    ("target with #", req(f"POST /json2video/done#x HTTP/1.1\r\n{H}Content-Length: 0\r\n"), 400),
    ("request line over 8 KiB", req(f"GET /{'a' * 9000} HTTP/1.1\r\n{H}"), 414),
    ("header section over 32 KiB", req(f"{P}{H}" + "".join(f"X-{i}: {'v' * 1000}\r\n" for i in range(40))), 431),
    ("more than 100 fields", req(f"{P}{H}" + "".join(f"X-{i}: v\r\n" for i in range(120))), 431),
    ("chunk size 0x5", req(f"{P}{H}Transfer-Encoding: chunked\r\n", "0x5\r\nhello\r\n0\r\n\r\n"), 400),
    ("chunk size -1", req(f"{P}{H}Transfer-Encoding: chunked\r\n", "-1\r\nhello\r\n0\r\n\r\n"), 400),
    ("chunk size 17 hex digits", req(f"{P}{H}Transfer-Encoding: chunked\r\n", "1" * 17 + "\r\n"), 400),
    ("chunk size with space", req(f"{P}{H}Transfer-Encoding: chunked\r\n", "5 \r\nhello\r\n0\r\n\r\n"), 400),
    ("chunk data without CRLF", req(f"{P}{H}Transfer-Encoding: chunked\r\n", "5\r\nhelloXX0\r\n\r\n"), 400),
    ("chunk extension with CTL", req(f"{P}{H}Transfer-Encoding: chunked\r\n", "5;a=\x01\r\nhello\r\n0\r\n\r\n"), 400),
    ("chunk line over 1 KiB", req(f"{P}{H}Transfer-Encoding: chunked\r\n", "5;" + "a" * 1100 + "\r\nhello\r\n0\r\n\r\n"), 400),
    ("chunked body over limit", req(f"{P}{H}Transfer-Encoding: chunked\r\n", "200000\r\n"), 413),
    ("trailer section over 8 KiB", req(f"{P}{H}Transfer-Encoding: chunked\r\n", "0\r\n" + "".join(f"X-{i}: {'v' * 500}\r\n" for i in range(20)) + "\r\n"), 431),
    ("POST without framing", req(f"{P}{H}"), 411),
    ("Expect: something-else", req(f"{P}{H}Expect: something-else\r\nContent-Length: 0\r\n"), 417),
    ("GET on webhook path", req(f"GET /json2video/done HTTP/1.1\r\n{H}"), 405),
    ("unknown path", req(f"GET /admin HTTP/1.1\r\n{H}"), 404),
    ("invalid JSON body", req(f"{P}{H}Content-Length: 5\r\n", "{nope"), 400),
    ("JSON without key", req(f"{P}{H}Content-Length: 7\r\n", '{"a":1}'), 422),
    ("ambiguous duplicate key member", req(f"{P}{H}Content-Length: 31\r\n", '{"project":"a","project":"bbbb"}'[:31]), 400),
    ("pipelined garbage after a valid request", OK.encode() + b"GARBAGE\r\n\r\n", 200),
]


# Where spool deliberately accepts what h11 rejects, with the reason. Anything else h11 rejects, spool must too.
DIFFERENTIAL_EXCEPTIONS = {
    "leading empty lines tolerated": "RFC 9112 section 2.2: a server SHOULD ignore at least one empty line received "
                                     "before the request-line (spool ignores up to 8, CRLF only); h11 rejects them",
}


def first_status(port, data, timeout=5.0):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        buf = b""
        while b"\r\n" not in buf:
            chunk = s.recv(4096)
            if not chunk: break
            buf += chunk
        line = buf.split(b"\r\n", 1)[0].decode("latin-1")
        return int(line.split()[1]) if line.startswith("HTTP/1.1 ") else 0
    except (socket.timeout, ConnectionResetError):
        return 0
    finally:
        s.close()


def h11_rejects(data):
    import h11
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=32 * 1024)
    try:
        conn.receive_data(data)
        conn.receive_data(b"")  # end of input: an incomplete request is an error too
        while True:
            ev = conn.next_event()
            if ev is h11.NEED_DATA or isinstance(ev, (h11.EndOfMessage, h11.ConnectionClosed)) or ev is h11.PAUSED:
                return False
    except h11.RemoteProtocolError:
        return True


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spool", default=os.path.join(ROOT, ".build/debug/spool"))
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="spool-hostile-")
    srv, port = start_serve(args.spool, os.path.join(work, "s"), "--max-body", "1048576")
    failures = 0
    try:
        for name, data, want in CASES:
            got = first_status(port, data)
            if got != want:
                failures += 1
                print(f"FAIL {name}: expected {want}, got {got}")
        try:
            import h11  # noqa: F401
            diff = 0
            for name, data, want in CASES:
                if h11_rejects(data) and want < 400:
                    if name in DIFFERENTIAL_EXCEPTIONS:
                        print(f"note: h11 rejects '{name}', spool accepts on purpose: {DIFFERENTIAL_EXCEPTIONS[name]}")
                        continue
                    diff += 1; failures += 1
                    print(f"FAIL differential: h11 rejects '{name}' but spool answers {want}")
            print(f"h11 differential: {sum(1 for _, d, _ in CASES if h11_rejects(d))} of {len(CASES)} rejected by h11, "
                  f"{diff} of those accepted by spool")
        except ImportError:
            print("**** h11 differential SKIPPED: pip install h11 ****")
        srv.send_signal(15); srv.wait(20)
        if srv.returncode != 0: failures += 1; print("FAIL server did not stop cleanly after the corpus")
    finally:
        if srv.poll() is None: srv.kill()
    print(f"hostile_http: {len(CASES)} cases, {failures} failure(s)")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
