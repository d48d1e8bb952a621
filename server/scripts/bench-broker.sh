#!/usr/bin/env bash
# Broker throughput with a real Kafka client (kcat/librdkafka): produce, then consume the
# same data with sendfile (default) and with the copying fetch path (--fetch-copy).
#
# The broker runs pinned to CPU 0 and kcat to CPU 1 (taskset), so the client does not steal
# the broker's core. Each consume run starts a fresh broker on the same data dir, after the
# produce, so both fetch paths read the same (page-cached) segments.
#
# Usage: server/scripts/bench-broker.sh [MESSAGES] [MESSAGE_BYTES] [FLUSH]
#   defaults: 500000 messages of 1000 bytes, flush=always
# Then the same two fetch paths with `fetch_load`, a raw Fetch client that does not parse
# records, so the broker rather than kcat's record handling is the limit.
#
# Needs: release builds (cargo build --release -p spate; cargo build --release -p
# spate-server --example fetch_load; or set SPATE_BIN / FETCH_LOAD), kcat, taskset, bc.
set -euo pipefail
cd "$(dirname "$0")/../.."

MESSAGES=${1:-500000}
MESSAGE_BYTES=${2:-1000}
FLUSH=${3:-always}
BIN=${SPATE_BIN:-target/release/spate}
FETCH_LOAD=${FETCH_LOAD:-target/release/examples/fetch_load}
WORK=$(mktemp -d)
DATA="$WORK/data"
INPUT="$WORK/input.txt"
trap 'stop_broker; rm -rf "$WORK"' EXIT

python3 - "$MESSAGES" "$MESSAGE_BYTES" "$INPUT" <<'PY'
import sys
count, size, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
pad = "x" * max(size - 8, 0)
with open(path, "w") as f:
    for i in range(count):
        f.write("%08d%s\n" % (i, pad))
PY
BYTES=$((MESSAGES * MESSAGE_BYTES))

BROKER_PID=""
start_broker() {
    taskset -c 0 "$BIN" serve --data-dir "$DATA" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
        --cores 1 --flush "$FLUSH" "$@" > "$WORK/out" 2> "$WORK/err" &
    BROKER_PID=$!
    for _ in $(seq 600); do grep -q listening "$WORK/out" 2>/dev/null && break; sleep 0.05; done
    PORT=$(grep -o 'kafka=[^ ]*' "$WORK/out" | cut -d= -f2 || true)
    [ -n "$PORT" ] || { echo "broker did not start:"; cat "$WORK/err"; exit 1; }
}
stop_broker() {
    if [ -n "$BROKER_PID" ]; then kill -TERM "$BROKER_PID" 2>/dev/null || true; wait "$BROKER_PID" 2>/dev/null || true; fi
    BROKER_PID=""
}
rate() { python3 -c "import sys; b,s=float(sys.argv[1]),float(sys.argv[2]); print('%.1f MB/s, %.0f msg/s, %.2f s' % (b/s/1e6, int(sys.argv[3])/s, s))" "$@"; }

start_broker
kcat -b "$PORT" -L -t bench > /dev/null 2>&1 || true
T0=$(date +%s.%N)
taskset -c 1 kcat -b "$PORT" -P -t bench -p 0 -X acks=all -X linger.ms=5 -X batch.size=1000000 \
    -X queue.buffering.max.messages=1000000 -l "$INPUT"
T1=$(date +%s.%N)
echo "produce  (flush=$FLUSH, acks=all): $(rate $BYTES "$(echo "$T1 - $T0" | bc)" "$MESSAGES")"
stop_broker

for mode in sendfile copy; do
    if [ "$mode" = copy ]; then start_broker --fetch-copy; else start_broker; fi
    T0=$(date +%s.%N)
    GOT=$(taskset -c 1 kcat -b "$PORT" -C -t bench -p 0 -o beginning -e -q \
        -X fetch.max.bytes=52428800 -X max.partition.fetch.bytes=10485760 -f '\n' | wc -l)
    T1=$(date +%s.%N)
    [ "$GOT" -eq "$MESSAGES" ] || { echo "consumed $GOT of $MESSAGES"; exit 1; }
    echo "consume  ($mode): $(rate $BYTES "$(echo "$T1 - $T0" | bc)" "$MESSAGES")"
    stop_broker
done

if [ -x "$FETCH_LOAD" ]; then
    for mode in sendfile copy; do
        if [ "$mode" = copy ]; then start_broker --fetch-copy; else start_broker; fi
        echo "fetch_load ($mode):"
        taskset -c 1 "$FETCH_LOAD" "$PORT" bench 5 | sed 's/^/    /'
        stop_broker
    done
fi
