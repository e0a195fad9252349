#!/usr/bin/env python3
"""Two builds of spool side by side, interleaved, in one run: the refactoring check of docs/performance.md.

Measures, for each build and each round, in alternating order: `spool serve` acknowledgements per second with
wrk at 1 and 64 keep-alive connections (unique 1 KiB webhooks, p50/p99), the in-process claim rate
(`spool-testkit claim-loop` over 5,000 items: claim + complete), the disk a 1 KiB item occupies (st_blocks of
every file of a 20,000-item spool, each inode once), and `spool ls --json` over a 100,000-item spool (seconds).
Prints medians and the ratio new/old. Usage:

    Benchmarks/compare.py OLD_ROOT NEW_ROOT [--rounds 3] [--seconds 5] [--dir /var/tmp/spool-compare]
                          [--disk-items 20000] [--ls-items 100000]

Each ROOT is a checkout built with `swift build -c release` (its .build/release/spool and spool-testkit).
"""
import argparse, os, statistics, subprocess, sys, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import fresh, free_port, wait_port, wrk, sh  # the same helpers as the main benchmark


def ingress(root, work, conns, seconds):
    d = fresh(os.path.join(work, "ingress")); port = free_port()
    p = subprocess.Popen([os.path.join(root, ".build/release/spool"), "--dir", os.path.join(d, "s"), "serve",
                          "--listen", f"127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        return wrk(port, conns, seconds)
    finally:
        p.terminate(); p.wait(timeout=20)


def claims(root, work):
    tk = os.path.join(root, ".build/release/spool-testkit")
    d = fresh(os.path.join(work, "claims")); s = os.path.join(d, "s")
    sh([tk, "fill", s, "c", "5000", "1024"]); os.sync()
    import json
    return json.loads(sh([tk, "claim-loop", s, "--quiet", "--limit", "5000"]))["per_second"]


def disk_per_item(root, work, n):
    """KiB on disk per 1 KiB item: the st_blocks of every file in the spool (hard links counted once) over n."""
    tk = os.path.join(root, ".build/release/spool-testkit")
    d = fresh(os.path.join(work, "disk")); s = os.path.join(d, "s")
    sh([tk, "fill", s, "d", str(n), "1024"]); os.sync()
    seen, blocks = set(), 0
    for dirpath, _, files in os.walk(s):
        for f in files:
            st = os.lstat(os.path.join(dirpath, f))
            if st.st_ino in seen: continue
            seen.add(st.st_ino); blocks += st.st_blocks
    return blocks * 512 / 1024 / n


def ls_json_seconds(root, work, n, spool_dirs):
    """Seconds for `spool ls --json` over n items (the spool is filled once per build, then listed each round)."""
    if root not in spool_dirs:
        tk = os.path.join(root, ".build/release/spool-testkit")
        d = fresh(os.path.join(work, "ls")); s = os.path.join(d, "s")
        sh([tk, "fill", s, "l", str(n), "1024"]); os.sync()
        spool_dirs[root] = s
    t0 = time.monotonic()
    subprocess.run([os.path.join(root, ".build/release/spool"), "--dir", spool_dirs[root], "ls", "--json"], check=True,
                   stdout=subprocess.DEVNULL)
    return time.monotonic() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("old"); ap.add_argument("new")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--dir", default="/var/tmp/spool-compare")
    ap.add_argument("--disk-items", type=int, default=20000)
    ap.add_argument("--ls-items", type=int, default=100000)
    a = ap.parse_args()
    work = os.path.join(a.dir, str(time.time_ns()))  # fresh() numbers from 1 in every run
    os.makedirs(work)
    a.dir = work
    res = {k: {"old": [], "new": []} for k in ["c1", "c1_p50", "c1_p99", "c64", "c64_p50", "c64_p99", "claims", "disk", "ls"]}
    ls_dirs = {}
    for r in range(a.rounds):
        order = ["old", "new"] if r % 2 == 0 else ["new", "old"]
        for which in order:
            root = getattr(a, which)
            for conns in (1, 64):
                w = ingress(root, a.dir, conns, a.seconds)
                res[f"c{conns}"][which].append(w["rps"]); res[f"c{conns}_p50"][which].append(w["p50_ms"] or 0)
                res[f"c{conns}_p99"][which].append(w["p99_ms"] or 0)
            res["claims"][which].append(claims(root, a.dir))
            if r == 0: res["disk"][which].append(disk_per_item(root, a.dir, a.disk_items))
            if a.ls_items: res["ls"][which].append(ls_json_seconds(root, a.dir, a.ls_items, ls_dirs))
        print(f"round {r + 1} done", file=sys.stderr)
    print(f"{'measure':<28}{'old':>12}{'new':>12}{'new/old':>10}")
    for k, label in [("c1", "ingress 1 conn, acks/s"), ("c1_p50", "  p50 ms"), ("c1_p99", "  p99 ms"),
                     ("c64", "ingress 64 conns, acks/s"), ("c64_p50", "  p50 ms"), ("c64_p99", "  p99 ms"),
                     ("claims", "in-process claims/s"), ("disk", "disk KiB per 1 KiB item"),
                     ("ls", "ls --json seconds")]:
        if not res[k]["old"] or not res[k]["new"]: continue
        o, n = statistics.median(res[k]["old"]), statistics.median(res[k]["new"])
        print(f"{label:<28}{o:>12.2f}{n:>12.2f}{(n / o if o else 0):>10.2f}")
    print("all rounds:", {k: v for k, v in res.items() if not k.endswith(("p50", "p99"))})


if __name__ == "__main__":
    main()
