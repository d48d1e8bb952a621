"""The confluent-kafka AdminClient's group calls against a live group:
list_consumer_groups (with a state filter), describe_consumer_groups (member, its assignment,
state, assignor, coordinator), list_consumer_group_offsets, alter_consumer_group_offsets (a
commit from outside the group: refused while it has a member, accepted once it is empty) and
delete_consumer_groups (NON_EMPTY_GROUP while a member is active, then success, after which
the group and its offsets are gone).

Usage: python groups_admin.py BOOTSTRAP
"""

import time

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka import ConsumerGroupState, ConsumerGroupTopicPartitions

from check import bootstrap_from_argv, expect, fail, step
from groups_common import (
    HEARTBEAT_INTERVAL_MS,
    OFFSET_INVALID,
    SESSION_TIMEOUT_MS,
    TIMEOUT_S,
    admin_for,
    committed_offsets,
    create_topic,
    describe_group,
    error_from,
    listed_groups,
    retrying,
    produce_sequenced,
)

TOPIC = "admin-groups"
GROUP = "admin-groups-group"
OTHER_GROUP = "admin-groups-other"
CLIENT_ID = "admin-groups-member"
PARTITIONS = 3
PER_PARTITION = 200
CONSUMED_PER_PARTITION = 120


def delete_error(admin, group):
    """The KafkaError delete_consumer_groups failed with, or None if it succeeded."""

    def delete():
        futures = admin.delete_consumer_groups([group], request_timeout=TIMEOUT_S)
        futures[group].result(timeout=TIMEOUT_S)

    try:
        retrying(delete, f"delete {group}")
        return None
    except KafkaException as exception:
        return error_from(exception)


def alter(admin, group, offsets):
    """The errors of an outside commit of `offsets` (none if it was accepted)."""
    request = ConsumerGroupTopicPartitions(
        group, [TopicPartition(TOPIC, p, o) for p, o in sorted(offsets.items())]
    )

    def commit():
        future = admin.alter_consumer_group_offsets([request], request_timeout=TIMEOUT_S)[group]
        return future.result(timeout=TIMEOUT_S)

    try:
        result = retrying(commit, f"alter offsets of {group}")
    except KafkaException as exception:
        return [error_from(exception)]
    return [tp.error for tp in result.topic_partitions if tp.error is not None]


