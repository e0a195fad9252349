#!/usr/bin/env python3
"""End to end through a local 3-node JetStream cluster (issue 14): a webhook acknowledged by `spool serve` on an
ingress node → its handler started by `spool consume --exec` on a worker node, at low load; side by side with the
single-machine path (`spool serve` + `spool consume --exec` on one spool, no NATS) in the same run.

    ingress spool:  spool serve  +  spool consume --nats URL1,URL2,URL3 --subject hooks.e2e --nats-stream E2E
    cluster:        3 nats-server (routes, JetStream), stream E2E on hooks.> with 3 replicas (made with nats-py)
    worker spool:   spool pull --nats URL1,URL2,URL3 --stream E2E --consumer W --create-consumer
                    +  spool consume --exec 'STAMP >> FILE'

One keep-alive HTTP connection posts N webhooks (`{"movie":{"project":KEY,"status":"done"}}`, unique keys) one
every --interval; the time of each ack is taken right after its 2xx response was read. The handler is
Benchmarks/stamp.c (compiled here with cc), which writes `$SPOOL_KEY <CLOCK_REALTIME ns>` as its first act: the
consumer runs `/bin/sh -c CMD`, and /bin/sh is dash on Debian, which has no clock builtin (`$EPOCHREALTIME` is
bash's); without cc it is `echo "$SPOOL_KEY $(date +%s%N)"`, which costs a fork and an exec of date more
(about 0.5 ms here).
`--warmup` webhooks go first on each path and are not counted (connections, the durable consumer, first claims).
Latency = handler start - ack. Printed: p50, p90, p99, max and count for both paths, then where the cluster
path's time goes, from timestamps taken without touching the path:

    request arrived at ingress   the ingress item's `received_at_ns` (before it is durable and acknowledged)
    bridge claimed it            its `last_attempt_at` (milliseconds only); it can precede the ack: the item is
                                 renamed into new/ before the group commit's directory fsync that the 200 waits for
    stream stored it             the stream leader's time stamp on the message (read back with nats-py)
    pull has it, enqueue starts  the worker item's `received_at_ns`
    in worker new/ (durable)     the worker item renamed into new/ (inotify on new/, in this script)
    handler started              the stamp
    (bridge has its publish ack) the ingress item's `finished_at_ns` (off the path)

All clocks are CLOCK_REALTIME of one machine. Every process started is stopped on every way out (SIGTERM, then
SIGKILL); the work directory is removed unless --keep. Exit 77 when nats-server or nats-py is missing. Usage:

    Benchmarks/e2e_latency.py [--spool .build/release/spool] [--webhooks 200] [--interval 0.05] [--warmup 20] [--keep]
"""
import argparse, asyncio, ctypes, ctypes.util, datetime, http.client, json, math, os, shutil, signal, struct, subprocess
import sys, tempfile, threading, time
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "Reliability"))
from common import free_port, start_serve  # noqa: E402
from jetstream_cluster import NATS, Node  # noqa: E402

STREAM, SUBJECT = "E2E", "hooks.e2e"


class Procs:
    """Every process started here, stopped (SIGTERM, then SIGKILL) on every way out."""
    def __init__(self): self.ps = []

    def start(self, argv, log=None):
        out = open(log, "ab") if log else subprocess.DEVNULL
        p = subprocess.Popen(argv, stdout=out, stderr=out)
        self.ps.append(p); return p

    def add(self, p): self.ps.append(p); return p

    def stop_all(self):
        for p in reversed(self.ps):
            if p.poll() is None:
                try: p.terminate()
                except ProcessLookupError: pass
        for p in reversed(self.ps):
            try: p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill(); p.wait()
        self.ps = []


