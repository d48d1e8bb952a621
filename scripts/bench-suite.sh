#!/usr/bin/env bash
# Regenerates the `spate bench` figures of BENCHMARKS.md in one command: release build, a
# fresh broker pinned to core 0 (taskset, via --broker-cmd), the bench on core 1, the
# null-broker and disk floors measured in the same run, then RSS/fds across partitions.
#
# Usage: scripts/bench-suite.sh [OUT.md]          (default: /tmp/spate-bench-suite.md)
# Env:   DURATION (s, default 10), WARMUP (s, default 2), DATA_DIR (the broker's data dir and
#        the disk floor's; default: a fresh dir under target/, i.e. the repository's disk),
#        BROKER_CORES (default 0), BENCH_CORES (default 1), CARGO_TARGET_DIR,
#        EXTRA (more `spate bench suite` options, e.g. "--no-scale").
# Each workload's JSON (raw hdrhistograms) and SVG land next to OUT in OUT-artifacts/.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${1:-/tmp/spate-bench-suite.md}
TARGET=${CARGO_TARGET_DIR:-target}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
BROKER_CORES=${BROKER_CORES:-0}
BENCH_CORES=${BENCH_CORES:-1}

cargo build --release -p spate -p spate-bench
BIN="$TARGET/release"

CREATED_DATA=""
if [ -z "${DATA_DIR:-}" ]; then
    mkdir -p "$TARGET"
    DATA_DIR=$(mktemp -d "$TARGET/bench-suite-data.XXXXXX")
    CREATED_DATA=$DATA_DIR
fi
trap '[ -n "$CREATED_DATA" ] && rm -rf "$CREATED_DATA"' EXIT

echo "load average before the run: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
"$BIN/spate-bench" suite \
    --broker-cmd "$BIN/spate serve --cores 1 --listen 127.0.0.1:{port} --admin-listen 127.0.0.1:0 --data-dir {data_dir}" \
    --broker-cores "$BROKER_CORES" --bench-cores "$BENCH_CORES" \
    --data-dir "$DATA_DIR" \
    --warmup "$WARMUP" --duration "$DURATION" \
    --out "$OUT" --artifacts "${OUT%.md}-artifacts" \
    ${EXTRA:-}
