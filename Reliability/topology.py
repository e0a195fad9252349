#!/usr/bin/env python3
"""The multi-machine topology of docs/bridges.md, run with the commands exactly as written (issue 14).

The blocks marked `<!-- topology:nats -->`, `topology:stream`, `topology:ingress` and `topology:worker` are read
from docs/bridges.md and run on this machine; only host names, ports, directories, the handler's path and the
binaries' paths are replaced (and each nats-server gets `-l FILE` for its log). A flag edited in the doc is a flag
edited here. The stream block is a `nats stream add` command (the nats CLI); its flags are translated into the
same request made with nats-py (PyPI), and a flag this script does not know is a failure, not a silent skip.

3 nats-server nodes (a cluster), the stream, 3 ingress nodes (`spool serve` + `spool consume --nats`, each on
its own spool) and 2 workers (`spool pull` + `spool consume --exec`, each on its own spool; the handler appends
the key to a file per worker). N webhooks are posted over the ingress nodes, 10% of them to two nodes; during the
run the stream's leader is SIGKILLed and restarted, and so is worker 1's `spool pull`. Then: every acknowledged
key was handled by at least one worker, no worker handled a key twice, nothing is left in `new/` or `claimed/` of
any spool, the durable consumer has nothing pending or unacknowledged, and the stream (read with nats-py, an
independent client) holds each key once. Exit 0 when all that holds, 1 otherwise, 77 when nats-server or nats-py
is missing.

    Reliability/topology.py [--spool .build/debug/spool] [--webhooks 600] [--seconds 10]
"""
import argparse, asyncio, os, random, re, shlex, shutil, subprocess, sys, tempfile, threading, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from common import check, failures, free_port, wait_port  # noqa: E402
from jetstream_cluster import NATS, Node, post, stored_keys  # noqa: E402

DOC = os.path.join(ROOT, "docs/bridges.md")
HANDLER = "/usr/local/bin/on-render-done"   # the doc's handler path, replaced by a script of ours
# What must not be left in a command once substituted: the doc's hosts, directories and ports.
LEFTOVER = re.compile(r"\S*(?:\.internal|0\.0\.0\.0|/var/lib/|/usr/local/bin/)\S*|\b(?:4222|6222|8080)\b")


def doc_blocks(doc):
    """{marker: [command, ...]} for each `<!-- topology:NAME -->` block: continuation lines joined, comments
    dropped, a trailing `&` removed."""
    text = open(doc).read()
    out = {}
    for m in re.finditer(r"<!-- topology:(\w+) -->\n```sh\n(.*?)```", text, re.S):
        cmds = []
        for line in m.group(2).replace("\\\n", " ").splitlines():
            line = line.strip()
            if not line or line.startswith("#"): continue
            cmds.append(line[:-1].rstrip() if line.endswith("&") else line)
        out[m.group(1)] = cmds
    missing = {"nats", "stream", "ingress", "worker"} - out.keys()
    if missing: raise RuntimeError(f"{doc} has no topology block for {sorted(missing)}")
    return out


def run_inits(cmds, pairs, spool):
    """Runs the block's `spool ... init` commands (they finish before the rest start) and returns the others."""
    rest = []
    for c in cmds:
        argv = substitute(c, pairs, {"spool": spool})
        if "init" in argv[1:]:
            subprocess.run(argv, check=True, capture_output=True)
        else:
            rest.append(c)
    return rest


def substitute(cmd, pairs, programs):
    """The command with each (doc text, local text) pair replaced, split like sh would, argv[0] mapped to a path."""
    for a, b in pairs: cmd = cmd.replace(a, b)
    left = LEFTOVER.findall(cmd)
    if left: raise RuntimeError(f"topology.py has no substitution for {left} in: {cmd}")
    argv = shlex.split(cmd)
    if argv[0] not in programs: raise RuntimeError(f"unexpected program {argv[0]!r} in: {cmd}")
    return [programs[argv[0]]] + argv[1:]


class DocNode(Node):
    """A cluster node started with its line of the doc's nats block."""
    def __init__(self, i, ports, cports, work, line, hosts):
        super().__init__(i, ports, cports, work)
        own = [("-a 0.0.0.0", "-a 127.0.0.1"), ("-p 4222", f"-p {self.port}"),
               ("nats://0.0.0.0:6222", f"nats://127.0.0.1:{self.cport}"), ("/var/lib/nats", self.store)]
        self.argv = substitute(line, own + hosts, {"nats-server": NATS}) + ["-l", self.log]
        self.name = self.argv[self.argv.index("-n") + 1] if "-n" in self.argv else None

    def command(self):
        return self.argv


