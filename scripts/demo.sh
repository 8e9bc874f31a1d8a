#!/usr/bin/env bash
# The main job: set up, build, start a local cluster on loopback (three gcsd members, three
# MariaDB servers with the plugin, each announcing itself to its own gcsd) and show
# INFORMATION_SCHEMA.ISIS2IS. The cluster keeps running until `scripts/demo.sh stop`.
set -euo pipefail
cd "$(dirname "$0")/.."
demo=${GCS_DEMO_DIR:-/tmp/mysql-gcs-demo}

stop() {
  for pidfile in "$demo"/*/pid; do
    [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
  done
  for pidfile in "$demo"/*/pid; do
    [ -f "$pidfile" ] || continue
    for _ in $(seq 100); do kill -0 "$(cat "$pidfile")" 2>/dev/null || break; sleep 0.1; done
  done
  rm -rf "$demo"
}

if [ "${1:-start}" = stop ]; then stop; echo "demo stopped"; exit 0; fi

scripts/setup.sh
cargo build --release --workspace --locked
stop
mkdir -p "$demo/plugin"
cp target/release/libmysql_gcs.so "$demo/plugin/"

start_gcsd() { # id [join-address]
  local id=$1 dir="$demo/gcsd$1"
  mkdir -p "$dir"
  ./target/release/gcsd --node-id "$id" --data-dir "$dir/data" \
    --plugin-listen "127.0.0.1:220$id" --group-listen "127.0.0.1:230$id" \
    --admin-listen "127.0.0.1:228$id" ${2:+--join "$2"} >"$dir/log" 2>&1 &
  echo $! >"$dir/pid"
}
start_mariadb() { # id: port 330<id>, its plugin talks to gcsd <id>
  local id=$1 dir="$demo/mariadb$1"
  mkdir -p "$dir"
  mariadb-install-db --no-defaults --datadir="$dir/data" --user=root \
    --auth-root-authentication-method=socket --skip-test-db >"$dir/install.log" 2>&1
  mariadbd --no-defaults --user=root --datadir="$dir/data" --socket="$dir/sock" \
    --port="330$id" --bind-address=127.0.0.1 --skip-log-bin --innodb-buffer-pool-size=32M \
    --plugin-dir="$demo/plugin" --plugin-load-add=libmysql_gcs.so \
    --isis2d-daemon-port="220$id" --isis2d-mysql-host=127.0.0.1 --isis2d-mysql-role="$2" \
    --log-error="$dir/error.log" --pid-file="$dir/mariadbd.pid" >/dev/null 2>&1 &
  echo $! >"$dir/pid"
}

echo "== starting gcsd 1-3 (a group of three) and MariaDB 1-3 (ports 3301-3303)"
start_gcsd 1
sleep 0.5
start_gcsd 2 127.0.0.1:2301
start_gcsd 3 127.0.0.1:2301
start_mariadb 1 master
start_mariadb 2 slave
start_mariadb 3 slave

sql() { local id=$1 q=$2; shift 2; mariadb --no-defaults -S "$demo/mariadb$id/sock" -uroot "$@" -e "$q"; }
for id in 1 2 3; do
  for _ in $(seq 150); do sql "$id" "SELECT 1" >/dev/null 2>&1 && break; sleep 0.2; done
done
# Every server lists all three once the heartbeats have gone round (about a second).
for _ in $(seq 50); do
  [ "$(sql 3 "SELECT COUNT(*) FROM INFORMATION_SCHEMA.ISIS2IS WHERE ERRNO = 0 AND MYSQL_STATUS = 'on'" -N 2>/dev/null)" = 3 ] && break
  sleep 0.2
done

echo
echo "== SELECT * FROM INFORMATION_SCHEMA.ISIS2IS on MariaDB 3"
sql 3 "SELECT * FROM INFORMATION_SCHEMA.ISIS2IS"
echo
echo "== SHOW STATUS LIKE 'Isis2d%' on MariaDB 1"
sql 1 "SHOW STATUS LIKE 'Isis2d%'"
echo
echo "== the group (gcsctl members)"
./target/release/gcsctl --gcsd 127.0.0.1:2281 members
echo
echo "Try: mariadb -S $demo/mariadb1/sock -uroot -e 'SELECT * FROM INFORMATION_SCHEMA.ISIS2IS'"
echo "Logs: $demo/*/log, $demo/*/error.log   Stop: scripts/demo.sh stop"
