#!/usr/bin/env bash
# False failovers: a pool of two on three gcsd and three mariadbd (loopback), left alone for
# BENCH_SECS (600) seconds with 100 ms of delay on every member-to-member link (a userspace
# delay proxy, bench/delay_proxy.py: these machines have no netem) while sysbench keeps every
# core busy and HAProxy (contrib/haproxy, agent-check) checks every 100 ms. Prints the pool
# transitions and membership changes committed meanwhile (the target is 0 of each).
#
#   bench/false-failovers.sh        # BENCH_SECS=N for a shorter run
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --workspace --quiet
cargo test --release --quiet --test pools "haproxy::false_failover_benchmark" -- \
    --exact --ignored --nocapture 2>&1 | grep -v '^running\|^$\|^test result\|^\.$\|running for over'
