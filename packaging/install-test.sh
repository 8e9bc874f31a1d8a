#!/usr/bin/env bash
# Runs inside a bare Debian 12 container (scripts/package-test.sh): installs the packages,
# starts gcsd as its unit would and the packaged MariaDB with the plugin, checks ISIS2IS, then
# upgrades, removes and purges, checking what each keeps.
set -euo pipefail
step() { echo "install-test: $*"; }
fail() { echo "install-test: FAILED: $*" >&2; tail -n 30 /var/log/gcsd.log /var/log/mariadbd.log >&2 2>/dev/null || true; exit 1; }
wait_for() { # what, seconds, command...
    local what=$1 secs=$2
    shift 2
    for _ in $(seq $((secs * 10))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
    fail "no $what within $secs s"
}

step "install"
dpkg -i /debs/mysql-gcs_*.deb /debs/mariadb-plugin-gcs_*.deb >/dev/null
id gcsd >/dev/null || fail "no gcsd user"
[ "$(stat -c %a:%U /etc/gcsd/probe.password)" = 600:gcsd ] || fail "probe.password mode $(stat -c %a:%U /etc/gcsd/probe.password)"
[ "$(stat -c %a:%U /var/lib/gcsd)" = 750:gcsd ] || fail "/var/lib/gcsd mode"
grep -qx "isis2d_daemon_uid = $(id -u gcsd)" /etc/mysql/mariadb.conf.d/61-gcs-uid.cnf || fail "61-gcs-uid.cnf"
gcsd --help | grep -q -- "--config" || fail "gcsd --help"
[ -s /usr/share/man/man8/gcsd.8.gz ] && [ -s /usr/share/man/man8/gcsctl.8.gz ] || fail "no man pages"

start_gcsd() { # as systemd would: the unit's directories, then its ExecStart as User=gcsd
    local exec_start
    exec_start=$(sed -n 's/^ExecStart=//p' /lib/systemd/system/gcsd.service)
    install -d -o gcsd -g gcsd -m 0755 /run/gcsd
    install -d -o gcsd -g gcsd -m 0750 /var/lib/gcsd
    # shellcheck disable=SC2086 # the unit's command line, split as systemd splits it
    setpriv --reuid gcsd --regid gcsd --init-groups $exec_start >>/var/log/gcsd.log 2>&1 &
    wait_for "gcsd plugin socket" 10 test -S /run/gcsd/plugin.sock
}
start_mariadb() {
    install -d -o mysql -g mysql /run/mysqld
    # debootstrap configures mariadb-server without creating its system tables.
    if [ ! -d /var/lib/mysql/mysql ]; then
        mariadb-install-db --user=mysql >/var/log/mariadb-install-db.log 2>&1 || fail "mariadb-install-db"
    fi
    mariadbd --user=mysql >>/var/log/mariadbd.log 2>&1 &
    wait_for "mariadbd" 30 mariadb -e "SELECT 1"
}
stop_all() {
    mariadb-admin shutdown >/dev/null 2>&1 || true
    pkill -TERM -x gcsd || true
    wait_for "gcsd to stop" 10 sh -c '! pgrep -x gcsd'
    wait_for "mariadbd to stop" 30 sh -c '! pgrep -x mariadbd'
}

step "gcsd through its unit's command line, MariaDB with the plugin over the socket"
start_gcsd
start_mariadb
listed() { mariadb -N -e "SELECT MYSQL_STATUS FROM INFORMATION_SCHEMA.ISIS2IS WHERE ERRNO = 0 AND MYSQL_PORT_OR_SOCKET = '3306'" | grep -qx on; }
wait_for "this server listed in ISIS2IS" 15 listed
mariadb -e "SELECT * FROM INFORMATION_SCHEMA.ISIS2IS\G" | sed 's/^/  /'
[ "$(mariadb -N -e "SELECT @@isis2d_daemon_uid")" = "$(id -u gcsd)" ] || fail "isis2d_daemon_uid"
gcsctl status >/dev/null || fail "gcsctl status (default token file)"
[ "$(stat -c %a:%U /var/lib/gcsd/admin.token)" = 600:gcsd ] || fail "admin.token mode"
# The TCP port takes no writes in the packaged configuration.
reply=$(printf 'join evil 3306 on master\nquit\n' | timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/2200; cat >&3; cat <&3' | head -n1)
case $reply in "12 Rejected: Not allowed on this transport"*) ;; *) fail "TCP join answered: $reply" ;; esac
token=$(cat /var/lib/gcsd/admin.token)
stop_all

step "upgrade (the same packages as version +1)"
work=$(mktemp -d)
for deb in /debs/*.deb; do
    dpkg-deb -R "$deb" "$work/x"
    sed -i 's/^Version: \(.*\)-\([0-9]*\)$/Version: \1-\2+1/' "$work/x/DEBIAN/control"
    sed -i 's/^\(Depends: .*mysql-gcs (= [^)]*\))/\1+1)/' "$work/x/DEBIAN/control"
    dpkg-deb --root-owner-group -b "$work/x" "$work/$(basename "$deb")" >/dev/null
    rm -rf "$work/x"
done
echo "# a local change" >>/etc/gcsd/gcsd.toml
dpkg -i --force-confold "$work"/*.deb >/dev/null
grep -q "# a local change" /etc/gcsd/gcsd.toml || fail "the upgrade replaced a changed conffile"
[ -f /var/lib/gcsd/raft.redb ] && [ "$(cat /var/lib/gcsd/admin.token)" = "$token" ] ||
    fail "the upgrade lost the data directory"
start_gcsd
start_mariadb
wait_for "this server listed after the upgrade" 15 listed
stop_all

step "remove: the data directory, the config and the user stay"
dpkg -r mariadb-plugin-gcs mysql-gcs >/dev/null
[ -f /var/lib/gcsd/raft.redb ] && [ "$(cat /var/lib/gcsd/admin.token)" = "$token" ] ||
    fail "remove lost /var/lib/gcsd"
[ -f /etc/gcsd/gcsd.toml ] || fail "remove lost the config"
id gcsd >/dev/null || fail "remove deleted the gcsd user"
[ ! -e /usr/bin/gcsd ] || fail "gcsd still installed"

step "purge: everything goes"
dpkg -P mariadb-plugin-gcs mysql-gcs >/dev/null
[ ! -e /var/lib/gcsd ] || fail "purge left /var/lib/gcsd"
[ ! -e /etc/gcsd ] || fail "purge left /etc/gcsd"
[ ! -e /etc/mysql/mariadb.conf.d/60-gcs.cnf ] && [ ! -e /etc/mysql/mariadb.conf.d/61-gcs-uid.cnf ] || fail "purge left the plugin's cnf"
! id gcsd >/dev/null 2>&1 || fail "purge left the gcsd user"
echo "install-test: passed"
