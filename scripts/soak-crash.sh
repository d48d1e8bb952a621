#!/usr/bin/env bash
# Crash soak: thousands of SIGKILLs of an engine appending with flush=always, each followed by
# a reopen that checks every acknowledged batch is still there byte-identical, offsets are
# dense, and nothing torn is served. The same check CI runs 30 times
# (engine/tests/crash_kill9.rs); this runs it KILLS times in a release build.
#
# Not run in CI (it takes ~10 minutes per 2,000 kills on 2 cores).
#
# Usage: scripts/soak-crash.sh [KILLS]          (default 2000)
#        SPATE_CRASH_SEED=<seed> scripts/soak-crash.sh 500   replays a failing run's seed
set -euo pipefail
cd "$(dirname "$0")/.."

kills="${1:-2000}"
export SPATE_CRASH_KILLS="$kills"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/soak}"
cargo test --release -p spate-engine --test crash_kill9 -- \
  crash_kill9_soak --exact --ignored --nocapture --test-threads=1
