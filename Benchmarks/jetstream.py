#!/usr/bin/env python3
"""The JetStream side of a cluster, side by side (issue 14), on a local 3-node nats-server cluster.

1. The bridge's publish rate (`spool consume --nats URLS --drain` over N waiting items) into an R1 and an R3 stream
   at concurrency 1, 16 and 64, against a reference publisher: nats-py publishing the same N messages (same size,
   Nats-Msg-Id headers) with the same number of acknowledgements in flight.
2. `spool pull` moving N messages into a fresh local spool, against that spool's own batch enqueue rate
   (`spool-testkit fill`, the same group commit path).
Prints messages per second and the ratios. Usage:

    Benchmarks/jetstream.py [--messages 5000] [--rounds 3] [--only bridge|pull] [--concurrency 1,16,64] [--spool .build/release/spool] [--testkit .build/release/spool-testkit]
"""
import argparse, asyncio, datetime, json, os, statistics, subprocess, sys, tempfile, time
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "Reliability"))
from common import cpu_seconds, free_port  # noqa: E402
from jetstream_cluster import Node  # noqa: E402


async def make_stream(urls, name, subject, replicas):
    import nats
    for _ in range(60):
        try:
            nc = await nats.connect(servers=urls)
            js = nc.jetstream()
            await js.add_stream(name=name, subjects=[subject], num_replicas=replicas, duplicate_window=120.0)
            await nc.close(); return
        except Exception:
            await asyncio.sleep(0.5)
    raise RuntimeError("cannot create stream")


async def stream_leader(urls, stream):
    """The server name (n0, n1, n2) of the stream's leader: a publisher connected elsewhere goes through a route."""
    import nats
    nc = await nats.connect(servers=urls)
    try:
        info = await nc.jetstream().stream_info(stream)
        return info.cluster.leader if info.cluster else None
    finally:
        await nc.close()


async def reference(urls, subject, n, inflight, prefix, size):
    """nats-py: n publishes with acks, at most `inflight` awaiting their ack at once; messages per second."""
    import nats
    nc = await nats.connect(servers=urls, dont_randomize=True)
    js = nc.jetstream()
    payload = b"x" * size
    sem = asyncio.Semaphore(inflight)

    async def one(i):
        async with sem:
            await js.publish(subject, payload, headers={"Nats-Msg-Id": f"{prefix}{i}"})
    t0 = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(n)))
    dt = time.monotonic() - t0
    await nc.close()
    return n / dt


def bridge(spool, testkit, urls, subject, stream, n, conc, size):
    d = os.path.join(tempfile.mkdtemp(prefix="jsb-"), "s")
    subprocess.run([testkit, "fill", d, f"b{time.time_ns()}-", str(n), str(size)], check=True, capture_output=True)
    t0 = time.monotonic()
    r = subprocess.run([spool, "--dir", d, "consume", "--nats", ",".join(urls), "--nats-no-discover", "--subject", subject,
                        "--nats-stream", stream, "--concurrency", str(conc), "--drain"], capture_output=True, text=True)
    dt = time.monotonic() - t0
    names = os.listdir(os.path.join(d, "done"))
    if len(names) != n: print(f"  warning: {len(names)} of {n} done: {r.stderr[-300:]}", file=sys.stderr)
    # The publishing itself, from the first item in done/ to the last (the ctime the move into done/ sets: format 2
    # writes nothing at a claim or a first-attempt completion): without the process start, the startup recover over
    # the backlog, the connection, the stream check, and one publish's latency at the start.
    times = [os.stat(os.path.join(d, "done", name)).st_ctime_ns / 1e9 for name in names]
    first, last = min(times), max(times)
    return len(names) / dt, len(names) / max(last - first, 1e-3)


async def make_consumer(urls, stream, durable):
    import nats
    from nats.js.api import ConsumerConfig, AckPolicy
    nc = await nats.connect(servers=urls)
    await nc.jetstream().add_consumer(stream, ConsumerConfig(durable_name=durable, ack_policy=AckPolicy.EXPLICIT, max_ack_pending=1024))
    await nc.close()


