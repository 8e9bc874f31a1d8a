#!/usr/bin/env bash
# Builds the local Debian 12 base image mysql-gcs-base:bookworm without any registry: a
# debootstrapped root (from the Debian mirrors this host's apt uses) with what the project's
# containers need, MariaDB and HAProxy included, imported with `docker import`.
#
# Its MariaDB is exactly the version the plugin package was built against (the plugin's
# interface is tied to it): the version target/debian/mariadb-plugin-gcs_*.deb depends on, else
# this host's mariadb-server. debootstrap installs the point release of bookworm; when that is
# not the one, the root gets this host's apt sources (bookworm-security among them) and installs
# the exact version. Idempotent: an image whose label names that version is kept
# (MYSQL_GCS_REBUILD_BASE=1 rebuilds it).
#
# With registry access the same thing is `FROM debian:bookworm-slim` plus
# `apt-get install mariadb-server=<version> mariadb-client=<version> haproxy adduser procps
# ca-certificates` (README.md, "A three-host cluster in Docker").
set -euo pipefail
cd "$(dirname "$0")/.."
image=mysql-gcs-base:bookworm

want=
plugin_deb=$(find target/debian -maxdepth 1 -name 'mariadb-plugin-gcs_*.deb' 2>/dev/null | head -n1)
if [ -n "$plugin_deb" ]; then
    want=$(dpkg-deb -f "$plugin_deb" Depends | sed -n 's/.*mariadb-server (= \([^)]*\)).*/\1/p')
fi
[ -n "$want" ] || want=$(dpkg-query -W -f='${Version}' mariadb-server 2>/dev/null || true)
[ -n "$want" ] || { echo "base-image: no MariaDB version to build for (build the packages or run scripts/setup.sh first)" >&2; exit 1; }

if [ "${MYSQL_GCS_REBUILD_BASE:-0}" != 1 ] &&
    [ "$(docker image inspect -f '{{ index .Config.Labels "mysql-gcs.mariadb" }}' "$image" 2>/dev/null)" = "$want" ]; then
    echo "base-image: $image (MariaDB $want) is there"
    exit 0
fi
command -v debootstrap >/dev/null || {
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
}
mirror=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
[ -n "$mirror" ] || mirror=$(awk '/^deb / { print $2; exit }' /etc/apt/sources.list)
[ -n "$mirror" ] || { echo "base-image: no Debian mirror in this host's apt sources" >&2; exit 1; }

root=$(mktemp -d /var/tmp/mysql-gcs-root.XXXXXX)
trap 'rm -rf "$root" "$root.log"' EXIT
started=$(date +%s)
echo "base-image: debootstrap bookworm from the host's mirror into $root (MariaDB $want)"
debootstrap --variant=minbase \
    --include=mariadb-server,mariadb-client,haproxy,adduser,procps,ca-certificates \
    bookworm "$root" "$mirror" >"$root.log" 2>&1 || {
    tail -20 "$root.log" >&2
    exit 1
}
have=$(chroot "$root" dpkg-query -W -f='${Version}' mariadb-server)
if [ "$have" != "$want" ]; then
    echo "base-image: bookworm has MariaDB $have; installing $want from this host's apt sources"
    cp /etc/apt/sources.list.d/*.sources "$root/etc/apt/sources.list.d/" 2>/dev/null || true
    [ -f /etc/apt/sources.list ] && cp /etc/apt/sources.list "$root/etc/apt/sources.list"
    # No service may start inside the root.
    printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
    chmod 0755 "$root/usr/sbin/policy-rc.d"
    if ! { chroot "$root" apt-get update -qq &&
        chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "mariadb-server=$want" "mariadb-client=$want" "mariadb-server-core=$want" \
            "mariadb-client-core=$want" "mariadb-common=$want" "libmariadb3=$want"; } >>"$root.log" 2>&1; then
        tail -20 "$root.log" >&2
        echo "base-image: cannot install MariaDB $want into the image (is it in this host's apt sources?)" >&2
        exit 1
    fi
    rm -f "$root/usr/sbin/policy-rc.d"
fi
# The caches go.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/*.bin "$root"/var/lib/apt/lists/*
tar -C "$root" -c . |
    docker import -c 'CMD ["bash"]' -c "LABEL mysql-gcs.mariadb=$want" - "$image" >/dev/null
echo "base-image: $image built in $(($(date +%s) - started)) s ($(docker image inspect -f '{{.Size}}' "$image" | numfmt --to=iec))"
