#!/usr/bin/env bash
# The long nemesis matrix (issue 15): TRIALS trials (default 100) of every nemesis and of the
# seeded mix, each on a fresh 3-node cluster in network namespaces (RF 3,
# min.insync.replicas=2), with the history checker over every trial. Prints the results table
# for docs/reliability.md (## Nemeses) and writes it to target/nemesis/table.md.
#
#   scripts/nemesis.sh                  # 100 trials each: hours on a 2-core machine
#   scripts/nemesis.sh 3                # a sample: 3 trials each
#   scripts/nemesis.sh 3 kill-leader,mix
#
# Needs root (network namespaces, nftables, a tmpfs mount); scripts/install-test-deps.sh
# installs the tools. Histories of trials with anomalies are kept under /tmp and named in the
# output. Nemeses: kill-node kill-leader kill-controller pause partition-majority
# partition-leader partition-bridge one-way-loss lossy slow disk-full mix.
set -euo pipefail
cd "$(dirname "$0")/.."
trials="${1:-100}"
only="${2:-}"
scripts/install-test-deps.sh
cargo build -p spate
mkdir -p target/nemesis
export SPATE_BIN="$PWD/target/debug/spate"
export SPATE_NEMESIS_TRIALS="$trials"
export SPATE_NEMESIS_TABLE="$PWD/target/nemesis/table.md"
if [ -n "$only" ]; then export SPATE_NEMESIS_ONLY="$only"; fi
status=0
cargo nextest run -p spate-tests -E 'binary(nemesis_matrix)' --run-ignored ignored-only \
  --no-capture || status=$?
echo
echo "## Nemeses: $trials trial(s) each"
cat "$SPATE_NEMESIS_TABLE" 2>/dev/null || echo "(no table: the run stopped early)"
exit "$status"