def pull(spool, urls, stream, n, servers):
    """`spool pull` into a fresh spool from a durable made beforehand (an R3 consumer's creation waits for its own
    leader election, which is not the pull's speed): (msg/s from start to the n-th item in new/, seconds to the first)."""
    d = os.path.join(tempfile.mkdtemp(prefix="jsp-"), "s")
    durable = f"W{time.time_ns()}"
    asyncio.run(make_consumer(urls, stream, durable))
    p = subprocess.Popen([spool, "--dir", d, "pull", "--nats", ",".join(urls), "--stream", stream, "--consumer", durable,
                          "--batch", "256"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.monotonic()
    first = None
    before = sum(cpu_seconds(s.p.pid) for s in servers)
    try:
        while True:
            have = len(os.listdir(os.path.join(d, "new"))) if os.path.isdir(os.path.join(d, "new")) else 0
            if have and first is None: first = time.monotonic() - t0
            if have >= n: break
            if time.monotonic() - t0 > 120: break
            time.sleep(0.01)
        dt = time.monotonic() - t0
        return have / dt, first, cpu_seconds(p.pid) / dt, (sum(cpu_seconds(s.p.pid) for s in servers) - before) / dt
    finally:
        p.terminate(); p.wait()


def enqueue_rate(testkit, n, size):
    d = os.path.join(tempfile.mkdtemp(prefix="jse-"), "s")
    t0 = time.monotonic()
    subprocess.run([testkit, "fill", d, "e", str(n), str(size)], check=True, capture_output=True)
    return n / (time.monotonic() - t0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=5000)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--spool", default=".build/release/spool")
    ap.add_argument("--testkit", default=".build/release/spool-testkit")
    ap.add_argument("--only", choices=["bridge", "pull"], help="run one half")
    ap.add_argument("--concurrency", default="1,16,64", help="bridge: the numbers in flight to measure")
    ap.add_argument("--rounds", type=int, default=3, help="measured rounds per cell, interleaved with the reference; medians")
    ap.add_argument("--server", choices=["rotate", "leader", "other"], default="rotate",
                    help="bridge: the one server both publishers use in a round: each in turn, the stream leader, or not the leader")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="jsbench-")
    ports, cports = [free_port() for _ in range(3)], [free_port() for _ in range(3)]
    nodes = [Node(i, ports, cports, work) for i in range(3)]
    for n in nodes: n.start()
    urls = [f"nats://127.0.0.1:{p}" for p in ports]
    try:
        if a.only != "pull":
            print("bridge: from process start (and from its first claim, ms resolution) to the last item in done/; medians")
            print(f"{'stream':<6}{'in flight':>10}{'spool bridge msg/s':>26}{'nats-py msg/s':>16}{'ratio':>16}   ratios of the rounds"
                  " in order (L: both connected to the stream leader, o: to another server)")
        for replicas in ((1, 3) if a.only != "pull" else (3,)):
            stream, subject = f"R{replicas}", f"bench.r{replicas}"
            asyncio.run(make_stream(urls, stream, subject, replicas))
            for conc in ([int(c) for c in a.concurrency.split(",")] if a.only != "pull" else []):
                n = a.messages if conc > 1 else max(300, a.messages // 5)
                mine, steady, refs, placed = [], [], [], []
                leader = asyncio.run(stream_leader(urls, stream))
                for r in range(a.rounds):  # alternating which goes first
                    # Both publishers of a round use the same one server: a publisher whose server does not hold the
                    # stream (R1) or its leader (R3) pays a route hop per message, which swung single rounds 0.4x-1.3x
                    # when each picked one of the three at random.
                    li = next((i for i in range(3) if f"n{i}" == leader), 0)
                    si = {"rotate": r % 3, "leader": li, "other": (li + 1 + r % 2) % 3}[a.server]
                    one = [urls[si]]
                    placed.append("L" if f"n{si}" == leader else "o")
                    for who in (("bridge", "ref") if r % 2 == 0 else ("ref", "bridge")):
                        if who == "bridge":
                            total, publishing = bridge(a.spool, a.testkit, one, subject, stream, n, conc, a.size)
                            mine.append(total); steady.append(publishing)
                        else: refs.append(asyncio.run(reference(one, subject, n, conc, f"ref{time.time_ns()}-", a.size)))
                ratios = [m / r for m, r in zip(mine, refs)]
                sratios = [m / r for m, r in zip(steady, refs)]
                med = statistics.median
                print(f"{stream:<6}{conc:>10}{med(mine):>14.0f} ({med(steady):>7.0f}){med(refs):>16.0f}"
                      f"{med(ratios):>8.2f} ({med(sratios):.2f})   {' '.join(f'{x:.2f}{p}' for x, p in zip(ratios, placed))}"
                      f"  ({' '.join(f'{x:.2f}' for x in sratios)})", flush=True)
        if a.only == "bridge": return
        if a.only == "pull":  # the stream gets its messages from the reference publisher
            asyncio.run(reference(urls, "bench.r3", a.messages, 64, f"pull{time.time_ns()}-", a.size))
        for _ in range(a.rounds):
            got, first, own, theirs = pull(a.spool, urls, "R3", a.messages, nodes)
            local = enqueue_rate(a.testkit, a.messages, a.size)
            print(f"spool pull from R3 into a local spool: {got:.0f} msg/s; that spool's batch enqueue (spool-testkit fill): "
                  f"{local:.0f} items/s; ratio {got / local:.2f} (first item after {first * 1000:.0f} ms; CPU: pull {own:.2f}, the 3 servers {theirs:.2f} cores)", flush=True)
    finally:
        for n in nodes:
            if n.p and n.p.poll() is None: n.kill()


if __name__ == "__main__":
    main()
