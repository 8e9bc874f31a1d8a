#!/usr/bin/env bash
# The failover benchmark: three gcsd and three mariadbd on loopback (two in master-master GTID
# replication as one pool, the third a replica of the ACTIVE), a writer process inserting as a
# normal user on both pool members every 5 ms, and a sampler reading both servers' read_only
# every 10 ms. Each trial: kill -9 of the ACTIVE, restart and `gcsctl recover` (reinstatement),
# `gcsctl switchover`, `gcsctl activate-primary`, SIGSTOP. Then the same pool with each host a
# network namespace: isolation of the ACTIVE's host, heal, recover. Prints p50, p99 and max of
# each figure and the number of sampled instants with two writable pool members.
#
#   bench/failover.sh              # 20 trials (BENCH_TRIALS=N for more)
#
# Release build; uses the harness of tests/pools.rs (its own ports and temporary directories,
# removed at the end). Needs what scripts/setup.sh installs.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --workspace --quiet
for bench in failover_benchmark isolation_benchmark; do
    BENCH_TRIALS=${BENCH_TRIALS:-20} cargo test --release --quiet --test pools "$bench" -- \
        --exact --ignored --nocapture 2>&1 | grep -v '^running\|^$\|^test result\|^\.$\|running for over'
done
