#!/usr/bin/env python3
"""`spool migrate` from format 1, killed at random points and run again.

Writes a format 1 spool exactly as docs/spool-format.md (format 1) described it, independently of spool's code:
items in every state (new, a waiting retry, claimed by a dead consumer, done, failed), metadata in the
`user.spool.meta` extended attribute or spilled into meta/<name>, attempts, errors, statuses, sources, headers,
an interrupted enqueue in tmp/ whose marker was linked, a stale tmp/ write, an orphan marker. Then:
- every other command refuses the format 1 spool (exit 1, "run 'spool migrate'");
- `spool migrate --dry-run` changes nothing;
- `spool migrate` is SIGKILLed at a random moment --kills times, then run to the end;
- every item is compared with what the fixture put in: state (claimed -> new), payload byte for byte, attempts,
  last error and status, source, content type; nothing lost, nothing duplicated, tmp/ empty, `format` says 2,
  a second migrate does nothing, and the migrated spool works (a consumer drains it).

    Reliability/migrate.py [--items 400] [--kills 50] [--spool .build/debug/spool]
"""
import argparse, json, os, random, shutil, signal, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STATES = ["new", "claimed", "done", "failed"]


def v1_meta(key, received_ns, size, attempts=0, headers=None, **extra):
    m = {"v": 1, "key": key, "received_at": "2026-01-01T00:00:00Z", "received_at_ns": received_ns, "size": size,
         "attempts": attempts, "headers": headers or {}}
    m.update(extra)
    return json.dumps(m).encode()


def write_item(d, state, name, payload, meta, spill=False, mtime_ns=None):
    """One format 1 item: the payload file, its metadata attribute (or a stub and meta/<name>), its marker."""
    path = os.path.join(d, state, name)
    with open(path, "wb") as f:
        f.write(payload)
    os.chmod(path, 0o600)
    if spill:
        os.setxattr(path, "user.spool.meta", b'{"v":1,"spilled":true}')
        with open(os.path.join(d, "meta", name), "wb") as f:
            f.write(meta)
    else:
        os.setxattr(path, "user.spool.meta", meta)
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))
    os.link(path, os.path.join(d, "keys", name))


def make_fixture(d, n):
    """Returns {key: expected} for every item that must exist after the migration."""
    os.mkdir(d, 0o700)
    for sub in ["tmp", "keys", "meta"] + STATES:
        os.mkdir(os.path.join(d, sub), 0o700)
    now = time.time_ns()
    expected = {}
    rnd = random.Random(7)
    for i in range(n):
        key = f"item{i:05d}"
        state = STATES[i % 4]
        payload = json.dumps({"movie": {"project": key}, "pad": "x" * rnd.randint(0, 2000)}).encode() + bytes([i % 256, 0, 255])
        attempts = {"new": 0, "claimed": 1, "done": 1, "failed": 5}[state]
        extra = {}
        if state == "failed":
            extra = {"last_error": f"handler failed for {key}\n" + "e" * (i % 300), "last_status": "exit 1",
                     "finished_at_ns": now - 1_000_000_000}
        if i % 10 == 0:
            extra["source"] = "reconcile"
        mtime = None
        if state == "new" and i % 8 == 4:
            # A waiting retry: the not-before time is the payload's mtime, in the future.
            attempts, extra["last_error"], extra["last_status"] = 2, "try later", "http 503"
            extra["next_attempt_at_ns"] = now + 3600 * 10**9
            mtime = now + 3600 * 10**9
        meta = v1_meta(key, now - (n - i) * 1000, len(payload), attempts,
                       {"content-type": "application/json", "user-agent": f"fixture/{i}"}, **extra)
        write_item(d, state, key, payload, meta, spill=(i % 7 == 3), mtime_ns=mtime)
        expected[key] = {"state": "new" if state == "claimed" else state, "payload": payload,
                         "attempts": attempts if state != "done" else max(attempts, 1),
                         "last_error": extra.get("last_error"), "last_status": extra.get("last_status"),
                         "source": extra.get("source"), "content_type": "application/json",
                         "waiting": mtime is not None}
        if state == "claimed":
            expected[key]["last_status"] = "abandoned"
    # An enqueue interrupted after its marker was linked (format 1 step 3): finished into new/.
    body = b'{"movie":{"project":"interrupted"}}'
    tmpw = os.path.join(d, "tmp", "interrupted.999999-1-1-1.w")
    with open(tmpw, "wb") as f:
        f.write(body)
    with open(os.path.join(d, "tmp", "interrupted.999999-1-1-1.m"), "wb") as f:
        f.write(v1_meta("interrupted", now, len(body), 0, {"content-type": "application/json"}))
    os.setxattr(tmpw, "user.spool.meta", b'{"v":1,"spilled":true}')
    os.link(tmpw, os.path.join(d, "keys", "interrupted"))
    expected["interrupted"] = {"state": "new", "payload": body, "attempts": 0, "last_error": None, "last_status": None,
                               "source": None, "content_type": "application/json", "waiting": False}
    # A write that died before its marker, and an orphan marker (its item deleted by hand): both go.
    with open(os.path.join(d, "tmp", "stale.999999-1-1-2.w"), "wb") as f:
        f.write(b"half")
    with open(os.path.join(d, "keys", "orphan"), "wb") as f:
        f.write(b"x")
    return expected


