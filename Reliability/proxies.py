#!/usr/bin/env python3
"""The reverse-proxy recipes of docs/http.md, run exactly as written (issue 17.3).

Each recipe block (```caddyfile and ```nginx) is read from docs/http.md; only the site name, the upstream
port and the certificate paths are replaced (Caddy gets `tls internal`, nginx a certificate made here with the
openssl CLI). A real Caddy and a real nginx then sit in front of `spool serve --token-file`: a webhook through
the proxy must be stored (and answered "duplicate" the second time), while /metrics and /healthz through the
proxy must not be reachable. Exit 0 when both hold for both proxies; 77 when a proxy is not installed.

    Reliability/proxies.py [--spool .build/debug/spool]
"""
import argparse, os, re, shutil, subprocess, sys, tempfile, time, urllib.request, ssl

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import free_port, start_serve, wait_port  # noqa: E402


def block(lang):
    text = open(os.path.join(ROOT, "docs/http.md")).read()
    m = re.search(rf"```{lang}\n(.*?)```", text, re.S)
    if not m: raise SystemExit(f"no ```{lang} block in docs/http.md")
    return m.group(1)


def request(url, cafile, body=None, token=None):
    ctx = ssl.create_default_context(cafile=cafile)
    req = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET")
    if body is not None: req.add_header("Content-Type", "application/json")
    if token: req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def check(name, base, cafile, spool_dir, failures):
    key = f"via-{name}"
    body = ('{"success":true,"movie":{"project":"%s","status":"done"}}' % key).encode()
    first = request(f"{base}/json2video/done", cafile, body, token="tok3n")
    again = request(f"{base}/json2video/done", cafile, body, token="tok3n")
    metrics = request(f"{base}/metrics", cafile, token="tok3n")
    health = request(f"{base}/healthz", cafile)
    stored = os.path.exists(os.path.join(spool_dir, "new", key))
    ok = (first == (200, '{"status":"accepted","key":"%s"}' % key) and again[1] == '{"status":"duplicate","key":"%s"}' % key
          and stored and metrics[0] == 404 and "spool_" not in metrics[1] and health[0] == 404)
    print(f"{'ok  ' if ok else 'FAIL'} {name}: webhook {first[0]} then {again[1]}, stored={stored}; "
          f"/metrics through the proxy {metrics[0]}, /healthz {health[0]}")
    if not ok: failures.append(name)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--spool", default=os.path.join(ROOT, ".build/debug/spool"))
    a = ap.parse_args()
    missing = [p for p in ("caddy", "nginx") if not shutil.which(p) and not os.path.exists(f"/usr/sbin/{p}")]
    if missing:
        print(f"proxies: SKIPPED, not installed: {', '.join(missing)}"); sys.exit(77)
    work = tempfile.mkdtemp(prefix="proxies-")
    token = os.path.join(work, "token"); open(token, "w").write("tok3n\n"); os.chmod(token, 0o600)
    spool_dir = os.path.join(work, "s")
    serve, spool_port = start_serve(a.spool, spool_dir, "--token-file", token)
    procs = [serve]
    failures = []
    try:
        # Caddy, the recipe with `tls internal` (its own local CA) for localhost.
        cport = free_port(); cdir = os.path.join(work, "caddy"); os.makedirs(cdir)
        conf = block("caddyfile").replace("hooks.example.com {", f"https://localhost:{cport} {{\n    tls internal", 1)
        conf = conf.replace("127.0.0.1:8080", f"127.0.0.1:{spool_port}")
        conf = "{\n    admin off\n    skip_install_trust\n    storage file_system %s/data\n}\n" % cdir + conf
        open(os.path.join(cdir, "Caddyfile"), "w").write(conf)
        env = dict(os.environ, HOME=cdir, XDG_DATA_HOME=cdir, XDG_CONFIG_HOME=cdir)
        caddy = subprocess.Popen(["caddy", "run", "--config", os.path.join(cdir, "Caddyfile"), "--adapter", "caddyfile"],
                                 stdout=subprocess.DEVNULL, stderr=open(os.path.join(cdir, "caddy.log"), "w"), env=env)
        procs.append(caddy)
        wait_port(cport)
        root = os.path.join(cdir, "data/pki/authorities/local/root.crt")
        for _ in range(100):
            if os.path.exists(root): break
            time.sleep(0.1)
        time.sleep(0.5)
        check("caddy", f"https://localhost:{cport}", root, spool_dir, failures)

        # nginx, the recipe with a certificate made here.
        nport = free_port(); ndir = os.path.join(work, "nginx"); os.makedirs(os.path.join(ndir, "logs"))
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
                        "-keyout", os.path.join(ndir, "key.pem"), "-out", os.path.join(ndir, "cert.pem"), "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=DNS:localhost"], check=True, capture_output=True)
        server = block("nginx").replace("127.0.0.1:8080", f"127.0.0.1:{spool_port}").replace("listen 443 ssl;", f"listen 127.0.0.1:{nport} ssl;")
        server = server.replace("server_name hooks.example.com;", "server_name localhost;")
        server = server.replace("/etc/letsencrypt/live/hooks.example.com/fullchain.pem", os.path.join(ndir, "cert.pem"))
        server = server.replace("/etc/letsencrypt/live/hooks.example.com/privkey.pem", os.path.join(ndir, "key.pem"))
        access_log = os.path.join(ndir, "logs", "hooks.access.log")
        server = server.replace("/var/log/nginx/hooks.access.log", access_log)
        temps = "".join(f"    {d}_temp_path {ndir}/{d};\n" for d in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        conf = (f"daemon off;\nmaster_process off;\npid {ndir}/nginx.pid;\nerror_log {ndir}/logs/error.log;\n"
                f"events {{ worker_connections 64; }}\nhttp {{\n    access_log off;\n{temps}{server}}}\n")
        open(os.path.join(ndir, "nginx.conf"), "w").write(conf)
        nginx = subprocess.Popen(["nginx", "-p", ndir, "-c", os.path.join(ndir, "nginx.conf")],
                                 stdout=subprocess.DEVNULL, stderr=open(os.path.join(ndir, "stderr.log"), "w"))
        procs.append(nginx)
        wait_port(nport)
        check("nginx", f"https://localhost:{nport}", os.path.join(ndir, "cert.pem"), spool_dir, failures)
        # The token in the URL (the README's ?token=) is accepted, and the recipe's log format keeps it out of the log.
        via_url = request(f"https://localhost:{nport}/json2video/done?token=tok3n", os.path.join(ndir, "cert.pem"),
                          b'{"movie":{"project":"via-url"}}')
        nginx.terminate(); nginx.wait(timeout=20)
        logged = open(access_log, errors="replace").read() if os.path.exists(access_log) else ""
        ok = via_url[0] == 200 and '"POST /json2video/done HTTP/1.1" 200' in logged and "tok3n" not in logged
        print(f"{'ok  ' if ok else 'FAIL'} nginx access log: ?token= request {via_url[0]}, logged without the query: "
              f"{'tok3n' not in logged}, lines {logged.count(chr(10))}")
        if not ok: failures.append("nginx access log")
    finally:
        for p in reversed(procs):
            p.terminate()
            try: p.wait(timeout=20)
            except subprocess.TimeoutExpired: p.kill()
    print(f"proxies: {len(failures)} failure(s)")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
