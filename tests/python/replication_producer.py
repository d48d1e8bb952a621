"""A producer that keeps producing while the test kills brokers, and records what was acked.

Usage: python replication_producer.py BOOTSTRAP TOPIC PARTITIONS MODE DIR

MODE is "idempotent" (acks=all, enable.idempotence=true) or "plain" (acks=all, no
idempotence: retries may duplicate). Record SEQ (0, 1, 2, ...) has the value b"v%09d" % SEQ
and goes to partition SEQ % PARTITIONS, so each partition's values are produced in SEQ order.
The producer sends at a steady pace (RATE_PER_S) until the file DIR/stop exists, then
flushes.

While it runs it rewrites DIR/progress (atomically) with the count of acknowledged records,
so the test can see that acks keep coming after each failover. At the end it writes
DIR/result.json: {"acked": [[partition, offset, seq], ...], "errors": [[seq, "NAME", "text"],
...], "sent": N, "unflushed": K, "fatal": "..." or null}. An acknowledged record is one whose
delivery report carried no error: the broker answered acks=all for it.
"""

import json
import os
import sys
import time

from confluent_kafka import Producer

from check import fail, step

# About 400 records/s: enough traffic in flight at every kill, without flooding a debug build
# on a 2-core machine or outrunning the tests' consumers. After a stall (a failover) the
# producer catches up on at most CATCH_UP_S of missed records.
RATE_PER_S = 400
CATCH_UP_S = 1.0
POLL_S = 0.01
# Stop sending (but keep polling) while this many records await their report.
IN_FLIGHT_MAX = 4000
FLUSH_TIMEOUT_S = 100


def value_of(seq):
    return b"v%09d" % seq


def write_atomically(path, text):
    temp = path + ".tmp"
    with open(temp, "w") as out:
        out.write(text)
    os.replace(temp, path)


def main():
    if len(sys.argv) != 6:
        fail(f"usage: {sys.argv[0]} BOOTSTRAP TOPIC PARTITIONS MODE DIR")
    bootstrap, topic, partitions, mode, folder = sys.argv[1:]
    partitions = int(partitions)
    if mode not in ("idempotent", "plain"):
        fail(f"unknown mode {mode!r}")
    acked = []
    errors = []
    fatal = []

    def on_delivery(error, message):
        seq = int(message.value()[1:])
        if error is not None:
            errors.append([seq, error.name(), error.str()])
        else:
            acked.append([message.partition(), message.offset(), seq])

    def on_error(error):
        if error.fatal():
            fatal.append(f"{error.name()}: {error.str()}")

    config = {
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "enable.idempotence": mode == "idempotent",
        "linger.ms": 5,
        # Never give up on a record within the test: every failover must be survived.
        "message.timeout.ms": 120000,
        "request.timeout.ms": 15000,
        "retry.backoff.ms": 50,
        "retry.backoff.max.ms": 500,
        "reconnect.backoff.ms": 50,
        "reconnect.backoff.max.ms": 500,
        "topic.metadata.refresh.interval.ms": 2000,
        "max.in.flight.requests.per.connection": 5,
        "error_cb": on_error,
    }
    producer = Producer(config)
    stop_file = os.path.join(folder, "stop")
    progress_file = os.path.join(folder, "progress")
    step(f"producing ({mode}) to {topic} x {partitions} through {bootstrap}")
    seq = 0
    last_progress = 0.0
    next_send = time.monotonic()
    while not os.path.exists(stop_file):
        now = time.monotonic()
        next_send = max(next_send, now - CATCH_UP_S)
        while next_send <= now and len(producer) < IN_FLIGHT_MAX:
            try:
                producer.produce(
                    topic, value=value_of(seq), partition=seq % partitions, on_delivery=on_delivery
                )
            except BufferError:
                break
            seq += 1
            next_send += 1.0 / RATE_PER_S
        producer.poll(POLL_S)
        if now - last_progress > 0.2:
            write_atomically(progress_file, f"{len(acked)} {seq} {len(errors)}\n")
            last_progress = now
        if fatal:
            break
    step(f"stopping after {seq} records; flushing")
    unflushed = producer.flush(FLUSH_TIMEOUT_S)
    write_atomically(progress_file, f"{len(acked)} {seq} {len(errors)}\n")
    result = {
        "acked": acked,
        "errors": errors,
        "sent": seq,
        "unflushed": unflushed,
        "fatal": fatal[0] if fatal else None,
    }
    write_atomically(os.path.join(folder, "result.json"), json.dumps(result))
    step(f"sent {seq}, acked {len(acked)}, failed {len(errors)}, unflushed {unflushed}")
    if errors:
        names = {}
        for _, name, _ in errors:
            names[name] = names.get(name, 0) + 1
        step(f"delivery errors by name: {names}; first: {errors[0]}")


if __name__ == "__main__":
    main()
