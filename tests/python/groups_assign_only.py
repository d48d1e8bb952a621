"""A confluent-kafka consumer with a group.id that only assign()s (no subscribe) never joins
its group: while it consumes, the coordinator neither lists the group nor describes it as
anything but Dead/unknown. Its explicit commit() creates a "simple" group (offsets, no
members, no protocol), which is then listed as Empty and holds the committed offsets.

Usage: python groups_assign_only.py BOOTSTRAP
"""

import time

from confluent_kafka import Consumer, KafkaError, TopicPartition, OFFSET_BEGINNING
from confluent_kafka import ConsumerGroupState

from check import bootstrap_from_argv, expect, fail, step
from groups_common import (
    OFFSET_INVALID,
    TIMEOUT_S,
    admin_for,
    committed_offsets,
    create_topic,
    describe_group,
    listed_groups,
    parse_value,
    produce_sequenced,
)

TOPIC = "assign-only"
GROUP = "assign-only-group"
PARTITIONS = 2
PER_PARTITION = 500


def expect_unknown_group(admin, when):
    expect(GROUP not in listed_groups(admin), f"{when}: list_consumer_groups shows {GROUP}")
    described = describe_group(admin, GROUP)
    if isinstance(described, KafkaError):
        expect(
            described.code() == KafkaError.GROUP_ID_NOT_FOUND,
            f"{when}: describe failed with {described}",
        )
    else:
        expect(
            described.state == ConsumerGroupState.DEAD and not described.members,
            f"{when}: described as {described.state} with members {described.members}",
        )


def main():
    bootstrap = bootstrap_from_argv()
    admin = admin_for(bootstrap)
    create_topic(admin, TOPIC, PARTITIONS)
    produce_sequenced(bootstrap, TOPIC, PARTITIONS, PER_PARTITION)

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": GROUP,
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(TOPIC, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])

    step("consume everything with assign()")
    seen = 0
    checked_midway = False
    deadline = time.monotonic() + TIMEOUT_S
    while seen < PARTITIONS * PER_PARTITION:
        if time.monotonic() > deadline:
            fail(f"consumed {seen} records within {TIMEOUT_S}s")
        for message in consumer.consume(num_messages=500, timeout=0.5):
            expect(message.error() is None, f"consume error: {message.error()}")
            where = (message.partition(), message.offset())
            expect(parse_value(message.value()) == where, f"{where}: {message.value()}")
            seen += 1
        if seen > 0 and not checked_midway:
            expect_unknown_group(admin, "while consuming")
            checked_midway = True

    step("the group does not exist: not listed, described as Dead/unknown, no offsets")
    expect_unknown_group(admin, "after consuming")
    expect(
        all(o == OFFSET_INVALID for o in committed_offsets(admin, GROUP, TOPIC, PARTITIONS).values()),
        "offsets exist before any commit",
    )

    step("an explicit commit() creates a simple group holding the offsets")
    answered = consumer.commit(asynchronous=False)
    expect(all(tp.error is None for tp in answered), f"commit answered {answered}")
    offsets = committed_offsets(admin, GROUP, TOPIC, PARTITIONS)
    expect(offsets == {p: PER_PARTITION for p in range(PARTITIONS)}, f"offsets after commit {offsets}")
    listing = listed_groups(admin).get(GROUP)
    expect(listing is not None, f"list_consumer_groups lacks {GROUP} after commit")
    expect(listing.state == ConsumerGroupState.EMPTY, f"listed as {listing.state}")
    expect(listing.is_simple_consumer_group, "listed as a non-simple group (protocol type not empty)")
    empty = listed_groups(admin, states=[ConsumerGroupState.EMPTY])
    expect(GROUP in empty, f"state filter EMPTY lacks {GROUP}: {sorted(empty)}")
    described = describe_group(admin, GROUP)
    expect(not isinstance(described, KafkaError), f"describe after commit: {described}")
    expect(described.state == ConsumerGroupState.EMPTY, f"described as {described.state}")
    expect(not described.members, f"members {described.members}")

    consumer.close()
    expect(GROUP in listed_groups(admin), "closing an assign()-only consumer removed the group")
    print("OK")


if __name__ == "__main__":
    main()