class NewDirWatch(threading.Thread):
    """inotify on a spool's new/: the time (ns) each name was moved in, recorded by a blocking read, no polling."""
    def __init__(self, path):
        super().__init__(daemon=True)
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        self.fd = libc.inotify_init1(os.O_CLOEXEC)
        if self.fd < 0 or libc.inotify_add_watch(self.fd, path.encode(), 0x80 | 0x100) < 0:  # IN_MOVED_TO | IN_CREATE
            raise OSError(ctypes.get_errno(), "inotify")
        self.seen = {}

    def run(self):
        try:
            while True:
                buf = os.read(self.fd, 65536); now = time.time_ns(); i = 0
                while i < len(buf):
                    _, _, _, n = struct.unpack_from("iIII", buf, i)
                    name = buf[i + 16:i + 16 + n].rstrip(b"\0").decode()
                    self.seen.setdefault(name, now); i += 16 + n
        except OSError:
            pass

    def close(self): os.close(self.fd)


def handler_cmd(work, out):
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc:
        exe = os.path.join(work, "stamp")
        if subprocess.run([cc, "-O2", "-o", exe, os.path.join(HERE, "stamp.c")]).returncode == 0:
            return f"{exe} >> {out}", "stamp.c"
    return f'echo "$SPOOL_KEY $(date +%s%N)" >> {out}', "date +%s%N"


