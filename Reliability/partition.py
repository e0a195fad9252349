#!/usr/bin/env python3
"""A network partition of the NATS cluster under a running bridge (issue 14, the "network partition" row of
docs/bridges.md's failure table).

Three `nats-server` nodes whose cluster routes all pass through TCP proxies of this script, one per ordered pair of
nodes, so the script can cut one node off from the other two while clients still reach every node (the routes'
implicit discovery is pointed at a closed port with `--cluster_advertise`, so no route bypasses the proxies). An R3
stream with a duplicate window is created with nats-py. One spool runs `spool consume --nats URL1,URL2,URL3`; the
node it connected to is cut off (the minority side, which can store nothing), and webhooks are enqueued while the
partition lasts, then it heals. Checks, with nats-py reading the stream (an independent client): every enqueued key is
in the stream exactly once, every item is in `done/` and in the worker's spool, the durable consumer has nothing
pending; and, since the majority side stayed reachable, the bridge and a worker's `spool pull` (also connected to the
cut-off node) moved there and did all their work while the partition lasted, the puller without spinning. Exit 0 when the checks hold, 1 otherwise,
77 when nats-server or nats-py is missing.

    Reliability/partition.py [--spool .build/debug/spool] [--items 200] [--seconds 40]
"""
import argparse, asyncio, os, re, shutil, socket, subprocess, sys, tempfile, threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import cpu_seconds, free_port, wait_port  # noqa: E402
from jetstream_cluster import NATS, create_stream, stored_keys  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Proxy:
    """Forwards one listening port to a target port; `cut` drops every connection and refuses new ones until
    `heal` (the peer sees its connection reset, then connection attempts closed at once)."""

    def __init__(self, target):
        self.target = target
        self.sock = socket.socket(); self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0)); self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.cut_now, self.conns, self.lock = False, [], threading.Lock()
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            c, _ = self.sock.accept()
            if self.cut_now:
                c.close(); continue
            try:
                u = socket.create_connection(("127.0.0.1", self.target), timeout=2)
            except OSError:
                c.close(); continue
            with self.lock: self.conns += [c, u]
            for a, b in ((c, u), (u, c)): threading.Thread(target=self.pump, args=(a, b), daemon=True).start()

    @staticmethod
    def pump(a, b):
        try:
            while True:
                data = a.recv(65536)
                if not data: break
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            try: s.shutdown(socket.SHUT_RDWR)
            except OSError: pass

    def cut(self):
        self.cut_now = True
        with self.lock:
            for s in self.conns:
                try: s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"); s.close()
                except OSError: pass
            self.conns = []

    def heal(self):
        self.cut_now = False


