#!/usr/bin/env bash
# Builds the local Debian 12 base image mysql-gcs-base:bookworm without any registry: a
# debootstrapped root (from the Debian mirror this host's apt uses) with what the project's
# containers need, MariaDB included, imported with `docker import`. Idempotent: an existing
# image is kept (MYSQL_GCS_REBUILD_BASE=1 rebuilds it).
#
# With registry access the same thing is `FROM debian:bookworm-slim` plus
# `apt-get install mariadb-server mariadb-client adduser procps ca-certificates`.
set -euo pipefail
image=mysql-gcs-base:bookworm

if [ "${MYSQL_GCS_REBUILD_BASE:-0}" != 1 ] && docker image inspect "$image" >/dev/null 2>&1; then
    echo "base-image: $image is there"
    exit 0
fi
command -v debootstrap >/dev/null || {
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
}
mirror=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
[ -n "$mirror" ] || mirror=$(awk '/^deb / { print $2; exit }' /etc/apt/sources.list)
[ -n "$mirror" ] || { echo "base-image: no Debian mirror in this host's apt sources" >&2; exit 1; }

root=$(mktemp -d /var/tmp/mysql-gcs-root.XXXXXX)
trap 'rm -rf "$root"' EXIT
started=$(date +%s)
echo "base-image: debootstrap bookworm from the host's mirror into $root"
debootstrap --variant=minbase \
    --include=mariadb-server,mariadb-client,adduser,procps,ca-certificates \
    bookworm "$root" "$mirror" >"$root.log" 2>&1 || {
    tail -20 "$root.log" >&2
    exit 1
}
rm -f "$root.log"
# No daemon starts inside the image build; the caches go.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
tar -C "$root" -c . | docker import -c 'CMD ["bash"]' - "$image" >/dev/null
echo "base-image: $image built in $(($(date +%s) - started)) s ($(docker image inspect -f '{{.Size}}' "$image" | numfmt --to=iec))"
