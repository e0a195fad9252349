#!/usr/bin/env python3
"""Two ingress nodes bridged into a 3-node JetStream cluster, with the connected NATS servers killed (issue 14).

A 3-node `nats-server` cluster on loopback ports (routes, JetStream, an R3 stream with a 2-minute duplicate
window, created with the `nats-py` client), two spools each running `spool serve` and `spool consume --nats`:
one given URL1,URL2,URL3, the other only one of them (it learns the rest from INFO `connect_urls`). 2,000 webhooks (unique keys; 20% of them sent to both ingress nodes) are posted while the NATS
server each bridge is connected to is SIGKILLed and restarted, one after the other. Then, read with nats-py (an
independent client, not our own code): the stream holds every acknowledged key exactly once. Exit 0 when that
holds, 1 otherwise, 77 when nats-server or nats-py is missing.

    Reliability/jetstream_cluster.py [--spool .build/debug/spool] [--webhooks 2000]
"""
import argparse, asyncio, http.client, json, os, random, re, shutil, subprocess, sys, tempfile, threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import free_port, start_serve, wait_port  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NATS = shutil.which("nats-server") or ("/usr/sbin/nats-server" if os.path.exists("/usr/sbin/nats-server") else None)


class Node:
    def __init__(self, i, ports, cports, work):
        self.i, self.port, self.cport = i, ports[i], cports[i]
        self.routes = ",".join(f"nats://127.0.0.1:{c}" for j, c in enumerate(cports) if j != i)
        self.store = os.path.join(work, f"js{i}")
        self.log = os.path.join(work, f"nats{i}.log")
        self.p = None

    def command(self):
        """The server's command line (Reliability/topology.py gives the one of docs/bridges.md instead)."""
        return [NATS, "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", self.store, "-n", f"n{self.i}",
                "--cluster_name", "spooltest", "--cluster", f"nats://127.0.0.1:{self.cport}", "--routes", self.routes, "-l", self.log]

    def start(self):
        self.p = subprocess.Popen(self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)

    def kill(self):
        self.p.kill(); self.p.wait()


async def create_stream(urls):
    import nats
    for attempt in range(60):
        try:
            nc = await nats.connect(servers=urls, connect_timeout=2)
            js = nc.jetstream()
            await js.add_stream(name="HOOKS", subjects=["hooks.>"], num_replicas=3, duplicate_window=120.0)
            await nc.close()
            return
        except Exception as e:  # the meta leader may not be elected yet
            last = e
            await asyncio.sleep(0.5)
    raise RuntimeError(f"cannot create the R3 stream: {last}")


async def stored_keys(urls, stream="HOOKS"):
    """Every message's Nats-Msg-Id, read back once the cluster answers (after restarts a stream leader may still be
    being elected: JetStream API requests time out until then, so each is retried for up to a minute)."""
    import nats
    nc = await nats.connect(servers=urls, connect_timeout=2)
    js = nc.jetstream(timeout=10)

    async def retried(call):
        last = None
        for _ in range(30):
            try:
                return await call()
            except nats.js.errors.NotFoundError:
                raise
            except Exception as e:
                last = e
                await asyncio.sleep(2)
        raise RuntimeError(f"the cluster did not answer: {last!r}")

    info = await retried(lambda: js.stream_info(stream))
    keys = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        try:
            m = await retried(lambda: js.get_msg(stream, seq))
        except nats.js.errors.NotFoundError:
            continue
        keys.append((m.headers or {}).get("Nats-Msg-Id"))
    await nc.close()
    return info.state.messages, keys


def post(port, key):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("POST", "/json2video/done", json.dumps({"movie": {"project": key, "status": "done"}}).encode(),
              {"Content-Type": "application/json"})
    r = c.getresponse(); body = r.read(); c.close()
    return r.status == 200


