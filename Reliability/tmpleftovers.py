#!/usr/bin/env python3
"""After a crash, `spool recover` leaves nothing in tmp/ (issue 17.2).

Each round: `spool serve` takes unique webhooks from 16 client threads, is SIGKILLed at a random moment, the
clients stop, and `spool recover` runs at once. tmp/ must then be empty (the writer of every leftover is dead,
which its name says: pid and start time), and every webhook that was acknowledged must be in the spool. The next
round restarts serve on the same spool. Exit 1 on any failure.

    Reliability/tmpleftovers.py [--rounds 50] [--spool .build/debug/spool]
"""
import argparse, http.client, os, random, subprocess, sys, tempfile, threading, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import start_serve  # noqa: E402


def client(port, tag, stop, acked):
    n = 0
    while not stop.is_set():
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            while not stop.is_set():
                n += 1
                key = f"{tag}-{n}"
                c.request("POST", "/json2video/done", ('{"project":"%s","pad":"%s"}' % (key, "x" * 700)).encode(),
                          {"Content-Type": "application/json"})
                r = c.getresponse(); body = r.read()
                if r.status == 200 and b'"accepted"' in body: acked.append(key)
        except Exception:
            time.sleep(0.005)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=50)
    ap.add_argument("--spool", default=os.path.join(ROOT, ".build/debug/spool"))
    a = ap.parse_args()
    d = os.path.join(tempfile.mkdtemp(prefix="tmpleft-"), "s")
    failures, leftovers_seen, total_acked = 0, 0, 0
    for r in range(a.rounds):
        serve, port = start_serve(a.spool, d)
        stop, acked = threading.Event(), []
        threads = [threading.Thread(target=client, args=(port, f"r{r}t{t}", stop, acked)) for t in range(16)]
        for t in threads: t.start()
        time.sleep(random.uniform(0.15, 0.6))
        serve.kill(); serve.wait()
        stop.set()
        for t in threads: t.join()
        before = os.listdir(os.path.join(d, "tmp"))
        leftovers_seen += len(before)
        rec = subprocess.run([a.spool, "--dir", d, "recover"], capture_output=True, text=True)
        after = os.listdir(os.path.join(d, "tmp"))
        present = set(os.listdir(os.path.join(d, "new")))
        lost = [k for k in acked if k not in present]
        total_acked += len(acked)
        if rec.returncode != 0 or after or lost:
            failures += 1
            print(f"FAIL round {r + 1}: recover rc={rec.returncode}, tmp/ after recover: {after[:5]}, lost acknowledged: {lost[:5]}")
    print(f"tmpleftovers: {a.rounds} rounds, {total_acked} acknowledged webhooks, {leftovers_seen} tmp/ leftovers found after "
          f"the kills, {failures} failure(s)")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
