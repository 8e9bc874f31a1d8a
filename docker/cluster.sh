#!/usr/bin/env bash
# The three-host cluster of docker/compose.yaml, built from this checkout without any registry.
#
#   docker/cluster.sh up      set up what is missing (packages, base image, node image, keys;
#                             GCS_NO_BUILD=1 takes the node image as it is),
#                             start db1-db3 and HAProxy, wait until the cluster has formed
#                             (every server listed on every server, the pool's ACTIVE chosen),
#                             and show ISIS2IS
#   docker/cluster.sh build   rebuild the packages and the node image
#   docker/cluster.sh status  every host's ISIS2IS and the group's members
#   docker/cluster.sh down    stop and remove the containers, the network and the keys
#
# Builds run as root on Debian 12 with a Docker engine (as scripts/setup.sh's machine).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
prefix=${GCS_NET_PREFIX:-10.0.0}
secrets=${GCS_SECRETS:-$repo/target/docker/secrets}
export GCS_NET_PREFIX=$prefix GCS_SECRETS=$secrets
nodes=(gcs-db1 gcs-db2 gcs-db3)

docker info >/dev/null 2>&1 || { echo "cluster: no Docker engine answers (docker info)" >&2; exit 1; }
if docker compose version >/dev/null 2>&1; then
    dc=(docker compose)
else
    command -v docker-compose >/dev/null || {
        echo "cluster: installing docker-compose (Debian's package)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-compose >/dev/null
    }
    dc=(docker-compose)
fi
compose() { "${dc[@]}" -p mysql-gcs -f "$repo/docker/compose.yaml" "$@"; }
sql() { docker exec "$1" mariadb -N -B -e "$2"; }

build() { # [packages]: rebuild the packages first
    if [ "${1:-}" = packages ] || ! ls target/debian/mariadb-plugin-gcs_*.deb >/dev/null 2>&1; then
        # A test machine's setup: may downgrade and pin MariaDB to the version whose headers it
        # can fetch (it says so); the image gets exactly that version.
        echo "note: MYSQL_GCS_PIN_MARIADB=1: MariaDB may be downgraded and pinned on this machine"
        MYSQL_GCS_PIN_MARIADB=1 scripts/setup.sh
        scripts/package.sh
    fi
    scripts/base-image.sh
    local started=$SECONDS
    DOCKER_BUILDKIT=0 docker build -q -f docker/Dockerfile -t mysql-gcs-node:latest . >/dev/null
    echo "cluster: image mysql-gcs-node built in $((SECONDS - started)) s" \
        "($(docker image inspect -f '{{.Size}}' mysql-gcs-node:latest | numfmt --to=iec))"
}

keys() { # the group's CA, one certificate per member (gcs://member/N, its address), passwords
    [ -f "$secrets/db3/member.pem" ] && return 0
    command -v openssl >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null
    rm -rf "$secrets"
    mkdir -p "$secrets"
    chmod 0700 "$secrets"
    local ca=$secrets/ca
    mkdir -p "$ca"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
        -subj "/CN=mysql-gcs docker group CA" -keyout "$ca/ca.key" -out "$ca/ca.pem" 2>/dev/null
    head -c 24 /dev/urandom | base64 | tr -d '/+=\n' >"$ca/repl.password"
    head -c 24 /dev/urandom | base64 | tr -d '/+=\n' >"$ca/app.password"
    local n dir
    for n in 1 2 3; do
        dir=$secrets/db$n
        mkdir -p "$dir"
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=gcsd $n" \
            -keyout "$dir/member.key" -out "$dir/member.csr" 2>/dev/null
        printf 'subjectAltName=URI:gcs://member/%s,IP:%s.1%s\nextendedKeyUsage=serverAuth,clientAuth\n' \
            "$n" "$prefix" "$n" >"$dir/member.ext"
        openssl x509 -req -in "$dir/member.csr" -CA "$ca/ca.pem" -CAkey "$ca/ca.key" -days 825 \
            -extfile "$dir/member.ext" -out "$dir/member.pem" 2>/dev/null
        rm "$dir/member.csr" "$dir/member.ext"
        cp "$ca/ca.pem" "$ca/repl.password" "$ca/app.password" "$dir/"
    done
}

