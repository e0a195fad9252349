#!/usr/bin/env python3
"""Memory of `spool serve` against the number of webhooks it accepts (issue 25.6): a soak of unique webhooks (wrk, 16 connections,
4 connections) with two consumers draining the queue and a purge every few seconds, sampling serve's RSS and anonymous
memory (/proc/PID/status) as items accumulate. Fails when anonymous memory grows with the number of items: a
the least RssAnon in the last quarter of the samples taken after the warm-up, minus the least in the first quarter, per
webhook accepted in between, above `--max-bytes-per-item` (the least, so that transient peaks do not count). Before the fix (every accepted name kept in the
ingress's claim cache) the slope was 147 bytes per webhook; after it, under 10.

    Reliability/memory.py [--spool .build/release/spool] [--webhooks 1000000] [--max-bytes-per-item 20]
"""
import argparse, os, subprocess, sys, tempfile, threading, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "Benchmarks"))
from common import check, failures, free_port, wait_port  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def memory(pid):
    v = {}
    for line in open(f"/proc/{pid}/status"):
        k, _, rest = line.partition(":")
        if k in ("VmRSS", "RssAnon"): v[k] = int(rest.split()[0]) * 1024
    return v


def accepted(port):
    import urllib.request
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    for line in text.splitlines():
        if line.startswith('spool_webhooks_accepted_total '): return int(float(line.split()[-1]))
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--spool", default=os.path.join(ROOT, ".build/release/spool"))
    ap.add_argument("--webhooks", type=int, default=1_000_000)
    ap.add_argument("--warmup", type=int, default=0, help="webhooks before the first sample (default a tenth)")
    ap.add_argument("--max-bytes-per-item", type=float, default=20.0)
    a = ap.parse_args()
    warm = a.warmup or a.webhooks // 10
    work = tempfile.mkdtemp(prefix="memory-", dir="/var/tmp")
    d = os.path.join(work, "s")
    port = free_port()
    serve = subprocess.Popen([a.spool, "--dir", d, "serve", "--listen", f"127.0.0.1:{port}"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    wait_port(port)
    consumers = [subprocess.Popen([a.spool, "--dir", d, "consume", "--exec", "true", "--concurrency", "4"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(2)]
    stop = threading.Event()

    def purger():
        while not stop.wait(5):
            subprocess.run([a.spool, "--dir", d, "purge", "--older-than", "0s"], capture_output=True)

    pt = threading.Thread(target=purger); pt.start()
    env = dict(os.environ, RUN_ID=str(time.time_ns()), THREADS="2", DUP_PERCENT="0")
    wrk = subprocess.Popen(["wrk", "-t2", "-c16", "-d3600s", "-s", os.path.join(ROOT, "Benchmarks/unique.lua"),
                            f"http://127.0.0.1:{port}/json2video/done"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    samples = []
    t0 = time.monotonic()
    try:
        while True:
            n = accepted(port)
            m = memory(serve.pid)
            if n >= warm: samples.append((n, m["RssAnon"], m["VmRSS"]))
            if n >= a.webhooks or time.monotonic() - t0 > 3600: break
            time.sleep(1)
    finally:
        wrk.terminate(); wrk.wait()
        stop.set(); pt.join()
        for c in consumers: c.terminate(); c.wait(timeout=60)
        serve.terminate(); serve.wait(timeout=30)
    (n0, a0, r0), (n1, a1, r1) = samples[0], samples[-1]
    # What stays, not the transient peaks of a pass over every item (the periodic recovery of interrupted writes
    # lists the whole spool every 30 s): the least memory in the first quarter of the samples against the least in the
    # last quarter, over the webhooks accepted between them.
    q = max(1, len(samples) // 4)
    first, last = min(samples[:q], key=lambda s: s[1]), min(samples[-q:], key=lambda s: s[1])
    per = (last[1] - first[1]) / max(1, last[0] - first[0])
    for n, an, rss in samples[:: max(1, len(samples) // 8)] + [samples[-1]]:
        print(f"  {n:>9} webhooks: RssAnon {an / 1048576:6.1f} MiB, RSS {rss / 1048576:6.1f} MiB")
    check(per <= a.max_bytes_per_item,
          f"anonymous memory grows {per:.1f} bytes per webhook (the least in the first and last quarters of {len(samples)} samples, from {n0} to {n1} accepted; at most {a.max_bytes_per_item})")
    print(f"memory: {n1} webhooks in {time.monotonic() - t0:.0f} s, RssAnon {a0 / 1048576:.1f} -> {a1 / 1048576:.1f} MiB, "
          f"{per:.1f} bytes per webhook; {len(failures)} failure(s)")
    subprocess.run(["rm", "-rf", work])
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
