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
#
# With an injected bug (docs/reliability.md, "Injected bugs"):
#
#   SPATE_INJECT_BUG=hw-before-isr scripts/nemesis.sh 3 kill-leader,partition-leader
#
# builds `spate` with `--features spate-cluster/bug-injection`, keeps that binary as
# target/bug-injection/spate, rebuilds the plain target/debug/spate, and runs the trials on
# the bug binary; every node inherits SPATE_INJECT_BUG (a comma list of hw-before-isr,
# ack-before-fsync, unclean-election, skip-truncation; an unknown name stops the script,
# since the broker itself ignores names it does not know). The table goes to
# target/nemesis/table-<bugs>.md. A failing trial is then the expected result.
set -euo pipefail
cd "$(dirname "$0")/.."
trials="${1:-100}"
only="${2:-}"
bugs="${SPATE_INJECT_BUG:-}"
for bug in ${bugs//,/ }; do
  case "$bug" in
    hw-before-isr | ack-before-fsync | unclean-election | skip-truncation) ;;
    *) echo "SPATE_INJECT_BUG names an unknown bug: $bug" >&2; exit 2 ;;
  esac
done
scripts/install-test-deps.sh
mkdir -p target/nemesis
export SPATE_NEMESIS_TABLE="$PWD/target/nemesis/table.md"
if [ -n "$bugs" ]; then
  cargo build -p spate -p spate-cluster --features spate-cluster/bug-injection
  mkdir -p target/bug-injection
  cp target/debug/spate target/bug-injection/spate.tmp
  mv target/bug-injection/spate.tmp target/bug-injection/spate
  cargo build -p spate
  export SPATE_BIN="$PWD/target/bug-injection/spate"
  export SPATE_INJECT_BUG="$bugs"
  SPATE_NEMESIS_TABLE="$PWD/target/nemesis/table-${bugs//,/+}.md"
  echo "injected bug(s): $bugs (binary $SPATE_BIN)"
else
  cargo build -p spate
  export SPATE_BIN="$PWD/target/debug/spate"
fi
export SPATE_NEMESIS_TRIALS="$trials"
if [ -n "$only" ]; then export SPATE_NEMESIS_ONLY="$only"; fi
status=0
cargo nextest run -p spate-tests -E 'binary(nemesis_matrix)' --run-ignored ignored-only \
  --no-capture || status=$?
echo
echo "## Nemeses: $trials trial(s) each${bugs:+, injected bug(s): $bugs}"
cat "$SPATE_NEMESIS_TABLE" 2>/dev/null || echo "(no table: the run stopped early)"
exit "$status"
