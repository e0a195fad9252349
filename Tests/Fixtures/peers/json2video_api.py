#!/usr/bin/env python3
"""A fake JSON2Video API for reconcile's tests: GET /v2/movies in list and single mode, over HTTP or HTTPS.

    json2video_api.py SCENARIO [--cert CERT --key KEY]

Prints "port N" once listening on 127.0.0.1 (a free port), then one line per request:
"REQ <unix time> <status> <path>". SCENARIO is a JSON file read again at every request (tests replace it
atomically to change what the API says):

    {"api_key": "k", "page_size": 100,
     "movies": ["<raw JSON text of a movie object>", ...],   # served verbatim, byte for byte
     "script": ["401", "403", "429:2", "500", "malformed", "ok", ...]}

Each request takes the next entry of "script" not used yet (counted from the last change of SCENARIO): "ok" (or none left)
serves the normal answer; "429:N" answers 429 with Retry-After: N; "malformed" a 200 that is not the
documented shape. A wrong x-api-key is 401. Pages: next_token is the offset of the next page ("o<N>").
"""
import datetime, http.server, json, ssl, sys, threading, time, urllib.parse

SCENARIO = sys.argv[1]
used = 0
last = None
lock = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def answer(self, status, body, headers=()):
        print(f"REQ {time.time():.6f} {status} {self.path}", flush=True)
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        global used, last
        with open(SCENARIO) as f:
            text = f.read()
        sc = json.loads(text)
        with lock:
            if text != last:
                last, used = text, 0
            script = sc.get("script", [])
            step = script[used] if used < len(script) else "ok"
            used += 1
        if self.headers.get("x-api-key") != sc.get("api_key", "k"):
            return self.answer(401, '{"success":false,"message":"Invalid API key"}')
        if step in ("401", "403"):
            return self.answer(int(step), '{"success":false,"message":"Invalid API key"}')
        if step.startswith("429"):
            after = step.split(":")[1] if ":" in step else None
            return self.answer(429, '{"success":false,"message":"Too many requests"}', [("Retry-After", after)] if after else [])
        if step == "500":
            return self.answer(500, '{"success":false,"message":"internal error"}')
        if step == "malformed":
            return self.answer(200, '{"success":true,"movies":[{"project":"x","status":"done"}')
        url = urllib.parse.urlparse(self.path)
        if url.path != "/v2/movies":
            return self.answer(404, '{"success":false}')
        q = urllib.parse.parse_qs(url.query)
        movies = sc.get("movies", [])
        if "project" in q:
            for m in movies:
                if json.loads(m).get("project") == q["project"][0]:
                    return self.answer(200, '{"success":true,"movie":' + m + ',"remaining_quota":{"time":100}}')
            return self.answer(404, '{"success":false,"message":"Project not found"}')
        for p in ("from", "to", "limit"):
            if p not in q:
                return self.answer(400, '{"success":false,"message":"missing %s"}' % p)
        try:
            t0, t1 = (datetime.datetime.fromisoformat(q[p][0].replace("Z", "+00:00")) for p in ("from", "to"))
        except ValueError:
            return self.answer(400, '{"success":false,"message":"bad date"}')
        if t1 < t0 or (t1 - t0).days > 93 or not 1 <= int(q["limit"][0]) <= 100:
            return self.answer(400, '{"success":false,"message":"range over 93 days or limit outside 1-100"}')
        size = min(int(q["limit"][0]), int(sc.get("page_size", 100)))
        start = int(q["next_token"][0][1:]) if "next_token" in q else 0
        page = movies[start:start + size]
        more = start + size < len(movies)
        body = ('{"success":true,"from":%s,"to":%s,"count":%d,"limit":%d,"has_next":%s,"has_prev":%s,"next_token":%s,\n"movies":[%s],"remaining_quota":{"time":1807}}'
                % (json.dumps(q["from"][0]), json.dumps(q["to"][0]), len(page), size, "true" if more else "false",
                   "true" if start else "false", json.dumps("o%d" % (start + size)) if more else "null", ",\n".join(page)))
        return self.answer(200, body)

    def log_message(self, *a):
        pass


def main():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if "--cert" in sys.argv:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(sys.argv[sys.argv.index("--cert") + 1], sys.argv[sys.argv.index("--key") + 1])
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    print(f"port {srv.server_address[1]}", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
