#!/usr/bin/env python3
"""systemd integration of the long-running commands (issue 26), against the real protocols:

1. Type=notify: a datagram socket bound here as $NOTIFY_SOCKET. `spool serve` must send READY=1 only once its port
   answers (a webhook posted the moment READY=1 arrives is accepted), WATCHDOG=1 at half of $WATCHDOG_USEC, and
   STOPPING=1 on SIGTERM; `spool consume` READY=1 once it runs (after its startup recovery) and STOPPING=1 on SIGTERM.
2. Socket activation with systemd-socket-activate (Debian's systemd): the socket is passed as fd 3 named `webhook`;
   a small shell loop keeps it and starts `serve` again each time it exits (as systemd does for a socket unit). While a
   client posts continuously (a new connection per webhook), serve is stopped with SIGTERM and started again 3 times:
   no request may get a connection error, and every webhook must be stored.

Exit 0 when every check holds; 77 when systemd-socket-activate is missing (part 2 skipped, part 1 still run).

    Reliability/systemd.py [--spool .build/debug/spool]
"""
import argparse, http.client, os, shutil, signal, socket, subprocess, sys, tempfile, threading, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import check, failures, free_port, read_payload  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def post(port, key, timeout=10):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("POST", "/json2video/done", ('{"movie":{"project":"%s"}}' % key).encode(),
                  {"Content-Type": "application/json", "Connection": "close"})
        r = c.getresponse(); r.read()
        return r.status
    finally:
        c.close()