# Every server's replication threads run, and the three gcsd are one group.
replicating() {
    local n
    for n in "${nodes[@]}"; do
        [ "$(docker exec "$n" mariadb -e "SHOW SLAVE STATUS\G" 2>/dev/null |
            grep -Ec '^ *Slave_(IO|SQL)_Running: Yes$')" = 2 ] || return 1
        docker exec "$n" gcsctl status 2>/dev/null | grep -Eq '^members: +3/3 up' || return 1
    done
}

# Formed: every host lists the three servers, on, and the pool's verdicts: db1 ACTIVE, db2 and
# db3 STANDBY.
formed() {
    local n want="${prefix}.11 ACTIVE
${prefix}.12 STANDBY
${prefix}.13 STANDBY"
    for n in "${nodes[@]}"; do
        [ "$(sql "$n" "SELECT MYSQL_HOST, MPP_STATE FROM INFORMATION_SCHEMA.ISIS2IS
            WHERE ERRNO = 0 AND MYSQL_STATUS = 'on' AND MPP_POOL = 'main' ORDER BY MYSQL_HOST" 2>/dev/null |
            tr '\t' ' ')" = "$want" ] || return 1
    done
}

status() {
    local n
    for n in "${nodes[@]}"; do
        echo "== $n: SELECT ... FROM INFORMATION_SCHEMA.ISIS2IS"
        docker exec "$n" mariadb -t -e "SELECT ERRNO, ISIS2_MEMBER, MYSQL_HOST, MYSQL_PORT_OR_SOCKET AS PORT,
            MYSQL_STATUS, MYSQL_ROLE, MPP_POOL, MPP_TYPE, MPP_STATE, MPP_STATUS, MPP_EPOCH
            FROM INFORMATION_SCHEMA.ISIS2IS ORDER BY MYSQL_HOST" || true
    done
    echo "== gcs-db1: gcsctl members"
    docker exec gcs-db1 gcsctl members || true
    echo "== gcs-db1: gcsctl list main"
    docker exec gcs-db1 gcsctl list main || true
}

up() {
    # GCS_NO_BUILD=1: use the mysql-gcs-node image as it is (built the ordinary way, say).
    [ "${GCS_NO_BUILD:-0}" = 1 ] || build
    keys
    local started
    started=$(date +%s%N)
    compose up -d
    local _
    for _ in $(seq 1200); do replicating && break; sleep 0.1; done
    replicating || {
        echo "cluster: the servers do not replicate within 120 s" >&2
        compose logs --tail 40 >&2
        exit 1
    }
    if ! docker exec gcs-db1 gcsctl list main >/dev/null 2>&1; then
        echo "cluster: gcsctl pool init main --primary $prefix.11:3306 --secondary $prefix.12:3306 --secondary $prefix.13:3306"
        docker exec gcs-db1 gcsctl pool init main --primary "$prefix.11:3306" \
            --secondary "$prefix.12:3306" --secondary "$prefix.13:3306"
    fi
    for _ in $(seq 1200); do formed && break; sleep 0.1; done
    formed || {
        echo "cluster: not formed within 120 s" >&2
        compose logs --tail 40 >&2
        exit 1
    }
    echo "cluster: formed $((($(date +%s%N) - started) / 1000000)) ms after '${dc[*]} up'" \
        "(every server listed on every host, db1 ACTIVE)"
    status
    echo
    echo "Writes: mariadb -h $prefix.10 -P 3307 -u app -p\"\$(cat $secrets/db1/app.password)\" app"
    echo "Reads:  port 3308.   On a host: docker exec -it gcs-db2 mariadb; docker exec gcs-db1 gcsctl list"
    echo "Stop:   docker/cluster.sh down"
}

down() {
    compose down -v --remove-orphans --timeout 20
    rm -rf "$secrets"
}

# docker/test.sh sources this file for its functions.
[ "${BASH_SOURCE[0]}" = "$0" ] || return 0
case "${1:-up}" in
up) up ;;
build) build packages ;;
status) status ;;
down) down ;;
*) echo "usage: docker/cluster.sh up|build|status|down" >&2; exit 2 ;;
esac
