#!/usr/bin/env bash
# Checks the artefacts of Packaging/build.sh the way a user meets them (issue 26), on this machine:
#   - the .deb installs (dpkg -i), its /usr/bin/spool serves and stores a webhook, `dpkg -r` removes it and leaves
#     /var/lib/spool in place; lintian on the .deb (when installed);
#   - every installed unit passes `systemd-analyze verify`, and `systemd-analyze security --offline=yes` rates each at
#     most 2.5 (the scores are printed);
#   - the OCI image, unpacked with umoci, runs its spool in a chroot of its root file system: --version, a webhook
#     over plain HTTP and one over HTTPS (libssl inside the image);
#   - the release binary's dynamic libraries are what the README says (glibc only);
#   - completions: bash sources the script and completes `spool se` and `spool consume --con`; man pages: every page
#     renders with `groff -ww` without a warning.
# Needs root (dpkg, chroot). Usage: Packaging/test.sh [--no-build]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
[ "${1:-}" = --no-build ] || Packaging/build.sh
fail=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fail=1; }
DEB=$(ls dist/spool_*.deb)
BIN=.build/release/spool
VERSION=$("$BIN" version --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["version"])')

echo "== the binary's dynamic libraries"
libs=$(ldd "$BIN" | awk '{print $1}' | grep -v -E '^(linux-vdso\.so|/lib64/ld-linux)' | sed 's/\.so.*//' | sort -u | tr '\n' ' ')
# The README: built with --static-swift-stdlib only glibc and the C++ runtime stay dynamic (libc, libm, libstdc++,
# libgcc_s, and the loader).
extra=$(echo "$libs" | tr ' ' '\n' | grep -v -E '^(libc|libm|libstdc\+\+|libgcc_s|libdl|libpthread|librt|libutil)$' | tr '\n' ' ' || true)
[ -z "${extra// }" ] && ok "ldd: $libs" || bad "ldd shows more than the README says: $extra"
tr "\n" " " < README.md | grep -q "(libc, libm, libstdc++, libgcc_s: \`ldd\` lists exactly these) stay dynamic" \
    || bad "README no longer states what stays dynamic as ldd shows it"

echo "== lintian"
if command -v lintian >/dev/null 2>&1; then
    out=$(lintian --no-tag-display-limit "$DEB" 2>&1 || true)
    errors=$(echo "$out" | grep -E '^[EW]: ' || true)
    [ -z "$errors" ] && ok "lintian: no error or warning ($(echo "$out" | grep -c '^[IN]: ' || true) info/notes)" || { echo "$out"; bad "lintian reports errors or warnings"; }
else
    echo "**** lintian not installed: SKIPPED ****"
fi

echo "== install, serve, remove"
dpkg -i "$DEB" >/dev/null
getent passwd spool >/dev/null && ok "the spool user exists" || bad "no spool user"
[ "$(stat -c '%U %a' /var/lib/spool)" = "spool 700" ] && ok "/var/lib/spool is spool's, mode 700" || bad "/var/lib/spool: $(stat -c '%U %a' /var/lib/spool)"
[ "$(cat /var/lib/spool/format 2>/dev/null)" = 2 ] && [ "$(stat -c %U /var/lib/spool/new)" = spool ] \
    && ok "postinst made /var/lib/spool a format 2 spool owned by spool" || bad "postinst did not make the spool"
/usr/bin/spool --version | grep -q "spool $VERSION" && ok "$(/usr/bin/spool --version)" || bad "installed --version"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
W=$(mktemp -d)
/usr/bin/spool --dir "$W/s" serve --listen "127.0.0.1:$PORT" > "$W/serve.out" 2>/dev/null &
SPID=$!
for _ in $(seq 100); do grep -q listening "$W/serve.out" 2>/dev/null && break; sleep 0.1; done
r=$(curl -s -H 'Content-Type: application/json' --data-binary '{"movie":{"project":"deb-1"}}' "http://127.0.0.1:$PORT/json2video/done")
kill "$SPID"; wait "$SPID" || true
[ "$r" = '{"status":"accepted","key":"deb-1"}' ] && [ -f "$W/s/new/deb-1" ] && ok "the installed spool stored a webhook" || bad "installed serve: $r"
for f in /lib/systemd/system/spool-serve.service /usr/share/man/man1/spool-serve.1.gz /usr/share/bash-completion/completions/spool \
         /usr/share/doc/spool/examples/spool.toml /etc/spool/spool.toml /usr/lib/sysusers.d/spool.conf; do
    [ -e "$f" ] || bad "missing $f"
