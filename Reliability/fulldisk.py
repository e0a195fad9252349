#!/usr/bin/env python3
"""Full-disk test: spool serve and a consumer on a small loop-mounted ext4 that runs out of blocks, then of inodes.

While the file system is full: every webhook is answered 503 with Retry-After (never 2xx), /healthz is 503,
nothing partial is visible and tmp/ does not fill with leftovers, and a consumer still moves the items that
were accepted before. Once space is freed, the same server accepts again. Needs root (mount).

    Reliability/fulldisk.py [--spool .build/debug/spool]

Exit status: 0 as described, 1 otherwise, 77 skipped (mounting not permitted).
"""
import argparse, http.client, json, os, shutil, signal, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import check, failures, loop_mount_permitted, start_serve  # noqa: E402


def run(*cmd, check_rc=True):
    return subprocess.run(cmd, check=check_rc, capture_output=True, text=True)


def post(port, key, size=512):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    body = json.dumps({"project": key, "pad": "x" * size}).encode()
    c.request("POST", "/json2video/done", body, {"Content-Type": "application/json"})
    r = c.getresponse(); r.read()
    return r.status, r.getheader("Retry-After")


def get(port, path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", path); r = c.getresponse(); r.read()
    return r.status


def fill_blocks(mnt):
    """Writes filler files, big chunks then 4 KiB ones, until the file system refuses every block."""
    for i, chunk in enumerate([1 << 20, 1 << 16, 4096, 4096]):
        fd = os.open(os.path.join(mnt, f"filler{i}"), os.O_CREAT | os.O_WRONLY, 0o600)
        try:
            while True:
                os.write(fd, b"\0" * chunk)
        except OSError:
            pass
        finally:
            try: os.fsync(fd)
            except OSError: pass
            os.close(fd)
    # Blocks the big files could not take (freed by delayed allocation, or too few for a write): small files take
    # them one each, so that not even one more 4 KiB item file fits (a format 2 item needs a single block).
    for i in range(4096):
        try:
            with open(os.path.join(mnt, f"small{i}"), "wb") as f:
                f.write(b"x"); f.flush(); os.fsync(f.fileno())
        except OSError:
            break
    print(f"   free bytes after filling: {shutil.disk_usage(mnt).free}", flush=True)


def fill_inodes(mnt):
    d = os.path.join(mnt, "inodes"); os.makedirs(d, exist_ok=True)
    i = 0
    while True:
        try:
            open(os.path.join(d, str(i)), "w").close(); i += 1
        except OSError:
            return i


def scenario(args, work, name, mkfs_extra, filler, freer):
    print(f"-- {name}", flush=True)
    img, mnt = os.path.join(work, name + ".img"), os.path.join(work, name)
    os.makedirs(mnt)
    run("truncate", "-s", "64M", img)
    run("mkfs.ext4", "-q", "-F", "-m", "0", *mkfs_extra, img)
    run("mount", "-o", "loop", img, mnt)
    try:
        spool_dir = os.path.join(mnt, "spool")
        srv, port = start_serve(args.spool, spool_dir)
        before = [post(port, f"before{i}") for i in range(20)]
        check(all(s == 200 for s, _ in before), f"{name}: 20 webhooks accepted before the disk is full")
        filler(mnt)
        during = [post(port, f"during{i}") for i in range(30)]
        check(all(s == 503 for s, _ in during), f"{name}: every webhook answered 503 while full ({sorted(set(s for s, _ in during))})")
        check(all(ra for _, ra in during), f"{name}: every 503 carries Retry-After")
        check(get(port, "/healthz") == 503, f"{name}: /healthz says 503")
        new = os.listdir(os.path.join(spool_dir, "new"))
        check(not any(n.startswith("during") for n in new), f"{name}: nothing of the refused webhooks is visible")
        check(os.listdir(os.path.join(spool_dir, "tmp")) == [], f"{name}: no tmp/ leftovers")
        con = run(args.spool, "--dir", spool_dir, "consume", "--exec", "cat > /dev/null", "--drain", check_rc=False)
        done = os.listdir(os.path.join(spool_dir, "done"))
        check(con.returncode == 0 and len(done) == 20, f"{name}: a consumer still finishes the 20 accepted items while full ({len(done)} done)")
        freer(mnt)
        after = [post(port, f"after{i}") for i in range(10)]
        check(all(s == 200 for s, _ in after), f"{name}: accepting again once space is freed ({sorted(set(s for s, _ in after))})")
        check(get(port, "/healthz") == 200, f"{name}: /healthz ok again")
        srv.send_signal(signal.SIGTERM); srv.wait(20)
        check(srv.returncode == 0, f"{name}: server still running and stops cleanly")
    finally:
        run("umount", mnt, check_rc=False)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spool", default=os.path.join(ROOT, ".build/debug/spool"))
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="spool-fulldisk-")
    if not loop_mount_permitted(work):
        print("SKIPPED fulldisk: mounting a loop device is not permitted here"); shutil.rmtree(work); sys.exit(77)
    try:
        def free_blocks(mnt):
            for n in os.listdir(mnt):
                if n.startswith("filler"): os.remove(os.path.join(mnt, n))
        def free_inodes(mnt): shutil.rmtree(os.path.join(mnt, "inodes"))
        scenario(args, work, "blocks", [], fill_blocks, free_blocks)
        scenario(args, work, "inodes", ["-N", "256"], fill_inodes, free_inodes)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"fulldisk: {len(failures)} failure(s)")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
