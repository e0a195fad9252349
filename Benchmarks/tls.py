#!/usr/bin/env python3
"""HTTPS ingress side by side, in one interleaved run (issue 11): for 1, 16 and 64 keep-alive connections, acks/s
and p50/p99 of `spool serve` over plain HTTP, of `spool serve --tls-cert` (direct HTTPS), and of Caddy terminating
TLS in front of a plain `spool serve` (the recommended proxy recipe). Then handshakes per second (a new TLS
connection per request, `Connection: close`) direct and through Caddy, and the RSS of `spool serve --tls-cert`
holding 5,000 idle TLS connections (handshake done, nothing sent). Usage:

    Benchmarks/tls.py [--rounds 3] [--seconds 5] [--spool .build/release/spool] [--dir /var/tmp/spool-tls]

Needs wrk (built with OpenSSL, as Debian's is), openssl, and caddy (`apt-get install caddy`) for its rows.
"""
import argparse, os, shutil, socket, ssl, statistics, subprocess, sys, tempfile, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import fresh, free_port, wait_port, rss_kib, wrk as run_wrk


def certs(d):
    def o(*a): subprocess.run(["openssl", *a], check=True, capture_output=True, cwd=d)
    o("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
      "-days", "2", "-subj", "/CN=bench CA")
    o("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "s.key", "-out", "s.csr", "-subj", "/CN=localhost")
    open(os.path.join(d, "ext"), "w").write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    o("x509", "-req", "-in", "s.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "s.pem", "-days", "2", "-extfile", "ext")
    os.chmod(os.path.join(d, "s.key"), 0o600)
    return os.path.join(d, "s.pem"), os.path.join(d, "s.key"), os.path.join(d, "ca.pem")


def wrk(url, conns, seconds, close=False, script=True):
    w = run_wrk(0, conns, seconds, url=url, script=script, headers=["Connection: close"] if close else [])
    if w["non2xx"] and script: print(f"  warning: {w['non2xx']} non-2xx from {url}", file=sys.stderr)
    return {"rps": w["rps"], "p50": w["p50_ms"], "p99": w["p99_ms"]}


class Serve:
    def __init__(self, spool, work, extra):
        self.port = free_port()
        self.p = subprocess.Popen([spool, "--dir", os.path.join(fresh(work), "s"), "serve", "--listen", f"127.0.0.1:{self.port}", *extra],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)
    def stop(self):
        self.p.terminate(); self.p.wait(timeout=30)


class Caddy:
    def __init__(self, work, cert, key, upstream):
        self.port = free_port()
        d = fresh(os.path.join(work, "caddy"))
        conf = os.path.join(d, "Caddyfile")
        open(conf, "w").write(f"""{{
    admin off
    auto_https off
    storage file_system {d}/data
}}
https://localhost:{self.port} {{
    tls {cert} {key}
    log {{
        output discard
    }}
    reverse_proxy 127.0.0.1:{upstream}
}}
""")
        self.p = subprocess.Popen(["caddy", "run", "--config", conf, "--adapter", "caddyfile"], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, env=dict(os.environ, HOME=d, XDG_DATA_HOME=d, XDG_CONFIG_HOME=d))
        wait_port(self.port, timeout=20)
    def stop(self):
        self.p.terminate(); self.p.wait(timeout=30)


def idle_rss(spool, work, cert, key, ca, n):
    s = Serve(spool, work, ["--tls-cert", cert, "--tls-key", key, "--max-connections", str(n + 100)])
    try:
        time.sleep(0.3)
        before = rss_kib(s.p.pid)
        ctx = ssl.create_default_context(cafile=ca)
        conns = []
        for _ in range(n):
            conns.append(ctx.wrap_socket(socket.create_connection(("127.0.0.1", s.port)), server_hostname="localhost"))
        time.sleep(1.0)
        after = rss_kib(s.p.pid)
        for c in conns: c.close()
        return before, after
    finally:
        s.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--spool", default=".build/release/spool")
    ap.add_argument("--dir", default="/var/tmp/spool-tls")
    ap.add_argument("--idle", type=int, default=5000)
    a = ap.parse_args()
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    work = os.path.join(a.dir, str(time.time_ns())); os.makedirs(work)
    cert, key, ca = certs(tempfile.mkdtemp(prefix="tlsbench-"))
    have_caddy = shutil.which("caddy") is not None
    kinds = ["http", "https"] + (["caddy"] if have_caddy else [])
    res = {}
    for r in range(a.rounds):
        order = kinds if r % 2 == 0 else list(reversed(kinds))
        for kind in order:
            s = Serve(a.spool, work, ["--tls-cert", cert, "--tls-key", key] if kind == "https" else [])
            c = Caddy(work, cert, key, s.port) if kind == "caddy" else None
            url = {"http": f"http://127.0.0.1:{s.port}", "https": f"https://localhost:{s.port}",
                   "caddy": f"https://localhost:{c.port if c else 0}"}[kind] + "/json2video/done"
            try:
                for conns in (1, 16, 64):
                    w = wrk(url, conns, a.seconds)
                    res.setdefault((kind, conns), []).append(w)
                w = wrk(url, 16, a.seconds, close=True)
                res.setdefault((kind, "new"), []).append(w)
                # Handshakes alone: a GET answered 404 from the head, no disk, a new connection each time.
                w = wrk(url.replace("/json2video/done", "/handshake"), 16, a.seconds, close=True, script=False)
                res.setdefault((kind, "hs"), []).append(w)
            finally:
                if c: c.stop()
                s.stop()
        print(f"round {r + 1}/{a.rounds} done", file=sys.stderr)
    med = lambda xs: statistics.median([x for x in xs if x is not None]) if any(x is not None for x in xs) else float("nan")
    print(f"{'load':<34}" + "".join(f"{k:>22}" for k in kinds) + f"{'https/http':>12}" + (f"{'https/caddy':>13}" if have_caddy else ""))
    for conns in (1, 16, 64, "new", "hs"):
        label = {"new": "16 conns, new conn per webhook", "hs": "16 conns, new conn per 404 (hs/s)"}.get(conns, f"{conns} keep-alive conns")
        row = {k: res[(k, conns)] for k in kinds}
        rps = {k: med([w["rps"] for w in row[k]]) for k in kinds}
        line = f"{label:<34}" + "".join(f"{rps[k]:>15.0f} acks/s" for k in kinds) + f"{rps['https'] / rps['http']:>12.2f}"
        if have_caddy: line += f"{rps['https'] / rps['caddy']:>13.2f}"
        print(line)
        lat = "".join(f"{med([w['p50'] for w in row[k]]):>9.2f}/{med([w['p99'] for w in row[k]]):<6.2f}ms p50/p99" for k in kinds)
        print(f"{'':<34}" + lat)
    before, after = idle_rss(a.spool, work, cert, key, ca, a.idle)
    print(f"RSS of serve --tls-cert: {before / 1024:.1f} MB idle, {after / 1024:.1f} MB with {a.idle} idle TLS connections "
          f"({(after - before) / a.idle:.1f} KB per connection)")


if __name__ == "__main__":
    main()