done
/usr/bin/spool validate --config /etc/spool/spool.toml >/dev/null && ok "the shipped configuration validates" || bad "the shipped configuration does not validate"

echo "== units"
for u in /lib/systemd/system/spool-*; do
    name=$(basename "$u")
    case "$name" in *@.service) inst="${name%@.service}@default.service"; ln -sf "$u" "/etc/systemd/system/$inst"; target=/etc/systemd/system/$inst ;; *) target=$u ;; esac
    out=$(systemd-analyze verify "$target" 2>&1 | grep -v -E 'Failed to prepare filename|Cannot add dependency job|Unit .*not found' || true)
    [ -z "$out" ] && ok "systemd-analyze verify $(basename "$target")" || { echo "$out"; bad "systemd-analyze verify $(basename "$target")"; }
    case "$name" in *.socket) continue ;; esac
    score=$(systemd-analyze security --offline=yes "$target" 2>/dev/null | sed -n 's/.*Overall exposure level for .*: \([0-9.]*\).*/\1/p')
    if [ -n "$score" ] && awk -v s="$score" 'BEGIN { exit !(s <= 2.5) }'; then ok "security $(basename "$target"): $score"; else bad "security $(basename "$target"): ${score:-no score}"; fi
    case "$name" in *@.service) rm -f "/etc/systemd/system/$inst" ;; esac
done

dpkg -r spool >/dev/null
[ ! -e /usr/bin/spool ] && [ -d /var/lib/spool ] && ok "dpkg -r removed the binary and left /var/lib/spool" || bad "after dpkg -r"

echo "== oci image"
OCI=$(ls dist/spool-*-oci.tar 2>/dev/null || true)
if [ -z "$OCI" ] || ! command -v umoci >/dev/null; then
    echo "**** no OCI image or no umoci: SKIPPED ****"
else
    O=$(mktemp -d)
    mkdir "$O/layout" && tar -C "$O/layout" -xf "$OCI"
    umoci unpack --image "$O/layout:$VERSION" "$O/bundle" >/dev/null
    R="$O/bundle/rootfs"
    # As a container runtime would: /proc mounted (Swift reads its arguments from /proc/self/cmdline) and /dev/null.
    mount -t proc proc "$R/proc"
    touch "$R/dev/null" && mount --bind /dev/null "$R/dev/null"
    trap 'umount "$R/dev/null" "$R/proc" 2>/dev/null || true' EXIT
    chroot "$R" /usr/bin/spool --version | grep -q "spool $VERSION" && ok "in the image: $(chroot "$R" /usr/bin/spool --version)" || bad "the image's spool does not run"
    python3 - "$O/bundle/config.json" <<'PY' && ok "image config: user, volume, default command" || bad "image config"
import json, sys
c = json.load(open(sys.argv[1]))
p = c["process"]
assert p["user"]["uid"] == 65532, p["user"]
assert p["args"] == ["/usr/bin/spool", "serve", "--listen", "0.0.0.0:8080"], p["args"]
assert "SPOOL_DIR=/var/lib/spool" in p["env"], p["env"]
PY
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost \
        -addext subjectAltName=IP:127.0.0.1 -keyout "$R/tmp/key.pem" -out "$R/tmp/cert.pem" >/dev/null 2>&1
    chmod 600 "$R/tmp/key.pem"
    for scheme in http https; do
        P=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
        tls=(); [ "$scheme" = https ] && tls=(--tls-cert /tmp/cert.pem --tls-key /tmp/key.pem)
        chroot "$R" /usr/bin/spool --dir /var/lib/spool/s serve --listen "127.0.0.1:$P" "${tls[@]}" > "$O/$scheme.out" 2> "$O/$scheme.err" &
        CP=$!
        for _ in $(seq 100); do grep -q listening "$O/$scheme.out" 2>/dev/null && break; sleep 0.1; done
        r=$(curl -s --cacert "$R/tmp/cert.pem" -H 'Content-Type: application/json' --data-binary "{\"movie\":{\"project\":\"oci-$scheme\"}}" "$scheme://127.0.0.1:$P/json2video/done" || true)
        kill "$CP"; wait "$CP" || true
        [ "$r" = "{\"status\":\"accepted\",\"key\":\"oci-$scheme\"}" ] && [ -f "$R/var/lib/spool/s/new/oci-$scheme" ] \
            && ok "in a chroot of the image: a webhook over $scheme stored" || { cat "$O/$scheme.err"; bad "image over $scheme: $r"; }
    done
    umount "$R/dev/null" "$R/proc"; trap - EXIT
    rm -rf "$O"
