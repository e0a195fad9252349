#!/usr/bin/env python3
"""A real HTTPS endpoint for the forwarder's tests: Python's http.server wrapped in ssl.

    https_server.py CERT KEY [--client-ca CA]

Prints "port N" once listening on 127.0.0.1 (a free port), answers every POST with 200 and prints one line
per request: "POST <path> <X-Spool-Key> <peer certificate CN or ->". With --client-ca, a client certificate
signed by CA is required (mutual TLS).
"""
import http.server, ssl, sys


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        peer = self.connection.getpeercert() or {}
        cn = next((v for rdn in peer.get("subject", ()) for k, v in rdn if k == "commonName"), "-")
        print(f"POST {self.path} {self.headers.get('X-Spool-Key')} {cn} {len(body)}", flush=True)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *a):
        pass


def main():
    cert, key = sys.argv[1], sys.argv[2]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    if "--client-ca" in sys.argv:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(sys.argv[sys.argv.index("--client-ca") + 1])
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    print(f"port {srv.server_address[1]}", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
