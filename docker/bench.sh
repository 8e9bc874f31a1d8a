#!/usr/bin/env bash
# Failover across containers (docker/compose.yaml) as applications see it through HAProxy
# (contrib/haproxy/httpchk.cfg, in its own container): the time from the fault until a write
# sent through HAProxy's writer port is taken by the new ACTIVE, db2. Two kinds of trial:
#
#   kill        kill -9 of the ACTIVE's mariadbd (gcsd stays up; the server is restarted
#               after 1 s as Debian's unit does, and recovered)
#   isolation   docker network disconnect of the ACTIVE's host, then connect and recover
#
#   docker/bench.sh            # 20 trials of each (BENCH_TRIALS=N)
#
# Each attempt is one mariadb client process from this host (its start-up, about 10 ms, is in
# the figure; percentiles by nearest rank). The kill's time is read inside the container just before the kill; the
# isolation's just before `docker network disconnect` (which takes some ms itself).
set -euo pipefail
# shellcheck source=docker/test.sh
source "$(dirname "$0")/test.sh"
trials=${BENCH_TRIALS:-20}

first_write_on_db2() { # t0 (ns): prints the ms until a write through HAProxy lands on db2
    local t0=$1 deadline=$((SECONDS + within))
    until writer_is 2; do
        [ $SECONDS -lt $deadline ] || fail "no write on db2 within $within s"
    done
    ms_since "$t0"
}
percentiles() { # name, values...
    local name=$1
    shift
    printf '%s\n' "$@" | sort -n | awk -v name="$name" '{ v[NR] = $1 }
        function rank(p) { r = int(p * NR); if (r < p * NR) r++; return r < 1 ? 1 : r }
        END { p50 = v[rank(0.50)]; p99 = v[rank(0.99)]
              printf "%-52s trials %3d  p50 %5d ms  p99 %5d ms  max %5d ms\n", name, NR, p50, p99, v[NR] }'
}

up >/dev/null
wait_until "every host's ISIS2IS the same" agree
kills=() isolations=()
for i in $(seq "$trials"); do
    wait_until "writes through HAProxy on db1" writer_is 1
    t0=$(docker exec gcs-db1 sh -c 'date +%s%N; pkill -9 -x mariadbd')
    kills+=("$(first_write_on_db2 "$t0")")
    wait_until "db1's mariadbd restarted" read_only gcs-db1 1
    restore

    wait_until "writes through HAProxy on db1" writer_is 1
    t0=$(date +%s%N)
    cut disconnect
    isolations+=("$(first_write_on_db2 "$t0")")
    heal disconnect
    for n in "${nodes[@]}"; do wait_until "$n: all members up" members_up "$n" 3; done
    restore
    echo "bench: trial $i: kill -9 ${kills[-1]} ms, isolation ${isolations[-1]} ms" >&2
done
percentiles "kill -9 of the ACTIVE's mariadbd -> write on db2" "${kills[@]}"
percentiles "isolation of the ACTIVE's host -> write on db2" "${isolations[@]}"