def run(spool, d, *args, timeout=120):
    return subprocess.run([spool, "--dir", d, *args], capture_output=True, text=True, timeout=timeout)


def compare(spool, d, expected):
    bad = []
    ls = run(spool, d, "ls", "--json")
    if ls.returncode != 0:
        return [f"ls failed: {ls.stderr.strip()}"]
    items = [json.loads(line) for line in ls.stdout.splitlines()]
    seen = {}
    for it in items:
        if it["key"] in seen:
            bad.append(f"{it['key']} listed twice ({seen[it['key']]} and {it['state']})")
        seen[it["key"]] = it["state"]
    for key in sorted(set(seen) - set(expected)):
        bad.append(f"unexpected item {key}")
    by_key = {it["key"]: it for it in items}
    for key, e in expected.items():
        it = by_key.get(key)
        if it is None:
            bad.append(f"{key} lost")
            continue
        if it["state"] != e["state"]:
            bad.append(f"{key} in {it['state']}, expected {e['state']}")
        if it["attempts"] != e["attempts"]:
            bad.append(f"{key} attempts {it['attempts']}, expected {e['attempts']}")
        if it.get("last_status") != e["last_status"]:
            bad.append(f"{key} last_status {it.get('last_status')!r}, expected {e['last_status']!r}")
        if e["last_error"] is not None and it.get("last_error") != e["last_error"]:
            bad.append(f"{key} last_error changed")
        if it.get("source") != e["source"] or it.get("content_type") != e["content_type"]:
            bad.append(f"{key} source/content type {it.get('source')}/{it.get('content_type')}")
        if e["waiting"] != ("next_attempt_at" in it):
            bad.append(f"{key} waiting {('next_attempt_at' in it)}, expected {e['waiting']}")
    # Payloads byte for byte, for a sample (every item would take a process each).
    for key in list(expected)[::17] + ["interrupted"]:
        body = subprocess.run([spool, "--dir", d, "show", "--body", key], capture_output=True).stdout
        if body != expected[key]["payload"]:
            bad.append(f"{key} payload differs ({len(body)} bytes against {len(expected[key]['payload'])})")
    return bad


