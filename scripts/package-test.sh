#!/usr/bin/env bash
# Checks the packages of scripts/package.sh: `systemd-analyze verify` on the unit, then
# install, upgrade, remove and purge on a bare Debian 12 container built locally
# (scripts/base-image.sh; no registry), with gcsd started through its unit's command line and
# the packaged MariaDB showing ISIS2IS (packaging/install-test.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
ls target/debian/mysql-gcs_*.deb target/debian/mariadb-plugin-gcs_*.deb >/dev/null ||
    { echo "package-test: run scripts/package.sh first" >&2; exit 1; }

# The unit as installed, checked against the binary just built (verify wants ExecStart to exist).
unit=$(mktemp -d)
trap 'rm -rf "$unit"; docker rm -f "$name" >/dev/null 2>&1 || true' EXIT
sed "s|/usr/bin/gcsd|$repo/target/release/gcsd|" packaging/gcsd.service >"$unit/gcsd.service"
out=$(systemd-analyze verify "$unit/gcsd.service" 2>&1 || true)
if [ -n "$out" ]; then
    echo "package-test: systemd-analyze verify:" >&2
    echo "$out" >&2
    exit 1
fi
echo "package-test: systemd-analyze verify: clean"

scripts/base-image.sh
name=mysql-gcs-pkgtest-$$
docker run -d --name "$name" --network none \
    -v "$repo/target/debian:/debs:ro" \
    -v "$repo/packaging/install-test.sh:/install-test.sh:ro" \
    mysql-gcs-base:bookworm sleep infinity >/dev/null
docker exec "$name" bash /install-test.sh
