#!/usr/bin/env python3
"""Crash loop: `spool serve` and 3 consumers under load, SIGKILLed at random moments and restarted, many rounds.

Clients post unique webhooks (and re-send acknowledged ones as duplicates); each round kills the server and a
random subset of the consumers at a random moment, then restarts them. Handlers log the MD5 of the bytes they
were given. At the end everything is drained, and: every webhook that got a 200 is in done/ with its exact
bytes; every handler run saw exactly the bytes that were sent for its key (nothing partial); no tmp/ entry
outlives a recover. Repeated handler runs (at-least-once) are counted.

    Reliability/crashloop.py [--rounds 100] [--spool .build/debug/spool]
"""
import argparse, collections, hashlib, http.client, json, os, random, shutil, signal, subprocess, sys, tempfile, threading, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import payload_or_damage  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def body_for(key):
    return json.dumps({"movie": {"project": key}, "pad": "p" * (len(key) * 37 % 900)}).encode()


class Cluster:
    def __init__(self, spool, d, log):
        self.spool, self.d, self.log = spool, d, log
        self.server, self.port, self.consumers = None, None, [None, None, None]

    def start_server(self):
        self.server = subprocess.Popen([self.spool, "--dir", self.d, "serve", "--listen", f"127.0.0.1:{self.port or 0}"],
                                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.server.stdout.readline()
        if not line:  # port still held by the dead one: try again shortly
            self.server.wait(); time.sleep(0.1); return self.start_server()
        self.port = int(line.split("127.0.0.1:")[1].split()[0])

    def start_consumer(self, i):
        handler = f'echo "$SPOOL_KEY $SPOOL_ATTEMPT $(md5sum | cut -c1-32)" >> {self.log}'
        self.consumers[i] = subprocess.Popen([self.spool, "--dir", self.d, "consume", "--exec", handler, "--concurrency", "2",
                                              "--backoff", "50ms", "--max-backoff", "200ms", "--max-attempts", "1000"],
                                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def kill(self, p):
        if p and p.poll() is None: p.send_signal(signal.SIGKILL); p.wait()


class Load:
    def __init__(self, cluster):
        self.c = cluster
        self.lock = threading.Lock()
        self.acked = {}
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(i,)) for i in range(4)]
        self.n = 0

    def run(self, tid):
        conn, port, i = None, None, 0
        while not self.stop.is_set():
            with self.lock:
                dup = random.choice(list(self.acked)) if self.acked and random.random() < 0.2 else None
            key = dup or f"t{tid}n{i}"
            if not dup: i += 1
            body = body_for(key)
            try:
                if conn is None or port != self.c.port:
                    port = self.c.port
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("POST", "/json2video/done", body, {"Content-Type": "application/json"})
                r = conn.getresponse(); r.read()
                if r.status == 200:
                    with self.lock: self.acked[key] = body
            except Exception:
                conn = None
                time.sleep(0.02)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--spool", default=os.path.join(ROOT, ".build/debug/spool"))
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="spool-crashloop-")
    d, log = os.path.join(work, "s"), os.path.join(work, "handled.log")
    c = Cluster(args.spool, d, log)
    c.start_server()
    for i in range(3): c.start_consumer(i)
    load = Load(c)
    for t in load.threads: t.start()
    kills = collections.Counter()
    try:
        for r in range(args.rounds):
            time.sleep(random.uniform(0.1, 0.6))
            c.kill(c.server); kills["server"] += 1
            victims = [i for i in range(3) if random.random() < 0.5]
            for i in victims: c.kill(c.consumers[i]); kills["consumer"] += 1
            c.start_server()
            for i in victims: c.start_consumer(i)
        load.stop.set()
        for t in load.threads: t.join()
        # Drain: everything acknowledged must reach done/.
        deadline = time.time() + 120
        while time.time() < deadline:
            if all(os.path.exists(os.path.join(d, "done", k)) for k in load.acked): break
            time.sleep(0.2)
        for p in c.consumers: p.send_signal(signal.SIGTERM); p.wait(60)
        c.server.send_signal(signal.SIGTERM); c.server.wait(20)
        rec = subprocess.run([args.spool, "--dir", d, "recover", "--tmp-grace", "0s"], capture_output=True, text=True)
        lost = [k for k, b in load.acked.items() if not os.path.exists(os.path.join(d, "done", k))]
        damaged = [k for k, b in load.acked.items() if k not in lost and payload_or_damage(os.path.join(d, "done", k)) != b]
        runs = collections.defaultdict(list)
        partial = []
        for line in open(log):
            key, attempt, digest = line.split()
            runs[key].append(int(attempt))
            if digest != hashlib.md5(body_for(key)).hexdigest(): partial.append(key)
        never_handled = [k for k in load.acked if k not in runs]
        repeats = sum(len(v) - 1 for v in runs.values())
        tmp_left = os.listdir(os.path.join(d, "tmp"))
        result = {"rounds": args.rounds, "kills": dict(kills), "acknowledged": len(load.acked), "handled_keys": len(runs),
                  "lost": len(lost), "damaged": len(damaged), "partial_seen_by_handler": len(partial),
                  "never_handled": len(never_handled), "repeated_handler_runs": repeats,
                  "repeats_per_round": round(repeats / max(1, args.rounds), 2), "tmp_after_recover": len(tmp_left),
                  "recover_status": rec.returncode}
        print(json.dumps(result))
        bad = lost or damaged or partial or never_handled or tmp_left
        print(f"crashloop: {args.rounds} rounds, {len(load.acked)} acknowledged, {len(lost)} lost, {len(damaged)} damaged, "
              f"{len(partial)} partial, {repeats} repeated handler runs")
        sys.exit(1 if bad else 0)
    finally:
        for p in c.consumers + [c.server]:
            if p and p.poll() is None: p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
