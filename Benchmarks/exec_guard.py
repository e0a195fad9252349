#!/usr/bin/env python3
"""`spool consume --exec true` against `sh -c true` started and reaped, side by side in one run (issue 25, item 5:
the handler guard must keep `--exec` at 0.8x of a bare spawn or better).

    Benchmarks/exec_guard.py [--rounds 5] [--items 1500] [--no-build]

Each round fills a fresh spool with ITEMS items and times `consume --exec true --drain` at concurrency 1 and 2,
then runs Benchmarks/spawnrate.c (posix_spawn of `sh -c true` and waitpid, by 1 or 2 threads) for 3 s. Prints each
round and the median ratio per concurrency."""
import argparse, json, os, shutil, statistics, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OUT = os.path.join(HERE, ".out")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--items", type=int, default=1500)
    ap.add_argument("--no-build", action="store_true")
    a = ap.parse_args()
    if not a.no_build:
        for product in ("spool", "spool-testkit"):
            subprocess.run(["swift", "build", "-c", "release", "--product", product], cwd=ROOT, check=True, capture_output=True)
    os.makedirs(OUT, exist_ok=True)
    subprocess.run(["gcc", "-O2", "-pthread", "-o", os.path.join(OUT, "spawnrate"), os.path.join(HERE, "spawnrate.c")], check=True)
    spool, tk = os.path.join(ROOT, ".build/release/spool"), os.path.join(ROOT, ".build/release/spool-testkit")
    ratios = {1: [], 2: []}
    for r in range(a.rounds):
        row = []
        for conc in (1, 2):
            s = os.path.join(tempfile.mkdtemp(prefix="execguard-", dir="/var/tmp"), "s")
            subprocess.run([tk, "fill", s, "e", str(a.items), "256"], check=True, capture_output=True)
            t0 = time.time()
            subprocess.run([spool, "--dir", s, "consume", "--exec", "true", "--drain", "--concurrency", str(conc)], check=True, capture_output=True)
            ex = a.items / (time.time() - t0)
            shutil.rmtree(os.path.dirname(s), ignore_errors=True)
            sh = json.loads(subprocess.run([os.path.join(OUT, "spawnrate"), "3", str(conc)], check=True, capture_output=True, text=True).stdout)["per_second"]
            ratios[conc].append(ex / sh)
            row.append(f"concurrency {conc}: exec {ex:.0f}/s, sh -c true {sh:.0f}/s, {ex / sh:.2f}x")
        print(f"round {r + 1}: " + "; ".join(row), flush=True)
    for conc in (1, 2):
        print(f"median ratio at concurrency {conc}: {statistics.median(ratios[conc]):.2f}x of sh -c true")


if __name__ == "__main__":
    main()
