#!/usr/bin/env bash
# Tests across real containers (docker/compose.yaml): the cluster forms; then db1's host, the
# pool's ACTIVE (and at first the Raft leader), is cut off three ways, one after another:
#
#   kill        docker kill gcs-db1 (the host dies), then docker start gcs-db1
#   pause       docker pause gcs-db1 (the host hangs: gcsd and MariaDB frozen), then unpause
#   disconnect  docker network disconnect (db1 isolated, still running), then connect
#
# Each time: the other two members commit member 1 down, db2 becomes ACTIVE and takes the
# writes sent through HAProxy, db3 (a replica of db1) is FAILED_ONLINE, and every reachable
# host's ISIS2IS says so; the isolated db1 is fenced by its own gcsd (read_only=ON). After the heal, member
# 1 is up again, db1 stays FAILED (fenced) until recovered, and all three ISIS2IS agree; then
# `gcsctl recover` brings the pool back to db1 ACTIVE for the next round. Every wait is
# bounded; the containers, the network and the keys are removed at the end (GCS_KEEP=1 keeps
# them after a failure).
set -euo pipefail
# shellcheck source=docker/cluster.sh
source "$(dirname "$0")/cluster.sh"
net=mysql-gcs_cluster
within=30 # seconds, any one wait

fail() {
    echo "docker-test: FAILED: $*" >&2
    status >&2 || true
    compose logs --tail 30 >&2 || true
    exit 1
}
finish() {
    local rc=$?
    docker unpause gcs-db1 >/dev/null 2>&1 || true
    if [ "$rc" != 0 ] && [ "${GCS_KEEP:-0}" = 1 ]; then
        echo "docker-test: kept the cluster (docker/cluster.sh down removes it)"
    else
        down >/dev/null 2>&1 || true
    fi
}
trap finish EXIT
wait_until() { # what, command...: within $within seconds
    local what=$1 deadline=$((SECONDS + within))
    shift
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $deadline ] || fail "$what: not within $within s"
        sleep 0.1
    done
}
ms_since() { echo $((($(date +%s%N) - $1) / 1000000)); }

app_password() { cat "$secrets/db1/app.password"; }
# A write through HAProxy's writer port; prints the server_id that took it.
write_through_haproxy() {
    mariadb --no-defaults -h "$prefix.10" -P 3307 -u app -p"$(app_password)" --connect-timeout=1 -N -B \
        -e "INSERT INTO app.t (note) VALUES ('docker-test'); SELECT @@server_id"
}
writer_is() { [ "$(write_through_haproxy 2>/dev/null)" = "$1" ]; }
members_up() { docker exec "$1" gcsctl status 2>/dev/null | grep -Eq "^members: +$2/3 up"; }
no_quorum() { [ "$(sql "$1" "SELECT DISTINCT ERRNO FROM INFORMATION_SCHEMA.ISIS2IS")" = 1002 ]; }
read_only() { [ "$(sql "$1" "SELECT @@read_only")" = "$2" ]; }
# host STATE ...: that host's ISIS2IS shows the pool's three servers in these states (db1..db3).
states() {
    local host=$1
    shift
    [ "$(sql "$host" "SELECT MPP_STATE FROM INFORMATION_SCHEMA.ISIS2IS
        WHERE MPP_POOL = 'main' AND ERRNO = 0 ORDER BY MYSQL_HOST" | paste -sd' ')" = "$*" ]
}
# host N: the pool state of server dbN in that host's ISIS2IS.
state_of() {
    sql "$1" "SELECT MPP_STATE FROM INFORMATION_SCHEMA.ISIS2IS
        WHERE MPP_POOL = 'main' AND ERRNO = 0 AND MYSQL_HOST = '$prefix.1$2'"
}
state_is() { [ "$(state_of "$1" "$2")" = "$3" ]; }
# Every host's ISIS2IS the same, row for row (servers, their status, verdicts and epoch).
agree() {
    local q="SELECT ERRNO, MYSQL_HOST, MYSQL_PORT_OR_SOCKET, MYSQL_STATUS, MPP_POOL, MPP_STATE, MPP_EPOCH
        FROM INFORMATION_SCHEMA.ISIS2IS ORDER BY MYSQL_HOST"
    local first n
    first=$(sql gcs-db1 "$q") || return 1
    for n in gcs-db2 gcs-db3; do [ "$(sql "$n" "$q")" = "$first" ] || return 1; done
}

