#!/usr/bin/env bash
# Benchmarks of libmysql_gcs.so (issue 3), on loopback, as root:
#   1. INFORMATION_SCHEMA.ISIS2IS against INFORMATION_SCHEMA.ENGINES: mariadb-slap throughput of
#      `SELECT * FROM ...`, same server, same client, same concurrency, alternated, with 3 and
#      with 30 servers registered in the group's serverlist;
#   2. server overhead: sysbench oltp_read_only QPS of one datadir served by mariadbd without the
#      plugins and with them (isis2d connected to a live gcsd), alternated, restarting between;
#      also mariadbd's CPU time per query, and the CPU time of the isis2d thread itself (found
#      by its wait channel, measured with schedstat), which noise on a shared machine cannot hide;
#   3. the same overhead in instructions, which the machine's load cannot blur: callgrind counts
#      mariadbd's instructions per sysbench transaction without and with the plugins, split
#      into the client threads (the query path), the isis2d thread, and the rest;
#   4. health during all that: isis2d reconnects, and how fast gcsd answered the fake servers'
#      heartbeats (a stalled gcsd shows up here);
#   5. instructions per SELECT: callgrind counts the client thread's instructions per
#      `SELECT * FROM INFORMATION_SCHEMA.<table>` with 30 servers listed, for ISIS2IS, ENGINES
#      and CHARACTER_SETS: part 1's ratio, without the machine's noise.
#
# Starts everything it needs (one gcsd, one mariadbd, fake servers kept alive with heartbeats)
# in a scratch directory on its own ports, prints the machine, the versions, the commands and
# the figures, and stops everything it started on exit, failure or Ctrl-C.
#
# Environment (all optional):
#   BENCH_PORT_BASE=24200   gcsd plugin port; +80 admin, +100 group, +106 mariadbd
#   BENCH_SLAP_REPS=5       repetitions per (query, list size); each is one ENGINES and one
#                           ISIS2IS run, in ABBA order
#   BENCH_SLAP_QUERIES=150000 queries per mariadb-slap run (all clients together)
#   BENCH_SLAP_CONCURRENCY=8
#   BENCH_SB_PAIRS=8        sysbench (without, with) pairs; 0 skips part 2
#   BENCH_SB_TIME=10        seconds per sysbench run (each after a 3 s unrecorded warm-up);
#                           many short pairs rather than a few long ones, as the noise on a
#                           shared machine comes in bursts of seconds
#   BENCH_IDLE=10           seconds of idle mariadbd CPU measured in each mode of the first pair
#   BENCH_SB_THREADS=4  BENCH_SB_TABLES=4  BENCH_SB_TABLE_SIZE=10000
#   BENCH_CG_EVENTS=1000    sysbench transactions counted under callgrind (part 3); 0 skips it
#   BENCH_CG_SELECTS=1000   SELECTs per table counted under callgrind (part 5); 0 skips it
#   BENCH_SKIP_BUILD=1      use target/release as it is
#   BENCH_KEEP=1            keep the scratch directory (it is kept anyway on failure)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

port_base=${BENCH_PORT_BASE:-24200}
plugin_port=$port_base
admin_port=$((port_base + 80))
group_port=$((port_base + 100))
mysql_port=$((port_base + 106))
slap_reps=${BENCH_SLAP_REPS:-5}
slap_queries=${BENCH_SLAP_QUERIES:-150000}
slap_conc=${BENCH_SLAP_CONCURRENCY:-8}
sb_pairs=${BENCH_SB_PAIRS:-8}
sb_time=${BENCH_SB_TIME:-10}
idle_time=${BENCH_IDLE:-10}
sb_threads=${BENCH_SB_THREADS:-4}
sb_tables=${BENCH_SB_TABLES:-4}
sb_table_size=${BENCH_SB_TABLE_SIZE:-10000}
sb_warmup=3
cg_events=${BENCH_CG_EVENTS:-1000}
cg_selects=${BENCH_CG_SELECTS:-1000}
cg_warmup=200

