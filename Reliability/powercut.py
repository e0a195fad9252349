#!/usr/bin/env python3
"""Power-cut test: spool serve on a loop-mounted ext4, cut at a random moment with the ext4 shutdown ioctl.

Each round: a fresh ext4 image (mkfs.ext4 -m 0, journaled), `spool serve` on it, 8 clients posting unique
webhooks (and re-sending some acknowledged ones), then `xfs_io -x -c shutdown` at a random moment. That drops
everything not yet committed, as a power cut does. The server is killed, the image unmounted and mounted
again (journal replay), `spool recover` runs, and then every webhook that got a 200 must be in the spool with
exactly its bytes; every item present must be one that was sent, intact. Needs root (mount) and xfsprogs.

    Reliability/powercut.py [--rounds 20] [--spool .build/debug/spool] [--control]

--control runs the server with Reliability/nofsync.c preloaded (fsync does nothing) and expects losses:
it shows the test can tell a durable spool from one that only says it is.
Exit status: 0 nothing lost (with --control: losses found), 1 otherwise, 77 skipped (mounting not permitted).
"""
import argparse, http.client, json, os, random, shutil, signal, socket, subprocess, sys, tempfile, threading, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import loop_mount_permitted, payload_or_damage, start_serve  # noqa: E402


def run(*cmd, check=True):
    return subprocess.run(cmd, check=check, capture_output=True, text=True)


def body_for(key):
    pad = "z" * (hash(key) % 1500)
    return json.dumps({"movie": {"project": key, "status": "done", "pad": pad}}).encode()


class Load:
    def __init__(self, port, round_no):
        self.port, self.round_no = port, round_no
        self.lock = threading.Lock()
        self.sent, self.acked = {}, {}
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.client, args=(i,)) for i in range(8)]

    def client(self, cid):
        conn = None
        i = 0
        while not self.stop.is_set():
            with self.lock:
                acked = list(self.acked)
            if acked and random.random() < 0.1:
                key = random.choice(acked)
            else:
                key = f"r{self.round_no}c{cid}i{i}"
                i += 1
            body = body_for(key)
            with self.lock:
                self.sent[key] = body
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("POST", "/json2video/done", body, {"Content-Type": "application/json"})
                r = conn.getresponse()
                r.read()
                if r.status == 200:
                    with self.lock:
                        self.acked[key] = body
                elif r.status != 503:
                    print(f"unexpected status {r.status} for {key}", file=sys.stderr)
            except (OSError, http.client.HTTPException):
                conn = None
                time.sleep(0.01)

    def start(self):
        for t in self.threads: t.start()

    def finish(self):
        self.stop.set()
        for t in self.threads: t.join()


def one_round(n, args, work):
    img, mnt = os.path.join(work, "fs.img"), os.path.join(work, "mnt")
    os.makedirs(mnt, exist_ok=True)
    run("truncate", "-s", "256M", img)
    run("mkfs.ext4", "-q", "-F", "-m", "0", img)
    run("mount", "-o", "loop", img, mnt)
    spool_dir = os.path.join(mnt, "spool")
    env = dict(os.environ, LD_PRELOAD=args.preload) if args.preload else None
    srv, port = start_serve(args.spool, spool_dir, env=env)
    load = Load(port, n)
    load.start()
    time.sleep(random.uniform(0.3, 1.5))
    run("xfs_io", "-x", "-c", "shutdown", mnt)          # the power cut: uncommitted changes are gone
    time.sleep(0.2)
    srv.send_signal(signal.SIGKILL); srv.wait()
    load.finish()
    run("umount", mnt)
    run("mount", "-o", "loop", img, mnt)                # journal replay
    rec = run(args.spool, "--dir", spool_dir, "recover", "--tmp-grace", "0s", check=False)
    lost, damaged, foreign = [], [], []
    for key, body in load.acked.items():
        try:
            got = payload_or_damage(os.path.join(spool_dir, "new", key))
            if got is None: lost.append(key)
            elif got != body: damaged.append(key)
        except FileNotFoundError:
            lost.append(key)
    # Without fsync (the control run) the cut can lose the spool's own directories; recover then refuses the
    # directory (it is no longer a spool) and everything in it counts as lost.
    listing = lambda d: os.listdir(d) if os.path.isdir(d) else []
    present = listing(os.path.join(spool_dir, "new"))
    for name in present:
        if load.sent.get(name) != payload_or_damage(os.path.join(spool_dir, "new", name)): foreign.append(name)
    leftovers = listing(os.path.join(spool_dir, "tmp"))
    run("umount", mnt)
    os.remove(img)
    return {"round": n, "acked": len(load.acked), "sent": len(load.sent), "present": len(present),
            "lost": len(lost), "damaged": len(damaged), "partial_or_foreign": len(foreign),
            "tmp_after_recover": len(leftovers), "recover_status": rec.returncode,
            "examples": (lost + damaged + foreign)[:5]}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--spool", default=os.path.join(ROOT, ".build/debug/spool"))
    ap.add_argument("--control", action="store_true", help="preload a no-op fsync and expect losses")
    args = ap.parse_args()
    args.preload = None
    for tool in ("mkfs.ext4", "xfs_io", "mount"):
        if not shutil.which(tool):
            print(f"SKIPPED powercut: {tool} not found (apt-get install e2fsprogs xfsprogs)"); sys.exit(77)
    work = tempfile.mkdtemp(prefix="spool-powercut-")
    if not loop_mount_permitted(work):
        print("SKIPPED powercut: mounting a loop device is not permitted here"); shutil.rmtree(work); sys.exit(77)
    if args.control:
        args.preload = os.path.join(work, "nofsync.so")
        run("gcc", "-shared", "-fPIC", "-O2", "-o", args.preload, os.path.join(ROOT, "Reliability/nofsync.c"))
    failed = False
    totals = {"acked": 0, "lost": 0, "damaged": 0, "partial_or_foreign": 0}
    try:
        for n in range(args.rounds):
            if args.preload: os.environ.pop("LD_PRELOAD", None)
            r = one_round(n, args, work)
            print(json.dumps(r), flush=True)
            for k in totals: totals[k] += r[k]
            if r["lost"] or r["damaged"] or r["partial_or_foreign"] or r["tmp_after_recover"]: failed = True
    finally:
        run("umount", os.path.join(work, "mnt"), check=False)
        shutil.rmtree(work, ignore_errors=True)
    print(f"powercut{' (control: fsync disabled)' if args.control else ''}: {args.rounds} rounds, {totals['acked']} acknowledged, "
          f"{totals['lost']} lost, {totals['damaged']} damaged, {totals['partial_or_foreign']} partial or foreign")
    if args.control:
        print("control: the test detected the missing flushes" if failed else "control FAILED: no loss detected without fsync")
        sys.exit(0 if failed else 1)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
