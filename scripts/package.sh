#!/usr/bin/env bash
# Builds the Debian packages into target/debian/:
#   mysql-gcs_<version>_<arch>.deb           gcsd, gcsctl, the systemd unit, /etc/gcsd/gcsd.toml
#   mariadb-plugin-gcs_<version>_<arch>.deb  libmysql_gcs.so and its mariadb.conf.d snippet,
#                                            for exactly the MariaDB server built against
# then checks them with lintian (each remaining tag is explained in packaging/lintian.md).
# Needs what scripts/setup.sh installs, plus dpkg-dev, lintian and help2man (installed here if
# missing).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

need=()
for p in dpkg-dev lintian fakeroot help2man; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
    echo "package: installing ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

cargo build --release --locked --workspace
release=$repo/target/release
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)-1
arch=$(dpkg --print-architecture)
# The plugin runs only in the server version whose headers it was built with.
server_version=$(dpkg-query -W -f='${Version}' mariadb-server)
# The server's plugin directory (mariadb_config --plugindir names the client library's).
plugin_dir=$(mariadbd --verbose --help 2>/dev/null | awk '$1 == "plugin-dir" { print $2 }')
[ -n "$plugin_dir" ] || { echo "package: cannot ask mariadbd for its plugin-dir" >&2; exit 1; }
maintainer="${DEBFULLNAME:-mysql-gcs} <${DEBEMAIL:-mysql-gcs@localhost}>"
out=$repo/target/debian
rm -rf "$out"
mkdir -p "$out"

# Files common to both: the copyright and a changelog, as Debian wants them.
docs() { # package
    local doc=$1/usr/share/doc/$2
    install -d "$doc"
    cat >"$doc/copyright" <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: mysql-gcs
Source: see README.md

Files: *
Copyright: 2026 the mysql-gcs authors
License: GPL-2.0-only
 On Debian systems, the full text of the GNU General Public License version 2 can be found
 in /usr/share/common-licenses/GPL-2.
COPYRIGHT
    printf '%s (%s) unstable; urgency=medium\n\n  * Built from %s.\n\n -- %s  %s\n' \
        "$2" "$version" "$(git rev-parse --short HEAD 2>/dev/null || echo source)" "$maintainer" \
        "$(date -R -d @"${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}")" |
        gzip -9n >"$doc/changelog.Debian.gz"
}

control() { # root package depends description...
    local root=$1 pkg=$2 depends=$3
    shift 3
    local size
    size=$(du -ks "$root" | cut -f1)
    install -d "$root/DEBIAN"
    {
        echo "Package: $pkg"
        echo "Version: $version"
        echo "Architecture: $arch"
        echo "Maintainer: $maintainer"
        echo "Installed-Size: $size"
        echo "Depends: $depends"
        echo "Section: database"
        echo "Priority: optional"
        printf 'Description: %s\n' "$1"
        shift
        for line in "$@"; do echo " $line"; done
    } >"$root/DEBIAN/control"
}

# ---- mysql-gcs ----
root=$out/mysql-gcs
install -D -m 0755 "$release/gcsd" "$root/usr/bin/gcsd"
install -D -m 0755 "$release/gcsctl" "$root/usr/bin/gcsctl"
strip --strip-unneeded "$root/usr/bin/gcsd" "$root/usr/bin/gcsctl"
install -D -m 0644 packaging/gcsd.service "$root/lib/systemd/system/gcsd.service"
install -d -m 0755 "$root/etc/gcsd"
# The sample with the packaged choices: the plugin on gcsd's socket, TCP read-only, the probe
# password where the postinst puts it, Debian's MariaDB socket for fencing.
"$release/gcsd" --print-sample-config |
    sed -e 's|^# plugin_socket = "/run/gcsd/plugin.sock"|plugin_socket = "/run/gcsd/plugin.sock"|' \
        -e 's|^plugin_tcp_writes = true|plugin_tcp_writes = false|' \
        -e 's|^# password_file = "/etc/gcsd/probe.password"|password_file = "/etc/gcsd/probe.password"|' \
        -e 's|^fence_sockets = \[\]|fence_sockets = ["/run/mysqld/mysqld.sock"]|' \
        >"$root/etc/gcsd/gcsd.toml"
chmod 0644 "$root/etc/gcsd/gcsd.toml"
for key in 'plugin_socket = "/run/gcsd/plugin.sock"' 'plugin_tcp_writes = false' \
    'password_file = "/etc/gcsd/probe.password"' 'fence_sockets = ["/run/mysqld/mysqld.sock"]'; do
    grep -qxF "$key" "$root/etc/gcsd/gcsd.toml" || { echo "package: the sample lost '$key'" >&2; exit 1; }
