#!/usr/bin/env bash
# Failover as applications see it through HAProxy (Debian's), configured with contrib/haproxy:
# three gcsd and three mariadbd on loopback, a pool of two. Each trial: kill -9 of the ACTIVE,
# the time until a write through HAProxy's writer port is taken by the new ACTIVE, then
# restart, recover, and the next trial; for the agent-check variant, agent-check with gcsd's
# runtime push, and the httpchk variant. Then host isolation (network namespaces, HAProxy
# outside), and what HAProxy's checks cost gcsd in CPU. HAProxy's writer backend is sampled
# every 10 ms throughout: never two writer servers up.
#
#   bench/haproxy.sh               # 20 trials (BENCH_TRIALS=N), 30 s CPU windows (BENCH_SECS=N)
#
# Release build; the harness of tests/pools.rs (own ports and temporary directories).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --workspace --quiet
for bench in haproxy_failover_benchmark haproxy_isolation_benchmark haproxy_check_cost_benchmark; do
    BENCH_TRIALS=${BENCH_TRIALS:-20} cargo test --release --quiet --test pools "haproxy::$bench" -- \
        --exact --ignored --nocapture 2>&1 | grep -v '^running\|^$\|^test result\|^\.$\|running for over'
done
