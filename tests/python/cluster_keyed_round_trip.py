"""Keyed records through a Spate cluster with confluent-kafka: an idempotent producer
(acks=all) writes RECORDS records over KEYS keys to a topic whose partitions are led by
different nodes, an assign() consumer reads every partition back from the start, and a
consumer group (subscribe, commits) reads them all again; a second member of the group then
resumes at the committed offsets and finds nothing left.

Usage: python cluster_keyed_round_trip.py BOOTSTRAP TOPIC PARTITIONS RECORDS
BOOTSTRAP may be a single node: the clients must find each partition's leader from Metadata.
The value of record i is "KEY:SEQ", SEQ counting that key's records from 0. Checks that every
record is delivered and read back exactly once, at the offset its delivery report gave, that a
key stays on one partition, and that each key's records are read in SEQ order. Prints one JSON
line: {"per_partition": {"0": COUNT, ...}}. Exits non-zero with a FAILED line otherwise.
"""

import json
import sys
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

from check import expect, fail, step

KEYS = 300
TIMEOUT_S = 120


def key_of(index):
    return f"key-{index % KEYS:03}"


def value_of(index):
    return f"{index % KEYS}:{index // KEYS}".encode()


def produce(bootstrap, topic, records):
    """Returns {(partition, offset): value} from the delivery reports."""
    delivered = {}
    errors = []

    def on_delivery(error, message):
        if error is not None:
            errors.append(error)
        else:
            delivered[(message.partition(), message.offset())] = message.value()

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
        }
    )
    for index in range(records):
        while True:
            try:
                producer.produce(
                    topic, key=key_of(index), value=value_of(index), on_delivery=on_delivery
                )
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
        if errors:
            fail(f"delivery failed: {errors[0]!r}")
    remaining = producer.flush(TIMEOUT_S)
    expect(remaining == 0, f"{remaining} records still undelivered after {TIMEOUT_S}s")
    expect(not errors, f"delivery failed: {errors[:3]!r}")
    expect(len(delivered) == records, f"{len(delivered)} delivery reports for {records} records")
    return delivered


def consume(bootstrap, topic, partitions, expected):
    """Reads every partition from the beginning until `expected` records have arrived."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "cluster-keyed-round-trip",
            "enable.auto.commit": False,
            "enable.partition.eof": False,
        }
    )
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    read = []
    deadline = time.monotonic() + TIMEOUT_S
    while len(read) < expected and time.monotonic() < deadline:
        for message in consumer.consume(num_messages=1000, timeout=0.5):
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    continue
                fail(f"consume error: {error!r}")
            read.append((message.partition(), message.offset(), message.key(), message.value()))
    consumer.close()
    expect(len(read) == expected, f"read {len(read)} of {expected} records in {TIMEOUT_S}s")
    return read


def consume_in_group(bootstrap, topic, partitions, expected):
    """A group member (subscribe) reads everything and commits; the group's coordinator is
    the leader of its __consumer_offsets partition, on whichever node that is. A second
    member of the group then starts where the first committed and finds nothing left."""
    group = "cluster-keyed-group"
    config = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "enable.partition.eof": False,
    }
    consumer = Consumer(config)
    consumer.subscribe([topic])
    count = 0
    deadline = time.monotonic() + TIMEOUT_S
    while count < expected and time.monotonic() < deadline:
        for message in consumer.consume(num_messages=1000, timeout=0.5):
            if message.error() is not None:
                fail(f"group consume error: {message.error()!r}")
            count += 1
    expect(count == expected, f"the group read {count} of {expected} records in {TIMEOUT_S}s")
    consumer.commit(asynchronous=False)
    committed = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
    consumer.close()
    expect(
        sum(tp.offset for tp in committed) == expected,
        f"committed offsets add up to {sum(tp.offset for tp in committed)}, not {expected}",
    )
    second = Consumer(config)
    second.subscribe([topic])
    leftover = 0
    quiet_until = time.monotonic() + 8
    while time.monotonic() < quiet_until:
        leftover += len([m for m in second.consume(num_messages=1000, timeout=0.5) if m.error() is None])
    second.close()
    expect(leftover == 0, f"a second member re-read {leftover} committed records")


def main():
    if len(sys.argv) != 5:
        fail(f"usage: {sys.argv[0]} BOOTSTRAP TOPIC PARTITIONS RECORDS")
    bootstrap, topic = sys.argv[1], sys.argv[2]
    partitions, records = int(sys.argv[3]), int(sys.argv[4])

    step(f"produce {records} keyed records to {topic} through {bootstrap}")
    delivered = produce(bootstrap, topic, records)

    step("consume every partition from the beginning")
    read = consume(bootstrap, topic, partitions, records)

    step("consume again as a consumer group that commits, then resume from its commits")
    consume_in_group(bootstrap, topic, partitions, records)

    step("check: exactly once, at the reported offsets, per-key order, one partition per key")
    seen = set()
    next_seq = {}
    partition_of_key = {}
    per_partition = {}
    for partition, offset, key, value in read:
        expect((partition, offset) not in seen, f"{partition}@{offset} read twice")
        seen.add((partition, offset))
        expect(
            delivered.get((partition, offset)) == value,
            f"{partition}@{offset}: read {value!r}, delivered {delivered.get((partition, offset))!r}",
        )
        key_index, seq = (int(part) for part in value.decode().split(":"))
        expect(key == key_of(key_index).encode(), f"{partition}@{offset}: key {key!r} for {value!r}")
        expect(
            partition_of_key.setdefault(key, partition) == partition,
            f"key {key!r} on partitions {partition_of_key[key]} and {partition}",
        )
        expect(
            seq == next_seq.get(key_index, 0),
            f"key {key!r}: read seq {seq}, expected {next_seq.get(key_index, 0)} (order broken)",
        )
        next_seq[key_index] = seq + 1
        per_partition[str(partition)] = per_partition.get(str(partition), 0) + 1
    expect(len(seen) == records, f"{len(seen)} distinct records of {records}")
    print(json.dumps({"per_partition": per_partition}), flush=True)


if __name__ == "__main__":
    main()