fi

echo "== completions and man pages"
bash -c 'source <('"$BIN"' completion bash)
COMP_WORDS=(spool se); COMP_CWORD=1; _spool; [ "${COMPREPLY[*]}" = serve ] || { echo "spool se -> ${COMPREPLY[*]}"; exit 1; }
COMP_WORDS=(spool consume --con); COMP_CWORD=2; _spool; [[ " ${COMPREPLY[*]} " == *" --concurrency "* ]] || { echo "--con -> ${COMPREPLY[*]}"; exit 1; }' \
    && ok "bash completes 'spool se' to serve and 'spool consume --con' to --concurrency" || bad "bash completion"
# fish: its own completion engine answers `complete -C`, filtered by what was typed.
if command -v fish >/dev/null 2>&1; then
    got=$(fish -c "$BIN completion fish | source; complete -C 'spool se'; echo SEP; complete -C 'spool consume --con'; echo SEP; complete -C 'spool serve --log-format '" 2>&1)
    echo "$got" | awk -F'\t' 'BEGIN{s=0} /^SEP$/{s++; next} {print s" "$1}' > /tmp/fish-completions.txt
    grep -qx "0 serve" /tmp/fish-completions.txt && grep -qx "1 --concurrency" /tmp/fish-completions.txt \
        && grep -qx "2 json" /tmp/fish-completions.txt && grep -qx "2 logfmt" /tmp/fish-completions.txt \
        && ok "fish completes 'spool se' to serve, '--con' to --concurrency, --log-format to json and logfmt" || bad "fish completion: $got"
else
    echo "SKIPPED fish completion: fish is not installed"
fi
# zsh: the script registers _spool through bashcompinit; zsh filters the candidates itself, so the check is that
# they contain the right ones (called the way bashcompinit calls it, in sh emulation).
if command -v zsh >/dev/null 2>&1; then
    got=$(zsh -c "autoload -U +X compinit && compinit -u; source <($BIN completion zsh); complete -p spool
        t() { emulate -L sh; setopt kshglob noshglob braceexpand; COMP_WORDS=(\$@); COMP_CWORD=\$((\${#COMP_WORDS[@]} - 1)); _spool; print -r -- \"\$1 \$2: \${COMPREPLY[*]}\"; }
        t spool se; t spool consume --con" 2>&1)
    echo "$got" | grep -qx "complete -F _spool spool" && echo "$got" | grep "^spool se: " | grep -qw serve \
        && echo "$got" | grep "^spool consume: " | grep -qw -- --concurrency && ok "zsh registers _spool (bashcompinit) and offers serve and --concurrency" \
        || bad "zsh completion: $got"
else
    echo "SKIPPED zsh completion: zsh is not installed"
fi
pages=0
for c in "" $("$BIN" --help | sed -n '/^commands:/,/^$/p' | awk 'NR>1 && NF {print $1}'); do
    warn=$("$BIN" man $c | groff -ww -man -Tutf8 2>&1 >/dev/null || true)
    [ -z "$warn" ] || bad "man ${c:-spool}: $warn"
    pages=$((pages + 1))
done
ok "$pages man pages render with groff -ww without a warning"
[ $fail -eq 0 ] && echo "packaging: all checks passed" || echo "packaging: FAILED"
exit $fail
