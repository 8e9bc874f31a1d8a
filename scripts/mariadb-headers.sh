#!/usr/bin/env bash
# Prepares this Debian 12 machine to compile the plugin's C++ shim against MariaDB's *private*
# server headers (sql_class.h, table.h, field.h, ...), taken from the Debian source package of
# exactly the server version that is installed. Run as root. Idempotent: when everything is in
# place it only checks versions and exits within a second; the 115 MB source tarball is cached.
#
# Why all this: an INFORMATION_SCHEMA plugin can only fill its table through C++ classes (TABLE,
# Field, THD) whose layouts are not part of any public header, and Debian's libmariadbd-dev drops
# server/private. The server also refuses a plugin whose interface version (MYSQL_VERSION_ID << 8)
# differs from its own, so headers and server must be the same version.
#
# Result (build.rs reads the symlink unless MARIADB_SERVER_HEADERS is set):
#   /usr/local/share/mysql-gcs/mariadb-server-headers -> mariadb-<debian version>/
#       VERSION include/ sql/ wsrep-lib/    subset of the source tarball
#       generated/                          my_config.h mysql_version.h mysqld_error.h
#                                           (from the installed server) probes_mysql_nodtrace.h
#       mysql-gcs-headers.env               versions, include order, defines (sh syntax)
#
# Environment:
#   MARIADB_HEADERS_DIR      where to put the headers (default: versioned dir shown above)
#   MARIADB_VERSION          force a Debian version, e.g. 1:10.11.18-0+deb12u1
#   MARIADB_HEADERS_REFRESH  =1: skip the fast no-op check and choose the version again
#                            (e.g. to move to a newer security release once its source exists)
#   MYSQL_GCS_PIN_MARIADB    =1: this is a throwaway test machine: install the newest MariaDB
#                            whose source can be fetched, downgrading the installed one if need
#                            be, and pin it (scripts/test.sh and scripts/demo.sh set it, and say
#                            so). Without it an installed server is never changed or pinned:
#                            the headers are those of exactly the installed version, or the
#                            script stops and says why and what the options are.
set -euo pipefail

readonly SHARE_DIR=/usr/local/share/mysql-gcs
readonly LINK="$SHARE_DIR/mariadb-server-headers"
readonly CACHE_DIR=/var/cache/mysql-gcs/mariadb-src
readonly SOURCES_FILE=/etc/apt/sources.list.d/debian.sources
readonly PIN_FILE=/etc/apt/preferences.d/mysql-gcs-mariadb
readonly MARKER=mysql-gcs-headers.env
readonly SERVER_INC=/usr/include/mariadb/server
# Binary packages we need ourselves. Every other installed package built from the mariadb
# source is pinned to the same version too, because they depend on each other with "=".
readonly REQUIRED_PKGS=(mariadb-server mariadb-client mariadb-test libmariadb-dev libmariadbd-dev)
# The parts of the source tree a plugin shim includes (about 8.6 MB of the 115 MB tarball).
readonly SOURCE_PARTS=(VERSION include/ 'sql/*.h' 'sql/*.hh' 'sql/*.inl' wsrep-lib/include wsrep-lib/wsrep-API)
# Include order matters: generated/ first so the installed server's build config wins, but the
# whole installed server dir must NOT go ahead of the source's include/ (its copies differ).
readonly INCLUDE_ORDER=(generated include sql wsrep-lib/include wsrep-lib/wsrep-API/v26)
# MYSQL_SERVER: the server's own view of the headers; without it THD is an incomplete type
#   (sql_class.h hides it) and some macros differ (NOT_FIXED_DEC). MariaDB's feedback plugin
#   defines it the same way.
# MYSQL_DYNAMIC_PLUGIN: what MariaDB's CMake sets for plugins built as a .so (service pointers).
# DBUG_OFF: Debian builds the server without DBUG; without it THD's layout is different.
readonly DEFINES=(MYSQL_SERVER MYSQL_DYNAMIC_PLUGIN DBUG_OFF)

