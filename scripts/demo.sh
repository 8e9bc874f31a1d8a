#!/usr/bin/env bash
# The main job: set up, build, start a local cluster on loopback (three gcsd members, three
# MariaDB servers with the plugin, each announcing itself to its own gcsd; servers 1 and 2 in
# master-master GTID replication as the pool `app`, server 3 a replica of server 1) and show
# INFORMATION_SCHEMA.ISIS2IS; then kill -9 the pool's ACTIVE and show the failover, restart it
# and `gcsctl recover` it. The cluster keeps running until `scripts/demo.sh stop`.
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

# A test machine: setup may install, downgrade and pin MariaDB to the version whose source
# headers it can fetch (and says so). On a server of your own, run scripts/setup.sh without it.
echo "note: MYSQL_GCS_PIN_MARIADB=1: MariaDB may be downgraded and pinned on this machine"
MYSQL_GCS_PIN_MARIADB=1 scripts/setup.sh
cargo build --release --workspace --locked
stop
mkdir -p "$demo/plugin"
cp target/release/libmysql_gcs.so "$demo/plugin/"

printf 'demo-probe-password\n' >"$demo/probe.password"
chmod 600 "$demo/probe.password"
start_gcsd() { # id [join-address]
  local id=$1 dir="$demo/gcsd$1"
  mkdir -p "$dir"
  printf '[probe]\nuser = "gcsd_probe"\npassword_file = "%s"\n' "$demo/probe.password" >"$dir/gcsd.toml"
  ./target/release/gcsd --config "$dir/gcsd.toml" --node-id "$id" --data-dir "$dir/data" \
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
    --port="330$id" --bind-address=127.0.0.1 --innodb-buffer-pool-size=32M \
    --server-id="$id" --log-bin=binlog --log-slave-updates --read-only=ON \
    --auto-increment-increment=3 --auto-increment-offset="$id" \
    --plugin-dir="$demo/plugin" --plugin-load-add=libmysql_gcs.so \
    --isis2d-daemon-port="220$id" --isis2d-mysql-host=127.0.0.1 --isis2d-mysql-role="$2" \
    --log-error="$dir/error.log" --pid-file="$dir/mariadbd.pid" >/dev/null 2>&1 &
  echo $! >"$dir/pid"
  disown
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
# The probe account and the application's table on every server (outside the binary log),
# then replication: 1 <-> 2 (the pool), 3 <- 1.
for id in 1 2 3; do
  sql "$id" "SET SESSION sql_log_bin = 0;
    CREATE USER 'gcsd_probe'@'127.0.0.1' IDENTIFIED BY 'demo-probe-password';
    GRANT SLAVE MONITOR, READ_ONLY ADMIN ON *.* TO 'gcsd_probe'@'127.0.0.1';
    CREATE USER 'repl'@'127.0.0.1' IDENTIFIED BY 'demo-repl';
    GRANT REPLICATION SLAVE ON *.* TO 'repl'@'127.0.0.1';
    CREATE USER 'app'@'127.0.0.1' IDENTIFIED BY 'demo-app';
    CREATE DATABASE app; CREATE TABLE app.t (id INT AUTO_INCREMENT PRIMARY KEY, note TEXT);
    GRANT INSERT, SELECT ON app.* TO 'app'@'127.0.0.1'"
done
replicate() { # replica source
  sql "$1" "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=330$2, MASTER_USER='repl',
    MASTER_PASSWORD='demo-repl', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1; START SLAVE"
}
replicate 2 1
replicate 1 2
replicate 3 1
gcsctl() { ./target/release/gcsctl --gcsd 127.0.0.1:2281 --token-file "$demo/gcsd1/data/admin.token" "$@"; }
app_insert() { mariadb --no-defaults -h127.0.0.1 -P"330$1" -uapp -pdemo-app -e "INSERT INTO app.t (note) VALUES ('$2')" 2>&1; }
is_active() { gcsctl is-active "127.0.0.1:330$1" >/dev/null; }

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
gcsctl members

echo
echo "== gcsctl pool init app --primary 127.0.0.1:3301 --secondary 127.0.0.1:3302"
gcsctl pool init app --primary 127.0.0.1:3301 --secondary 127.0.0.1:3302
for _ in $(seq 50); do
  [ "$(sql 1 "SELECT @@read_only" -N)" = 0 ] && break
  sleep 0.1
done
gcsctl list
echo "app user writes to MariaDB 1: $(app_insert 1 before && echo ok)"
echo "app user writes to MariaDB 2: $(app_insert 2 before || true)"
echo
echo "== SELECT MYSQL_PORT_OR_SOCKET, MYSQL_STATUS, MPP_POOL, MPP_TYPE, MPP_STATE, MPP_STATUS, MPP_EPOCH, MPP_MESSAGE FROM ISIS2IS on MariaDB 3"
verdicts="SELECT MYSQL_PORT_OR_SOCKET, MYSQL_STATUS, MPP_POOL, MPP_TYPE, MPP_STATE, MPP_STATUS, MPP_EPOCH, MPP_MESSAGE FROM INFORMATION_SCHEMA.ISIS2IS"
sql 3 "$verdicts"

echo
echo "== kill -9 of MariaDB 1, the ACTIVE"
kill -9 "$(cat "$demo/mariadb1/pid")"
started=$(date +%s%N)
for _ in $(seq 200); do
  app_insert 2 after >/dev/null && break
  sleep 0.01
done
echo "first write on MariaDB 2 after $(( ($(date +%s%N) - started) / 1000000 )) ms (measured by this shell, mariadb client start-up included)"
gcsctl list
sql 3 "$verdicts"

echo
echo "== MariaDB 1 restarts: FAILED until recovered; then gcsctl recover 127.0.0.1:3301"
start_mariadb 1 master
for _ in $(seq 150); do sql 1 "SELECT 1" >/dev/null 2>&1 && break; sleep 0.2; done
for _ in $(seq 50); do gcsctl report 127.0.0.1:3301 | grep -q "reporting recovery" && break; sleep 0.1; done
gcsctl report 127.0.0.1:3301
gcsctl recover 127.0.0.1:3301
for _ in $(seq 100); do is_active 1 && [ "$(sql 1 "SELECT @@read_only" -N)" = 0 ] && break; sleep 0.1; done
gcsctl list
echo
echo "== gcsctl history app"
gcsctl history app
echo
echo "== the same history in SQL, on MariaDB 2: INFORMATION_SCHEMA.ISIS2IS_HISTORY"
sql 2 "SELECT SEQ, TIME, MYSQL_PORT_OR_SOCKET, FROM_STATE, TO_STATE, MPP_EPOCH, REASON FROM INFORMATION_SCHEMA.ISIS2IS_HISTORY WHERE MPP_POOL = 'app' ORDER BY SEQ"
echo
echo "Try: mariadb -S $demo/mariadb1/sock -uroot -e 'SELECT * FROM INFORMATION_SCHEMA.ISIS2IS'"
echo "     ./target/release/gcsctl --gcsd 127.0.0.1:2281 --token-file $demo/gcsd1/data/admin.token list"
echo "Logs: $demo/*/log, $demo/*/error.log   Stop: scripts/demo.sh stop"
