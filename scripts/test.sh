#!/usr/bin/env bash
# Sets the machine up and runs every check and test: formatting, lints, unit, property and
# integration tests (real gcsd processes on loopback and in network namespaces).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