def notify_socket(work):
    path = os.path.join(work, "notify.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    return s, path


def messages(sock, until):
    """Datagrams received until `until` (monotonic), each as (time, dict of assignments)."""
    out = []
    while time.monotonic() < until:
        sock.settimeout(max(0.01, until - time.monotonic()))
        try:
            data = sock.recv(4096)
        except socket.timeout:
            break
        out.append((time.monotonic(), dict(l.split("=", 1) for l in data.decode().split("\n") if "=" in l)))
    return out


def wait_for(sock, key, timeout):
    end = time.monotonic() + timeout
    seen = []
    while time.monotonic() < end:
        for t, m in messages(sock, min(end, time.monotonic() + 0.2)):
            seen.append(m)
            if key in m: return t, m, seen
    return None, None, seen


def notify_checks(spool, work):
    sock, path = notify_socket(work)
    env = dict(os.environ, NOTIFY_SOCKET=path, WATCHDOG_USEC="400000")
    d = os.path.join(work, "n")
    p = subprocess.Popen([spool, "--dir", d, "serve", "--listen", "127.0.0.1:0"], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True)
    line = p.stdout.readline()
    port = int(line.split("127.0.0.1:")[1].split()[0])
    t, m, _ = wait_for(sock, "READY", 10)
    check(m is not None and m.get("READY") == "1", f"serve sent READY=1 (STATUS={m and m.get('STATUS')!r})")
    status = post(port, "notify-1") if m else None
    check(status == 200, f"a webhook posted the moment READY=1 arrived was accepted ({status})")
    pings = [t for t, m in messages(sock, time.monotonic() + 1.5) if m.get("WATCHDOG") == "1"]
    gaps = [b - a for a, b in zip(pings, pings[1:])]
    check(len(pings) >= 5 and all(0.12 <= g <= 0.35 for g in gaps),
          f"WATCHDOG=1 every 0.2 s (half of WATCHDOG_USEC=400000): {len(pings)} pings in 1.5 s, gaps {[round(g, 3) for g in gaps]}")
    p.send_signal(signal.SIGTERM)
    _, m, seen = wait_for(sock, "STOPPING", 10)
    check(m is not None, f"serve sent STOPPING=1 on SIGTERM ({seen[-3:]})")
    check(p.wait(timeout=20) == 0, "serve exited 0")
    # consume: READY=1 after its startup recovery, STOPPING=1 on SIGTERM.
    c = subprocess.Popen([spool, "--dir", d, "consume", "--exec", "cat >/dev/null"], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, m, seen = wait_for(sock, "READY", 10)
    check(m is not None and "queue default" in m.get("STATUS", ""), f"consume sent READY=1 with a STATUS ({m})")
    time.sleep(0.05)
    c.send_signal(signal.SIGTERM)
    _, m, seen = wait_for(sock, "STOPPING", 10)
    check(m is not None, "consume sent STOPPING=1 on SIGTERM")
    check(c.wait(timeout=40) == 0, "consume exited 0")
    check(read_payload(os.path.join(d, "done", "notify-1")) == b'{"movie":{"project":"notify-1"}}', "the webhook was handled")
    # Without NOTIFY_SOCKET nothing is sent and nothing breaks (every other test runs that way).
    sock.close()


def activation_checks(spool, work):
    activate = shutil.which("systemd-socket-activate")
    if not activate:
        print("**** SKIPPED: systemd-socket-activate is not installed (Debian's systemd package) ****")
        return False
    port = free_port()
    d = os.path.join(work, "a")
    stop = os.path.join(work, "stop")
    # The shell holds fd 3 (as systemd holds a socket unit's socket) and starts serve again whenever it exits; each
    # serve gets LISTEN_PID of its own (the inner sh execs it, keeping its pid).
    loop = (f'while [ ! -e {stop} ]; do sh -c \'LISTEN_PID=$$ exec "$0" --dir "$1" serve\' {spool} {d}; done')
    holder = subprocess.Popen([activate, "-l", f"127.0.0.1:{port}", "--fdname=webhook", "-E", "LISTEN_FDNAMES=webhook",
                               "sh", "-c", loop], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    errors, acked, sent = [], [], [0]
    done = threading.Event()
    time.sleep(0.3)  # systemd-socket-activate starts listening at once; the first connection starts serve

    def client():
        i = 0
        while not done.is_set():
            key = f"act-{i}"; i += 1
            try:
                s = post(port, key)
                if s == 200: acked.append(key)
                else: errors.append(f"{key}: HTTP {s}")
            except OSError as e:
                errors.append(f"{key}: {type(e).__name__} {e}")
            sent[0] = i

    th = threading.Thread(target=client); th.start()

    def serve_pid():
        out = subprocess.run(["pgrep", "-f", "--", f"--dir {d} serve"], capture_output=True, text=True).stdout.split()
        return int(out[0]) if out else None

    restarts = 0
    for _ in range(3):
        end = time.monotonic() + 10
        while serve_pid() is None and time.monotonic() < end: time.sleep(0.05)
        pid = serve_pid()
        if pid is None: break
        time.sleep(0.7)
        os.kill(pid, signal.SIGTERM)
        end = time.monotonic() + 20
        while serve_pid() == pid and time.monotonic() < end: time.sleep(0.02)
        restarts += 1
    time.sleep(0.7)
    done.set(); th.join()
    open(stop, "w").close()
    pid = serve_pid()
    if pid: os.kill(pid, signal.SIGTERM)
    try: holder.wait(timeout=20)
    except subprocess.TimeoutExpired: holder.kill()
    check(restarts == 3, f"serve restarted 3 times on the passed socket ({restarts})")
    check(not errors, f"no request got a connection error across the restarts ({len(errors)}: {errors[:3]})")
    stored = sum(1 for k in acked if read_payload(os.path.join(d, "new", k)) is not None)
    check(len(acked) > 20 and stored == len(acked), f"{len(acked)} of {sent[0]} webhooks acknowledged during the restarts, {stored} stored")
    return True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--spool", default=os.path.join(ROOT, ".build/debug/spool"))
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="systemd-")
    notify_checks(a.spool, work)
    ran = activation_checks(a.spool, work)
    print(f"systemd: {len(failures)} failure(s)")
    sys.exit(1 if failures else (0 if ran else 77))


if __name__ == "__main__":
    main()
