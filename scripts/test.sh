#!/usr/bin/env bash
# Sets the machine up and runs every check and test: formatting, lints, the plugin's symbols,
# unit, property and integration tests (real gcsd and mariadbd processes on loopback and in
# network namespaces), the mariadb-test-run suite, the Debian packages in a container, and a
# three-host cluster in containers.
set -euo pipefail
cd "$(dirname "$0")/.."

# A test machine: setup may install, downgrade and pin MariaDB to the version whose source
# headers it can fetch (and says so). On a server of your own, run scripts/setup.sh without it.
echo "note: MYSQL_GCS_PIN_MARIADB=1: MariaDB may be downgraded and pinned on this machine"
MYSQL_GCS_PIN_MARIADB=1 scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo build --workspace --locked
scripts/check-symbols.sh target/debug/libmysql_gcs.so
cargo test --workspace --locked
# The group and partition suites once more with every member on mutual TLS (issue 10).
GCSD_TEST_TLS=1 cargo test -p gcsd --locked --test group --test partition
scripts/mtr.sh
# The Debian packages: build, lintian, then install/upgrade/remove/purge in a bare Debian 12
# container built here (issue 11).
scripts/package.sh
scripts/package-test.sh
# Three hosts in containers built from those packages, with HAProxy: the cluster forms, and
# the ACTIVE's host killed, paused and cut off fails over (docker/test.sh).
docker/test.sh
# Last: the crash-point tests need a gcsd built with its fault-injection feature (it replaces
# target/debug/gcsd; the next plain build puts the normal one back).
cargo clippy -p gcsd --all-targets --features fault-injection --locked -- -D warnings
cargo test -p gcsd --features fault-injection --locked --test faults -- killed_at joiner_killed
