#!/usr/bin/env bash
# Starts and stops a real gcsd for the mtr tests (run by mysqltest's --exec).
#
#   gcsd.sh start NAME DATA_DIR PLUGIN_PORT GROUP_PORT ADMIN_PORT
#       Starts "$GCSD_BIN" in the background as a group of one (node id 1), logging to
#       $MYSQLTEST_VARDIR/log/gcsd.NAME.log, its pid in $MYSQLTEST_VARDIR/run/gcsd.NAME.pid,
#       and returns once its plugin port answers a serverlist with errno 0 (it can commit).
#   gcsd.sh stop NAME [TERM|KILL]
#       Signals it (default TERM) and returns once it has exited.
#   gcsd.sh signal NAME SIG
#       Sends it SIG (STOP, CONT, ...) and returns at once.
#   gcsd.sh wait-rows PLUGIN_PORT N
#       Returns once gcsd's serverlist has N rows (up to 10 s).
#
# Prints nothing on success, so a test's result file does not depend on it. On failure it
# prints why (and the end of gcsd's log) and exits non-zero, which fails the test.
set -u

die() {
    echo "gcsd.sh: $*"
    [ -n "${log:-}" ] && [ -f "$log" ] && tail -n 20 "$log"
    exit 1
}

[ -n "${MYSQLTEST_VARDIR:-}" ] || die "MYSQLTEST_VARDIR is not set (run me from mysqltest)"
cmd=${1:-}
name=${2:-}
[ -n "$name" ] || die "usage: gcsd.sh start|stop NAME ..."
pidfile="$MYSQLTEST_VARDIR/run/gcsd.$name.pid"
log="$MYSQLTEST_VARDIR/log/gcsd.$name.log"

# Running and not a zombie (a zombie still answers kill -0).
alive() {
    local state
    [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null || return 1
    state=$(sed -n 's/^[0-9]* (.*) \([A-Za-z]\) .*/\1/p' "/proc/$1/stat" 2>/dev/null)
    [ "$state" != Z ] && [ "$state" != X ]
}

# One line from the plugin port in answer to "serverlist", or nothing.
serverlist_header() {
    local port=$1 line=
    exec 3<>"/dev/tcp/127.0.0.1/$port" || return 1
    printf 'serverlist\n' >&3
    IFS= read -r -t 1 line <&3
    exec 3<&- 3>&-
    printf '%s' "$line"
}

# The number of rows of a serverlist from the plugin port ("0 " header, rows, empty line).
serverlist_rows() {
    local port=$1 line= n=0
    exec 3<>"/dev/tcp/127.0.0.1/$port" || return 1
    printf 'serverlist\n' >&3
    IFS= read -r -t 1 line <&3 || return 1
    case "$line" in "0 "*) ;; *) return 1 ;; esac
    while IFS= read -r -t 1 line <&3; do
        line=${line%$'\r'}
        [ -z "$line" ] && break
        n=$((n + 1))
    done
    exec 3<&- 3>&-
    echo "$n"
}

case "$cmd" in
start)
    [ $# -eq 6 ] || die "usage: gcsd.sh start NAME DATA_DIR PLUGIN_PORT GROUP_PORT ADMIN_PORT"
    data_dir=$3 plugin_port=$4 group_port=$5 admin_port=$6
    [ -n "${GCSD_BIN:-}" ] && [ -x "$GCSD_BIN" ] || die "GCSD_BIN (${GCSD_BIN:-unset}) is not an executable gcsd"
    if [ -f "$pidfile" ] && alive "$(cat "$pidfile")"; then
        die "gcsd $name is already running (pid $(cat "$pidfile"))"
    fi
    mkdir -p "$data_dir" "$(dirname "$pidfile")" "$(dirname "$log")"
    # setsid and closed stdio: mysqltest waits for EOF on our stdout, which gcsd must not hold.
    RUST_LOG=${RUST_LOG:-info,openraft=off} setsid "$GCSD_BIN" --node-id 1 --data-dir "$data_dir" \
        --plugin-listen "127.0.0.1:$plugin_port" --group-listen "127.0.0.1:$group_port" \
        --admin-listen "127.0.0.1:$admin_port" </dev/null >>"$log" 2>&1 &
    pid=$!
    echo "$pid" >"$pidfile"
    # Up to 15 s for the plugin port to serve a list it can vouch for ("0 " header).
    for _ in $(seq 300); do
        alive "$pid" || die "gcsd $name (pid $pid) exited during startup"
        header=$(serverlist_header "$plugin_port" 2>/dev/null)
        case "$header" in "0 "*) exit 0 ;; esac
        sleep 0.05
    done
    die "gcsd $name (pid $pid) did not serve its plugin port 127.0.0.1:$plugin_port within 15 s (last: ${header:-nothing})"
    ;;
stop)
    sig=${3:-TERM}
    [ -f "$pidfile" ] || die "no pid file $pidfile"
    pid=$(cat "$pidfile")
    alive "$pid" || die "gcsd $name (pid $pid) is not running"
    kill "-$sig" "$pid" || die "cannot signal gcsd $name (pid $pid)"
    # SIGTERM lets it leave the group within shutdown_grace_ms (2 s); allow 10 s.
    for _ in $(seq 200); do
        if ! alive "$pid"; then
            rm -f "$pidfile"
            exit 0
        fi
        sleep 0.05
    done
    kill -KILL "$pid" 2>/dev/null
    die "gcsd $name (pid $pid) did not exit within 10 s of SIG$sig (killed)"
    ;;
signal)
    [ $# -eq 3 ] || die "usage: gcsd.sh signal NAME SIG"
    pid=$(cat "$pidfile" 2>/dev/null) || die "no pid file $pidfile"
    alive "$pid" || die "gcsd $name (pid $pid) is not running"
    kill "-$3" "$pid" || die "cannot signal gcsd $name (pid $pid)"
    ;;
wait-rows)
    # Here NAME is the plugin port.
    [ $# -eq 3 ] || die "usage: gcsd.sh wait-rows PLUGIN_PORT N"
    port=$2 want=$3 log=
    for _ in $(seq 200); do
        rows=$(serverlist_rows "$port" 2>/dev/null) && [ "$rows" = "$want" ] && exit 0
        sleep 0.05
    done
    die "the serverlist at 127.0.0.1:$port has ${rows:-no answer} rows, not $want, after 10 s"
    ;;
*)
    die "unknown command '$cmd' (start or stop)"
    ;;
esac
