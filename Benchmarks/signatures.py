#!/usr/bin/env python3
"""Signed webhooks (issue 12): ingress acks/s of `spool serve --verify standard-webhooks` against the same server
without --verify, interleaved in one run (the order alternates per round), medians of the rounds.

Both servers get the same requests (1 KiB JSON, the key in the webhook-id header: `--key-header webhook-id` for the
plain one, the default of --verify standard-webhooks for the other) from a pool of deliveries signed beforehand with
Python's hmac (wrk's Lua cannot compute an HMAC), one fixed timestamp and `--tolerance 1h`. Every measurement runs on
a fresh spool, and the pool is larger than any measurement sends, so every request is a new item, never a duplicate.
Also reported: the server's CPU time per 1,000 acknowledgements (from /proc), the steadier number on a disk-bound
machine. Usage:

    Benchmarks/signatures.py [--rounds 5] [--seconds 5] [--conns 64] [--spool .build/release/spool] [--dir /var/tmp/spool-sig]
"""
import argparse, base64, hashlib, hmac, os, re, shutil, statistics, subprocess, sys, time
from urllib import request as urlreq
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import fresh, free_port, wait_port, HERE, wrk as run_wrk
from common import cpu_seconds  # noqa: E402

POOL = 200_000


def signed_pool(d, secret_bytes, ts):
    path = os.path.join(d, "signed.txt")
    with open(path, "w") as f:
        pad = "x" * 900
        for n in range(POOL):
            i = f"msg_{n:07d}"
            body = '{"success":true,"movie":{"project":"' + i + '","status":"done","pad":"' + pad + '"}}'
            mac = hmac.new(secret_bytes, f"{i}.{ts}.{body}".encode(), hashlib.sha256).digest()
            f.write(f"{i} {ts} v1,{base64.b64encode(mac).decode()}\n")
    return path


def wrk(port, conns, seconds, pool):
    w = run_wrk(port, conns, seconds, script=os.path.join(HERE, "signed.lua"), env={"SIGNED": pool})
    if w["non2xx"]: sys.exit(f"{w['non2xx']} non-2xx responses: the benchmark is broken\n{w['out']}")
    if w["n"] > POOL: sys.exit(f"{w['n']} requests > pool of {POOL}: duplicates would skew it")
    return {"rps": w["rps"], "p50": w["p50_ms"], "p99": w["p99_ms"], "n": w["n"]}


def batches(port):
    """Mean requests per durable batch, and mean batch duration (ms), from /metrics."""
    text = urlreq.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    def v(name): return float(re.search(rf"^{name} ([\d.e+-]+)$", text, re.M).group(1))
    n = v("spool_commit_batch_size_count")
    return (v("spool_commit_batch_size_sum") / n if n else 0.0, v("spool_durable_write_seconds_sum") * 1000 / n if n else 0.0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--conns", type=int, default=64)
    ap.add_argument("--spool", default=".build/release/spool")
    ap.add_argument("--dir", default="/var/tmp/spool-sig")
    a = ap.parse_args()
    work = os.path.join(a.dir, str(time.time_ns())); os.makedirs(work)
    secret = b"benchmark secret of 32 bytes...."
    secret_file = os.path.join(work, "secret")
    with open(secret_file, "w") as f: f.write("whsec_" + base64.b64encode(secret).decode() + "\n")
    os.chmod(secret_file, 0o600)
    pool = signed_pool(work, secret, int(time.time()))
    flags = {"plain": ["--key-header", "webhook-id"],
             "verify": ["--verify", "standard-webhooks", "--secret-file", secret_file, "--tolerance", "1h"]}
    res = {k: [] for k in flags}
    for r in range(a.rounds):
        for kind in (["plain", "verify"] if r % 2 == 0 else ["verify", "plain"]):
            port = free_port()
            p = subprocess.Popen([a.spool, "--dir", os.path.join(fresh(os.path.join(work, kind)), "s"), "serve",
                                  "--listen", f"127.0.0.1:{port}", *flags[kind]], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                wait_port(port)
                before = cpu_seconds(p.pid)
                w = wrk(port, a.conns, a.seconds, pool)
                w["cpu_ms_per_1000"] = (cpu_seconds(p.pid) - before) * 1e6 / max(w["n"], 1)
                w["batch"], w["flush_ms"] = batches(port)
                res[kind].append(w)
            finally:
                p.terminate(); p.wait(timeout=30)
        print(f"round {r + 1}/{a.rounds}: " + ", ".join(f"{k} {res[k][-1]['rps']:,.0f}/s" for k in flags), file=sys.stderr)
    med = lambda k, f: statistics.median(x[f] for x in res[k] if x[f] is not None)
    print(f"| {a.conns} connections, 1 KiB JSON | acked/s | p50 ms | p99 ms | server CPU ms per 1,000 acks | requests per durable batch | ms per batch |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for k, label in (("plain", "`spool serve --key-header webhook-id`"), ("verify", "`spool serve --verify standard-webhooks`")):
        print(f"| {label} | {med(k, 'rps'):,.0f} | {med(k, 'p50'):.2f} | {med(k, 'p99'):.2f} | {med(k, 'cpu_ms_per_1000'):.0f} "
              f"| {med(k, 'batch'):.1f} | {med(k, 'flush_ms'):.2f} |")
    ratios = [v["rps"] / p["rps"] for v, p in zip(res["verify"], res["plain"])]
    print(f"\nratio verify/plain: {med('verify', 'rps') / med('plain', 'rps'):.3f} (of the medians), "
          f"{statistics.median(ratios):.3f} (median of the per-round ratios); per round: " + ", ".join(f"{x:.3f}" for x in ratios))
    print("per round acked/s: " + "; ".join(f"{k} " + ", ".join(f"{x['rps']:,.0f}" for x in res[k]) for k in flags))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
