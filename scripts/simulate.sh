#!/usr/bin/env bash
# The replication simulator's long campaign: runs [seeds] random schedules (default
# 1,000,000) from [first-seed] through the deterministic simulator in
# cluster/tests/common/sim, on every core (SPATE_SIM_THREADS to choose), in a release build
# with debug assertions and overflow checks kept on (they are invariants too). Prints
# progress, seeds per second, and every failing seed with its replay command; exits non-zero
# if any seed fails.
#
# Usage: scripts/simulate.sh [seeds] [first-seed]
#        SPATE_INJECT_BUG=skip-truncation scripts/simulate.sh 1000   # with an injected bug
set -euo pipefail
cd "$(dirname "$0")/.."

seeds="${1:-1000000}"
first="${2:-}"
features=()
if [[ -n "${SPATE_INJECT_BUG:-}" ]]; then
    features=(--features bug-injection)
fi

export CARGO_PROFILE_RELEASE_DEBUG_ASSERTIONS=true
export CARGO_PROFILE_RELEASE_OVERFLOW_CHECKS=true
export SPATE_SIM_SEEDS="$seeds"
if [[ -n "$first" ]]; then
    export SPATE_SIM_FIRST_SEED="$first"
fi
exec cargo test --release --locked -p spate-cluster "${features[@]}" \
    --test replication_simulation -- --ignored --exact campaign --nocapture
