#!/usr/bin/env bash
# Installs everything mysql-gcs needs to build and test on Debian 12, as root. Idempotent:
# running it again changes nothing that is already in place.
set -euo pipefail

packages=(
  # build
  build-essential pkg-config
  # multi-host and partition tests: network namespaces, veth, packet filtering
  iproute2 iptables
  # the demo and scripts
  curl ca-certificates
  # load balancer tests and contrib/ examples (issue 9): HAProxy and its runtime socket
  haproxy socat keepalived
  # benchmarks (bench/)
  sysbench
  valgrind
)

if [ "$(id -u)" -ne 0 ]; then
  echo "setup: run as root (apt-get, network namespaces)" >&2
  exit 1
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# MariaDB (server, client, mariadb-test, client and server dev files), pinned to the newest
# version whose source can be downloaded, and that source's headers for the plugin's C++ shim.
bash "$(dirname "${BASH_SOURCE[0]}")/mariadb-headers.sh"

# Rust comes from rustup (Debian 12's rustc is too old for redb and openraft).
need_rust="1.90"
if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found. Install Rust ${need_rust} or newer with rustup, then run this again." >&2
  exit 1
fi
have_rust=$(rustc --version | awk '{print $2}')
if [ "$(printf '%s\n%s\n' "$need_rust" "$have_rust" | sort -V | head -n1)" != "$need_rust" ]; then
  echo "setup: rustc $have_rust is older than $need_rust; run 'rustup update'." >&2
  exit 1
fi
echo "setup: ready (rustc $have_rust, $(mariadbd --version 2>/dev/null | awk '{print $3}'))"