def post_all(port, keys, interval):
    """Posts one webhook per key on one keep-alive connection, one every `interval` s; {key: ack time ns}."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    acks, nxt = {}, time.monotonic()
    for k in keys:
        body = json.dumps({"movie": {"project": k, "status": "done"}}).encode()
        c.request("POST", "/json2video/done", body=body, headers={"Content-Type": "application/json"})
        r = c.getresponse(); r.read()
        acks[k] = time.time_ns()
        if not 200 <= r.status < 300: raise RuntimeError(f"{k}: HTTP {r.status}")
        nxt += interval
        time.sleep(max(0.0, nxt - time.monotonic()))
    c.close()
    return acks


def stamps_for(path, keys, timeout):
    """Waits until every key has a line `KEY NS` in path; {key: first ns}."""
    want, got, end = set(keys), {}, time.monotonic() + timeout
    while True:
        if os.path.exists(path):
            with open(path) as f:
                for line in f:
                    parts = line.split()
                    if len(parts) == 2 and parts[0] in want: got.setdefault(parts[0], int(parts[1]))
        if len(got) == len(want) or time.monotonic() > end: return got
        time.sleep(0.1)


def pct(xs, p):
    xs = sorted(xs)
    return xs[max(0, math.ceil(p / 100 * len(xs)) - 1)]


def summary(xs):
    if not xs: return "no samples"
    return (f"p50 {pct(xs, 50):7.1f}  p90 {pct(xs, 90):7.1f}  p99 {pct(xs, 99):7.1f}  max {max(xs):7.1f}  "
            f"count {len(xs)}")


def latencies(acks, stamps):
    return [(stamps[k] - acks[k]) / 1e6 for k in acks if k in stamps]


def serve_and_wait(port, keys, interval, stampfile, timeout):
    acks = post_all(port, keys, interval)
    st = stamps_for(stampfile, keys, timeout)
    if len(st) < len(keys): print(f"  warning: {len(keys) - len(st)} of {len(keys)} handlers not seen within {timeout}s", file=sys.stderr)
    return acks, st


async def make_stream(urls):
    import nats
    last = None
    for _ in range(60):
        try:
            nc = await nats.connect(servers=urls, connect_timeout=2)
            await nc.jetstream().add_stream(name=STREAM, subjects=["hooks.>"], num_replicas=3, duplicate_window=120.0)
            await nc.close(); return
        except Exception as e:  # the meta leader may not be elected yet
            last = e; await asyncio.sleep(0.5)
    raise RuntimeError(f"cannot create the R3 stream: {last!r}")


async def stored_times(urls):
    """{Spool-Key: the stream's store time in ns} for every message of the stream."""
    import nats
    nc = await nats.connect(servers=urls, connect_timeout=2)
    js = nc.jetstream(timeout=10)
    info = await js.stream_info(STREAM)
    out = {}
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        m = await js.get_msg(STREAM, seq)
        k = (m.headers or {}).get("Spool-Key")
        t = m.time
        out[k] = int(t.replace(tzinfo=datetime.timezone.utc).timestamp()) * 1_000_000_000 + t.microsecond * 1000
    await nc.close()
    return out


def meta(path):
    """The item's header (format 2, docs/spool-format.md), with `finished_at_ns` from the ctime the move into done/
    set. Format 2 records nothing at a claim, so `last_attempt_at` (the claim's time) is not known here: the events
    that need it are left out, and `late_claims` counts nothing."""
    try:
        with open(path, "rb") as f:
            data = f.read(65536)
        nl = data.index(b"\n")
        h = json.loads(data[nl + 1:nl + 1 + int(data[8:nl])])
        h["finished_at_ns"] = os.stat(path).st_ctime_ns
        return h
    except (OSError, ValueError):
        return {}


def iso_ns(s):
    """RFC 3339 UTC (…Z, any fraction) → ns since the epoch."""
    base, _, frac = s.rstrip("Z").partition(".")
    dt = datetime.datetime.strptime(base, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc)
    return int(dt.timestamp()) * 1_000_000_000 + int((frac or "0").ljust(9, "0")[:9])


def late_claims(spool_dir, keys):
    """How many of `keys` were claimed 4 ms or more after their enqueue began (`received_at_ns`): a claim that finds
    the payload still locked by its enqueuer (it unlocks just after the rename into new/) looks again 5 ms later."""
    n = 0
    for k in keys:
        m = meta(os.path.join(spool_dir, "done", k))
        if "last_attempt_at" in m and iso_ns(m["last_attempt_at"]) - m["received_at_ns"] >= 4_000_000: n += 1
    return n


def baseline(a, work, cmd_for, procs):
    d = os.path.join(work, "single"); os.makedirs(d)
    s, out = os.path.join(d, "s"), os.path.join(d, "stamps")
    srv, port = start_serve(a.spool, s); procs.add(srv)
    procs.start([a.spool, "--dir", s, "consume", "--exec", cmd_for(out)], os.path.join(d, "consume.log"))
    tag = f"b{time.time_ns()}"
    serve_and_wait(port, [f"{tag}w{i}" for i in range(a.warmup)], a.interval, out, a.timeout)
    keys = [f"{tag}k{i}" for i in range(a.webhooks)]
    acks, st = serve_and_wait(port, keys, a.interval, out, a.timeout)
    procs.stop_all()
    events = {"request arrived": [], "consumer claimed it (1 ms res.)": []}
    for k in keys:
        m = meta(os.path.join(s, "done", k))
        if "received_at_ns" in m: events["request arrived"].append((m["received_at_ns"] - acks[k]) / 1e6)
        if "last_attempt_at" in m: events["consumer claimed it (1 ms res.)"].append((iso_ns(m["last_attempt_at"]) - acks[k]) / 1e6)
    events["late"] = late_claims(s, keys)
    return latencies(acks, st), events


def cluster(a, work, cmd_for, procs):
    ports, cports = [free_port() for _ in range(3)], [free_port() for _ in range(3)]
    nodes = [Node(i, ports, cports, work) for i in range(3)]
    for n in nodes:
        try: n.start()
        finally:
            if n.p: procs.add(n.p)
    urls = [f"nats://127.0.0.1:{p}" for p in ports]
    asyncio.run(make_stream(urls))
    ing, wrk = os.path.join(work, "ingress"), os.path.join(work, "worker")
    srv, port = start_serve(a.spool, ing); procs.add(srv)
    procs.start([a.spool, "--dir", ing, "consume", "--nats", ",".join(urls), "--subject", SUBJECT, "--nats-stream", STREAM],
                os.path.join(work, "bridge.log"))
    out = os.path.join(work, "stamps")
    subprocess.run([a.spool, "--dir", wrk, "init"], check=True, capture_output=True)
    procs.start([a.spool, "--dir", wrk, "pull", "--nats", ",".join(urls), "--stream", STREAM, "--consumer", "W",
                 "--create-consumer"], os.path.join(work, "pull.log"))
    procs.start([a.spool, "--dir", wrk, "consume", "--exec", cmd_for(out)], os.path.join(work, "worker-consume.log"))
    tag = f"c{time.time_ns()}"
    serve_and_wait(port, [f"{tag}w{i}" for i in range(a.warmup)], a.interval, out, a.timeout)
    watch = NewDirWatch(os.path.join(wrk, "new")); watch.start()
    keys = [f"{tag}k{i}" for i in range(a.webhooks)]
    acks, st = serve_and_wait(port, keys, a.interval, out, a.timeout)
    time.sleep(0.5)  # the bridge's last renames to done/
    # Each event's time relative to the ack (ms; negative: before the sender had its 200).
    events = {"request arrived at ingress": [], "bridge claimed it (1 ms res.)": [], "stream stored it": [],
              "pull has it, enqueue starts": [], "in worker new/ (durable)": [], "handler started": [],
              "(bridge has its publish ack)": []}
    try:
        stored = asyncio.run(stored_times(urls))
    except Exception as e:
        print(f"  warning: stream store times not read: {e!r}", file=sys.stderr); stored = {}
    for k in keys:
        im, wm = meta(os.path.join(ing, "done", k)), meta(os.path.join(wrk, "done", k))
        t = [im.get("received_at_ns"), iso_ns(im["last_attempt_at"]) if "last_attempt_at" in im else None, stored.get(k),
             wm.get("received_at_ns"), watch.seen.get(k), st.get(k), im.get("finished_at_ns")]
        for name, x in zip(events, t):
            if x is not None and k in acks: events[name].append((x - acks[k]) / 1e6)
    watch.close()
    procs.stop_all()
    events["late"] = (late_claims(ing, keys), late_claims(wrk, keys))
    return latencies(acks, st), events


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--spool", default=".build/release/spool")
    ap.add_argument("--webhooks", type=int, default=200)
    ap.add_argument("--interval", type=float, default=0.05, help="seconds between webhooks (default 0.05)")
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--timeout", type=float, default=60, help="seconds to wait for the handlers after the last ack")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs, spools)")
    a = ap.parse_args()
    a.spool = os.path.abspath(a.spool)
    if not NATS: print("nats-server not found", file=sys.stderr); sys.exit(77)
    try: import nats  # noqa: F401
    except ImportError: print("nats-py not installed (pip install nats-py)", file=sys.stderr); sys.exit(77)
    work = tempfile.mkdtemp(prefix="e2e-")
    procs = Procs()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        probe = os.path.join(work, "probe")
        cmd, clock = handler_cmd(work, probe)
        cmd_for = lambda out: cmd.replace(probe, out)  # noqa: E731
        print(f"{a.webhooks} webhooks, one every {a.interval * 1000:.0f} ms, after {a.warmup} not counted; "
              f"handler clock: {clock}; ms from ack to handler start", flush=True)
        single, sev = baseline(a, work, cmd_for, procs)
        print(f"single machine (serve + consume --exec)      {summary(single)}", flush=True)
        late = sev.pop("late")
        for name, xs in sev.items():
            print(f"  {name:<30} {summary(xs)}  (ms after the ack)")
        e2e, events = cluster(a, work, cmd_for, procs)
        print(f"3-node cluster, R3 (serve → bridge → pull → consume --exec)  {summary(e2e)}", flush=True)
        print("cluster path, each event in ms after the ack (negative: before the sender had its 200):")
        late_ing, late_wrk = events.pop("late")
        for name, xs in events.items():
            print(f"  {name:<30} {summary(xs)}")
        names = list(events)
        print("cluster path by stage (ms, per webhook; the claim's 1 ms resolution blurs the first two):")
        for x, y in zip(names[0:5], names[1:6]):
            d = [b - a for a, b in zip(events[x], events[y])] if len(events[x]) == len(events[y]) else []
            print(f"  {x + ' → ' + y:<58} {summary(d)}")
        print(f"claims 4 ms or more after their enqueue began (mostly the 5 ms look-again of a claim that found the payload still locked): "
              f"single machine {late}, ingress bridge {late_ing}, worker {late_wrk}, of {a.webhooks} each")
    finally:
        procs.stop_all()
        if a.keep: print(f"work directory: {work}")
        else: shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