export DEBIAN_FRONTEND=noninteractive

log() { echo "mariadb-headers: $*"; }
die() { echo "mariadb-headers: ERROR: $*" >&2; exit 1; }

# Runs an apt command, waiting while another process (maybe a colleague's apt-get install) holds
# the apt/dpkg locks. DPkg::Lock::Timeout covers dpkg's lock; the loop covers the lists lock of
# `apt-get update` and the archives lock of downloads.
apt_run() {
  local err attempt
  err=$(mktemp)
  for attempt in $(seq 1 60); do
    if "$1" -o DPkg::Lock::Timeout=600 "${@:2}" 2>"$err"; then
      cat "$err" >&2
      rm -f "$err"
      return 0
    fi
    cat "$err" >&2
    if grep -qiE 'could not get lock|unable to lock|is another process using it' "$err"; then
      log "apt is locked by another process; waiting (attempt $attempt/60)" >&2
      sleep 10
      continue
    fi
    rm -f "$err"
    return 1
  done
  rm -f "$err"
  die "apt stayed locked for 10 minutes"
}

# 1:10.11.18-0+deb12u1 -> 10.11.18 (upstream version: no epoch, no Debian revision)
upstream_of() { local v=${1#*:}; echo "${v%-*}"; }
# 1:10.11.18-0+deb12u1 -> 10.11.18-0+deb12u1 (for directory names)
noepoch_of() { echo "${1#*:}"; }
# 10.11.18 -> 101118, the MYSQL_VERSION_ID formula
version_id_of() { local IFS=.; set -- $1; echo $(( $1 * 10000 + $2 * 100 + $3 )); }
version_id_in() { awk '$1 == "#define" && $2 == "MYSQL_VERSION_ID" { print $3 }' "$1"; }

# "pkg version" for every installed package built from the mariadb source package.
# (Callers store this in a variable before grepping: with pipefail, `... | grep -q` can fail
# spuriously when grep exits early and the writer gets SIGPIPE.)
installed_mariadb_pkgs() {
  dpkg-query -W -f='${db:Status-Abbrev}|${Package}|${source:Package}|${Version}\n' 2>/dev/null |
    awk -F'|' '$1 ~ /^ii/ && $3 == "mariadb" { print $2, $4 }'
}

# Fast path: true when the headers, the pin and all installed mariadb packages agree.
already_done() {
  [ "${MARIADB_HEADERS_REFRESH:-0}" != 1 ] || return 1
  local dir=${MARIADB_HEADERS_DIR:-$LINK}
  [ -f "$dir/$MARKER" ] && [ -f "$dir/sql/sql_class.h" ] || return 1
  local want
  want=$(. "$dir/$MARKER" && echo "$MARIADB_DEB_VERSION")
  [ -n "$want" ] || return 1
  [ -z "${MARIADB_VERSION:-}" ] || [ "$MARIADB_VERSION" = "$want" ] || return 1
  # A pin, when there is one (MYSQL_GCS_PIN_MARIADB=1 wrote it), must be this version's.
  if [ -e "$PIN_FILE" ]; then
    grep -qxF "Pin: version $want" "$PIN_FILE" 2>/dev/null || return 1
  elif [ "${MYSQL_GCS_PIN_MARIADB:-0}" = 1 ]; then
    return 1
  fi
  local installed p
  installed=$(installed_mariadb_pkgs)
  for p in "${REQUIRED_PKGS[@]}"; do
    grep -qxF "$p $want" <<<"$installed" || return 1
  done
  # Nothing from the mariadb source may be at another version (e.g. a manual upgrade).
  awk -v w="$want" '$2 != w { bad = 1 } END { exit bad }' <<<"$installed" || return 1
  [ "$(version_id_in "$dir/generated/mysql_version.h" 2>/dev/null)" = "$(version_id_in "$SERVER_INC/mysql_version.h" 2>/dev/null)" ] || return 1
  log "ready: MariaDB $want headers in $(readlink -f "$dir") (nothing to do)"
}

# Step 1: deb-src entries for the existing Debian sources, without naming any mirror.
enable_deb_src() {
  [ -f "$SOURCES_FILE" ] || die "$SOURCES_FILE not found; add deb-src entries for Debian by hand"
  if grep -qx 'Types: deb' "$SOURCES_FILE"; then
    log "enabling deb-src in $SOURCES_FILE"
    sed -i 's/^Types: deb$/Types: deb deb-src/' "$SOURCES_FILE"
  fi
  log "apt-get update"
  apt_run apt-get update -qq
}

# Step 2a: the newest mariadb-server version whose source package can actually be downloaded.
# The source of a fresh security update is sometimes missing from the archive (404) although
# its binaries are there, so we try versions newest first and take the first that downloads.
choose_and_download() {
  mkdir -p "$CACHE_DIR"
  # apt downloads as user _apt; let it write here, or apt warns and downloads unsandboxed.
  id _apt >/dev/null 2>&1 && chown _apt:root "$CACHE_DIR"

  local candidates=()
  if [ -n "${MARIADB_VERSION:-}" ]; then
    candidates=("$MARIADB_VERSION")
  else
    mapfile -t candidates < <(apt-cache madison mariadb-server | awk -F'|' '{ gsub(/ /, "", $2); print $2 }' |
      sort -u | sort -r -V)
  fi
  [ ${#candidates[@]} -gt 0 ] || die "apt knows no mariadb-server version; is apt-get update broken?"
  log "mariadb-server versions known to apt: ${candidates[*]}"

  local v src_ver sources
  sources=$(apt-cache showsrc mariadb 2>/dev/null || true)
  for v in "${candidates[@]}"; do
    # Source version normally equals the binary version; a binNMU would say "Source: x (ver)".
    src_ver=$(apt-cache show "mariadb-server=$v" 2>/dev/null |
      sed -n 's/^Source: mariadb (\(.*\))$/\1/p' | head -n1)
    src_ver=${src_ver:-$v}
    if ! grep -qxF "Version: $src_ver" <<<"$sources"; then
      log "$v: no source package $src_ver in the apt lists; skipping"
      continue
    fi
    if download_source "$src_ver"; then
      CHOSEN=$v
      CHOSEN_SRC=$src_ver
      log "chose MariaDB $v (newest version whose source is downloadable)"
      return 0
    fi
    log "$v: source $src_ver could not be downloaded (often a 404 for fresh security updates); trying an older version"
  done
  die "no mariadb source package could be downloaded (tried: ${candidates[*]})"
}

# Downloads mariadb=<src_ver> into the cache unless it is there already. `--print-uris` lists
# only files that are missing or whose checksum does not match the apt lists, so an empty list
# means the cached copy is complete and verified (no network needed).
download_source() {
  local src_ver=$1 uris
  uris=$(cd "$CACHE_DIR" && apt-get source --print-uris -qq "mariadb=$src_ver" 2>/dev/null) || return 1
  if [ -z "$uris" ]; then
    log "source mariadb $src_ver already in $CACHE_DIR"
    return 0
  fi
  log "downloading source mariadb $src_ver (~115 MB) into $CACHE_DIR"
  (cd "$CACHE_DIR" && apt_run apt-get source --download-only -qq "mariadb=$src_ver" >/dev/null) || return 1
  # Drop other versions' tarballs so the cache holds one copy of ~115 MB.
  local up
  up=$(upstream_of "$src_ver")
  find "$CACHE_DIR" -maxdepth 1 -type f -name 'mariadb_*' \
    ! -name "mariadb_${up}.orig.tar*" ! -name "mariadb_$(noepoch_of "$src_ver").*" -delete
}

# Step 2b: pin all mariadb packages to the chosen version, then install/downgrade to it.
# The pin (priority > 1000, so it also allows downgrades) keeps `apt-get upgrade` from moving
# the server away from the headers: a server of another version refuses our plugin. Security
# updates of MariaDB are therefore held back until someone reruns this script with
# MARIADB_HEADERS_REFRESH=1 (which picks the newest version whose source exists) and rebuilds.
pin_and_install() {
  local v=$1
  if [ "${MYSQL_GCS_PIN_MARIADB:-0}" != 1 ]; then
    log "not pinning MariaDB (MYSQL_GCS_PIN_MARIADB is not 1): after an upgrade of the server, run MARIADB_HEADERS_REFRESH=1 scripts/mariadb-headers.sh and rebuild"
    install_at "$v"
    return
  fi
  log "MYSQL_GCS_PIN_MARIADB=1: pinning MariaDB at $v; this holds back its updates (security ones too) on this machine until $PIN_FILE is removed"
  local new_pin
  new_pin=$(cat <<EOF
# Written by mysql-gcs scripts/mariadb-headers.sh. Do not edit; rerun the script instead.
# The plugin's C++ shim is compiled against MariaDB's private headers from the source package
# of exactly this version, and the server refuses a plugin built for another MYSQL_VERSION_ID.
# This pin stops 'apt-get upgrade' from moving any package of the mariadb source away from it.
# To move to a newer MariaDB: MARIADB_HEADERS_REFRESH=1 scripts/mariadb-headers.sh, then rebuild.
Package: src:mariadb:any
Pin: version $v
Pin-Priority: 1001
EOF
)
  if [ "$(cat "$PIN_FILE" 2>/dev/null)" != "$new_pin" ]; then
    log "pinning all mariadb packages to $v in $PIN_FILE"
    echo "$new_pin" >"$PIN_FILE"
  fi
  install_at "$v"
}

# Installs every package of the mariadb source we need (and the ones installed already) at
# version $1.
install_at() {
  local v=$1
  local pkgs=() p
  mapfile -t pkgs < <({ printf '%s\n' "${REQUIRED_PKGS[@]}"; installed_mariadb_pkgs | awk '{ print $1 }'; } | sort -u)
  local todo=() installed
  installed=$(installed_mariadb_pkgs)
  for p in "${pkgs[@]}"; do
    grep -qxF "$p $v" <<<"$installed" || todo+=("$p=$v")
  done
  # A C++ compiler is part of "ready to compile the shim"; it is not mariadb, so not pinned.
  command -v g++ >/dev/null 2>&1 || todo+=(g++)
  if [ ${#todo[@]} -eq 0 ]; then
    log "all mariadb packages already at $v"
    return 0
  fi
  log "installing ${todo[*]}"
  # dpkg's chatter goes to /dev/null; errors and warnings (stderr) stay visible.
  apt_run apt-get install -y -qq --no-install-recommends --allow-downgrades "${todo[@]}" >/dev/null
  # Anything still at another version would break dpkg's "=" dependencies or the match.
  local stray
  stray=$(installed_mariadb_pkgs | awk -v w="$v" '$2 != w')
  [ -z "$stray" ] || die "these mariadb packages are not at $v: $stray"
}

# Step 3: extract the header subset and add the generated headers, in a temp dir that is renamed
# into place only when complete and checked (a failed run leaves no half-filled or unusable
# directory behind, so the next run's fast path cannot mistake it for a good one).
extract_headers() {
  local v=$1 src_ver=$2 dest=$3
  local up tarball top tmp
  up=$(upstream_of "$src_ver")
  tarball=$(ls "$CACHE_DIR"/mariadb_"$up".orig.tar.* 2>/dev/null | grep -v '\.asc$' | head -n1)
  [ -n "$tarball" ] || die "no mariadb_$up.orig.tar.* in $CACHE_DIR"
  top="mariadb-$up"

  warn_about_debian_patches "$src_ver"

  tmp="$dest.tmp.$$"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  log "extracting headers from $(basename "$tarball") into $dest"
  local parts=() part
  for part in "${SOURCE_PARTS[@]}"; do parts+=("$top/$part"); done
  tar -xf "$tarball" -C "$tmp" --strip-components=1 --wildcards "${parts[@]}"

  # The tarball lacks headers that CMake generates; take them from the installed server, since
  # they carry the configuration the binary was built with.
  mkdir -p "$tmp/generated"
  local h
  for h in my_config.h mysql_version.h mysqld_error.h; do
    [ -f "$SERVER_INC/$h" ] || die "$SERVER_INC/$h missing; is libmariadbd-dev installed?"
    cp "$SERVER_INC/$h" "$tmp/generated/"
  done
  cp "$tmp/include/probes_mysql_nodtrace.h.in" "$tmp/generated/probes_mysql_nodtrace.h"

  verify_versions "$v" "$tmp"
  smoke_compile "$tmp"
  write_marker "$v" "$src_ver" "$dest" >"$tmp/$MARKER"

  rm -rf "$dest"
  mv "$tmp" "$dest"
}

# Debian's patches are not applied to our extract. Today none touches a header; say so loudly
# if a future revision does, because then the extract would differ from the built server.
warn_about_debian_patches() {
  local src_ver=$1 deb
  deb="$CACHE_DIR/mariadb_$(noepoch_of "$src_ver").debian.tar.xz"
  [ -f "$deb" ] || return 0
  local touched
  touched=$(tar -xOf "$deb" --wildcards 'debian/patches/*' 2>/dev/null |
    sed -n 's|^+++ [^/]*/||p' | awk '{ print $1 }' |
    grep -E '^(VERSION$|include/|sql/[^/]*\.(h|hh|inl)$|wsrep-lib/)' | sort -u || true)
  if [ -n "$touched" ]; then
    log "WARNING: Debian patches of $src_ver change headers we use, which are extracted unpatched:"
    echo "$touched" | sed 's/^/    /'
  fi
}

# Step 4: the generated version header, the installed server and the source must agree.
verify_versions() {
  local v=$1 dir=$2
  local id_gen id_src id_pkg id_bin bin_ver
  id_gen=$(version_id_in "$dir/generated/mysql_version.h")
  id_src=$(. "$dir/VERSION" && echo $(( MYSQL_VERSION_MAJOR * 10000 + MYSQL_VERSION_MINOR * 100 + MYSQL_VERSION_PATCH )))
  id_pkg=$(version_id_of "$(upstream_of "$v")")
  bin_ver=$(/usr/sbin/mariadbd --version | sed -n 's/.* Ver \([0-9]*\.[0-9]*\.[0-9]*\).*/\1/p')
  id_bin=$(version_id_of "${bin_ver:-0.0.0}")
  log "MYSQL_VERSION_ID: generated/mysql_version.h=$id_gen source VERSION=$id_src package=$id_pkg mariadbd=$id_bin"
  if [ "$id_gen" != "$id_src" ] || [ "$id_gen" != "$id_pkg" ] || [ "$id_gen" != "$id_bin" ]; then
    die "version mismatch between installed server and source headers. Check 'apt-cache policy mariadb-server' and $PIN_FILE, make every mariadb package the same version, then rerun with MARIADB_HEADERS_REFRESH=1"
  fi
}

write_marker() {
  local v=$1 src_ver=$2 dest=$3 up id
  up=$(upstream_of "$v")
  id=$(version_id_of "$up")
  cat <<EOF
# Written by mysql-gcs scripts/mariadb-headers.sh; sh syntax. Lists are colon-separated.
MARIADB_DEB_VERSION=$v
MARIADB_SOURCE_VERSION=$src_ver
MARIADB_VERSION=$up
MYSQL_VERSION_ID=$id
MARIADB_SERVER_HEADERS=$dest
# include dirs, relative to MARIADB_SERVER_HEADERS, in this order
MARIADB_INCLUDE_DIRS=$(IFS=:; echo "${INCLUDE_ORDER[*]}")
MARIADB_DEFINES=$(IFS=:; echo "${DEFINES[*]}")
EOF
}

# Step 5: compile a throwaway I_S-style shim against the result, proving the include setup.
smoke_compile() {
  local dest=$1 tmp flags=()
  tmp=$(mktemp -d)
  local d
  for d in "${INCLUDE_ORDER[@]}"; do flags+=("-I$dest/$d"); done
  for d in "${DEFINES[@]}"; do flags+=("-D$d"); done
  cat >"$tmp/shim.cc" <<'EOF'
#include <my_global.h>
#include <sql_class.h>
#include <table.h>
#include <field.h>
#include <sql_show.h>
#include <sql_parse.h>
#include <mysql/plugin.h>

namespace Show {
static ST_FIELD_INFO probe_fields[] = {
  Column("NAME", Varchar(255), NOT_NULL),
  Column("N", ULong(), NULLABLE),
  CEnd()
};
}

extern "C" int probe_fill(THD *thd, TABLE_LIST *tables, Item *) {
  if (check_global_access(thd, PROCESS_ACL, true) || thd->killed)
    return 0;
  TABLE *table = tables->table;
  restore_record(table, s->default_values);
  table->field[0]->store("x", 1, system_charset_info);
  table->field[1]->store((longlong) 42, true);
  table->field[1]->set_notnull();
  return schema_table_store_record(thd, table);
}
static_assert(MYSQL_VERSION_ID > 0, "version");
EOF
  log "smoke test: g++ -c -std=c++17 -fPIC ${flags[*]} shim.cc"
  if ! g++ -c -std=c++17 -fPIC "${flags[@]}" "$tmp/shim.cc" -o "$tmp/shim.o"; then
    rm -rf "$tmp"
    die "the smoke test shim does not compile against $dest (left in place for inspection)"
  fi
  rm -rf "$tmp"
  log "smoke test compiled"
}

main() {
  [ "$(id -u)" -eq 0 ] || die "run as root (apt-get, /usr/local/share, /etc/apt)"
  # Two runs at once (e.g. two engineers running setup.sh) would fight over apt and the dirs.
  mkdir -p /run/lock
  exec 9>/run/lock/mysql-gcs-mariadb-headers.lock
  flock 9

  already_done && return 0

  enable_deb_src
  CHOSEN='' CHOSEN_SRC=''
  local installed
  installed=$(installed_mariadb_pkgs | awk '$1 == "mariadb-server" { print $2 }')
  if [ -n "$installed" ] && [ "${MYSQL_GCS_PIN_MARIADB:-0}" != 1 ]; then
    # Never hold a user's server back: the headers of exactly the installed server, or stop.
    [ -z "${MARIADB_VERSION:-}" ] || [ "$MARIADB_VERSION" = "$installed" ] ||
      die "MARIADB_VERSION=$MARIADB_VERSION differs from the installed mariadb-server $installed; this script changes an installed server only with MYSQL_GCS_PIN_MARIADB=1"
    MARIADB_VERSION=$installed
    if ! (choose_and_download) 2>/dev/null; then
      die "mariadb-server $installed is installed, and its Debian source package (the plugin
  is compiled against that exact version's server headers) cannot be downloaded from this
  machine's apt sources yet: the source of a fresh security update often lags its binaries.
  This script does not change an installed server: a downgrade and a pin would hold back its
  security updates. Options:
  - run it again once the source of $installed is on the mirror (apt-cache showsrc mariadb);
  - on a test machine only: MYSQL_GCS_PIN_MARIADB=1 scripts/setup.sh installs the newest
    MariaDB whose source can be fetched (a downgrade here) and pins it in $PIN_FILE
    (remove that file to let MariaDB update again)."
    fi
  fi
  choose_and_download
  pin_and_install "$CHOSEN"

  local dest=${MARIADB_HEADERS_DIR:-$SHARE_DIR/mariadb-$(noepoch_of "$CHOSEN")}
  mkdir -p "$(dirname "$dest")"
  extract_headers "$CHOSEN" "$CHOSEN_SRC" "$dest"

  mkdir -p "$SHARE_DIR"
  ln -sfn "$dest" "$LINK"
  log "ready: MariaDB $CHOSEN headers in $dest ($LINK points there)"
}

main "$@"
