#!/usr/bin/env python3
"""spool benchmarks, side by side in one run.

Measures the durability floor (a C program), `spool serve` under wrk, a durable Node peer and Redis with
appendfsync always under the same load, consumers (in-process API, --exec), scale with 100,000 waiting items,
memory and binary size. Compared things run interleaved, several rounds, and medians are reported, because
shared machines are noisy. Usage:

    Benchmarks/run.py [--rounds 3] [--seconds 5] [--dir /var/tmp/spool-bench] [--write-doc]

Needs: swift, gcc, wrk (apt-get install wrk); optional: node, redis-server + redis-benchmark.
"""
import argparse, json, os, re, resource, shutil, signal, socket, statistics, subprocess, sys, threading, time
from urllib import request as urlreq

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OUT = os.path.join(HERE, ".out")


sys.path.insert(0, os.path.join(ROOT, "Reliability"))
from common import free_port, wait_port  # noqa: E402  (one copy, shared with the reliability scripts)

def sh(cmd, **kw):
    return subprocess.run(cmd, shell=isinstance(cmd, str), check=True, text=True, capture_output=True, **kw).stdout


_fresh_count = [0]


def fresh(path):
    """A new, empty directory for one measurement. Nothing is deleted until the run ends: on ext4 without a journal,
    inode allocation scans past every inode freed in the last minutes (`recently_deleted`), so deleting the previous
    measurement's files would slow down the next one, and differently for each thing compared."""
    _fresh_count[0] += 1
    path = f"{path}.{_fresh_count[0]}"
    os.makedirs(path, mode=0o700)
    return path


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def wrk(port, conns, seconds, dup=0, run_id="", url=None, script=True, headers=(), env=None):
    """wrk against `url` (default: the webhook path on 127.0.0.1:`port`), with unique webhooks (`unique.lua`),
    another Lua script (a path), or none (`script=False`); `env` adds to the script's environment (THREADS is
    set). Returns rps, p50/p99 (ms), the number of requests and the count of non-2xx answers."""
    threads = 1 if conns < 2 else 2
    env = dict(os.environ, DUP_PERCENT=str(dup), RUN_ID=run_id or str(time.time_ns()), THREADS=str(threads), **(env or {}))
    cmd = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds}s", "--latency"]
    for h in headers: cmd += ["-H", h]
    if script: cmd += ["-s", script if isinstance(script, str) else os.path.join(HERE, "unique.lua")]
    cmd.append(url or f"http://127.0.0.1:{port}/json2video/done")
    out = subprocess.run(cmd, env=env, text=True, capture_output=True).stdout
    def lat(p):
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not m: return None
        v, u = float(m.group(1)), m.group(2)
        return v / 1000 if u == "us" else v * 1000 if u == "s" else v
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    total = re.search(r"(\d+) requests in", out)
    return {"rps": float(rps.group(1)) if rps else 0.0, "p50_ms": lat(50), "p99_ms": lat(99),
            "non2xx": int(non2xx.group(1)) if non2xx else 0, "n": int(total.group(1)) if total else 0, "out": out}


class Server:
    """A process listening on a port, started fresh on its own directory."""
    def __init__(self, kind, work, port):
        self.kind, self.port = kind, port
        if kind == "spool":
            cmd = [os.path.join(ROOT, ".build/release/spool"), "--dir", os.path.join(work, "s"), "serve", "--listen", f"127.0.0.1:{port}"]
        elif kind == "node":
            cmd = ["node", os.path.join(HERE, "node-peer.js"), work, str(port)]
        self.p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(port)

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        try: self.p.wait(15)
        except subprocess.TimeoutExpired: self.p.kill(); self.p.wait()


