#!/usr/bin/env python3
"""Operator-mode NATS for the creds tests: makes an operator, a system account, an account with JetStream and a
user (keys with the `nkeys` package, JWTs signed here as nsc would), and writes OUT/server.conf (memory resolver)
and OUT/user.creds (mode 0600). With --foreign, OUT/foreign.creds holds a user of an account the server does
not know. Usage: nats_operator.py OUT [--foreign]"""
import nkeys, os, json, base64, time, hashlib, sys
def b64(b): return base64.urlsafe_b64encode(b).decode().rstrip("=")
def kp(prefix):
    seed = nkeys.encode_seed(os.urandom(32), prefix)
    k = nkeys.from_seed(seed)
    return seed.decode(), k.public_key.decode(), k
def jwt(issuer_kp, issuer_pub, sub, name, nats):
    claims = {"jti": "", "iat": int(time.time()), "iss": issuer_pub, "name": name, "sub": sub, "nats": nats}
    body = json.dumps(claims, separators=(",", ":")).encode()
    claims["jti"] = base64.b32encode(hashlib.sha256(body).digest()).decode().rstrip("=")
    head = b64(json.dumps({"typ": "JWT", "alg": "ed25519-nkey"}, separators=(",", ":")).encode())
    payload = b64(json.dumps(claims, separators=(",", ":")).encode())
    sig = b64(issuer_kp.sign(f"{head}.{payload}".encode()))
    return f"{head}.{payload}.{sig}"
os_seed, os_pub, os_kp = kp(nkeys.PREFIX_BYTE_OPERATOR)
ac_seed, ac_pub, ac_kp = kp(nkeys.PREFIX_BYTE_ACCOUNT)
us_seed, us_pub, us_kp = kp(nkeys.PREFIX_BYTE_USER)
sy_seed, sy_pub, sy_kp = kp(nkeys.PREFIX_BYTE_ACCOUNT)
op_jwt = jwt(os_kp, os_pub, os_pub, "op", {"type": "operator", "version": 2})
ac_jwt = jwt(os_kp, os_pub, ac_pub, "acct", {"type": "account", "version": 2, "limits": {"subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1, "wildcards": True, "conn": -1, "leaf": -1, "mem_storage": -1, "disk_storage": -1, "streams": -1, "consumer": -1}})
sy_jwt = jwt(os_kp, os_pub, sy_pub, "SYS", {"type": "account", "version": 2})
us_jwt = jwt(ac_kp, ac_pub, us_pub, "user", {"type": "user", "version": 2, "pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1})
out = sys.argv[1]
open(f"{out}/server.conf", "w").write(f"operator: {op_jwt}\nsystem_account: {sy_pub}\nresolver: MEMORY\nresolver_preload: {{\n  {ac_pub}: {ac_jwt}\n  {sy_pub}: {sy_jwt}\n}}\n")
open(f"{out}/user.creds", "w").write(f"-----BEGIN NATS USER JWT-----\n{us_jwt}\n------END NATS USER JWT------\n\n-----BEGIN USER NKEY SEED-----\n{us_seed}\n------END USER NKEY SEED------\n")
os.chmod(f"{out}/user.creds", 0o600)
if "--foreign" in sys.argv:
    fa_seed, fa_pub, fa_kp = kp(nkeys.PREFIX_BYTE_ACCOUNT)
    fu_seed, fu_pub, fu_kp = kp(nkeys.PREFIX_BYTE_USER)
    fu_jwt = jwt(fa_kp, fa_pub, fu_pub, "stranger", {"type": "user", "version": 2, "pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1})
    open(f"{out}/foreign.creds", "w").write(f"-----BEGIN NATS USER JWT-----\n{fu_jwt}\n------END NATS USER JWT------\n\n-----BEGIN USER NKEY SEED-----\n{fu_seed}\n------END USER NKEY SEED------\n")
    os.chmod(f"{out}/foreign.creds", 0o600)
