#!/usr/bin/env bash
# Hybrid sync on this machine: a control plane and 10 data planes (release build); the time from an
# Admin API write to the change answering on every data plane (p50/p99 over 100 changes), and a full
# sync of 10,000 routes (frame size, apply time). Replaces the "Hybrid sync" section of
# docs/benchmarks.md. See tests/src/bin/hybrid-bench.rs.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p gateway --quiet
cargo run --release -p gateway-tests --bin hybrid-bench --quiet
