#!/usr/bin/env python3
"""Fan-out cost at the ingress (issue 24's benchmark): `spool serve --config` at 64 keep-alive connections (wrk,
unique 1 KiB webhooks), a route into one queue with one `match` against a route fanning out into three queues with
one `match` each (every webhook taken by all three), interleaved in one run on fresh directories. Prints the medians
and the ratio of time per webhook (fan-out / single). Target: at most 1.3x.

    Benchmarks/fanout.py [--spool .build/release/spool] [--rounds 3] [--seconds 5] [--conns 64] [--dir /var/tmp/spool-fanout]
"""
import argparse, os, statistics, subprocess, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import fresh, free_port, wait_port, wrk  # the same helpers as the main benchmark

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = {
    "1 queue": """[[route]]
path = "/json2video/done"
queues = ["a"]
[queue.a]
match = ["movie.status=done"]
""",
    "3 queues": """[[route]]
path = "/json2video/done"
queues = ["a", "b", "c"]
[queue.a]
match = ["movie.status=done"]
[queue.b]
match = ["success=true"]
[queue.c]
match = ["movie.project"]
""",
}


def run(spool, work, name, conns, seconds):
    d = fresh(os.path.join(work, name.replace(" ", "-")))
    config = os.path.join(d, "spool.toml")
    with open(config, "w") as f: f.write(CONFIGS[name])
    port = free_port()
    p = subprocess.Popen([spool, "--dir", os.path.join(d, "s"), "serve", "--config", config, "--listen", f"127.0.0.1:{port}"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        r = wrk(port, conns, seconds)
    finally:
        p.terminate(); p.wait(timeout=20)
    # Every acknowledged webhook must be in every queue of its route (the benchmark is not measuring a shortcut).
    queues = ["a"] if name == "1 queue" else ["a", "b", "c"]
    counts = [len(os.listdir(os.path.join(d, "s", "queues", q, "new"))) for q in queues]
    if r["non2xx"] or len(set(counts)) != 1 or counts[0] < r["n"] - conns:
        raise SystemExit(f"{name}: {r['n']} requests, {r['non2xx']} non-2xx, queues hold {counts}")
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--spool", default=os.path.join(ROOT, ".build/release/spool"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--conns", type=int, default=64)
    ap.add_argument("--dir", default="/var/tmp/spool-fanout")
    a = ap.parse_args()
    res = {k: [] for k in CONFIGS}
    for i in range(a.rounds):
        order = list(CONFIGS) if i % 2 == 0 else list(reversed(CONFIGS))
        for name in order:
            r = run(a.spool, a.dir, name, a.conns, a.seconds)
            res[name].append(r)
            print(f"round {i + 1} {name:8}: {r['rps']:8.0f} webhooks/s, p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms", flush=True)
    med = {k: statistics.median(x["rps"] for x in v) for k, v in res.items()}
    p99 = {k: statistics.median(x["p99_ms"] or 0 for x in v) for k, v in res.items()}
    ratio = med["1 queue"] / med["3 queues"]
    print(f"median: 1 queue {med['1 queue']:.0f}/s (p99 {p99['1 queue']:.1f} ms), 3 queues {med['3 queues']:.0f}/s "
          f"(p99 {p99['3 queues']:.1f} ms); time per webhook 3 queues / 1 queue = {ratio:.2f}x (target at most 1.3x)")


if __name__ == "__main__":
    main()
