#!/usr/bin/env python3
"""Signs webhook deliveries with independent implementations, for the --verify tests.

stdin: a JSON list of cases {"lib", "secret", "id", "timestamp", "body"}; stdout: a JSON list of header values.
  lib "standardwebhooks": standardwebhooks.Webhook(secret).sign(id, datetime, body)   (the reference library)
  lib "svix":             svix.webhooks.Webhook(secret).sign(id, datetime, body)
  lib "github":           "sha256=" + hmac(secret, body).hexdigest()                 (Python's hmac module)
  lib "stripe":           "t={timestamp},v1=" + hmac(secret, f"{timestamp}.{body}").hexdigest()
`--check` exits 77 naming what is missing when the PyPI packages are not installed (the test then says SKIPPED).
"""
import hashlib
import hmac
import json
import sys
from datetime import datetime, timezone


def load(name):
    try:
        if name == "standardwebhooks":
            from standardwebhooks.webhooks import Webhook
        else:
            from svix.webhooks import Webhook
        return Webhook
    except ImportError:
        return None


def main():
    if sys.argv[1:] == ["--check"]:
        missing = [n for n in ("standardwebhooks", "svix") if load(n) is None]
        if missing:
            print("missing: " + " ".join(missing))
            sys.exit(77)
        print("ok")
        return
    out = []
    for c in json.load(sys.stdin):
        lib, secret, body = c["lib"], c["secret"], c["body"]
        if lib in ("standardwebhooks", "svix"):
            when = datetime.fromtimestamp(c["timestamp"], tz=timezone.utc)
            out.append(load(lib)(secret).sign(c["id"], when, body))
        elif lib == "github":
            out.append("sha256=" + hmac.new(secret.encode(), body.encode(), hashlib.sha256).hexdigest())
        elif lib == "stripe":
            signed = f"{c['timestamp']}.{body}".encode()
            out.append(f"t={c['timestamp']},v1=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest())
        else:
            raise SystemExit(f"unknown lib {lib}")
    json.dump(out, sys.stdout)


main()