async def consumer_pending(urls):
    """(pending, ack pending) of the durable WORKERS, read with nats-py once the cluster answers."""
    import nats
    nc = await nats.connect(servers=urls, connect_timeout=2)
    try:
        for _ in range(30):
            try:
                info = await nc.jetstream(timeout=5).consumer_info("HOOKS", "WORKERS")
                return info.num_pending, info.num_ack_pending
            except Exception:
                await asyncio.sleep(1)
        return None
    finally:
        await nc.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--spool", default=os.path.join(ROOT, ".build/debug/spool"))
    ap.add_argument("--items", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=40, help="how long the partition lasts: long enough to move (up to about 30 s for a puller whose consumer leader was on the cut-off node and keeps sending heartbeats until it steps down)")
    a = ap.parse_args()
    try:
        import nats  # noqa: F401
    except ImportError:
        print("partition: SKIPPED, nats-py is not installed (pip install nats-py)"); sys.exit(77)
    if not NATS:
        print("partition: SKIPPED, nats-server is not installed"); sys.exit(77)
    work = tempfile.mkdtemp(prefix="partition-")
    ports, cports = [free_port() for _ in range(3)], [free_port() for _ in range(3)]
    proxies = {(i, j): Proxy(cports[j]) for i in range(3) for j in range(3) if i != j}
    closed = free_port()  # implicit route discovery goes here and fails: every route passes through a proxy
    servers = []
    for i in range(3):
        routes = ",".join(f"nats://127.0.0.1:{proxies[(i, j)].port}" for j in range(3) if j != i)
        servers.append(subprocess.Popen(
            [NATS, "-js", "-a", "127.0.0.1", "-p", str(ports[i]), "-sd", os.path.join(work, f"js{i}"), "-n", f"n{i}",
             "--cluster_name", "part", "--cluster", f"nats://127.0.0.1:{cports[i]}", "--routes", routes,
             "--cluster_advertise", f"127.0.0.1:{closed}", "-l", os.path.join(work, f"nats{i}.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    for p in ports: wait_port(p)
    urls = [f"nats://127.0.0.1:{p}" for p in ports]
    failures, procs = [], []
    try:
        asyncio.run(create_stream(urls))
        d = os.path.join(work, "s")
        err = os.path.join(work, "consume.log")
        subprocess.run([a.spool, "--dir", d, "init"], check=True, capture_output=True)
        consume = subprocess.Popen([a.spool, "--dir", d, "consume", "--nats", ",".join(urls), "--subject", "hooks.in",
                                    "--nats-stream", "HOOKS", "--concurrency", "8", "--timeout", "2s",
                                    "--backoff", "100ms", "--max-backoff", "1s"],
                                   stdout=subprocess.DEVNULL, stderr=open(err, "w"))
        procs.append(consume)
        port = None
        for _ in range(100):
            found = re.findall(r"nats: connected to nats://127\.0\.0\.1:(\d+)", open(err, errors="replace").read())
            if found: port = int(found[-1]); break
            time.sleep(0.1)
        if port is None: raise RuntimeError("the bridge did not connect")
        # A worker's `spool pull`, given only the bridge's server: it learns the others from INFO connect_urls.
        w = os.path.join(work, "w")
        perr = os.path.join(work, "pull.log")
        pull = subprocess.Popen([a.spool, "--dir", w, "pull", "--nats", f"nats://127.0.0.1:{port}", "--stream", "HOOKS",
                                 "--consumer", "WORKERS", "--create-consumer", "--batch", "16"],
                                stdout=subprocess.DEVNULL, stderr=open(perr, "w"))
        procs.append(pull)
        # One item before the partition, so the stream check is done, the bridge is publishing and the puller pulling.
        subprocess.run([a.spool, "--dir", d, "enqueue", "--key", "before"], input=b"{}", check=True, capture_output=True)
        for _ in range(200):
            if os.listdir(os.path.join(d, "done")) and os.path.isdir(os.path.join(w, "new")) and os.listdir(os.path.join(w, "new")): break
            time.sleep(0.1)
        else:
            raise RuntimeError("the item before the partition did not reach the worker")
        cut = ports.index(port)
        pull_cpu = cpu_seconds(pull.pid)
        for (i, j), p in proxies.items():
            if cut in (i, j): p.cut()
        t0 = time.monotonic()
        keys = [f"part-{i}" for i in range(a.items)]
        for k in keys:
            subprocess.run([a.spool, "--dir", d, "enqueue", "--key", k], input=b'{"p":1}', check=True, capture_output=True)
        while time.monotonic() - t0 < a.seconds: time.sleep(0.2)
        during = len(os.listdir(os.path.join(d, "done"))) - 1
        pulled_during = len(os.listdir(os.path.join(w, "new"))) - 1
        pull_cpu = (cpu_seconds(pull.pid) - pull_cpu) / (time.monotonic() - t0)
        for p in proxies.values(): p.heal()
        healed = time.monotonic()
        while len(os.listdir(os.path.join(d, "done"))) < a.items + 1 and time.monotonic() - healed < 90: time.sleep(0.2)
        while len(os.listdir(os.path.join(w, "new"))) < a.items + 1 and time.monotonic() - healed < 90: time.sleep(0.2)
        settled = time.monotonic() - healed
        done = len(os.listdir(os.path.join(d, "done"))) - 1
        if done != a.items: failures.append(f"{done} of {a.items} items in done/ 90 s after the partition healed")
        pulled = set(os.listdir(os.path.join(w, "new")))
        if pulled != set(keys) | {"before"}: failures.append(f"the worker spool has {len(pulled)} items, not the {a.items + 1} keys")
        # Both were connected to the cut-off node while the majority side stayed reachable: each must have moved
        # there (StrandedServer) and done all its work while the partition lasted.
        if during != a.items: failures.append(f"the bridge stored {during} of {a.items} items during the partition")
        if pulled_during != a.items: failures.append(f"the worker pulled {pulled_during} of {a.items} items during the partition")
        if pull_cpu > 0.2: failures.append(f"spool pull used {pull_cpu:.2f} of a core during the partition (a request loop?)")
        # Like the stream below, a consumer leader elected just after the heal may report counts from before it applied
        # its log (seen once in CI: (10, 0) while the worker already held all 201 items): look again before failing.
        for look in range(4):
            if look: time.sleep(5)
            pending = asyncio.run(consumer_pending(urls))
            if pending == (0, 0): break
        if pending != (0, 0): failures.append(f"the consumer has (pending, ack pending) {pending} at the end")
        # A stream leader elected just after the heal may answer before it has applied its log: read again a few
        # times before calling anything missing.
        for look in range(4):
            if look: time.sleep(5)
            messages, stored = asyncio.run(stored_keys(urls))
            counts = {}
            for k in stored: counts[k] = counts.get(k, 0) + 1
            twice = [k for k, c in counts.items() if c > 1]
            missing = [k for k in keys if k not in counts]
            if not missing: break
        if twice: failures.append(f"{len(twice)} keys twice in the stream, e.g. {twice[:3]}")
        broker_lost = ""
        if missing and pulled == set(keys) | {"before"}:
            # Every key reached the worker through the stream, so the bridge's publishes were stored and acknowledged;
            # losing them after the heal is the broker's doing (seen once in 13 runs with nats-server 2.9.10: the
            # cut-off node's inflated term forced an election after the heal and the stream came back with 1 message).
            broker_lost = f"; BROKER FAULT: the stream lost {len(missing)} acknowledged messages after the heal, all already pulled"
        elif missing:
            failures.append(f"{len(missing)} keys missing from the stream, e.g. {missing[:3]}")
        moved = re.findall(r"nats: connected to (nats://\S+)", open(err, errors="replace").read())[1:]
        pmoved = re.findall(r"nats: connected to (nats://\S+)", open(perr, errors="replace").read())[1:]
        print(f"partition: node n{cut} (the bridge's and the puller's server) cut off for {a.seconds:.0f} s; during it "
              f"{during} of {a.items} items stored by the bridge and {pulled_during} pulled by the worker; all in place "
              f"{settled:.1f} s after it healed; later connections: bridge {moved or 'none'}, puller {pmoved or 'none'}; "
              f"pull CPU during the partition {pull_cpu:.3f} of a core; stream holds {messages} ({len(twice)} keys twice, "
              f"{len(missing)} missing){broker_lost}; {len(failures)} failure(s)")
    finally:
        for p in procs: p.terminate(); p.wait()
        for s in servers: s.kill(); s.wait()
    for f in failures: print("FAIL", f)
    if failures:
        # What the bridge and the puller saw, so a failure in CI can be explained without the work directory.
        for name in ("consume.log", "pull.log"):
            try: text = open(os.path.join(work, name), errors="replace").read()
            except OSError: continue
            statuses = {}
            for st in re.findall(r"status=(.*?) duration=", text):
                st = re.sub(r"\d+", "N", st); statuses[st] = statuses.get(st, 0) + 1
            print(f"  {name}: statuses {statuses}")
            for line in text.splitlines():
                if "nats:" in line or "error" in line.lower(): print("   ", line[:300])
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
