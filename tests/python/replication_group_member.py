"""A consumer-group member for the offsets-failover test (confluent-kafka).

Usage: python replication_group_member.py BOOTSTRAP TOPIC GROUP MODE DIR

MODE "commit": subscribes and consumes until the file DIR/stop exists, committing
synchronously after every poll that returned records. A commit that fails (the coordinator
died, moved, or is loading) is retried until it succeeds. After every successful commit it
rewrites DIR/committed.json (atomically): {"commits": N, "failed_commits": K, "errors": {...},
"offsets": {"PARTITION": NEXT_OFFSET}}, the offsets of its last successful commit. When told
to stop it closes without committing again, so the group's committed offsets are exactly those
of its last successful commit.

MODE "resume": a new member of the same group. Subscribes, waits for its assignment, asks
for the group's committed offsets, then reads every assigned partition up to its high
watermark, and writes DIR/resume.json: {"committed": {"P": OFFSET}, "ends": {"P": HIGH},
"read": {"P": [OFFSET, ...]}}. It does not commit.
"""

import json
import os
import sys
import time

from confluent_kafka import Consumer, KafkaException, TopicPartition

from check import expect, fail, step

RESUME_TIMEOUT_S = 60


def write_atomically(path, value):
    temp = path + ".tmp"
    with open(temp, "w") as out:
        json.dump(value, out)
    os.replace(temp, path)


def config(bootstrap, group):
    return {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "enable.partition.eof": False,
        "session.timeout.ms": 10000,
        "heartbeat.interval.ms": 1000,
        "reconnect.backoff.ms": 50,
        "reconnect.backoff.max.ms": 500,
        "topic.metadata.refresh.interval.ms": 2000,
        # librdkafka's debug contexts (e.g. "fetch,cgrp") on stderr, to diagnose a failure.
        **({"debug": os.environ["SPATE_TEST_RDKAFKA_DEBUG"]} if os.environ.get("SPATE_TEST_RDKAFKA_DEBUG") else {}),
    }


def commit_loop(bootstrap, topic, group, folder):
    consumer = Consumer(config(bootstrap, group))
    state = {
        "commits": 0,
        "failed_commits": 0,
        "errors": {},
        "consume_errors": {},
        "offsets": {},
        "consumed": {},
        "assigned": [],
    }

    def on_assign(_, partitions):
        state["assigned"] = sorted(tp.partition for tp in partitions)
        step(f"assigned {state['assigned']}")

    consumer.subscribe([topic], on_assign=on_assign)
    stop_file = os.path.join(folder, "stop")
    step(f"member of {group} consuming {topic} and committing")
    while not os.path.exists(stop_file):
        messages = consumer.consume(num_messages=500, timeout=0.2)
        got = []
        for message in messages:
            error = message.error()
            if error is None:
                got.append(message)
                key = str(message.partition())
                state["consumed"][key] = state["consumed"].get(key, 0) + 1
            else:
                state["consume_errors"][error.name()] = state["consume_errors"].get(error.name(), 0) + 1
        if not got:
            continue
        while not os.path.exists(stop_file):
            try:
                committed = consumer.commit(asynchronous=False)
            except KafkaException as error:
                name = error.args[0].name() if error.args else repr(error)
                state["failed_commits"] += 1
                state["errors"][name] = state["errors"].get(name, 0) + 1
                time.sleep(0.1)
                continue
            for tp in committed or []:
                if tp.error is None and tp.offset >= 0:
                    state["offsets"][str(tp.partition)] = tp.offset
            state["commits"] += 1
            write_atomically(os.path.join(folder, "committed.json"), state)
            break
    step(f"stopping: {state}")
    write_atomically(os.path.join(folder, "committed.json"), state)
    consumer.close()


def resume(bootstrap, topic, group, folder):
    consumer = Consumer(config(bootstrap, group))
    consumer.subscribe([topic])
    deadline = time.monotonic() + RESUME_TIMEOUT_S
    read = {}
    pending = []
    while not consumer.assignment():
        expect(time.monotonic() < deadline, "no partitions assigned")
        pending.extend(consumer.consume(num_messages=100, timeout=0.2))
    assignment = consumer.assignment()
    step(f"assigned {[tp.partition for tp in assignment]}")
    committed = consumer.committed(assignment, timeout=20)
    ends = {}
    for tp in assignment:
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=20)
        ends[str(tp.partition)] = high
    step(f"committed {[(tp.partition, tp.offset) for tp in committed]}, ends {ends}")

    def take(messages):
        for message in messages:
            if message.error() is not None:
                fail(f"consume error: {message.error()!r}")
            read.setdefault(str(message.partition()), []).append(message.offset())

    take(pending)

    def done():
        return all(
            (read.get(p) and read[p][-1] + 1 >= high)
            or high == next((tp.offset for tp in committed if str(tp.partition) == p), -2)
            for p, high in ends.items()
        )

    while not done():
        expect(time.monotonic() < deadline, f"read {({p: v[-1] for p, v in read.items()})} of ends {ends}")
        take(consumer.consume(num_messages=500, timeout=0.2))
    result = {
        "committed": {str(tp.partition): tp.offset for tp in committed},
        "ends": ends,
        "read": {p: [o for o in offsets if o < ends[p]] for p, offsets in read.items()},
    }
    write_atomically(os.path.join(folder, "resume.json"), result)
    consumer.close()
    step("resumed and read to the end")


def main():
    if len(sys.argv) != 6:
        fail(f"usage: {sys.argv[0]} BOOTSTRAP TOPIC GROUP MODE DIR")
    bootstrap, topic, group, mode, folder = sys.argv[1:]
    if mode == "commit":
        commit_loop(bootstrap, topic, group, folder)
    elif mode == "resume":
        resume(bootstrap, topic, group, folder)
    else:
        fail(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main()