def floor(work, threads, seconds, files_per_item=1):
    return json.loads(sh([os.path.join(OUT, "floor"), fresh(work), str(threads), str(seconds), str(files_per_item)]))


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def build():
    print("building (release)...", file=sys.stderr)
    subprocess.run(["swift", "build", "-c", "release", "--product", "spool"], cwd=ROOT, check=True, capture_output=True)
    subprocess.run(["swift", "build", "-c", "release", "--product", "spool-testkit"], cwd=ROOT, check=True, capture_output=True)
    os.makedirs(OUT, exist_ok=True)
    for name, extra in [("floor", ["-pthread"]), ("stamp", []), ("spawnrate", ["-pthread"])]:
        subprocess.run(["gcc", "-O2", *extra, "-o", os.path.join(OUT, name), os.path.join(HERE, name + ".c")], check=True)


def ingress(args, work):
    loads = [("1", 1, 0), ("16", 16, 0), ("64", 64, 0), ("64, 90% duplicates", 64, 90)]
    have_node = shutil.which("node") is not None
    res = {"floor1": [], "floor16": [], "ops1": []}
    for name, _, _ in loads:
        res["spool " + name] = []
        if have_node and "dup" not in name: res["node " + name] = []
    for r in range(args.rounds):
        print(f"ingress round {r + 1}/{args.rounds}", file=sys.stderr)
        res["floor1"].append(floor(os.path.join(work, "floor"), 1, args.seconds))
        res["floor16"].append(floor(os.path.join(work, "floor"), 16, args.seconds))
        res["ops1"].append(floor(os.path.join(work, "ops"), 1, args.seconds, 0))
        os.sync()  # the ceiling run flushes nothing: its dirty data must not land on the next measurement
        for name, conns, dup in loads:
            kinds = ["spool"] + (["node"] if have_node and dup == 0 else [])
            for kind in kinds:
                d = fresh(os.path.join(work, kind))
                port = free_port()
                srv = Server(kind, d, port)
                peak = [0]
                stop = threading.Event()
                def sample():
                    while not stop.is_set():
                        peak[0] = max(peak[0], rss_kib(srv.p.pid)); time.sleep(0.2)
                t = threading.Thread(target=sample); t.start()
                res[f"{kind} {name}"].append(dict(wrk(port, conns, args.seconds, dup), rss_kib=peak[0]))
                stop.set(); t.join()
                srv.stop()
    return res


def redis_peer(work):
    if not (shutil.which("redis-server") and shutil.which("redis-benchmark")): return None
    d = fresh(os.path.join(work, "redis"))
    port = free_port()
    p = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", d, "--appendonly", "yes",
                          "--appendfsync", "always", "--save", ""], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    out = {}
    try:
        for c in (1, 16, 64):
            csv = sh(["redis-benchmark", "-p", str(port), "-c", str(c), "-n", "20000" if c > 1 else "3000", "-d", "1024", "-t", "lpush", "--csv"])
            row = [l for l in csv.splitlines() if l.startswith('"LPUSH')][0].replace('"', "").split(",")
            out[c] = {"rps": float(row[1]), "p50_ms": float(row[4]) if len(row) > 4 else None, "p99_ms": float(row[6]) if len(row) > 6 else None}
    finally:
        p.terminate(); p.wait()
    return out


def consumers(args, work):
    tk = os.path.join(ROOT, ".build/release/spool-testkit")
    spool = os.path.join(ROOT, ".build/release/spool")
    res = {"inproc1": [], "inproc4": [], "exec1": [], "exec2": [], "sh1": [], "sh2": []}
    for r in range(args.rounds):
        print(f"consumer round {r + 1}/{args.rounds}", file=sys.stderr)
        d = fresh(os.path.join(work, "c1")); s = os.path.join(d, "s")
        sh([tk, "fill", s, "k", "20000", "1024"])
        res["inproc1"].append(json.loads(sh([tk, "claim-loop", s, "--quiet"]))["per_second"])
        d = fresh(os.path.join(work, "c4")); s = os.path.join(d, "s")
        sh([tk, "fill", s, "k", "40000", "1024"])
        t0 = time.time()
        ps = [subprocess.Popen([tk, "claim-loop", s, "--quiet"], stdout=subprocess.PIPE, text=True) for _ in range(4)]
        total = sum(json.loads(p.communicate()[0])["processed"] for p in ps)
        res["inproc4"].append(total / (time.time() - t0))
        for conc in (1, 2):
            d = fresh(os.path.join(work, "e")); s = os.path.join(d, "s")
            sh([tk, "fill", s, "e", "1500", "256"])
            t0 = time.time()
            subprocess.run([spool, "--dir", s, "consume", "--exec", "true", "--drain", "--concurrency", str(conc)], check=True, capture_output=True)
            res[f"exec{conc}"].append(1500 / (time.time() - t0))
            res[f"sh{conc}"].append(json.loads(sh([os.path.join(OUT, "spawnrate"), "3", str(conc)]))["per_second"])
    return res


