#!/usr/bin/env bash
# Builds every release artefact of spool into dist/ (docs/operations.md, "Installing"):
#   dist/spool_VERSION_ARCH.deb            the binary, systemd units, man pages, completions, an example configuration,
#                                          the spool system user (sysusers.d) and /var/lib/spool
#   dist/spool-VERSION-linux-ARCH.tar.gz   the same files in a tree, for hosts without dpkg
#   dist/spool-VERSION-oci.tar             an OCI image built from scratch with umoci (no base image downloaded):
#                                          the binary, the shared libraries it needs (libssl included), CA certificates,
#                                          a non-root user, /var/lib/spool as a volume, `serve` as the default command
# Needs the Swift toolchain, dpkg-deb, gzip; umoci for the image (skipped, loudly, without it). Run from anywhere.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
ROOT=$(pwd)
VERSION=$(sed -n 's/^    public static let version = "\(.*\)"$/\1/p' Sources/SpoolCLI/CLI.swift)
[ -n "$VERSION" ] || { echo "cannot read the version from Sources/SpoolCLI/CLI.swift" >&2; exit 1; }
COMMIT=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
ARCH=$(dpkg --print-architecture 2>/dev/null || uname -m)
DIST="$ROOT/dist"
STAGE="$DIST/stage"
rm -rf "$DIST"; mkdir -p "$STAGE"

echo "== build spool $VERSION ($COMMIT) for $ARCH"
swift build -c release --static-swift-stdlib --product spool -Xcc "-DSPOOL_COMMIT=\"$COMMIT\"" 2>&1 | tail -n 2
BIN="$ROOT/.build/release/spool"
"$BIN" --version | grep -q "commit $COMMIT" || { echo "the binary does not carry commit $COMMIT" >&2; exit 1; }

# The file tree shared by the .deb and the tarball.
T="$STAGE/root"
install -D -m 0755 "$BIN" "$T/usr/bin/spool"
strip --strip-unneeded "$T/usr/bin/spool"
for unit in Packaging/systemd/*.service Packaging/systemd/*.socket; do
    # `#include hardening.conf` is replaced by the shared sandboxing lines, so every unit carries the same ones.
    awk -v inc=Packaging/systemd/hardening.conf '/^#include hardening.conf$/ { while ((getline l < inc) > 0) print l; close(inc); next } { print }' \
        "$unit" > "$STAGE/unit"
    install -D -m 0644 "$STAGE/unit" "$T/lib/systemd/system/$(basename "$unit")"
done
rm -f "$STAGE/unit"
install -D -m 0644 Packaging/sysusers.conf "$T/usr/lib/sysusers.d/spool.conf"
install -D -m 0644 Packaging/tmpfiles.conf "$T/usr/lib/tmpfiles.d/spool.conf"
install -D -m 0644 Packaging/spool.toml "$T/etc/spool/spool.toml"
install -D -m 0644 Packaging/spool.toml "$T/usr/share/doc/spool/examples/spool.toml"
install -D -m 0644 Packaging/debian/copyright "$T/usr/share/doc/spool/copyright"
mkdir -p "$T/usr/share/man/man1"
"$BIN" man | gzip -9n > "$T/usr/share/man/man1/spool.1.gz"
for c in $("$BIN" --help | sed -n '/^commands:/,/^$/p' | awk 'NR>1 && NF {print $1}'); do
    "$BIN" man "$c" | gzip -9n > "$T/usr/share/man/man1/spool-$c.1.gz"
done
install -d "$T/usr/share/bash-completion/completions" "$T/usr/share/zsh/vendor-completions" "$T/usr/share/fish/vendor_completions.d"
"$BIN" completion bash > "$T/usr/share/bash-completion/completions/spool"
"$BIN" completion zsh > "$T/usr/share/zsh/vendor-completions/_spool"
"$BIN" completion fish > "$T/usr/share/fish/vendor_completions.d/spool.fish"
chmod 0644 "$T"/usr/share/*/completions/spool "$T"/usr/share/zsh/vendor-completions/_spool "$T"/usr/share/fish/vendor_completions.d/spool.fish
{
    echo "spool ($VERSION) unstable; urgency=medium"; echo
    echo "  * Release $VERSION, built from commit $COMMIT."; echo
    echo " -- spool developers <spool@lists.example.org>  $(date -R -d @"$(git log -1 --format=%ct 2>/dev/null || date +%s)")"
} | gzip -9n > "$T/usr/share/doc/spool/changelog.gz"