def one_round(spool, work, n, items, kills, span, rnd, check_refusals):
    """A fresh format 1 fixture, `kills` runs of migrate SIGKILLed at random moments within `span` seconds, then a
    run to the end and the comparison. Returns (failures, runs killed mid-migration, seconds of an unkilled run)."""
    failures = []
    d = os.path.join(work, f"s{n}")
    expected = make_fixture(d, items)
    if check_refusals:
        # Every other command refuses a format 1 spool, and says what to do.
        for cmd in (["ls"], ["stats"], ["recover"], ["consume", "--exec", "true", "--drain"]):
            r = run(spool, d, *cmd)
            if r.returncode != 1 or "run 'spool migrate" not in r.stderr:
                failures.append(f"`spool {' '.join(cmd)}` on format 1: exit {r.returncode}, {r.stderr.strip()[:200]}")
        snapshot = sorted(os.path.join(p, f) for p, _, fs in os.walk(d) for f in fs)
        r = run(spool, d, "migrate", "--dry-run")
        after = sorted(os.path.join(p, f) for p, _, fs in os.walk(d) for f in fs)
        if r.returncode != 0 or snapshot != after or f"would convert {items + 1} item(s)" not in r.stdout:
            failures.append(f"dry run: exit {r.returncode}, changed {snapshot != after}: {r.stdout[-300:]}")
    killed_mid = 0
    for _ in range(kills):
        p = subprocess.Popen([spool, "--dir", d, "migrate"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(rnd.uniform(0, span))
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
            killed_mid += 1
        p.wait()
    t0 = time.monotonic()
    r = run(spool, d, "migrate", "--json")
    seconds = time.monotonic() - t0
    if r.returncode != 0:
        failures.append(f"final migrate: exit {r.returncode}: {r.stderr.strip()}")
    if open(os.path.join(d, "format")).read() != "2\n":
        failures.append("format is not 2")
    if not os.path.isfile(os.path.join(d, "meta")):
        failures.append("meta is not the guard file")
    rec = run(spool, d, "recover", "--tmp-grace", "0s")
    if rec.returncode != 0:
        failures.append(f"recover after migrate: {rec.stdout.strip()} {rec.stderr.strip()}")
    if os.listdir(os.path.join(d, "tmp")):
        failures.append(f"tmp/ not empty: {os.listdir(os.path.join(d, 'tmp'))[:5]}")
    failures += compare(spool, d, expected)
    again = run(spool, d, "migrate")
    if again.returncode != 0 or "nothing to do" not in again.stdout:
        failures.append(f"second migrate: {again.stdout.strip()} {again.stderr.strip()}")
    # The migrated spool works: a consumer drains everything waiting and due.
    c = run(spool, d, "consume", "--exec", "cat > /dev/null", "--drain")
    if c.returncode != 0:
        failures.append(f"consume after migrate: {c.stderr.strip()[-300:]}")
    due_new = sum(1 for e in expected.values() if e["state"] == "new" and not e["waiting"])
    done = len(os.listdir(os.path.join(d, "done")))
    want_done = sum(1 for e in expected.values() if e["state"] == "done") + due_new
    if done != want_done:
        failures.append(f"after draining: {done} done, expected {want_done}")
    shutil.rmtree(d, ignore_errors=True)
    return [f"round {n}: {f}" for f in failures], killed_mid, seconds


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=200)
    ap.add_argument("--kills", type=int, default=50, help="rounds, each with a fresh fixture and 1 to 3 kills")
    ap.add_argument("--spool", default=os.path.join(ROOT, ".build/debug/spool"))
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="spool-migrate-")
    failures = []
    rnd = random.Random(int(os.environ.get("SPOOL_MIGRATE_SEED", "11")))
    killed_mid = 0
    try:
        # Round 0 is not killed: it checks the refusals and the dry run, and measures how long a migration takes.
        f, _, full = one_round(args.spool, work, 0, args.items, 0, 0, rnd, True)
        failures += f
        for n in range(1, args.kills + 1):
            f, k, _ = one_round(args.spool, work, n, args.items, rnd.choice([1, 1, 2, 3]), full * 1.1, rnd, False)
            failures += f
            killed_mid += k
        for f in failures:
            print("FAIL", f)
        print(f"migrate: {args.kills} rounds of {args.items + 1} items, a migration takes {full * 1000:.0f} ms, "
              f"{killed_mid} runs killed mid-migration, "
              f"{'FAILED' if failures else 'every item intact, none lost or duplicated'}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
