"""Auto-commit with confluent-kafka: with enable.auto.commit=true and a 500 ms interval, the
offsets of what the application consumed reach the coordinator within a few intervals, without
any commit call; committed() and the AdminClient agree; and close() leaves the final position
committed.

Usage: python groups_auto_commit.py BOOTSTRAP
"""

import time

from confluent_kafka import Consumer, TopicPartition

from check import bootstrap_from_argv, expect, fail, step
from groups_common import (
    HEARTBEAT_INTERVAL_MS,
    OFFSET_INVALID,
    SESSION_TIMEOUT_MS,
    TIMEOUT_S,
    admin_for,
    committed_offsets,
    create_topic,
    produce_sequenced,
)

TOPIC = "auto-commit"
GROUP = "auto-commit-group"
PARTITIONS = 2
PER_PARTITION = 1_500
FIRST_PART = 1_000
AUTO_COMMIT_INTERVAL_MS = 500
# "A few intervals", plus a second for a loaded machine.
COMMIT_DEADLINE_S = 4 * AUTO_COMMIT_INTERVAL_MS / 1000 + 1.0


def consume_exactly(consumer, count):
    taken = 0
    deadline = time.monotonic() + TIMEOUT_S
    while taken < count:
        expect(time.monotonic() < deadline, f"consumed {taken} of {count} within {TIMEOUT_S}s")
        for message in consumer.consume(num_messages=count - taken, timeout=0.5):
            expect(message.error() is None, f"consume error: {message.error()}")
            taken += 1


def committed_by_client(consumer):
    parts = [TopicPartition(TOPIC, p) for p in range(PARTITIONS)]
    return {tp.partition: tp.offset for tp in consumer.committed(parts, timeout=TIMEOUT_S)}


def positions(consumer):
    parts = [TopicPartition(TOPIC, p) for p in range(PARTITIONS)]
    return {tp.partition: tp.offset for tp in consumer.position(parts)}


def main():
    bootstrap = bootstrap_from_argv()
    admin = admin_for(bootstrap)
    create_topic(admin, TOPIC, PARTITIONS)
    produce_sequenced(bootstrap, TOPIC, PARTITIONS, PER_PARTITION)

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": GROUP,
            "enable.auto.commit": True,
            "auto.commit.interval.ms": AUTO_COMMIT_INTERVAL_MS,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": SESSION_TIMEOUT_MS,
            "heartbeat.interval.ms": HEARTBEAT_INTERVAL_MS,
        }
    )
    consumer.subscribe([TOPIC])
    expect(
        all(o == OFFSET_INVALID for o in committed_offsets(admin, GROUP, TOPIC, PARTITIONS).values()),
        "offsets committed before anything was consumed",
    )

    step(f"consume {FIRST_PART} records, then stop consuming")
    consume_exactly(consumer, FIRST_PART)
    stopped_at = time.monotonic()
    position = positions(consumer)
    expect(sum(max(o, 0) for o in position.values()) == FIRST_PART, f"positions {position}")

    step("the auto-commit timer commits the position")
    deadline = stopped_at + COMMIT_DEADLINE_S
    while True:
        by_client = committed_by_client(consumer)
        if by_client == position:
            break
        if time.monotonic() > deadline:
            fail(f"after {COMMIT_DEADLINE_S}s committed() is {by_client}, position {position}")
        time.sleep(0.1)
    step(f"committed {time.monotonic() - stopped_at:.2f}s after consuming stopped")
    by_admin = committed_offsets(admin, GROUP, TOPIC, PARTITIONS)
    expect(by_admin == position, f"AdminClient sees {by_admin}, position is {position}")

    step("consume the rest, poll once more at the end, close")
    consume_exactly(consumer, PARTITIONS * PER_PARTITION - FIRST_PART)
    expect(not consumer.consume(num_messages=10, timeout=1.0), "records beyond the produced ones")
    final_position = positions(consumer)
    expected_end = {p: PER_PARTITION for p in range(PARTITIONS)}
    expect(final_position == expected_end, f"final position {final_position}")
    consumer.close()
    after_close = committed_offsets(admin, GROUP, TOPIC, PARTITIONS)
    expect(
        after_close == final_position,
        f"after close committed {after_close}, position {final_position}",
    )
    print("OK")


if __name__ == "__main__":
    main()
