"""Shared by the reliability scripts: starting `spool serve`, probing whether loop mounts are allowed, and
recording checks."""
import os, socket, subprocess, time

# What failed, in the order it was checked; a script exits 1 when this is not empty.
failures = []


def check(cond, what):
    """Prints `ok` or `FAIL` with `what`, and records a failure."""
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond: failures.append(what)


def start_serve(spool, spool_dir, *extra, env=None):
    """Starts `spool serve` on a free loopback port; returns (process, port) once it printed its listening line."""
    p = subprocess.Popen([spool, "--dir", spool_dir, "serve", "--listen", "127.0.0.1:0", *extra],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    line = p.stdout.readline()
    if "127.0.0.1:" not in line:
        p.kill(); p.wait()
        raise RuntimeError(f"spool serve did not start: {line!r}")
    return p, int(line.split("127.0.0.1:")[1].split()[0])


def loop_mount_permitted(work):
    """True when this machine lets us mount a loop-device ext4 image (root, no container restriction)."""
    img, mnt = os.path.join(work, "probe.img"), os.path.join(work, "probe")
    os.makedirs(mnt, exist_ok=True)
    subprocess.run(["truncate", "-s", "16M", img], check=True, capture_output=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", img], check=True, capture_output=True)
    if subprocess.run(["mount", "-o", "loop", img, mnt], capture_output=True).returncode != 0:
        return False
    subprocess.run(["umount", mnt], capture_output=True)
    os.remove(img)
    return True


def free_port():
    """A free loopback TCP port (bound and released) for a peer that cannot pick its own (Caddy, nginx)."""
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close()
    return p


def wait_port(port, timeout=20):
    """Waits until something accepts connections on 127.0.0.1:`port`."""
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close(); return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing listening on {port}")


def cpu_seconds(pid):
    """CPU time (user + system, seconds) process `pid` has used so far, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def read_payload(path):
    """The payload of a format 2 item file (docs/spool-format.md, "The item file"): the bytes after its header.
    None when the file is missing; raises ValueError when it is not a whole item (a partial write would be)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None
    if not data.startswith(b"spool/2 "):
        raise ValueError(f"{path}: no format 2 header")
    nl = data.index(b"\n")
    n = int(data[8:nl])
    header = __import__("json").loads(data[nl + 1:nl + 1 + n])
    body = data[nl + 1 + n + 1:]
    if data[nl + 1 + n:nl + 2 + n] != b"\n" or len(body) != header["size"]:
        raise ValueError(f"{path}: size {len(body)} against header {header['size']}")
    return body


def payload_or_damage(path):
    """read_payload, with a damaged file as b"<damaged>" (never equal to a real body)."""
    try:
        return read_payload(path)
    except (ValueError, KeyError):
        return b"<damaged>"
