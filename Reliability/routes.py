#!/usr/bin/env python3
"""Routes and fan-out under load with a crash (issue 24's first test): one `spool serve --config` with three routes
(JSON2Video with a token, Stripe with `verify = "stripe"`, GitHub with `verify = "github"`) feeding four queues with
`match` filters. 1,000 webhooks, 10% of them sent twice, go out from 16 threads; `serve` is SIGKILLed once mid-run
and restarted on the same port; senders retry until they get a 2xx, as real senders do. Then, with a Python
evaluation of the same filters written independently of spool's: every webhook is in exactly the queues its filters
select, once each, with its exact bytes, and in no other queue; the ones no queue of their route takes are in
`unrouted`; signatures are Stripe's and GitHub's documented schemes, computed here with hmac. Exit 0 when it holds.

    Reliability/routes.py [--spool .build/debug/spool] [--webhooks 1000]
"""
import argparse, hashlib, hmac, http.client, json, os, random, signal, subprocess, sys, tempfile, threading, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import check, failures, payload_or_damage  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOKEN, STRIPE, GITHUB = "j2v-t0ken", "whsec_routes_test_secret", "It's a Secret to Everybody"

CONFIG = """
[[route]]
path = "/json2video"
token_file = "{d}/token"
queues = ["video", "billing", "alerts"]

[[route]]
path = "/stripe"
key = ["id"]
verify = "stripe"
secret_file = "{d}/stripe"
queues = ["billing"]

[[route]]
path = "/github"
verify = "github"
secret_file = "{d}/github"
queues = ["ci"]

[queue.video]
match = ["movie.status=done"]
[queue.billing]
match = ["billable=true"]
[queue.alerts]
match = ["movie.status=error|timeout", "!movie.retry"]
[queue.ci]
match = ["header:x-github-event=push|workflow_run"]
"""


def expected_queues(route, body, headers):
    """The filters above, evaluated independently: which queues of its route take this webhook."""
    j = json.loads(body)
    movie = j.get("movie", {}) if isinstance(j.get("movie"), dict) else {}
    taken = []
    if route == "json2video":
        if movie.get("status") == "done": taken.append("video")
        if j.get("billable") is True: taken.append("billing")
        if movie.get("status") in ("error", "timeout") and "retry" not in movie: taken.append("alerts")
    elif route == "stripe":
        if j.get("billable") is True: taken.append("billing")
    else:
        if headers.get("X-GitHub-Event") in ("push", "workflow_run"): taken.append("ci")
    return taken or ["unrouted"]


def make_webhook(i, rnd):
    """(route, key, body, headers) of webhook i."""
    kind = ["json2video", "json2video", "stripe", "github"][i % 4]
    if kind == "json2video":
        movie = {"project": f"p{i}", "status": rnd.choice(["done", "done", "error", "timeout", "queued"])}
        if rnd.random() < 0.3: movie["retry"] = True
        body = {"movie": movie, "billable": rnd.random() < 0.5}
        return kind, f"p{i}", json.dumps(body).encode(), {"Content-Type": "application/json"}
    if kind == "stripe":
        body = {"id": f"evt_{i}", "type": "invoice.paid", "billable": rnd.random() < 0.7}
        return kind, f"evt_{i}", json.dumps(body).encode(), {"Content-Type": "application/json"}
    event = rnd.choice(["push", "workflow_run", "issues", "ping"])
    body = json.dumps({"ref": "refs/heads/main", "n": i}).encode()
    return kind, f"gh-{i}", body, {"Content-Type": "application/json", "X-GitHub-Event": event, "X-GitHub-Delivery": f"gh-{i}"}


def sign(kind, body, headers):
    h = dict(headers)
    if kind == "stripe":
        t = str(int(time.time()))
        mac = hmac.new(STRIPE.encode(), t.encode() + b"." + body, hashlib.sha256).hexdigest()
        h["Stripe-Signature"] = f"t={t},v1={mac}"
    elif kind == "github":
        h["X-Hub-Signature-256"] = "sha256=" + hmac.new(GITHUB.encode(), body, hashlib.sha256).hexdigest()
    return h


