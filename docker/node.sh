#!/usr/bin/env bash
# One host of the Docker cluster (docker/compose.yaml), PID 1 of its container: gcsd as its
# systemd unit runs it (the unit's ExecStart, as user gcsd), then the packaged MariaDB with the
# plugin, talking to gcsd over its socket. The first start configures both from the
# environment; a restarted container (docker start) keeps its data and configuration.
#
#   GCS_NODE_ID          this member's node_id and the server's server_id (1, 2, 3)
#   GCS_ADDR             this host's address on the cluster network
#   GCS_NET              the network's allowed client pattern for MariaDB accounts (10.0.0.%)
#   GCS_JOIN             a member's group address to join; empty: found the group (bootstrap)
#   GCS_REPLICATE_FROM   the server this one replicates from (empty: none)
#   GCS_ROLE             the role announced in ISIS2IS (master, slave)
#
# Mounted read-only at /etc/gcs-node (made by docker/cluster.sh): ca.pem, member.pem,
# member.key (this member's, naming gcs://member/<id> and GCS_ADDR), repl.password and
# app.password (the cluster's replication and application accounts).
set -euo pipefail
: "${GCS_NODE_ID:?}" "${GCS_ADDR:?}" "${GCS_NET:?}"
secrets=/etc/gcs-node
log() { echo "gcs-node $GCS_NODE_ID: $*" >&2; }
wait_for() { # what, seconds, command...
    local what=$1 secs=$2
    shift 2
    for _ in $(seq $((secs * 10))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
    log "no $what within $secs s"
    return 1
}

configure() {
    log "first start: configuring gcsd and MariaDB"
    install -d -o gcsd -g gcsd -m 0750 /etc/gcsd/tls
    install -o gcsd -g gcsd -m 0644 "$secrets/ca.pem" "$secrets/member.pem" /etc/gcsd/tls/
    install -o gcsd -g gcsd -m 0600 "$secrets/member.key" /etc/gcsd/tls/
    # The image's probe password was made when the image was built: each host gets its own.
    (umask 077 && head -c 24 /dev/urandom | base64 | tr -d '/+=\n' >/etc/gcsd/probe.password)
    chown gcsd:gcsd /etc/gcsd/probe.password
    local founding="join = \"${GCS_JOIN:-}:2300\""
    [ -n "${GCS_JOIN:-}" ] || founding="bootstrap = true"
    # The packaged file's choices (socket, TCP read-only, password file) plus this host's.
    cat >/etc/gcsd/gcsd.toml <<TOML
# Written by gcs-node (docker/node.sh) on the container's first start.
node_id = $GCS_NODE_ID
name = "db$GCS_NODE_ID-gcsd"
data_dir = "/var/lib/gcsd"
plugin_socket = "/run/gcsd/plugin.sock"
plugin_tcp_writes = false
group_listen = "$GCS_ADDR:2300"
$founding
tls_ca_file = "/etc/gcsd/tls/ca.pem"
tls_cert_file = "/etc/gcsd/tls/member.pem"
tls_key_file = "/etc/gcsd/tls/member.key"
# HAProxy's checks (contrib/haproxy/httpchk.cfg and agent-check.cfg).
lb_listen = "$GCS_ADDR:2290"
agent_check_listen = "$GCS_ADDR:2291"

[probe]
user = "gcsd_probe"
password_file = "/etc/gcsd/probe.password"
fence_sockets = ["/run/mysqld/mysqld.sock"]
TOML
    gcsd --config /etc/gcsd/gcsd.toml --config-check >/dev/null
    cat >/etc/mysql/mariadb.conf.d/70-gcs-node.cnf <<CNF
# Written by gcs-node (docker/node.sh) on the container's first start.
[mariadb]
server_id = $GCS_NODE_ID
bind_address = $GCS_ADDR
skip_name_resolve = ON
log_bin = binlog
log_slave_updates = ON
# Fenced from its first moment: gcsd makes the pool's ACTIVE writable.
read_only = ON
auto_increment_increment = 3
auto_increment_offset = $GCS_NODE_ID
innodb_buffer_pool_size = 64M
isis2d_mysql_host = $GCS_ADDR
isis2d_mysql_role = ${GCS_ROLE:-standalone}
CNF
    mariadb-install-db --user=mysql --skip-test-db >/var/log/mariadb-install-db.log 2>&1 ||
        { cat /var/log/mariadb-install-db.log >&2; exit 1; }
}

start_gcsd() { # as systemd would: the unit's directories, then its ExecStart as User=gcsd
    local exec_start
    exec_start=$(sed -n 's/^ExecStart=//p' /lib/systemd/system/gcsd.service)
    install -d -o gcsd -g gcsd -m 0755 /run/gcsd
    # shellcheck disable=SC2086 # the unit's command line, split as systemd splits it
    setpriv --reuid gcsd --regid gcsd --init-groups $exec_start &
    gcsd_pid=$!
    wait_for "gcsd plugin socket" 20 test -S /run/gcsd/plugin.sock
}

start_mariadb() { # restarted after a crash (not after a clean shutdown), as Debian's unit does
    install -d -o mysql -g mysql /run/mysqld
    (
        while true; do
            rc=0
            mariadbd --user=mysql || rc=$?
            [ "$rc" != 0 ] || exit 0
            log "mariadbd exited with status $rc; starting it again in 1 s"
            sleep 1
        done
    ) &
    mariadbd_loop=$!
    wait_for "MariaDB" 60 mariadb -e "SELECT 1"
}

first_sql() { # the accounts and the application's table, outside the binary log; replication
    local probe repl app
    probe=$(cat /etc/gcsd/probe.password)
    repl=$(cat "$secrets/repl.password")
    app=$(cat "$secrets/app.password")
    mariadb <<SQL
SET SESSION sql_log_bin = 0;
CREATE USER 'gcsd_probe'@'$GCS_ADDR' IDENTIFIED BY '$probe';
GRANT SLAVE MONITOR, READ_ONLY ADMIN ON *.* TO 'gcsd_probe'@'$GCS_ADDR';
CREATE USER 'gcsd_probe'@'localhost' IDENTIFIED BY '$probe';
GRANT READ_ONLY ADMIN ON *.* TO 'gcsd_probe'@'localhost';
CREATE USER 'repl'@'$GCS_NET' IDENTIFIED BY '$repl';
GRANT REPLICATION SLAVE ON *.* TO 'repl'@'$GCS_NET';
CREATE USER 'app'@'$GCS_NET' IDENTIFIED BY '$app';
CREATE DATABASE app;
CREATE TABLE app.t (id INT AUTO_INCREMENT PRIMARY KEY, note TEXT, at TIMESTAMP(6) DEFAULT CURRENT_TIMESTAMP(6));
GRANT INSERT, SELECT ON app.* TO 'app'@'$GCS_NET';
SQL
    if [ -n "${GCS_REPLICATE_FROM:-}" ]; then
        mariadb -e "CHANGE MASTER TO MASTER_HOST='$GCS_REPLICATE_FROM', MASTER_USER='repl',
            MASTER_PASSWORD='$repl', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1; START SLAVE"
    fi
}

stop() {
    log "stopping MariaDB, then gcsd (its clean leave)"
    mariadb-admin shutdown >/dev/null 2>&1 || pkill -TERM -x mariadbd || true
    wait "$mariadbd_loop" 2>/dev/null || true
    kill -TERM "$gcsd_pid" 2>/dev/null || true
    wait "$gcsd_pid" 2>/dev/null || true
    exit "${1:-0}"
}

gcsd_pid='' mariadbd_loop=''
trap stop TERM INT
fresh=0
if [ ! -f /etc/mysql/mariadb.conf.d/70-gcs-node.cnf ]; then
    configure
    fresh=1
fi
start_gcsd
start_mariadb
[ "$fresh" = 0 ] || first_sql
log "up: gcsd and MariaDB with the plugin ($GCS_ADDR)"
# The container lives as long as gcsd (a supervisor restarts it if the operator asks).
rc=0
wait "$gcsd_pid" || rc=$?
log "gcsd exited with status $rc; stopping"
stop "$rc"
