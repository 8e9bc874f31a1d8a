#!/usr/bin/env bash
# Every symbol libmysql_gcs.so leaves undefined must be provided by mariadbd (or the C/C++
# runtime). rustc links a cdylib without `-z defs`, so a misspelt server symbol would otherwise
# only show up as a failed INSTALL PLUGIN.
set -euo pipefail
lib=${1:-target/debug/libmysql_gcs.so}
server=${MARIADBD:-$(command -v mariadbd || echo /usr/sbin/mariadbd)}
[ -f "$lib" ] || { echo "check-symbols: $lib not found; run cargo build --workspace" >&2; exit 1; }

# Versioned symbols (name@GLIBC_x) come from shared libraries the loader resolves by version.
undefined=$(nm -D --undefined-only "$lib" | awk '{print $2}' | grep -v '@' | grep -v -E '^(_ITM_|__gmon_start__)' | sort -u)
provided=$(nm -D --defined-only "$server" | awk '{print $3}' | sort -u)
missing=$(comm -23 <(echo "$undefined") <(echo "$provided"))
if [ -n "$missing" ]; then
  echo "check-symbols: $lib needs symbols that $server does not export:" >&2
  echo "$missing" | sed 's/^/  /' >&2
  exit 1
fi
echo "check-symbols: all $(echo "$undefined" | wc -l) server symbols of $lib are exported by $server"