def join_and_consume(bootstrap):
    """A member that consumed CONSUMED_PER_PARTITION records of each partition and committed
    exactly that."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": GROUP,
            "client.id": CLIENT_ID,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": SESSION_TIMEOUT_MS,
            "heartbeat.interval.ms": HEARTBEAT_INTERVAL_MS,
        }
    )
    consumer.subscribe([TOPIC])
    taken = {}
    deadline = time.monotonic() + TIMEOUT_S
    while sum(taken.values()) < PARTITIONS * CONSUMED_PER_PARTITION:
        if time.monotonic() > deadline:
            fail(f"consumed {taken} within {TIMEOUT_S}s")
        for message in consumer.consume(num_messages=100, timeout=0.5):
            expect(message.error() is None, f"consume error: {message.error()}")
            partition = message.partition()
            if taken.get(partition, 0) < CONSUMED_PER_PARTITION:
                taken[partition] = taken.get(partition, 0) + 1
    consumer.commit(
        offsets=[TopicPartition(TOPIC, p, CONSUMED_PER_PARTITION) for p in range(PARTITIONS)],
        asynchronous=False,
    )
    return consumer


def main():
    bootstrap = bootstrap_from_argv()
    admin = admin_for(bootstrap)
    create_topic(admin, TOPIC, PARTITIONS)
    produce_sequenced(bootstrap, TOPIC, PARTITIONS, PER_PARTITION)
    consumer = join_and_consume(bootstrap)

    step("list_consumer_groups, plain and filtered by state")
    listing = listed_groups(admin).get(GROUP)
    expect(listing is not None, f"list_consumer_groups lacks {GROUP}")
    expect(listing.state == ConsumerGroupState.STABLE, f"listed as {listing.state}")
    expect(not listing.is_simple_consumer_group, "a subscribed group listed as simple")
    expect(GROUP in listed_groups(admin, [ConsumerGroupState.STABLE]), "STABLE filter lacks the group")
    expect(
        GROUP not in listed_groups(admin, [ConsumerGroupState.EMPTY, ConsumerGroupState.DEAD]),
        "EMPTY/DEAD filter lists the Stable group",
    )

    step("describe_consumer_groups")
    described = describe_group(admin, GROUP)
    expect(not isinstance(described, KafkaError), f"describe failed: {described}")
    expect(described.state == ConsumerGroupState.STABLE, f"state {described.state}")
    expect(described.partition_assignor == "range", f"assignor {described.partition_assignor!r}")
    expect(not described.is_simple_consumer_group, "described as simple")
    expect(len(described.members) == 1, f"members {described.members}")
    member = described.members[0]
    expect(member.client_id == CLIENT_ID, f"client_id {member.client_id!r}")
    expect(member.member_id, "empty member_id")
    assigned = sorted((tp.topic, tp.partition) for tp in member.assignment.topic_partitions)
    expect(assigned == [(TOPIC, p) for p in range(PARTITIONS)], f"assignment {assigned}")
    coordinator = described.coordinator
    expect(coordinator is not None and coordinator.id >= 0, f"coordinator {coordinator}")

    step("list_consumer_group_offsets")
    committed = committed_offsets(admin, GROUP, TOPIC, PARTITIONS)
    expect(committed == {p: CONSUMED_PER_PARTITION for p in range(PARTITIONS)}, f"committed {committed}")
    whole_group = [ConsumerGroupTopicPartitions(GROUP)]
    whole = admin.list_consumer_group_offsets(whole_group)[GROUP].result(timeout=TIMEOUT_S)
    listed_all = {(tp.topic, tp.partition): tp.offset for tp in whole.topic_partitions}
    expect(
        listed_all == {(TOPIC, p): CONSUMED_PER_PARTITION for p in range(PARTITIONS)},
        f"all offsets of the group: {listed_all}",
    )

    step("alter_consumer_group_offsets from outside is refused while the group has a member")
    errors = alter(admin, GROUP, {0: 7})
    expect(errors, "an outside commit to an active group was accepted")
    expect(
        all(e.code() == KafkaError.UNKNOWN_MEMBER_ID for e in errors),
        f"outside commit to an active group failed with {errors}, Kafka answers UNKNOWN_MEMBER_ID",
    )
    after_refusal = committed_offsets(admin, GROUP, TOPIC, PARTITIONS)
    expect(after_refusal[0] == CONSUMED_PER_PARTITION, f"refused commit landed: {after_refusal}")

    step("delete_consumer_groups: NON_EMPTY_GROUP while the member is active")
    error = delete_error(admin, GROUP)
    expect(error is not None, "deleting a group with an active member succeeded")
    expect(error.code() == KafkaError.NON_EMPTY_GROUP, f"delete of an active group: {error}")
    expect(GROUP in listed_groups(admin), "the refused delete removed the group")

    step("after the member leaves, an outside commit is accepted")
    consumer.close()
    listed = lambda: listed_groups(admin).get(GROUP)  # noqa: E731
    deadline = time.monotonic() + SESSION_TIMEOUT_MS / 1000 / 2
    while listed() is None or listed().state != ConsumerGroupState.EMPTY:
        if time.monotonic() > deadline:
            fail(f"group not Empty soon after its only member closed: {listed() and listed().state}")
        time.sleep(0.1)
    altered = {0: 7, 1: PER_PARTITION, 2: 0}
    errors = alter(admin, GROUP, altered)
    expect(not errors, f"outside commit to an empty group failed: {errors}")
    committed = committed_offsets(admin, GROUP, TOPIC, PARTITIONS)
    expect(committed == altered, f"after alter: {committed}")

    step("delete_consumer_groups succeeds on the empty group; group and offsets are gone")
    error = delete_error(admin, GROUP)
    expect(error is None, f"delete of the empty group: {error}")
    expect(GROUP not in listed_groups(admin), "deleted group still listed")
    gone = committed_offsets(admin, GROUP, TOPIC, PARTITIONS)
    expect(all(o == OFFSET_INVALID for o in gone.values()), f"offsets after delete: {gone}")
    described = describe_group(admin, GROUP)
    if isinstance(described, KafkaError):
        expect(described.code() == KafkaError.GROUP_ID_NOT_FOUND, f"describe after delete: {described}")
    else:
        expect(described.state == ConsumerGroupState.DEAD, f"after delete: {described.state}")

    step("deleting a group that never existed: GROUP_ID_NOT_FOUND")
    error = delete_error(admin, OTHER_GROUP)
    expect(
        error is not None and error.code() == KafkaError.GROUP_ID_NOT_FOUND,
        f"delete of an unknown group: {error}",
    )
    print("OK")


if __name__ == "__main__":
    main()