done
# It must be valid as packaged (with a password file that exists here).
check=$(mktemp -d)
trap 'rm -rf "$check"' EXIT
install -m 0600 /dev/null "$check/probe.password"
sed "s|/etc/gcsd/probe.password|$check/probe.password|" "$root/etc/gcsd/gcsd.toml" >"$check/gcsd.toml"
"$release/gcsd" --config "$check/gcsd.toml" --config-check >/dev/null
# Man pages from --help (help2man), pointing at the README and each gcsctl command's --help.
install -d "$root/usr/share/man/man8"
see_also=$(mktemp)
printf '[SEE ALSO]\n/usr/share/doc/mysql-gcs/README.md.gz (the operator guide);\n.BR gcsd (8),\n.BR gcsctl (8);\n\\fBgcsctl\\fR \\fICOMMAND\\fR \\fB\\-\\-help\\fR for each command.\n' >"$see_also"
for man in "gcsd:the mysql-gcs group sidecar, one per database host" \
    "gcsctl:the mysql-gcs operator's command line"; do
    help2man --no-info --section 8 --include "$see_also" --name "${man#*:}" \
        "$release/${man%%:*}" | gzip -9n >"$root/usr/share/man/man8/${man%%:*}.8.gz"
done
rm -f "$see_also"
install -D -m 0644 README.md "$root/usr/share/doc/mysql-gcs/README.md"
gzip -9n "$root/usr/share/doc/mysql-gcs/README.md"
docs "$root" mysql-gcs
install -d "$root/DEBIAN"
install -m 0755 packaging/mysql-gcs.postinst "$root/DEBIAN/postinst"
install -m 0755 packaging/mysql-gcs.postrm "$root/DEBIAN/postrm"
echo /etc/gcsd/gcsd.toml >"$root/DEBIAN/conffiles"
control "$root" mysql-gcs "adduser, libc6 (>= 2.34), libgcc-s1" \
    "group sidecar for MariaDB/MySQL replication clusters (gcsd, gcsctl)" \
    "gcsd runs beside each database server; the gcsd of a cluster's hosts form" \
    "a consensus group (Raft) that commits every change: which servers are up," \
    "pools with one writable ACTIVE, fencing, failover and load-balancer verdicts." \
    "gcsctl is the operator's command line."
dpkg-deb --root-owner-group -Zxz --build "$root" "$out/mysql-gcs_${version}_${arch}.deb" >/dev/null

# ---- mariadb-plugin-gcs ----
root=$out/mariadb-plugin-gcs
install -D -m 0644 "$release/libmysql_gcs.so" "$root$plugin_dir/libmysql_gcs.so"
strip --strip-unneeded "$root$plugin_dir/libmysql_gcs.so"
install -D -m 0644 packaging/mariadb-plugin-gcs.cnf "$root/etc/mysql/mariadb.conf.d/60-gcs.cnf"
docs "$root" mariadb-plugin-gcs
install -d "$root/DEBIAN"
install -m 0755 packaging/mariadb-plugin-gcs.postinst "$root/DEBIAN/postinst"
install -m 0755 packaging/mariadb-plugin-gcs.postrm "$root/DEBIAN/postrm"
echo /etc/mysql/mariadb.conf.d/60-gcs.cnf >"$root/DEBIAN/conffiles"
control "$root" mariadb-plugin-gcs "mariadb-server (= $server_version), mysql-gcs (= $version), libc6 (>= 2.34), libgcc-s1, libstdc++6" \
    "mysql-gcs plugins for MariaDB: isis2d and INFORMATION_SCHEMA.ISIS2IS" \
    "isis2d announces this server to the local gcsd; ISIS2IS lists the cluster's" \
    "servers and their verdicts through plain SQL. Built for MariaDB" \
    "$server_version exactly: a plugin's interface is tied to the server" \
    "version it was built against, so this package depends on that version."
dpkg-deb --root-owner-group -Zxz --build "$root" "$out/mariadb-plugin-gcs_${version}_${arch}.deb" >/dev/null

ls -l "$out"/*.deb
# Each tag left is explained in packaging/lintian-explained; any other fails the build.
tags=$(grep -v '^#' packaging/lintian-explained | awk 'NF { print $1 }' | paste -sd, -)
lintian --tag-display-limit 0 --fail-on error,warning --suppress-tags "$tags" "$out"/*.deb
echo "package: lintian passed (explained tags: packaging/lintian-explained)"