def connected_port(stderr_path):
    text = open(stderr_path, errors="replace").read()
    found = re.findall(r"nats: connected to nats://127\.0\.0\.1:(\d+)", text)
    return int(found[-1]) if found else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--spool", default=os.path.join(ROOT, ".build/debug/spool"))
    ap.add_argument("--webhooks", type=int, default=2000)
    a = ap.parse_args()
    try:
        import nats  # noqa: F401
    except ImportError:
        print("jetstream_cluster: SKIPPED, nats-py is not installed (pip install nats-py)"); sys.exit(77)
    if not NATS:
        print("jetstream_cluster: SKIPPED, nats-server is not installed"); sys.exit(77)
    work = tempfile.mkdtemp(prefix="jscluster-")
    ports, cports = [free_port() for _ in range(3)], [free_port() for _ in range(3)]
    nodes = [Node(i, ports, cports, work) for i in range(3)]
    for n in nodes: n.start()
    urls = [f"nats://127.0.0.1:{p}" for p in ports]
    procs, failures = [], []
    try:
        asyncio.run(create_stream(urls))
        ingress = []
        # Bridge a is given the three servers; bridge b only one, and must learn the others from INFO connect_urls.
        for name, given in (("a", urls), ("b", [random.choice(urls)])):
            d = os.path.join(work, name)
            serve, port = start_serve(a.spool, d)
            err = os.path.join(work, f"consume-{name}.log")
            consume = subprocess.Popen([a.spool, "--dir", d, "consume", "--nats", ",".join(given), "--subject", "hooks.in",
                                        "--nats-stream", "HOOKS", "--concurrency", "8", "--backoff", "100ms", "--max-backoff", "1s"],
                                       stdout=subprocess.DEVNULL, stderr=open(err, "w"))
            procs += [serve, consume]
            ingress.append((d, port, err))
        acked, lock = set(), threading.Lock()
        keys = [f"cl-{i}" for i in range(a.webhooks)]

        def sender(part):
            for k in part:
                targets = [random.choice(ingress)] if random.random() >= 0.2 else ingress
                for (_, port, _) in targets:
                    for _ in range(50):
                        try:
                            if post(port, k):
                                with lock: acked.add(k)
                                break
                        except OSError:
                            pass
                        time.sleep(0.05)

        threads = [threading.Thread(target=sender, args=(keys[i::4],)) for i in range(4)]
        for t in threads: t.start()
        kills = []
        for (_, _, err) in ingress:  # the server each bridge uses, one after the other
            time.sleep(1.5)
            p = connected_port(err)
            victim = next((n for n in nodes if n.port == p), None)
            if victim is None: failures.append("a bridge never said which server it is connected to"); continue
            victim.kill(); kills.append(victim.port)
            time.sleep(1.0)
            victim.start()
        for t in threads: t.join()
        end = time.time() + 120
        while time.time() < end:
            pending = sum(len(os.listdir(os.path.join(d, s))) for (d, _, _) in ingress for s in ("new", "claimed"))
            if pending == 0: break
            time.sleep(0.5)
        if pending: failures.append(f"{pending} items still waiting in the spools")
        messages, stored = asyncio.run(stored_keys(urls))
        dupes = len(stored) - len(set(stored))
        missing = [k for k in acked if k not in set(stored)]
        reconnects = sum(open(err).read().count("nats: connected to") for (_, _, err) in ingress)
        print(f"jetstream_cluster: {len(acked)} acknowledged, stream holds {messages} ({dupes} keys twice, {len(missing)} "
              f"acknowledged keys missing); servers killed: {kills}; bridge connects: {reconnects}")
        if dupes: failures.append(f"{dupes} keys stored twice")
        if missing: failures.append(f"missing: {missing[:5]}")
        if len(kills) < 2: failures.append("fewer than two servers were killed")
        b_log = open(ingress[1][2]).read()
        if "from the cluster" not in b_log: failures.append("bridge b did not learn the cluster's other servers")
        if b_log.count("nats: connected to") < 2: failures.append("bridge b did not reconnect after its server was killed")
    finally:
        for p in procs:
            p.terminate()
            try: p.wait(timeout=20)
            except subprocess.TimeoutExpired: p.kill()
        for n in nodes:
            if n.p and n.p.poll() is None: n.kill()
    for f in failures: print("FAIL", f)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