echo "== deb"
D="$STAGE/deb"
cp -a "$T" "$D"
mkdir -p "$D/DEBIAN"
# glibc is the only dynamic dependency (the README says so; ldd of this binary is checked in Packaging/test.sh).
GLIBC=$(objdump -T "$BIN" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -n 1)
LIBS=$(ldd "$BIN" | awk '{print $1}' | grep -v -E '^(linux-vdso|/lib64/ld-linux)' | sort -u | tr '\n' ' ')
DEPENDS="libc6 (>= $GLIBC)"
case "$LIBS" in *libstdc++*) DEPENDS="$DEPENDS, libstdc++6";; esac
case "$LIBS" in *libgcc_s*) DEPENDS="$DEPENDS, libgcc-s1";; esac
SIZE=$(du -sk --exclude=DEBIAN "$D" | cut -f1)
sed -e "s/@VERSION@/$VERSION/" -e "s/@ARCH@/$ARCH/" -e "s/@SIZE@/$SIZE/" -e "s/@DEPENDS@/$DEPENDS/" Packaging/debian/control.in > "$D/DEBIAN/control"
echo "/etc/spool/spool.toml" > "$D/DEBIAN/conffiles"
install -m 0755 Packaging/debian/postinst Packaging/debian/prerm Packaging/debian/postrm "$D/DEBIAN/"
install -D -m 0644 Packaging/debian/lintian-overrides "$D/usr/share/lintian/overrides/spool"
( cd "$D" && find . -path ./DEBIAN -prune -o -type f -print | sed 's|^\./||' | sort | xargs md5sum > DEBIAN/md5sums )
find "$D" -type d -exec chmod 0755 {} +
dpkg-deb --root-owner-group -Zxz --build "$D" "$DIST/spool_${VERSION}_${ARCH}.deb" >/dev/null
echo "dist/spool_${VERSION}_${ARCH}.deb (Depends: $DEPENDS)"

echo "== tarball"
TAR_ARCH=$(uname -m)
mkdir -p "$STAGE/tar"
cp -a "$T" "$STAGE/tar/spool-$VERSION"
tar --owner=0 --group=0 --sort=name -C "$STAGE/tar" -czf "$DIST/spool-$VERSION-linux-$TAR_ARCH.tar.gz" "spool-$VERSION"
echo "dist/spool-$VERSION-linux-$TAR_ARCH.tar.gz"

echo "== oci image"
if ! command -v umoci >/dev/null 2>&1; then
    echo "**** umoci is not installed: no OCI image (apt-get install umoci) ****"
else
    L="$STAGE/oci"; B="$STAGE/bundle"
    umoci init --layout "$L"
    umoci new --image "$L:$VERSION"
    umoci unpack --image "$L:$VERSION" "$B" >/dev/null
    R="$B/rootfs"
    install -D -m 0755 "$T/usr/bin/spool" "$R/usr/bin/spool"
    # The shared libraries the binary needs, and OpenSSL 3 (loaded with dlopen for TLS and Ed25519), with their loader.
    for lib in $(ldd "$BIN" | awk '/=>/ {print $3} /ld-linux/ {print $1}') \
               $(ldconfig -p | awk '/libssl.so.3 |libcrypto.so.3 / && /x86-64|aarch64|\(libc6\)/ {print $NF}' | sort -u); do
        [ -e "$lib" ] || continue
        install -D -m 0644 "$(readlink -f "$lib")" "$R$lib"
    done
    chmod 0755 "$R"/lib*/ld-linux* 2>/dev/null || true
    mkdir -p "$R/etc/ssl/certs" "$R/tmp" "$R/var/lib/spool" "$R/proc" "$R/dev" "$R/sys"
    chmod 1777 "$R/tmp"
    cp /etc/ssl/certs/ca-certificates.crt "$R/etc/ssl/certs/ca-certificates.crt"
    printf 'root:x:0:0:root:/root:/usr/sbin/nologin\nspool:x:65532:65532:spool:/var/lib/spool:/usr/sbin/nologin\n' > "$R/etc/passwd"
    printf 'root:x:0:\nspool:x:65532:\n' > "$R/etc/group"
    printf '/lib/%s-linux-gnu\n/usr/lib/%s-linux-gnu\n' "$(uname -m)" "$(uname -m)" > "$R/etc/ld.so.conf"
    ldconfig -r "$R"
    chown 65532:65532 "$R/var/lib/spool"; chmod 0700 "$R/var/lib/spool"
    umoci repack --image "$L:$VERSION" "$B"
    umoci config --image "$L:$VERSION" --author "spool developers" \
        --config.user 65532:65532 --config.workingdir /var/lib/spool --config.env SPOOL_DIR=/var/lib/spool \
        --config.entrypoint /usr/bin/spool --config.cmd serve --config.cmd --listen --config.cmd 0.0.0.0:8080 \
        --config.volume /var/lib/spool --config.exposedports 8080/tcp \
        --config.label "org.opencontainers.image.version=$VERSION" --config.label "org.opencontainers.image.revision=$COMMIT"
    umoci gc --layout "$L"
    tar --owner=0 --group=0 --sort=name -C "$L" -cf "$DIST/spool-$VERSION-oci.tar" .
    echo "dist/spool-$VERSION-oci.tar"
fi
rm -rf "$STAGE"
ls -l "$DIST"