class Proc:
    """A spool process of the topology, its stderr in a log file; restartable with the same command line."""
    def __init__(self, name, argv, work):
        self.name, self.argv, self.log, self.p = name, argv, os.path.join(work, f"{name}.log"), None

    def start(self):
        self.p = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=open(self.log, "a"))

    def sigkill(self):
        self.p.kill(); self.p.wait()

    def dead(self):
        """None while running; else what it said last."""
        if self.p.poll() is None: return None
        tail = open(self.log, errors="replace").read().strip().splitlines()[-2:]
        return f"{self.name} exited with {self.p.returncode}: {' | '.join(tail)}"


def all_running(procs):
    dead = [d for d in (p.dead() for p in procs) if d]
    if dead: raise RuntimeError("; ".join(dead))


def duration(text):
    m = re.fullmatch(r"(\d+)(ms|s|m|h)", text)
    if not m: raise RuntimeError(f"cannot read the duration {text!r}")
    return int(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def stream_request(line, hosts):
    """The doc's `nats [--server URL] stream add NAME FLAGS` as (servers, add_stream arguments)."""
    argv = substitute(line, hosts, {"nats": "nats"})
    servers, args, i = [], {}, 1
    while i < len(argv) and argv[i].startswith("-"):
        if argv[i] in ("--server", "-s"): servers = argv[i + 1].split(","); i += 2
        else: raise RuntimeError(f"topology.py does not know the nats option {argv[i]}")
    if argv[i:i + 2] != ["stream", "add"] or i + 2 >= len(argv):
        raise RuntimeError(f"expected 'nats stream add NAME': {line}")
    args["name"] = argv[i + 2]
    rest = argv[i + 3:]
    j = 0
    while j < len(rest):
        flag = rest[j]
        if flag == "--defaults": j += 1; continue
        if j + 1 >= len(rest): raise RuntimeError(f"{flag} without a value")
        v = rest[j + 1]; j += 2
        if flag == "--subjects": args["subjects"] = v.split(",")
        elif flag == "--storage": args["storage"] = v
        elif flag == "--replicas": args["num_replicas"] = int(v)
        elif flag == "--dupe-window": args["duplicate_window"] = float(duration(v))
        else: raise RuntimeError(f"topology.py does not translate the stream option {flag} yet")
    return servers, args


async def create_stream(servers, args):
    import nats
    from nats.js.api import StorageType
    a = dict(args)
    if "storage" in a: a["storage"] = {"file": StorageType.FILE, "memory": StorageType.MEMORY}[a["storage"]]
    last = None
    for _ in range(60):   # the meta leader may not be elected yet
        try:
            nc = await nats.connect(servers=servers, connect_timeout=2)
            info = await nc.jetstream().add_stream(**a)
            await nc.close()
            return info
        except Exception as e:
            last = e
            await asyncio.sleep(0.5)
    raise RuntimeError(f"cannot create the stream: {last!r}")


async def js_call(urls, call, timeout=2):
    import nats
    nc = await nats.connect(servers=urls, connect_timeout=2, max_reconnect_attempts=1)
    try:
        return await call(nc.jetstream(timeout=timeout))
    finally:
        await nc.close()


def stream_leader(urls, stream):
    try:
        return asyncio.run(js_call(urls, lambda js: js.stream_info(stream))).cluster.leader
    except Exception:
        return None


def consumer_state(urls, stream, durable):
    try:
        c = asyncio.run(js_call(urls, lambda js: js.consumer_info(stream, durable)))
        return c.num_pending, c.num_ack_pending, c.num_redelivered
    except Exception:
        return None


def waiting(d):
    return sum(len(os.listdir(os.path.join(d, s))) for s in ("new", "claimed") if os.path.isdir(os.path.join(d, s)))


def handled(path):
    return open(path).read().split() if os.path.exists(path) else []


def longest_pause(logs, start, end):
    """The longest time between two items handled (by either worker) from `start` to `end` (epoch seconds),
    read from the workers' consume logs."""
    import datetime
    times = [start, end]
    for path in logs:
        for line in open(path, errors="replace"):
            if "outcome=done" not in line: continue
            ts = datetime.datetime.strptime(line.split()[0].removeprefix("ts="), "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc).timestamp()
            if start <= ts <= end: times.append(ts)
    times.sort()
    return max(b - a for a, b in zip(times, times[1:]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--spool", default=os.path.join(ROOT, ".build/debug/spool"))
    ap.add_argument("--webhooks", type=int, default=600)
    ap.add_argument("--seconds", type=float, default=10, help="how long the webhooks are spread over")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs, spools) after a success")
    ap.add_argument("--doc", default=DOC, help="the document whose topology blocks are run (default docs/bridges.md)")
    a = ap.parse_args()
    try:
        import nats  # noqa: F401
    except ImportError:
        print("topology: SKIPPED, nats-py is not installed (pip install nats-py)"); sys.exit(77)
    if not NATS:
        print("topology: SKIPPED, nats-server is not installed"); sys.exit(77)
    spool = os.path.abspath(a.spool)
    started = time.time()
    work = tempfile.mkdtemp(prefix="topology-")
    nodes, procs = [], []
    try:
        blocks = doc_blocks(a.doc)
        ports, cports = [free_port() for _ in range(3)], [free_port() for _ in range(3)]
        hosts = [(f"nats-{j + 1}.internal:{doc}", f"127.0.0.1:{p}")
                 for j in range(3) for doc, p in ((4222, ports[j]), (6222, cports[j]))]
        urls = [f"nats://127.0.0.1:{p}" for p in ports]
        if len(blocks["nats"]) != 3: raise RuntimeError(f"the nats block has {len(blocks['nats'])} commands, not 3")
        nodes = [DocNode(i, ports, cports, work, line, hosts) for i, line in enumerate(blocks["nats"])]
        for n in nodes: n.start()

        servers, args = stream_request(blocks["stream"][0], hosts)
        info = asyncio.run(create_stream(servers or urls, args))
        stream = args["name"]
        check(info.config.num_replicas == 3, f"stream {stream} has {info.config.num_replicas} replicas (the doc says 3)")

        # Ingress nodes: serve + consume --nats, each on its own spool.
        ingress = []
        for i in range(3):
            d, port = os.path.join(work, f"ingress-{i + 1}"), free_port()
            pairs = [("/var/lib/spool", d), ("0.0.0.0:8080", f"127.0.0.1:{port}")] + hosts
            cmds = run_inits(blocks["ingress"], pairs, spool)
            pr = [Proc(f"ingress-{i + 1}-{n}", substitute(c, pairs, {"spool": spool}), work)
                  for n, c in zip(("serve", "consume"), cmds)]
            if len(cmds) != 2 or "serve" not in pr[0].argv or "consume" not in pr[1].argv:
                raise RuntimeError("the ingress block is not 'spool serve' then 'spool consume'")
            for p in pr: p.start(); procs.append(p)
            wait_port(port)
            ingress.append((d, port))

        # Workers: pull + consume --exec; the handler appends the key to the worker's file.
        workers = []
        for i in range(2):
            d, out = os.path.join(work, f"worker-{i + 1}"), os.path.join(work, f"handled-{i + 1}.txt")
            h = os.path.join(work, f"handler-{i + 1}")
            with open(h, "w") as f: f.write(f'#!/bin/sh\necho "$SPOOL_KEY" >> {shlex.quote(out)}\n')
            os.chmod(h, 0o755)
            pairs = [("/var/lib/spool", d), (HANDLER, h)] + hosts
            cmds = run_inits(blocks["worker"], pairs, spool)
            pr = [Proc(f"worker-{i + 1}-{n}", substitute(c, pairs, {"spool": spool}), work)
                  for n, c in zip(("pull", "consume"), cmds)]
            if len(cmds) != 2 or "pull" not in pr[0].argv or "consume" not in pr[1].argv:
                raise RuntimeError("the worker block is not 'spool pull' then 'spool consume'")
            for p in pr: p.start(); procs.append(p)
            workers.append((d, out, pr[0]))
        durable = workers[0][2].argv[workers[0][2].argv.index("--consumer") + 1]
        time.sleep(0.5)
        all_running(procs)   # a flag edited into something spool refuses ends the run here, with spool's message

        # Webhooks, spread over --seconds by 4 senders; 10% of the keys go to two ingress nodes.
        keys = [f"topo-{i}" for i in range(a.webhooks)]
        acked, doubled, lock = set(), set(), threading.Lock()
        gap = a.seconds * 4 / max(1, a.webhooks)

        def sender(part):
            for k in part:
                targets = random.sample(range(3), 2) if random.random() < 0.1 else [random.randrange(3)]
                if len(targets) == 2:
                    with lock: doubled.add(k)
                for t in targets:
                    for _ in range(100):
                        try:
                            if post(ingress[t][1], k):
                                with lock: acked.add(k)
                                break
                        except OSError:
                            pass
                        time.sleep(0.05)
                time.sleep(gap)

        send_start = time.time()
        threads = [threading.Thread(target=sender, args=(keys[i::4],), daemon=True) for i in range(4)]
        for t in threads: t.start()

        # SIGKILL the stream's leader, time the election of a new one, restart it.
        time.sleep(a.seconds * 0.25)
        leader = stream_leader(urls, stream)
        victim = next((n for n in nodes if n.name == leader), None)
        check(victim is not None, f"the stream's leader is known ({leader})")
        election = None
        if victim:
            victim.kill(); killed_at = time.time()
            others = [u for n, u in zip(nodes, urls) if n is not victim]
            while time.time() - killed_at < 30:
                new = stream_leader(others, stream)
                if new and new != victim.name:
                    election = time.time() - killed_at; break
                time.sleep(0.1)
            check(election is not None, f"a new stream leader after SIGKILL of {victim.name} "
                                        f"({'%.1f s' % election if election is not None else 'none within 30 s'})")
            time.sleep(max(0.0, killed_at + 2 - time.time()))
            victim.start()

        # SIGKILL worker 1's spool pull mid-run, restart it with the same command line.
        time.sleep(max(0.0, send_start + a.seconds * 0.55 - time.time()))
        pull = workers[0][2]
        pull.sigkill(); time.sleep(1.0); pull.start()

        for t in threads: t.join()
        all_running(procs)
        sent_in = time.time() - send_start
        send_end = time.time()

        # Wait for everything to settle: a killed puller's unacknowledged batch comes back after --ack-wait.
        deadline = time.time() + 80
        state, settle_start = None, time.time()
        while time.time() < deadline:
            pending = sum(waiting(d) for d, _ in ingress) + sum(waiting(d) for d, _, _ in workers)
            done = set(handled(workers[0][1])) | set(handled(workers[1][1]))
            if pending == 0 and acked <= done:
                state = consumer_state(urls, stream, durable)
                if state and state[0] == 0 and state[1] == 0: break
            time.sleep(0.5)
        settled = time.time() - settle_start

        stall = longest_pause([os.path.join(work, f"worker-{i + 1}-consume.log") for i in range(2)], send_start + 0.5, send_end)
        per = [handled(out) for _, out, _ in workers]
        union = set(per[0]) | set(per[1])
        messages, stored = asyncio.run(stored_keys(urls, stream))
        stored_dupes = len(stored) - len(set(stored))
        missing = sorted(acked - union)
        check(len(acked) == a.webhooks, f"{len(acked)} of {a.webhooks} webhooks acknowledged")
        check(not missing, f"every acknowledged key handled by a worker ({len(missing)} not: {missing[:5]})")
        for i, keys_i in enumerate(per):
            check(len(keys_i) == len(set(keys_i)), f"worker-{i + 1} handled {len(keys_i)} items, "
                                                   f"{len(keys_i) - len(set(keys_i))} keys twice")
        for d, _ in ingress:
            check(waiting(d) == 0, f"{os.path.basename(d)}: nothing left in new/ or claimed/ ({waiting(d)})")
        for d, _, _ in workers:
            check(waiting(d) == 0, f"{os.path.basename(d)}: nothing left in new/ or claimed/ ({waiting(d)})")
        check(state is not None and state[0] == 0 and state[1] == 0,
              f"consumer {durable}: nothing pending or unacknowledged (pending, ack pending, redelivered: {state})")
        check(stored_dupes == 0 and set(stored) >= acked,
              f"stream {stream} holds {messages} messages: {stored_dupes} keys twice, {len(acked - set(stored))} acknowledged keys missing")
        print(f"topology: {len(acked)} acknowledged ({len(doubled)} sent to two ingress nodes) in {sent_in:.1f} s; "
              f"stream holds {messages}; handled by worker-1 {len(per[0])}, worker-2 {len(per[1])}, "
              f"both {len(set(per[0]) & set(per[1]))}; leader {leader} killed, a client saw a new one after "
              f"{'%.1f s' % election if election is not None else '?'}; longest pause in handling while sending {stall:.1f} s; "
              f"settled {settled:.1f} s after the last webhook; "
              f"consumer (pending, ack pending, redelivered) {state}; "
              f"{len(failures)} failure(s); {time.time() - started:.1f} s", flush=True)
    except Exception as e:
        check(False, f"{type(e).__name__}: {e}")
    finally:
        for p in procs:
            if p.p and p.p.poll() is None: p.p.terminate()
        for p in procs:
            if p.p is None: continue
            try: p.p.wait(timeout=20)
            except subprocess.TimeoutExpired: p.p.kill(); p.p.wait()
        for n in nodes:
            if n.p and n.p.poll() is None: n.kill()
    if failures:
        print(f"topology: FAILED, logs in {work}")
        sys.exit(1)
    if a.keep: print(f"topology: logs in {work}")
    else: shutil.rmtree(work, ignore_errors=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