def ack_to_handler(work, n=200, rate=20):
    """Low load: POST one webhook every 1/rate s, record when each 200 arrived, and when its handler started."""
    d = fresh(os.path.join(work, "lat")); s = os.path.join(d, "s"); log = os.path.join(d, "stamps")
    port = free_port()
    srv = subprocess.Popen([os.path.join(ROOT, ".build/release/spool"), "--dir", s, "serve", "--listen", f"127.0.0.1:{port}"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    con = subprocess.Popen([os.path.join(ROOT, ".build/release/spool"), "--dir", s, "consume", "--exec", f"{OUT}/stamp >> {log}"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    acks = {}
    for i in range(n):
        key = f"lat{i}"
        req = urlreq.Request(f"http://127.0.0.1:{port}/json2video/done", data=json.dumps({"project": key}).encode(),
                             headers={"Content-Type": "application/json"})
        urlreq.urlopen(req).read()
        acks[key] = time.time_ns()
        time.sleep(1 / rate)
    time.sleep(1)
    con.send_signal(signal.SIGTERM); con.wait(); srv.send_signal(signal.SIGTERM); srv.wait()
    delays = []
    for line in open(log):
        k, ns = line.split()
        if k in acks: delays.append((int(ns) - acks[k]) / 1e6)
    delays.sort()
    return {"n": len(delays), "p50_ms": delays[len(delays) // 2], "p99_ms": delays[int(len(delays) * 0.99) - 1]}


def scale(work, big=100_000):
    tk = os.path.join(ROOT, ".build/release/spool-testkit"); spool = os.path.join(ROOT, ".build/release/spool")
    def enqueue_rate(s, prefix, n=1000):
        t0 = time.time(); sh([tk, "enqueue-range", s, prefix, "0", str(n), "1024"]); return n / (time.time() - t0)
    def claim_rate(s, n=5000):
        return json.loads(sh([tk, "claim-loop", s, "--quiet", "--limit", str(n)]))["per_second"]
    out = {}
    d = fresh(os.path.join(work, "small")); s = os.path.join(d, "s")
    out["enqueue_empty"] = enqueue_rate(s, "x")
    sh([tk, "fill", s, "c", "5000", "1024"])
    os.sync()
    out["claim_small"] = claim_rate(s)
    d = fresh(os.path.join(work, "big")); s = os.path.join(d, "s")
    print(f"filling {big} items...", file=sys.stderr)
    sh([tk, "fill", s, "b", str(big), "1024"])
    # The fill leaves about 800 MB dirty; without this its writeback would be measured as part of what follows.
    os.sync()
    out["enqueue_big"] = enqueue_rate(s, "x")
    t0 = time.time(); subprocess.run([spool, "--dir", s, "ls", "--json"], check=True, stdout=subprocess.DEVNULL); out["ls_json_s"] = time.time() - t0
    t0 = time.time(); subprocess.run([spool, "--dir", s, "stats"], check=True, stdout=subprocess.DEVNULL); out["stats_s"] = time.time() - t0
    out["claim_big"] = claim_rate(s)
    return out


def memory(work):
    out = {}
    d = fresh(os.path.join(work, "mem")); port = free_port()
    srv = Server("spool", d, port)
    time.sleep(0.5)
    out["idle_kib"] = rss_kib(srv.p.pid)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    socks = []
    for _ in range(5000):
        c = socket.socket(); c.connect(("127.0.0.1", port)); socks.append(c)
    time.sleep(1.0)
    out["idle_5000_conns_kib"] = rss_kib(srv.p.pid)
    for c in socks: c.close()
    srv.stop()
    print("building the static binary...", file=sys.stderr)
    subprocess.run(["swift", "build", "-c", "release", "--static-swift-stdlib", "--product", "spool", "--scratch-path", ".build-static"],
                   cwd=ROOT, check=True, capture_output=True)
    out["static_binary_mib"] = os.path.getsize(os.path.join(ROOT, ".build-static/release/spool")) / 2**20
    return out


def fmt(v, nd=0):
    return "-" if v is None else f"{v:,.{nd}f}"


def report(res, args):
    ing, rd, con, lat, sc, mem = res["ingress"], res.get("redis"), res["consumers"], res["latency"], res["scale"], res["memory"]
    floor1 = median([x["per_second"] for x in ing["floor1"]]); floor1_p50 = median([x["p50_us"] for x in ing["floor1"]]) / 1000
    floor16 = median([x["per_second"] for x in ing["floor16"]])
    lines = []
    lines.append(f"Machine: {os.cpu_count()} cores, `{os.uname().release}`; file system of `{args.dir}`: "
                 f"`{sh(['findmnt', '-no', 'FSTYPE,OPTIONS', '-T', args.dir]).strip()}`. "
                 f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Medians of {args.rounds} interleaved rounds of {args.seconds} s.")
    lines.append("")
    lines.append("| ingress (1 KiB JSON webhooks) | acked/s | p50 ms | p99 ms | peak RSS MiB | vs 1-thread floor | vs Node |")
    lines.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    lines.append(f"| floor, 1 thread (C: write, fsync, rename, fsync dir) | {fmt(floor1)} | {fmt(floor1_p50, 2)} | {fmt(median([x['p99_us'] for x in ing['floor1']]) / 1000, 2)} | | 1.00 | |")
    ops1 = median([x["per_second"] for x in ing["ops1"]])
    lines.append(f"| ceiling: spool's own file operations per item, no flush at all (C, 1 thread) | {fmt(ops1)} | "
                 f"{fmt(median([x['p50_us'] for x in ing['ops1']]) / 1000, 2)} | {fmt(median([x['p99_us'] for x in ing['ops1']]) / 1000, 2)} | | {ops1 / floor1:.2f} | |")
    lines.append(f"| floor, 16 threads | {fmt(floor16)} | {fmt(median([x['p50_us'] for x in ing['floor16']]) / 1000, 2)} | {fmt(median([x['p99_us'] for x in ing['floor16']]) / 1000, 2)} | | {floor16 / floor1:.2f} | |")
    for name in ["1", "16", "64", "64, 90% duplicates"]:
        s = ing["spool " + name]; n = ing.get("node " + name)
        srps = median([x["rps"] for x in s]); nrps = median([x["rps"] for x in n]) if n else None
        lines.append(f"| spool serve, {name} conn | {fmt(srps)} | {fmt(median([x['p50_ms'] for x in s]), 2)} | {fmt(median([x['p99_ms'] for x in s]), 2)} | "
                     f"{fmt(median([x['rss_kib'] for x in s]) / 1024, 1)} | {srps / floor1:.2f} | {'' if not nrps else f'{srps / nrps:.2f}'} |")
        if n:
            lines.append(f"| Node http peer, {name} conn | {fmt(nrps)} | {fmt(median([x['p50_ms'] for x in n]), 2)} | {fmt(median([x['p99_ms'] for x in n]), 2)} | "
                         f"{fmt(median([x['rss_kib'] for x in n]) / 1024, 1)} | {nrps / floor1:.2f} | 1.00 |")
    if rd:
        for c, v in rd.items():
            lines.append(f"| Redis LPUSH, appendfsync always, {c} conn | {fmt(v['rps'])} | {fmt(v['p50_ms'], 2)} | {fmt(v['p99_ms'], 2)} | | {v['rps'] / floor1:.2f} | |")
    lines.append("")
    lines.append("| consumers | per second | ratio |")
    lines.append("| --- | ---: | ---: |")
    lines.append(f"| in-process claim + complete, 1 process (no-op work) | {fmt(median(con['inproc1']))} | |")
    lines.append(f"| in-process claim + complete, 4 processes | {fmt(median(con['inproc4']))} | |")
    for c in (1, 2):
        e, s_ = median(con[f"exec{c}"]), median(con[f"sh{c}"])
        lines.append(f"| `spool consume --exec true --concurrency {c}` | {fmt(e)} | {e / s_:.2f} of `sh -c true` |")
        lines.append(f"| `sh -c true` started and reaped, {c} spawner(s) | {fmt(s_)} | 1.00 |")
    lines.append(f"| acknowledgement to handler start, p50 / p99 ms (20 webhooks/s, `--exec`) | {lat['p50_ms']:.2f} / {lat['p99_ms']:.2f} | |")
    lines.append("")
    lines.append("| scale | empty spool | 100,000 waiting in new/ | ratio |")
    lines.append("| --- | ---: | ---: | ---: |")
    lines.append(f"| enqueue (one at a time, durable), items/s | {fmt(sc['enqueue_empty'])} | {fmt(sc['enqueue_big'])} | {sc['enqueue_empty'] / sc['enqueue_big']:.2f}x slower |")
    lines.append(f"| claim + complete, items/s | {fmt(sc['claim_small'])} | {fmt(sc['claim_big'])} | {sc['claim_small'] / sc['claim_big']:.2f}x slower |")
    lines.append(f"| `spool ls --json` over 100,000 items | | {sc['ls_json_s']:.2f} s | |")
    lines.append(f"| `spool stats` over 100,000 items | | {sc['stats_s']:.2f} s | |")
    lines.append("")
    lines.append("| memory and size | |")
    lines.append("| --- | ---: |")
    lines.append(f"| `spool serve` RSS idle | {mem['idle_kib'] / 1024:.1f} MiB |")
    lines.append(f"| `spool serve` RSS under 64 connections (peak, median of rounds) | {median([x['rss_kib'] for x in ing['spool 64']]) / 1024:.1f} MiB |")
    lines.append(f"| `spool serve` RSS holding 5,000 idle connections | {mem['idle_5000_conns_kib'] / 1024:.1f} MiB |")
    lines.append(f"| static release binary (`--static-swift-stdlib`) | {mem['static_binary_mib']:.1f} MiB |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--dir", default="/var/tmp/spool-bench")
    ap.add_argument("--write-doc", action="store_true", help="replace the results section of docs/performance.md")
    ap.add_argument("--no-build", action="store_true")
    args = ap.parse_args()
    if not shutil.which("wrk"): sys.exit("wrk is required: apt-get install wrk")
    if not args.no_build: build()
    old = None
    if os.path.exists(args.dir):
        # A previous run's files are deleted at the end of this one (see `fresh`).
        old = f"{args.dir}.old-{time.time_ns()}"
        os.rename(args.dir, old)
    os.makedirs(args.dir, mode=0o700)
    work = os.path.join(args.dir, "w")
    res = {"ingress": ingress(args, work), "redis": redis_peer(work), "consumers": consumers(args, work),
           "latency": ack_to_handler(work), "scale": scale(work), "memory": memory(work)}
    with open(os.path.join(OUT, "results.json"), "w") as f: json.dump(res, f, indent=1)
    table = report(res, args)
    print(table)
    if args.write_doc:
        path = os.path.join(ROOT, "docs/performance.md")
        doc = open(path).read()
        begin, end = "<!-- BEGIN RESULTS (Benchmarks/run.py --write-doc) -->", "<!-- END RESULTS -->"
        i, j = doc.index(begin) + len(begin), doc.index(end)
        cmd = "Benchmarks/run.py " + " ".join(a for a in sys.argv[1:])
        doc = doc[:i] + f"\n\nCommand: `{cmd.strip()}`\n\n" + table + "\n\n" + doc[j:]
        open(path, "w").write(doc)
    shutil.rmtree(args.dir, ignore_errors=True)
    if old: shutil.rmtree(old, ignore_errors=True)


if __name__ == "__main__":
    main()