class Server:
    def __init__(self, spool, d, config):
        self.spool, self.d, self.config, self.port, self.proc = spool, d, config, 0, None
        self.start()

    def start(self):
        while True:
            p = subprocess.Popen([self.spool, "--dir", self.d, "serve", "--config", self.config, "--listen", f"127.0.0.1:{self.port}"],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            line = p.stdout.readline()
            if "127.0.0.1:" in line:
                self.proc, self.port = p, int(line.split("127.0.0.1:")[1].split()[0]); return
            p.wait(); time.sleep(0.1)  # the port is still held by the killed one

    def kill_and_restart(self):
        self.proc.send_signal(signal.SIGKILL); self.proc.wait()
        self.start()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--spool", default=os.path.join(ROOT, ".build/debug/spool"))
    ap.add_argument("--webhooks", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=16)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="routes-")
    for name, secret in (("token", TOKEN), ("stripe", STRIPE), ("github", GITHUB)):
        with open(os.path.join(work, name), "w") as f: f.write(secret + "\n")
        os.chmod(os.path.join(work, name), 0o600)
    config = os.path.join(work, "spool.toml")
    with open(config, "w") as f: f.write(CONFIG.format(d=work))
    d = os.path.join(work, "s")
    rnd = random.Random(24)
    hooks = [make_webhook(i, rnd) for i in range(a.webhooks)]
    # 10% are sent a second time (a redelivery: same route, key and body), shuffled in among the others.
    sends = list(range(a.webhooks)) + rnd.sample(range(a.webhooks), a.webhooks // 10)
    rnd.shuffle(sends)
    server = Server(a.spool, d, config)
    lock, acked, statuses, next_send = threading.Lock(), {}, {}, [0]
    retries = [0]

    def sender():
        while True:
            with lock:
                if next_send[0] >= len(sends): return
                i = sends[next_send[0]]; next_send[0] += 1
            kind, key, body, headers = hooks[i]
            path = "/" + kind + ("?token=" + TOKEN if kind == "json2video" else "")
            for attempt in range(200):
                try:
                    c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
                    c.request("POST", path, body, sign(kind, body, headers))
                    r = c.getresponse(); text = r.read(); c.close()
                    if 200 <= r.status < 300:
                        with lock:
                            acked[i] = acked.get(i, 0) + 1
                            statuses.setdefault(json.loads(text)["status"], []).append(key)
                        break
                    if r.status < 500: raise RuntimeError(f"{kind} {key}: HTTP {r.status} {text[:200]!r}")
                except (OSError, http.client.HTTPException):
                    with lock: retries[0] += 1
                time.sleep(0.05)
            else:
                raise RuntimeError(f"{kind} {key}: never acknowledged")

    errors = []

    def run():
        try: sender()
        except Exception as e: errors.append(str(e))

    threads = [threading.Thread(target=run) for _ in range(a.threads)]
    t0 = time.monotonic()
    for t in threads: t.start()
    # The crash: once about 40% are acknowledged, SIGKILL serve mid-stream and restart it.
    while sum(acked.values()) < len(sends) * 0.4 and any(t.is_alive() for t in threads): time.sleep(0.01)
    server.kill_and_restart()
    for t in threads: t.join()
    elapsed = time.monotonic() - t0
    server.proc.send_signal(signal.SIGTERM); server.proc.wait()
    check(not errors, f"every webhook acknowledged ({errors[:3]})")
    check(retries[0] > 0, f"the kill cut off requests in flight ({retries[0]} sent again)")
    rec = subprocess.run([a.spool, "--dir", d, "recover"], capture_output=True, text=True)
    check(rec.returncode == 0, f"recover after the kill: {rec.stdout.strip()[:200]}")

    expected = {}
    for i, (kind, key, body, headers) in enumerate(hooks):
        for q in expected_queues(kind, body, headers): expected.setdefault(q, {})[key] = body
    queues = ["video", "billing", "alerts", "ci", "unrouted", "default"]
    wrong = []
    for q in queues:
        qd = d if q == "default" else os.path.join(d, "queues", q)
        stored = {}
        for state in ("new", "claimed", "done", "failed"):
            sd = os.path.join(qd, state)
            for n in (os.listdir(sd) if os.path.isdir(sd) else []):
                if n in stored: wrong.append(f"{q}: {n} twice")
                stored[n] = payload_or_damage(os.path.join(sd, n))
        want = expected.get(q, {})
        missing = sorted(set(want) - set(stored)); extra = sorted(set(stored) - set(want))
        damaged = sorted(k for k in set(want) & set(stored) if stored[k] != want[k])
        check(not missing and not extra and not damaged,
              f"queue {q}: {len(stored)} items, exactly the {len(want)} its filters select "
              f"(missing {missing[:3]}, extra {extra[:3]}, bytes differ {damaged[:3]})")
    check(not wrong, f"no key twice in a queue ({wrong[:3]})")
    dups = len(statuses.get("duplicate", []))
    check(dups >= a.webhooks // 10, f"{dups} redeliveries answered duplicate (at least the {a.webhooks // 10} sent twice)")
    per_queue = {q: len(expected.get(q, {})) for q in queues}
    print(f"routes: {a.webhooks} webhooks (+{a.webhooks // 10} redelivered) over 3 routes in {elapsed:.1f} s, serve SIGKILLed "
          f"once ({retries[0]} requests cut off and sent again); queues {per_queue}; {len(failures)} failure(s)")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
