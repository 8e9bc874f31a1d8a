#!/usr/bin/env bash
# The main job: set up, build, start a local group of three gcsd members on loopback, register
# servers through the plugin port and show the group's view of them.
#   scripts/demo.sh          start (or restart) the demo group and show it
#   scripts/demo.sh stop     stop it and remove its files
set -euo pipefail
cd "$(dirname "$0")/.."
demo=${GCS_DEMO_DIR:-/tmp/mysql-gcs-demo}

stop() {
  for pidfile in "$demo"/gcsd*/pid; do
    [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
  done
  sleep 0.5
  rm -rf "$demo"
}

if [ "${1:-start}" = stop ]; then stop; echo "demo stopped"; exit 0; fi

scripts/setup.sh
cargo build --release --workspace --locked
stop
mkdir -p "$demo"

start_member() { # id [join-address]
  local id=$1 dir="$demo/gcsd$1"
  mkdir -p "$dir"
  ./target/release/gcsd --node-id "$id" --data-dir "$dir/data" \
    --plugin-listen "127.0.0.1:220$id" --group-listen "127.0.0.1:230$id" \
    --admin-listen "127.0.0.1:228$id" ${2:+--join "$2"} >"$dir/log" 2>&1 &
  echo $! >"$dir/pid"
}
start_member 1
sleep 0.5
start_member 2 127.0.0.1:2301
start_member 3 127.0.0.1:2301

gcsctl() { ./target/release/gcsctl --gcsd "127.0.0.1:228${GCSCTL_MEMBER:-1}" "$@"; }
for _ in $(seq 50); do
  [ "$(gcsctl members 2>/dev/null | grep -c ' voter ')" = 3 ] && break
  sleep 0.2
done

plugin_cmd() { # port line: one command on the plugin port, as the isis2d plugin sends it
  exec 3<>"/dev/tcp/127.0.0.1/$1"
  printf '%s\n' "$2" >&3
  local reply; read -r reply <&3
  exec 3>&-
  echo "  $2  ->  $reply"
}
echo "== registering servers through each member's plugin port"
plugin_cmd 2201 "join db1.example 3306 on master"
plugin_cmd 2202 "join db2.example 3306 on slave"
plugin_cmd 2203 "join db3.example /run/mysqld/mysqld.sock starting slave"

echo "== the group"
gcsctl status
echo
gcsctl members
echo
echo "== serverlist at member 3 (registered at 1, 2 and 3)"
GCSCTL_MEMBER=3 gcsctl servers
echo
echo "The servers expire after their 3 s TTL unless heartbeats arrive (the isis2d plugin sends them)."
echo "Logs: $demo/gcsd*/log   Stop: scripts/demo.sh stop"
