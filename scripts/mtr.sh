#!/usr/bin/env bash
# Runs the plugin's mariadb-test-run (mtr) suite, mysql-test/, against the installed MariaDB
# with target/debug/libmysql_gcs.so, and a real target/debug/gcsd for the test that needs one
# (see mysql-test/README.md).
#
#   scripts/mtr.sh                 # the whole suite
#   scripts/mtr.sh install gcsd    # some tests (names as in mysql-test/t, without .test)
#   scripts/mtr.sh --record NAME   # rewrite mysql-test/r/NAME.result (review the diff!)
#
# Other arguments are passed to mariadb-test-run.pl. Builds nothing: run `cargo build
# --workspace` first. Exits non-zero when a test fails. Needs the mariadb-test package
# (scripts/setup.sh installs it). MTR_PARALLEL (default 2) sets the number of workers;
# MTR_KEEP=1 keeps the temporary directory (logs, vardir) and prints where it is.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
suite_src="$repo/mysql-test"
target=$(realpath -m "${CARGO_TARGET_DIR:-$repo/target}")/debug
mtr_dir=/usr/share/mysql/mysql-test

fail() {
    echo "mtr.sh: $*" >&2
    exit 2
}

[ -f "$mtr_dir/mariadb-test-run.pl" ] ||
    fail "$mtr_dir/mariadb-test-run.pl is missing: install the mariadb-test package (scripts/setup.sh)"
for f in libmysql_gcs.so gcsd; do
    [ -f "$target/$f" ] || fail "$target/$f is missing: run cargo build --workspace"
done
[ -d "$suite_src/t" ] || fail "$suite_src/t is missing"

# mtr splits --suite=<path> on '-', and the repo path may contain one (mysql-test itself
# does): the suite is copied to a dash-free path in a fresh temporary directory. (A copy, not
# a link: mysqltest writes r/NAME.reject next to a failing result. --record results are
# copied back.)
tmp=$(mktemp -d /tmp/gcsmtr.XXXXXXXX)
case "$tmp" in *-*) fail "temporary directory $tmp contains a '-'" ;; esac
cleanup() {
    local rc=$?
    # A gcsd left behind by a failed test (the tests stop theirs when they pass).
    local pidfile pid
    for pidfile in "$tmp"/var/run/gcsd.*.pid "$tmp"/var/*/run/gcsd.*.pid; do
        [ -f "$pidfile" ] || continue
        pid=$(cat "$pidfile")
        [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null || true
    done
    if [ "${MTR_KEEP:-0}" = 1 ]; then
        echo "mtr.sh: kept $tmp" >&2
    else
        rm -rf "$tmp"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
cp -R "$suite_src" "$tmp/gcs"
rm -f "$tmp"/gcs/r/*.reject
record=0
for arg in "$@"; do
    [ "$arg" = --record ] && record=1
done

# The plugin directory holds only the library, so a stale copy elsewhere is never loaded.
mkdir "$tmp/plugin"
ln -s "$target/libmysql_gcs.so" "$tmp/plugin/libmysql_gcs.so"

export GCSD_BIN="$target/gcsd"

parallel=${MTR_PARALLEL:-2}
cd "$mtr_dir"
set +e
perl mariadb-test-run.pl \
    --vardir="$tmp/var" \
    --suite="$tmp/gcs" \
    --mysqld=--plugin-dir="$tmp/plugin" \
    --parallel="$parallel" \
    --force --retry=0 --max-test-fail=0 \
    --testcase-timeout=2 --suite-timeout=10 \
    "$@"
rc=$?
set -e
if [ "$record" = 1 ]; then
    for f in "$tmp"/gcs/r/*.result; do
        [ -f "$f" ] || continue
        dest="$suite_src/r/$(basename "$f")"
        if ! cmp -s "$f" "$dest"; then
            cp "$f" "$dest"
            echo "mtr.sh: recorded mysql-test/r/$(basename "$f")"
        fi
    done
fi
exit "$rc"