cut() { # how
    case $1 in
    kill) docker kill gcs-db1 ;;
    pause) docker pause gcs-db1 ;;
    disconnect) docker network disconnect "$net" gcs-db1 ;;
    esac >/dev/null
}
heal() { # how
    case $1 in
    kill) docker start gcs-db1 ;;
    pause) docker unpause gcs-db1 ;;
    disconnect) docker network connect --ip "$prefix.11" "$net" gcs-db1 ;;
    esac >/dev/null
}

round() { # how
    local how=$1 t0
    echo "docker-test: $how db1 (the ACTIVE's host)"
    wait_until "writes through HAProxy on db1 before the $how" writer_is 1
    t0=$(date +%s%N)
    cut "$how"
    if [ "$how" = disconnect ]; then
        wait_until "the isolated db1 to be fenced by its gcsd" read_only gcs-db1 1
        echo "docker-test:   the isolated db1 read-only $(ms_since "$t0") ms after the disconnect (fenced over its socket)"
    fi
    wait_until "writes through HAProxy on db2 after the $how" writer_is 2
    echo "docker-test:   first write through HAProxy on db2 $(ms_since "$t0") ms after docker $how (mariadb client start-up included)"
    if [ "$how" = disconnect ]; then
        wait_until "the isolated db1 to say it has no quorum" no_quorum gcs-db1
        # Its network interface is gone: nobody reaches its server over the network, nor does
        # its gcsd, which fences it over MariaDB's socket ([probe] fence_sockets).
        ! mariadb --no-defaults -h "$prefix.11" -u app -p"$(app_password)" --connect-timeout=1 \
            -e "SELECT 1" >/dev/null 2>&1 || fail "the isolated db1 is reachable"
    fi
    for n in gcs-db2 gcs-db3; do
        wait_until "$n: member 1 down" members_up "$n" 2
        wait_until "$n: db1 failed, db2 ACTIVE, db3 (a replica of db1) FAILED_ONLINE" \
            states "$n" FAILED_OFFLINE ACTIVE FAILED_ONLINE
    done
    read_only gcs-db3 1 || fail "db3 is writable"

    t0=$(date +%s%N)
    heal "$how"
    wait_until "db1 fenced after the heal" read_only gcs-db1 1
    echo "docker-test:   db1 read-only $(ms_since "$t0") ms after the heal began"
    for n in "${nodes[@]}"; do wait_until "$n: all members up after the heal" members_up "$n" 3; done
    wait_until "db1 back, fenced" read_only gcs-db1 1
    wait_until "every host's ISIS2IS the same after the heal" agree
    states gcs-db2 FAILED_OFFLINE ACTIVE FAILED_ONLINE || states gcs-db2 FAILED_ONLINE ACTIVE FAILED_ONLINE ||
        fail "after the heal db1 must stay FAILED until recovered"
    writer_is 2 || fail "writes do not go to db2 after the heal"
    echo "docker-test:   healed: 3/3 members up, db1 fenced and FAILED, every ISIS2IS agrees"

    restore
}

# Back to the start after db1 failed: db1 (the PRIMARY) is reinstated by a planned handover,
# then db3 (a replica of db1, failed as not replicating from the ACTIVE) recovered.
restore() {
    docker exec gcs-db2 gcsctl recover "$prefix.11:3306" >/dev/null
    wait_until "db1 reinstated as ACTIVE" state_is gcs-db3 1 ACTIVE
    # db3 failed as not replicating from db2 if it was probed while db2 was ACTIVE.
    case $(state_of gcs-db3 3) in FAILED_*) docker exec gcs-db2 gcsctl recover "$prefix.13:3306" >/dev/null ;; esac
    wait_until "db3 a STANDBY again" formed
    wait_until "every host's ISIS2IS the same after recovery" agree
    read_only gcs-db2 1 || fail "db2 still writable after the handover"
}

# docker/bench.sh sources this file for its functions.
[ "${BASH_SOURCE[0]}" = "$0" ] || return 0
up
wait_until "every host's ISIS2IS the same" agree
{ read_only gcs-db2 1 && read_only gcs-db3 1; } || fail "a STANDBY is writable"
for how in kill pause disconnect; do round "$how"; done
history=$(docker exec gcs-db3 mariadb -N -B -e "SELECT COUNT(*) FROM INFORMATION_SCHEMA.ISIS2IS_HISTORY WHERE MPP_POOL = 'main'")
echo "docker-test: passed ($history transitions in ISIS2IS_HISTORY)"