die() { echo "plugin.sh: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (mariadbd runs as root, root logs in over its socket)"
for tool in mariadbd mariadb mariadb-admin mariadb-install-db mariadb-slap sysbench curl valgrind callgrind_control; do
  command -v "$tool" >/dev/null || die "$tool not found (scripts/setup.sh installs everything this needs)"
done

# ---- scratch directory and cleanup ----

work=$(mktemp -d /tmp/mysql-gcs-bench.XXXXXX)
sock=$work/mysql.sock
gcsd_pid=""
mysqld_pid=""
helper_pids=()

stop_pid() { # pid seconds: SIGTERM, wait up to seconds, then SIGKILL
  local pid=$1 secs=$2 i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < secs * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  echo "plugin.sh: pid $pid did not stop within ${secs}s; SIGKILL" >&2
  kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  for pid in "${helper_pids[@]}"; do stop_pid "$pid" 5; done
  [ -n "$mysqld_pid" ] && stop_pid "$mysqld_pid" 60
  [ -n "$gcsd_pid" ] && stop_pid "$gcsd_pid" 10
  wait 2>/dev/null || true
  if [ "$rc" -ne 0 ] || [ -n "${BENCH_KEEP:-}" ]; then
    echo "plugin.sh: exit $rc; logs and data kept in $work" >&2
  else
    rm -rf "$work"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$plugin_port" "$admin_port" "$group_port" "$mysql_port"; do
  ! port_taken "$p" || die "port $p is in use (set BENCH_PORT_BASE)"
done

# ---- build, and private copies of the binaries (others may rebuild target/ meanwhile) ----

if [ -z "${BENCH_SKIP_BUILD:-}" ]; then
  cargo build --release --workspace 2>&1 | tail -n 1
fi
mkdir -p "$work/plugin" "$work/bin"
cp target/release/libmysql_gcs.so "$work/plugin/"
cp target/release/gcsd "$work/bin/"

median() { # numbers as arguments
  printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {
    if (NR % 2) printf "%.6g", v[(NR + 1) / 2]; else printf "%.6g", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }

# ---- machine, versions, commands ----

echo "== machine"
echo "nproc: $(nproc); CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "memory: $(free -g | awk '/^Mem:/ {print $2}') GB; kernel $(uname -r); $(. /etc/os-release && echo "$PRETTY_NAME")"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== versions"
mariadbd --version
mariadb-slap --version
echo "sysbench $(sysbench --version | awk '{print $2}')"
echo "$(rustc --version); mysql-gcs $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- src include crates 2>/dev/null || echo ' (plus uncommitted changes)')"

mysqld_common=(--no-defaults --user=root --datadir="$work/data" --socket="$sock" --port="$mysql_port"
  --bind-address=127.0.0.1 --plugin-dir="$work/plugin" --log-error="$work/mariadbd.err"
  --pid-file="$work/mariadbd.pid" --skip-log-bin --max-connections=200)
mysqld_plugins=(--plugin-load-add=libmysql_gcs.so --isis2d-daemon-port="$plugin_port")
slap() { # query
  mariadb-slap --no-defaults -S "$sock" -uroot --concurrency="$slap_conc" --iterations=1 \
    --number-of-queries="$slap_queries" --create-schema=slapbench --query="$1"
}
sb_common=(--db-driver=mysql --mysql-socket="$sock" --mysql-user=root --mysql-db=sbtest
  --tables="$sb_tables" --table-size="$sb_table_size")

echo "== commands"
echo "gcsd:      $work/bin/gcsd --node-id 1 --data-dir $work/gcsd --plugin-listen 127.0.0.1:$plugin_port --group-listen 127.0.0.1:$group_port --admin-listen 127.0.0.1:$admin_port"
echo "mariadbd:  mariadbd ${mysqld_common[*]} [${mysqld_plugins[*]}]"
echo "           (a copy of target/release/libmysql_gcs.so is in $work/plugin)"
echo "fake servers: one plugin-port connection per group of fakes: 'join bench-fake-NN 3306 on slave',"
echo "           then 'heartbeat bench-fake-NN 3306 on' for each every 1 s (TTL 3 s), 'leave' at the end"
echo "slap:      mariadb-slap --no-defaults -S $sock -uroot --concurrency=$slap_conc --iterations=1 --number-of-queries=$slap_queries --create-schema=slapbench --query='SELECT * FROM INFORMATION_SCHEMA.<ISIS2IS|ENGINES>'"
echo "           (slapbench is created beforehand: mariadb-slap creates the --create-schema only with --auto-generate-sql or --create)"
echo "sysbench:  sysbench oltp_read_only ${sb_common[*]} prepare  (once)"
echo "           sysbench oltp_read_only ${sb_common[*]} --threads=$sb_threads --time=$sb_warmup run  (warm-up after each start, not recorded)"
echo "           sysbench oltp_read_only ${sb_common[*]} --threads=$sb_threads --time=$sb_time --report-interval=0 run"

# ---- gcsd, mariadbd, fake servers ----

start_gcsd() {
  "$work/bin/gcsd" --node-id 1 --data-dir "$work/gcsd" --plugin-listen "127.0.0.1:$plugin_port" \
    --group-listen "127.0.0.1:$group_port" --admin-listen "127.0.0.1:$admin_port" \
    >"$work/gcsd.log" 2>&1 &
  gcsd_pid=$!
  local i
  for ((i = 0; i < 100; i++)); do
    curl -fsS "http://127.0.0.1:$admin_port/ready" >/dev/null 2>&1 && return 0
    kill -0 "$gcsd_pid" 2>/dev/null || { cat "$work/gcsd.log" >&2; die "gcsd exited at start"; }
    sleep 0.1
  done
  die "gcsd not ready within 10 s (log: $work/gcsd.log)"
}

sql() { mariadb --no-defaults -S "$sock" -uroot -N -B -e "$1"; }

start_mysqld() { # with|without [command prefix...]: mariadbd, run by the prefix if one is given
  local extra=() mode=$1 secs=30
  shift
  [ "$mode" = with ] && extra=("${mysqld_plugins[@]}")
  [ $# -eq 0 ] || secs=300 # under valgrind
  "$@" mariadbd "${mysqld_common[@]}" "${extra[@]}" >/dev/null 2>&1 &
  mysqld_pid=$!
  local i
  for ((i = 0; i < secs * 10; i++)); do
    mariadb-admin --no-defaults -S "$sock" -uroot ping >/dev/null 2>&1 && return 0
    kill -0 "$mysqld_pid" 2>/dev/null || { tail -n 30 "$work/mariadbd.err" >&2; die "mariadbd exited at start"; }
    sleep 0.1
  done
  die "mariadbd did not answer within $secs s (log: $work/mariadbd.err)"
}

stop_mysqld() {
  stop_pid "$mysqld_pid" 60
  wait "$mysqld_pid" 2>/dev/null || true
  mysqld_pid=""
}

# Registers fakes first..last over one plugin-port connection and heartbeats them every second
# until SIGTERM, then sends `leave` for each. Runs in the background. Each heartbeat's reply
# time (microseconds) goes to heartbeat-us.log: gcsd's responsiveness under the benchmark's load.
# A reply that does not come within 5 s (gcsd stalled) is logged to fakes.log; the helper then
# reconnects and joins its fakes again, as a plugin would.
fake_servers() { # first last
  local first=$1 last=$2 i reply="" stop="" t0 line connected=""
  set +e
  trap - EXIT
  trap 'stop=1' TERM
  exec 4>>"$work/heartbeat-us.log"
  request() { # line: sends it, reads the reply into $reply; fails after 5 s without one
    reply=""
    printf '%s\n' "$1" >&3 2>/dev/null || return 1
    IFS= read -r -t 5 reply <&3 || return 1
    reply=${reply%$'\r'}
  }
  lost() { # why: logs it and drops the connection (a late reply would be out of step)
    echo "${EPOCHREALTIME%???} fake servers $first-$last: $1; reconnecting" >&2
    exec 3>&-
    connected=""
  }
  connect() { # opens the connection and joins every fake (again)
    { exec 3<>"/dev/tcp/127.0.0.1/$plugin_port"; } 2>/dev/null || return 1
    for ((i = first; i <= last; i++)); do
      printf -v line 'join bench-fake-%02d 3306 on slave' "$i"
      if ! request "$line" || [ "$reply" != "0 OK" ]; then
        lost "'$line' answered '${reply:-nothing within 5 s}'"
        return 1
      fi
    done
    connected=1
  }
  connect
  while [ -z "$stop" ]; do
    sleep 1 &
    wait $!
    [ -n "$stop" ] && break
    if [ -z "$connected" ]; then
      connect
      continue
    fi
    for ((i = first; i <= last; i++)); do
      printf -v line 'heartbeat bench-fake-%02d 3306 on' "$i"
      t0=${EPOCHREALTIME/./}
      if ! request "$line"; then
        echo "${t0%??????} $((${EPOCHREALTIME/./} - t0))" >&4
        lost "no reply to '$line' within 5 s"
        break
      fi
      echo "${t0%??????} $((${EPOCHREALTIME/./} - t0))" >&4
      case $reply in
        "0 "*) ;;
        "9 "*)
          printf -v line 'join bench-fake-%02d 3306 on slave' "$i"
          request "$line" || { lost "no reply to '$line' within 5 s"; break; }
          ;;
        *) echo "${EPOCHREALTIME%???} fake servers: '$line' answered '$reply'" >&2 ;;
      esac
    done
  done
  if [ -n "$connected" ]; then
    for ((i = first; i <= last; i++)); do
      printf -v line 'leave bench-fake-%02d 3306' "$i"
      request "$line" || break
    done
  fi
  exit 0
}

add_fakes() { # first last
  fake_servers "$1" "$2" 2>>"$work/fakes.log" &
  helper_pids+=($!)
}

wait_for_list() { # n [seconds]: ISIS2IS shows n healthy rows; else says what it shows and fails
  local i got=""
  for ((i = 0; i < ${2:-10} * 10; i++)); do
    got=$(sql "SELECT COUNT(*) FROM INFORMATION_SCHEMA.ISIS2IS WHERE ERRNO = 0" 2>/dev/null || true)
    [ "$got" = "$1" ] && return 0
    sleep 0.1
  done
  echo "plugin.sh: ISIS2IS shows $got healthy rows, expected $1:" >&2
  sql "SELECT ERRNO, ERROR, COUNT(*) FROM INFORMATION_SCHEMA.ISIS2IS GROUP BY ERRNO, ERROR" >&2 || true
  return 1
}

echo "== setup"
start_gcsd
mariadb-install-db --no-defaults --datadir="$work/data" --user=root \
  --auth-root-authentication-method=socket --skip-test-db >"$work/install-db.log" 2>&1 \
  || die "mariadb-install-db failed (log: $work/install-db.log)"
start_mysqld with
add_fakes 1 2
wait_for_list 3 || die "the serverlist is not as expected"
echo "gcsd (pid $gcsd_pid), mariadbd with the plugins (pid $mysqld_pid), 2 fake servers: ISIS2IS has 3 rows"

# ---- 1. ISIS2IS against ENGINES ----

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
com_select() { sql "SELECT VARIABLE_VALUE FROM INFORMATION_SCHEMA.GLOBAL_STATUS WHERE VARIABLE_NAME = 'COM_SELECT'"; }

# mariadb-slap exits 0 even when its clients cannot connect (they retry once a second and the
# run "takes" 1 s), so each run is checked: no error in its output, and the server's Com_select
# grew by the number of queries (plus this check's own query).
slap_run() { # table: one mariadb-slap run; prints "queries/s mariadbd-CPU-us-per-query"
  local out secs before after m0 m1
  before=$(com_select)
  m0=$(cpu_ticks "$mysqld_pid")
  out=$(slap "SELECT * FROM INFORMATION_SCHEMA.$1" 2>&1) || { echo "$out" >&2; die "mariadb-slap failed"; }
  m1=$(cpu_ticks "$mysqld_pid")
  after=$(com_select)
  ! grep -qi error <<<"$out" || { echo "$out" >&2; die "mariadb-slap reported errors"; }
  [ $((after - before)) -ge "$slap_queries" ] \
    || die "mariadb-slap ran $((after - before)) queries, not $slap_queries"
  secs=$(awk '/Average number of seconds to run all queries/ {print $(NF-1)}' <<<"$out")
  [ -n "$secs" ] || { echo "$out" >&2; die "cannot read mariadb-slap's output"; }
  awk -v n="$slap_queries" -v s="$secs" -v a="$m0" -v b="$m1" -v hz="$hz" \
    'BEGIN { printf "%.0f %.1f", n / s, (b - a) / hz / n * 1e6 }'
}

min_max() { printf '%s\n' "$@" | sort -g | sed -n '1p;$p' | paste -sd-; }

# results[servers/table] = "median-q/s median-ratio-to-ENGINES min-max median-us-CPU-per-query"
declare -A slap_result slap_reconnects
reconnects() { sql "SELECT VARIABLE_VALUE FROM INFORMATION_SCHEMA.GLOBAL_STATUS WHERE VARIABLE_NAME = 'ISIS2D_RECONNECTS'"; }
slap_series() { # servers table...: ENGINES and the tables, in ABBA order, slap_reps times
  local n=$1 rep t order qps cpu line
  shift
  local tables=(ENGINES "$@")
  declare -A q_all=() c_all=() r_all=() this=()
  for t in "${tables[@]}"; do slap_run "$t" >/dev/null; done # warm-up, not recorded
  for ((rep = 1; rep <= slap_reps; rep++)); do
    order=("${tables[@]}")
    ((rep % 2)) || for ((t = 0; t < ${#tables[@]}; t++)); do order[t]=${tables[-1 - t]}; done
    for t in "${order[@]}"; do
      read -r qps cpu <<<"$(slap_run "$t")"
      this[$t]=$qps; q_all[$t]+="$qps "; c_all[$t]+="$cpu "
    done
    line=$(printf '  %2d servers, rep %d: ENGINES %6d q/s' "$n" "$rep" "${this[ENGINES]}")
    for t in "$@"; do
      r_all[$t]+="$(ratio "${this[$t]}" "${this[ENGINES]}") "
      line+=$(printf '  %s %6d q/s (%s)' "$t" "${this[$t]}" "$(ratio "${this[$t]}" "${this[ENGINES]}")")
    done
    echo "$line"
  done
  wait_for_list "$n" 1 || echo "  (the list was not intact after the runs: see the gcsd stalls below)"
  slap_reconnects[$n]=$(reconnects)
  echo "  isis2d reconnects so far (since mariadbd started): ${slap_reconnects[$n]}"
  for t in "${tables[@]}"; do
    # shellcheck disable=SC2086 # the lists are numbers separated by spaces
    slap_result[$n/$t]="$(median ${q_all[$t]}) $(median ${r_all[$t]:-1}) $(min_max ${r_all[$t]:-1}) $(median ${c_all[$t]})"
  done
}

hz=$(getconf CLK_TCK)
sb_reconnects=0
sql "CREATE DATABASE slapbench"
echo "== 1. SELECT * FROM INFORMATION_SCHEMA.ISIS2IS vs ENGINES (mariadb-slap, concurrency $slap_conc, $slap_queries queries per run, ABBA)"
echo "  rows: ENGINES $(sql "SELECT COUNT(*) FROM INFORMATION_SCHEMA.ENGINES"), CHARACTER_SETS $(sql "SELECT COUNT(*) FROM INFORMATION_SCHEMA.CHARACTER_SETS"), USER_PRIVILEGES $(sql "SELECT COUNT(*) FROM INFORMATION_SCHEMA.USER_PRIVILEGES") (the server's own tables, for reference)"
slap_series 3 ISIS2IS
add_fakes 3 29
wait_for_list 30 || die "the serverlist is not as expected"
slap_series 30 ISIS2IS CHARACTER_SETS USER_PRIVILEGES

# ---- 2. sysbench oltp_read_only without / with the plugins ----


# The isis2d thread of mariadbd: the only one that waits in a TCP receive (wchan wait_woken; the
# server's own threads wait in poll or on futexes), found by sampling for 1 s on an idle server.
link_tid() {
  local i t w
  declare -A seen=()
  for ((i = 0; i < 20; i++)); do
    for t in /proc/"$mysqld_pid"/task/*; do
      w=""
      { read -r w <"$t/wchan"; } 2>/dev/null # no newline at the end: read fails but sets w
      [ "$w" = wait_woken ] && seen[${t##*/}]=$((${seen[${t##*/}]:-0} + 1))
    done
    sleep 0.05
  done
  for t in "${!seen[@]}"; do echo "${seen[$t]} $t"; done | sort -rn | awk 'NR == 1 && $1 >= 10 {print $2}'
}

sb_run() { # seconds: prints "QPS queries"
  local out
  out=$(sysbench oltp_read_only "${sb_common[@]}" --threads="$sb_threads" --time="$1" --report-interval=0 run 2>&1) \
    || { echo "$out" >&2; die "sysbench run failed"; }
  ! grep -q 'FATAL' <<<"$out" || { echo "$out" >&2; die "sysbench reported errors"; }
  awk '/queries:/ { gsub(/\(/, "", $3); print $3, $2; exit }' <<<"$out"
}
pct() { # ticks_before ticks_after seconds: % of one core
  awk -v a="$1" -v b="$2" -v hz="$hz" -v t="$3" 'BEGIN { printf "%.2f", (b - a) / hz / t * 100 }'
}

sql "CREATE DATABASE sbtest"
sysbench oltp_read_only "${sb_common[@]}" --threads="$sb_tables" prepare >"$work/sysbench-prepare.log" 2>&1 \
  || { cat "$work/sysbench-prepare.log" >&2; die "sysbench prepare failed"; }
stop_mysqld

if [ "$sb_pairs" -gt 0 ]; then
  echo "== 2. sysbench oltp_read_only without / with the plugins ($sb_threads threads, $sb_tables x $sb_table_size rows, $sb_pairs pairs of ${sb_time} s)"
  echo "  (gcsd and the 29 fake servers stay up in both modes; only mariadbd's options differ)"

  declare -A qps_all cpuq_all idle_pct
  link_ms=()
  pair_ratios=()
  for ((pair = 1; pair <= sb_pairs; pair++)); do
    for mode in without with; do
      start_mysqld "$mode"
      if [ "$mode" = with ]; then
        wait_for_list 30 30 || echo "  (measuring anyway: the plugin's overhead does not depend on the list being whole)"
      fi
      sb_run "$sb_warmup" >/dev/null
      tid=""
      [ "$mode" = with ] && tid=$(link_tid)
      g0=$(cpu_ticks "$gcsd_pid"); m0=$(cpu_ticks "$mysqld_pid")
      # On-CPU nanoseconds of that one thread (schedstat: finer than the 10 ms of stat's ticks).
      [ -n "$tid" ] && read -r l0 _ <"/proc/$mysqld_pid/task/$tid/schedstat"
      read -r qps queries <<<"$(sb_run "$sb_time")"
      g1=$(cpu_ticks "$gcsd_pid"); m1=$(cpu_ticks "$mysqld_pid")
      [ -n "$tid" ] && read -r l1 _ <"/proc/$mysqld_pid/task/$tid/schedstat"
      # mariadbd CPU time per query (user + system, 1/CLK_TCK resolution): less sensitive than
      # QPS to other processes taking the CPU away, though not immune (caches, frequency).
      cpuq=$(awk -v a="$m0" -v b="$m1" -v hz="$hz" -v q="$queries" 'BEGIN { printf "%.2f", (b - a) / hz / q * 1e6 }')
      note=""
      if [ "$mode" = with ]; then
        r=$(reconnects)
        sb_reconnects=$((sb_reconnects + r))
        [ "$r" = 0 ] || note="  isis2d reconnects since start: $r"
        if [ -n "$tid" ]; then
          link_ms+=("$(awk -v a="$l0" -v b="$l1" 'BEGIN { printf "%.2f", (b - a) / 1e6 }')")
          note="  isis2d thread ${link_ms[-1]} ms CPU$note"
        else
          note="  (isis2d thread not identified)$note"
        fi
      fi
      qps_all[$mode]+="$qps "
      cpuq_all[$mode]+="$cpuq "
      printf '  pair %d, %-7s plugins: %9.2f QPS  mariadbd %5.2f us CPU/query (%5.1f %% of one core), gcsd %4.2f %%%s\n' \
        "$pair" "$mode" "$qps" "$cpuq" "$(pct "$m0" "$m1" "$sb_time")" "$(pct "$g0" "$g1" "$sb_time")" "$note"
      if [ "$pair" -eq 1 ] && [ "$idle_time" -gt 0 ]; then
        sleep 2
        m0=$(cpu_ticks "$mysqld_pid"); sleep "$idle_time"; m1=$(cpu_ticks "$mysqld_pid")
        idle_pct[$mode]=$(pct "$m0" "$m1" "$idle_time")
        printf '          %-7s plugins, idle for %d s: mariadbd %s %% of one core\n' "$mode" "$idle_time" "${idle_pct[$mode]}"
      fi
      stop_mysqld
    done
    read -r -a w_list <<<"${qps_all[without]}"
    read -r -a p_list <<<"${qps_all[with]}"
    pair_ratios+=("$(ratio "${p_list[-1]}" "${w_list[-1]}")")
  done
fi

# ---- 3. instructions per transaction (callgrind) ----

# Instruction counts do not depend on what else the machine runs: the same binary given the
# same queries executes the same instructions. mariadbd runs under callgrind, one file per
# thread; after a warm-up the counters are zeroed, one sysbench client runs a fixed, seeded
# sequence of transactions, and the counters are dumped. Threads are told apart by what they
# ran: client connections (do_command), the isis2d link thread (isis2d::link), the rest
# (InnoDB and the server's own background threads). The plugin's heartbeats and list pushes
# are per second, and the server runs 20 or more times slower under callgrind, so the isis2d
# thread's share here is that many times what it is at full speed (see part 2 for that).
declare -A cg_ir
cg_total() { # files...: summed "summary:" counts
  awk '/^(summary|totals):/ { n += $2 } END { printf "%.0f", n }' "$@" /dev/null
}
if [ "$cg_events" -gt 0 ]; then
  echo "== 3. mariadbd instructions per sysbench oltp_read_only transaction, without / with the plugins (callgrind, 1 client, $cg_events transactions, --rand-seed=1)"
  # valgrind knows neither io_uring (InnoDB's asynchronous I/O) nor how to reserve the address
  # space of the buffer pool's default maximum size.
  mysqld_common+=(--innodb-use-native-aio=0 --innodb-buffer-pool-size-max=256M)
  cg_run=(sysbench oltp_read_only "${sb_common[@]}" --threads=1 --time=0 --rand-seed=1 --report-interval=0 run)
  for mode in without with; do
    mkdir -p "$work/callgrind-$mode"
    start_mysqld "$mode" valgrind --tool=callgrind --separate-threads=yes --dump-instr=no \
      --callgrind-out-file="$work/callgrind-$mode/out.%p" --log-file="$work/callgrind-$mode/valgrind.log"
    [ "$mode" = with ] && { wait_for_list 30 60 || echo "  (measuring anyway)"; }
    "${cg_run[@]}" --events="$cg_warmup" >/dev/null 2>&1 || die "sysbench warm-up under callgrind failed"
    callgrind_control -z "$mysqld_pid" >/dev/null
    t0=${EPOCHREALTIME/./}
    out=$("${cg_run[@]}" --events="$cg_events" 2>&1) || { echo "$out" >&2; die "sysbench under callgrind failed"; }
    secs=$(awk -v a="$t0" -v b="${EPOCHREALTIME/./}" 'BEGIN { printf "%.1f", (b - a) / 1e6 }')
    callgrind_control -d measured "$mysqld_pid" >/dev/null
    stop_mysqld
    # The dump's files (one per thread) are those whose header names the "measured" trigger.
    mapfile -t files < <(grep -l '^desc: Trigger: dump measured' "$work/callgrind-$mode"/out.* 2>/dev/null || true)
    [ ${#files[@]} -gt 0 ] || die "no callgrind dump found in $work/callgrind-$mode"
    clients=() link=() rest=()
    for f in "${files[@]}"; do
      if grep -q 'do_command' "$f"; then clients+=("$f")
      elif grep -q 'isis2d::link' "$f"; then link+=("$f")
      else rest+=("$f"); fi
    done
    cg_ir[$mode/clients]=$(cg_total "${clients[@]}")
    cg_ir[$mode/link]=$(cg_total "${link[@]}")
    cg_ir[$mode/rest]=$(cg_total "${rest[@]}")
    cg_ir[$mode/secs]=$secs
    printf '  %-7s plugins: %s s under callgrind; instructions: client threads %s, isis2d thread %s, other threads %s\n' \
      "$mode" "$secs" "${cg_ir[$mode/clients]}" "${cg_ir[$mode/link]}" "${cg_ir[$mode/rest]}"
  done
fi

# ---- 5. instructions per SELECT (callgrind) ----

# As in part 3, but for part 1's queries: one client sends the same SELECT cg_selects times
# over one connection; only client threads (do_command) are counted. What varies between runs
# is small: the ISIS2IS rows are made again when gcsd publishes a new list (about once a second,
# many times slower under callgrind), and that cost is counted where it falls, in a SELECT.
declare -A sel_ir
sel_tables=(ENGINES ISIS2IS CHARACTER_SETS)
if [ "$cg_selects" -gt 0 ]; then
  echo "== 5. mariadbd instructions per SELECT * FROM INFORMATION_SCHEMA.<table>, 30 servers listed (callgrind, 1 client, $cg_selects queries per table)"
  mysqld_common+=(--innodb-use-native-aio=0 --innodb-buffer-pool-size-max=256M)
  mkdir -p "$work/callgrind-select"
  start_mysqld with valgrind --tool=callgrind --separate-threads=yes --dump-instr=no \
    --callgrind-out-file="$work/callgrind-select/out.%p" --log-file="$work/callgrind-select/valgrind.log"
  wait_for_list 30 60 || echo "  (measuring anyway)"
  selects() { # table n: n SELECTs over one connection, output discarded
    local i
    for ((i = 0; i < $2; i++)); do echo "SELECT * FROM INFORMATION_SCHEMA.$1;"; done |
      mariadb --no-defaults -S "$sock" -uroot -N -B >/dev/null || die "SELECTs from $1 under callgrind failed"
  }
  for t in "${sel_tables[@]}"; do
    selects "$t" 50 # warm-up, not counted
    callgrind_control -z "$mysqld_pid" >/dev/null
    selects "$t" "$cg_selects"
    callgrind_control -d "select-$t" "$mysqld_pid" >/dev/null
    mapfile -t files < <(grep -l "^desc: Trigger: dump select-$t\$" "$work/callgrind-select"/out.* 2>/dev/null || true)
    clients=()
    for f in "${files[@]}"; do grep -q 'do_command' "$f" && clients+=("$f"); done
    [ ${#clients[@]} -gt 0 ] || die "no client thread in the callgrind dump for $t"
    sel_ir[$t]=$(cg_total "${clients[@]}")
    printf '  %-16s %s instructions in the client threads\n' "$t" "${sel_ir[$t]}"
  done
  stop_mysqld
fi

# ---- summary ----

echo
echo "== results"
echo "1. mariadb-slap, medians of $slap_reps: queries/s; ratio to ENGINES in the same repetition (min-max); mariadbd CPU per query"
printf '   %-8s %-16s %10s %8s %12s %10s\n' servers table "queries/s" ratio "min-max" "us CPU/q"
for key in 3/ENGINES 3/ISIS2IS 30/ENGINES 30/ISIS2IS 30/CHARACTER_SETS 30/USER_PRIVILEGES; do
  read -r q r mm c <<<"${slap_result[$key]}"
  printf '   %-8s %-16s %10.0f %8s %12s %10s\n' "${key%/*}" "${key#*/}" "$q" "$r" "$mm" "$c"
done
if [ "$sb_pairs" -gt 0 ]; then
  read -r -a w_list <<<"${qps_all[without]}"
  read -r -a p_list <<<"${qps_all[with]}"
  read -r -a wc_list <<<"${cpuq_all[without]}"
  read -r -a pc_list <<<"${cpuq_all[with]}"
  w=$(median "${w_list[@]}"); p=$(median "${p_list[@]}")
  wc=$(median "${wc_list[@]}"); pc=$(median "${pc_list[@]}")
  echo "2. sysbench oltp_read_only, median of $sb_pairs runs per mode"
  printf '   %-18s %12s %12s %8s\n' "" without with ratio
  printf '   %-18s %12.2f %12.2f %8s   (with/without; per pair: %s; median of pairs %s)\n' \
    QPS "$w" "$p" "$(ratio "$p" "$w")" "${pair_ratios[*]}" "$(median "${pair_ratios[@]}")"
  printf '   %-18s %12.2f %12.2f %8s   (without/with, so that > 1 is better as for QPS)\n' \
    "us CPU per query" "$wc" "$pc" "$(ratio "$wc" "$pc")"
  if [ ${#link_ms[@]} -gt 0 ]; then
    printf '   isis2d thread CPU per %d s run: %s ms (median; all: %s), i.e. %s %% of one core,\n' "$sb_time" \
      "$(median "${link_ms[@]}")" "${link_ms[*]}" "$(awk -v m="$(median "${link_ms[@]}")" -v t="$sb_time" 'BEGIN { printf "%.4f", m / 10 / t }')"
    printf '   %s %% of mariadbd CPU at the median with-plugins load\n' \
      "$(awk -v m="$(median "${link_ms[@]}")" -v c="$pc" -v q="$p" -v t="$sb_time" 'BEGIN { printf "%.4f", m / 1000 / (c * 1e-6 * q * t) * 100 }')"
  fi
  if [ -n "${idle_pct[with]:-}" ]; then
    printf '   %-18s %12s %12s\n' "idle CPU %" "${idle_pct[without]}" "${idle_pct[with]}"
  fi
fi
if [ "$cg_events" -gt 0 ]; then
  per_tx() { awk -v n="$1" -v e="$cg_events" 'BEGIN { printf "%.0f", n / e }'; }
  echo "3. mariadbd instructions per transaction (callgrind; $cg_events transactions, 1 client)"
  printf '   %-34s %12s %12s %8s\n' "" without with ratio
  for mode in without with; do
    cg_ir[$mode/all]=$((cg_ir[$mode/clients] + cg_ir[$mode/link] + cg_ir[$mode/rest]))
  done
  for part in clients link rest all; do
    case $part in
      clients) label="client threads (the query path)" ;;
      link) label="isis2d thread (see the note)" ;;
      rest) label="other threads" ;;
      all) label="all of mariadbd" ;;
    esac
    printf '   %-34s %12s %12s %8s\n' "$label" "$(per_tx "${cg_ir[without/$part]}")" \
      "$(per_tx "${cg_ir[with/$part]}")" \
      "$( [ "${cg_ir[without/$part]}" -gt 0 ] && ratio "${cg_ir[without/$part]}" "${cg_ir[with/$part]}" || echo -)"
  done
  echo "   (ratio: without/with, so that > 1 is better as for QPS. Note: the isis2d thread works per"
  echo "   second, not per query, and the measured part took ${cg_ir[with/secs]} s under callgrind (${cg_ir[without/secs]} s without"
  echo "   the plugins), many times its duration at full speed; its share at full speed is in part 2.)"
fi
if [ "$cg_selects" -gt 0 ]; then
  echo "5. mariadbd instructions per SELECT, 30 servers listed (callgrind, 1 client, $cg_selects queries per table)"
  printf '   %-16s %14s %10s\n' table "instr/SELECT" "ENGINES/x"
  for t in "${sel_tables[@]}"; do
    printf '   %-16s %14s %10s\n' "$t" "$(awk -v n="${sel_ir[$t]}" -v q="$cg_selects" 'BEGIN { printf "%.0f", n / q }')" \
      "$(ratio "${sel_ir[ENGINES]}" "${sel_ir[$t]}")"
  done
fi
echo "4. isis2d reconnects: ${slap_reconnects[30]} during part 1, $sb_reconnects in the $sb_pairs with-plugins server runs of part 2"
echo "   (isis2d drops its connection when a reply takes over 2.5 s, REPLY_TIMEOUT in crates/isis2d/src/link.rs)"
sort -n -k2 "$work/heartbeat-us.log" | awk '{ v[NR] = $2 } END {
  if (NR == 0) exit
  slow = 0; for (i = 1; i <= NR; i++) if (v[i] > 300000) slow++
  printf "   gcsd heartbeat reply time seen by the fake servers (%d replies): p50 %.2f ms, p99 %.2f ms, max %.1f ms, %d over 300 ms\n",
    NR, v[int(NR * 0.5) + 1] / 1000, v[int(NR * 0.99) + 1] / 1000, v[NR] / 1000, slow }'
stalls=$(grep -c 'reconnecting' "$work/fakes.log" 2>/dev/null || true)
echo "   fake-server connections dropped after 5 s without a reply: ${stalls:-0}$( [ "${stalls:-0}" = 0 ] || echo " (at: $(awk '/reconnecting/ {printf "%s ", strftime("%T", int($1))}' "$work/fakes.log"))")"
curl -fsS "http://127.0.0.1:$admin_port/metrics" 2>/dev/null | awk '
  /^gcsd_commit_seconds_count/ { n = $2 } /^gcsd_commit_seconds_sum/ { s = $2 }
  /^gcsd_commit_seconds_bucket/ && /le="0.1024"/ { b1 = $2 } /^gcsd_commit_seconds_bucket/ && /le="0.4096"/ { b4 = $2 }
  END { if (n) printf "   gcsd commits: %d, mean %.2f ms, %d over 102 ms, %d over 410 ms\n", n, s / n * 1000, n - b1, n - b4 }'
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
