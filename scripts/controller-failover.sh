#!/usr/bin/env bash
# Controller failover timing: on a three-node cluster (real `spate serve` processes, election
# timeout 500 ms, session timeout 3 s), TRIALS times: kill -9 the active controller, time the
# election of another and the first CreateTopics a survivor accepts, restart the killed node and
# wait until it follows. Prints each trial and the medians. CI runs the same trial 3 times
# (tests/tests/cluster_controller_failover.rs); this runs it TRIALS times.
#
# Not run in CI (~1 minute for 10 trials on 2 cores, debug build).
#
# Usage: scripts/controller-failover.sh [TRIALS]               (default 10)
#        SPATE_BIN=target/release/spate scripts/controller-failover.sh   times a release build
#        SPATE_FAILOVER_ELECTION_TIMEOUT_MS=1000 scripts/…   with the default election timeout
set -euo pipefail
cd "$(dirname "$0")/.."

export SPATE_FAILOVER_TRIALS="${1:-10}"
cargo build -q -p spate
exec cargo test -q -p spate-tests --test cluster_controller_failover -- \
  controller_failover_recovery_time_over_many_trials --exact --ignored --nocapture
