#!/usr/bin/env python3
"""CPU a consumer burns while its downstream is down (issue 17.4): the target is well under 1% of a core.

For each sink (--nats, --post to a port where nothing listens) and concurrency (1, 16): 300 waiting items,
`spool consume --backoff 100ms --max-backoff 1s`, a few seconds to settle, then the process's CPU time
(utime + stime from /proc/PID/stat) over the measuring window. Prints one row per case; exits 1 if any case
uses more than --limit percent of a core (CI runs it with a short window). Usage:

    Benchmarks/outage_cpu.py [--spool .build/release/spool] [--seconds 5] [--settle 2] [--limit 1.0]
"""
import argparse, os, subprocess, sys, tempfile, time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "Reliability"))
from common import cpu_seconds, free_port as closed_port  # noqa: E402  (a port bound and released: nothing listens)


def case(spool, sink, conc, settle, seconds):
    d = tempfile.mkdtemp(prefix="outage-") + "/s"
    for i in range(300):
        subprocess.run([spool, "--dir", d, "enqueue", "--key", f"k{i}", "-"], input=b'{"x":1}', check=True,
                       stdout=subprocess.DEVNULL)
    port = closed_port()
    args = ["--nats", f"nats://127.0.0.1:{port}", "--subject", "s"] if sink == "nats" else ["--post", f"http://127.0.0.1:{port}/"]
    p = subprocess.Popen([spool, "--dir", d, "consume", *args, "--concurrency", str(conc), "--backoff", "100ms",
                          "--max-backoff", "1s"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(settle)
        c0, t0 = cpu_seconds(p.pid), time.monotonic()
        time.sleep(seconds)
        c1, t1 = cpu_seconds(p.pid), time.monotonic()
        return 100.0 * (c1 - c0) / (t1 - t0)
    finally:
        p.kill(); p.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--spool", default=".build/release/spool")
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--settle", type=float, default=2)
    ap.add_argument("--limit", type=float, default=1.0)
    a = ap.parse_args()
    worst = 0.0
    print(f"{'sink':<8}{'concurrency':>12}{'CPU % of a core':>18}")
    for sink in ("nats", "post"):
        for conc in (1, 16):
            pct = case(a.spool, sink, conc, a.settle, a.seconds)
            worst = max(worst, pct)
            print(f"{sink:<8}{conc:>12}{pct:>18.2f}", flush=True)
    ok = worst < a.limit
    print(f"outage_cpu: worst {worst:.2f}% of a core ({'ok' if ok else 'FAIL'}: limit {a.limit}%)")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
