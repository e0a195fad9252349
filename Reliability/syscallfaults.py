#!/usr/bin/env python3
"""System call faults in the real binaries, through an LD_PRELOAD shim (Reliability/faultshim.c).

For each of write (error and short write), fsync, link, rename and open (O_CREAT or O_TMPFILE), and each position N:
- ingress: `spool serve` with the Nth such call failing (EIO/ENOSPC); N+4 webhooks posted one after another.
  Every answer is 200 or 503; every 200 is durable and intact; nothing partial is visible; the server keeps
  serving after the fault; after a clean restart (recover), re-posting every key gives 200 and all are intact.
- consumer: `spool consume` with the Nth call failing while it moves the items; then a clean consumer run. Every
  item ends in done/ exactly once, intact, and none is lost.
- migration: `spool migrate` of a format 1 fixture (Reliability/migrate.py) with the Nth call failing (it exits 1
  or finishes); then a clean `spool migrate`: every item intact, in its state, with its attempts and errors.

    Reliability/syscallfaults.py [--positions 6] [--spool .build/debug/spool]
"""
import argparse, http.client, json, os, shutil, signal, subprocess, sys, tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import loop_mount_permitted, payload_or_damage, start_serve  # noqa: E402
CALLS = [("write", {}), ("write", {"FAULT_SHORT": "1"}), ("fsync", {}), ("link", {}), ("rename", {}), ("open", {"FAULT_ERRNO": "28"})]


def body(key): return json.dumps({"project": key, "pad": "q" * 300}).encode()


def post(port, key):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.request("POST", "/json2video/done", body(key), {"Content-Type": "application/json"})
        r = c.getresponse(); r.read(); c.close()
        return r.status
    except Exception:
        return 0


def serve(spool, d, env=None):
    return start_serve(spool, d, env=env)


def states(d):
    out = {}
    for st in ("new", "claimed", "done", "failed"):
        for n in os.listdir(os.path.join(d, st)): out.setdefault(n, []).append(st)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--positions", type=int, default=6)
    ap.add_argument("--spool", default=os.path.join(ROOT, ".build/debug/spool"))
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="spool-faults-")
    shim = os.path.join(work, "faultshim.so")
    subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-o", shim, os.path.join(ROOT, "Reliability/faultshim.c"), "-ldl"], check=True)
    failures, cases, injected, migrate_faulted = [], 0, 0, 0
    try:
        for call, extra in CALLS:
            label = call + (" (short)" if extra.get("FAULT_SHORT") else "")
            for nth in range(1, args.positions + 1):
                cases += 1
                d = os.path.join(work, f"{call}{nth}{len(extra)}")
                env = dict(os.environ, LD_PRELOAD=shim, FAULT_CALL=call, FAULT_NTH=str(nth), FAULT_ROOT=d, **extra)
                # The spool exists before the faults start (creating it writes its format file: a fault there only
                # stops `serve` from starting, with an error), so that they hit the requests.
                subprocess.run([args.spool, "--dir", d, "init"], check=True, capture_output=True)
                # Ingress.
                srv, port = serve(args.spool, d, env)
                keys = [f"k{i}" for i in range(args.positions + 4)]
                statuses = [post(port, k) for k in keys]
                if 503 in statuses: injected += 1
                srv.send_signal(signal.SIGTERM); srv.wait(20)
                bad = []
                if any(s not in (200, 503) for s in statuses): bad.append(f"statuses {statuses}")
                # The fault is one call: the request it hits gets 503, every later one must succeed.
                if 503 in statuses and 503 in statuses[statuses.index(503) + 1:] or statuses[-1] != 200:
                    bad.append(f"not serving after the fault: {statuses}")
                for k, s in zip(keys, statuses):
                    f = os.path.join(d, "new", k)
                    if s == 200 and payload_or_damage(f) != body(k): bad.append(f"{k} acknowledged but not intact")
                for n in os.listdir(os.path.join(d, "new")):
                    if payload_or_damage(os.path.join(d, "new", n)) != body(n): bad.append(f"partial item {n} visible")
                srv, port = serve(args.spool, d)
                again = [post(port, k) for k in keys]
                srv.send_signal(signal.SIGTERM); srv.wait(20)
                if again != [200] * len(keys): bad.append(f"after a clean restart: {again}")
                for k in keys:
                    f = os.path.join(d, "new", k)
                    if payload_or_damage(f) != body(k): bad.append(f"{k} missing after restart")
                # Consumer moves.
                handler = "cat > /dev/null"
                subprocess.run([args.spool, "--dir", d, "consume", "--exec", handler, "--drain", "--backoff", "10ms"], env=env,
                               capture_output=True, timeout=60)
                for _ in range(3):
                    subprocess.run([args.spool, "--dir", d, "recover", "--tmp-grace", "0s"], capture_output=True)
                    subprocess.run([args.spool, "--dir", d, "consume", "--exec", handler, "--drain", "--backoff", "10ms"], capture_output=True, timeout=60)
                where = states(d)
                for k in keys:
                    if where.get(k) != ["done"]: bad.append(f"{k} ends in {where.get(k)} after the consumer fault")
                    elif payload_or_damage(os.path.join(d, "done", k)) != body(k): bad.append(f"{k} damaged in done/")
                if bad:
                    failures.append(f"{label} #{nth}: " + "; ".join(bad))
                    print(f"FAIL {label} #{nth}: " + "; ".join(bad), flush=True)
        # Migration from format 1 under the same faults.
        import migrate as mig
        for call, extra in CALLS:
            label = "migrate " + call + (" (short)" if extra.get("FAULT_SHORT") else "")
            for nth in range(1, args.positions + 1):
                cases += 1
                d = os.path.join(work, f"m{call}{nth}{len(extra)}")
                expected = mig.make_fixture(d, 24)
                env = dict(os.environ, LD_PRELOAD=shim, FAULT_CALL=call, FAULT_NTH=str(nth), FAULT_ROOT=d, **extra)
                faulted = subprocess.run([args.spool, "--dir", d, "migrate"], env=env, capture_output=True, text=True, timeout=60)
                if faulted.returncode != 0: migrate_faulted += 1
                bad = []
                if faulted.returncode not in (0, 1): bad.append(f"exit {faulted.returncode}: {faulted.stderr.strip()[-200:]}")
                clean = subprocess.run([args.spool, "--dir", d, "migrate"], capture_output=True, text=True, timeout=60)
                if clean.returncode != 0: bad.append(f"clean migrate: {clean.stderr.strip()[-200:]}")
                bad += mig.compare(args.spool, d, expected)
                if bad:
                    failures.append(f"{label} #{nth}: " + "; ".join(bad))
                    print(f"FAIL {label} #{nth}: " + "; ".join(bad[:5]), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"syscallfaults: {cases} cases ({injected} produced a 503 at the ingress, {migrate_faulted} failed a migration), "
          f"{len(failures)} failure(s)")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
