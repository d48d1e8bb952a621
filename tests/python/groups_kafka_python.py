"""kafka-python (its own group protocol code, not librdkafka) as a group member: subscribe,
consume everything, commit; its committed() and the KafkaAdminClient's group listing,
description and offsets all agree; close() leaves the group, which becomes Empty with its
offsets kept.

kafka-python 3.x names the admin calls list_groups / describe_groups / list_group_offsets
(the 2.x list_consumer_groups / describe_consumer_groups / list_consumer_group_offsets).

Usage: python groups_kafka_python.py BOOTSTRAP
"""

import time

from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient

from check import bootstrap_from_argv, expect, fail, step
from groups_common import (
    HEARTBEAT_INTERVAL_MS,
    SESSION_TIMEOUT_MS,
    TIMEOUT_S,
    admin_for,
    create_topic,
    parse_value,
    produce_sequenced,
)

TOPIC = "kafka-python-group"
GROUP = "kafka-python-group"
CLIENT_ID = "kafka-python-member"
PARTITIONS = 3
PER_PARTITION = 1_000
LEAVE_DEADLINE_S = SESSION_TIMEOUT_MS / 1000 / 2


def field(value, name):
    """kafka-python returns protocol structs as dicts or as objects depending on nesting."""
    return value.get(name) if isinstance(value, dict) else getattr(value, name, None)


def assigned_partitions(member):
    """{(topic, partition)} from a described member's decoded assignment."""
    assignment = field(member, "member_assignment")
    expect(assignment is not None and not isinstance(assignment, (bytes, bytearray)),
           f"undecodable member_assignment: {member}")
    result = set()
    for topic_partitions in field(assignment, "assigned_partitions") or []:
        if isinstance(topic_partitions, (tuple, list)):
            topic, partitions = topic_partitions
        else:
            topic, partitions = field(topic_partitions, "topic"), field(topic_partitions, "partitions")
        result.update((topic, p) for p in partitions)
    return result


def describe(admin):
    described = admin.describe_groups([GROUP])
    expect(GROUP in described, f"describe_groups lacks {GROUP}: {described}")
    group = described[GROUP]
    expect(group.get("error") is None, f"describe_groups error: {group}")
    return group


def listed(admin):
    return {g.get("group_id"): g for g in admin.list_groups()}


def main():
    bootstrap = bootstrap_from_argv()
    create_topic(admin_for(bootstrap), TOPIC, PARTITIONS)
    produce_sequenced(bootstrap, TOPIC, PARTITIONS, PER_PARTITION)
    partitions = [TopicPartition(TOPIC, p) for p in range(PARTITIONS)]

    step("subscribe and consume everything")
    consumer = KafkaConsumer(
        TOPIC,
        bootstrap_servers=bootstrap,
        group_id=GROUP,
        client_id=CLIENT_ID,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=SESSION_TIMEOUT_MS,
        heartbeat_interval_ms=HEARTBEAT_INTERVAL_MS,
    )
    seen = {p: set() for p in range(PARTITIONS)}
    deadline = time.monotonic() + TIMEOUT_S
    while sum(len(s) for s in seen.values()) < PARTITIONS * PER_PARTITION:
        if time.monotonic() > deadline:
            fail(f"consumed { {p: len(s) for p, s in seen.items()} } within {TIMEOUT_S}s")
        for tp, records in consumer.poll(timeout_ms=500).items():
            for record in records:
                expect(parse_value(record.value) == (tp.partition, record.offset), f"{tp} {record}")
                seen[tp.partition].add(record.offset)
    expect(all(len(s) == PER_PARTITION for s in seen.values()), f"duplicates or gaps: {seen.keys()}")
    expect(consumer.assignment() == set(partitions), f"assignment {consumer.assignment()}")

    step("commit; committed() reports it")
    consumer.commit()
    for tp in partitions:
        expect(consumer.committed(tp) == PER_PARTITION, f"committed({tp}) = {consumer.committed(tp)}")

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="kafka-python-admin")
    step("list_groups shows the group as a Stable consumer group")
    group = listed(admin).get(GROUP)
    expect(group is not None, f"list_groups lacks {GROUP}: {admin.list_groups()}")
    expect(group.get("protocol_type") == "consumer", f"listed {group}")
    if "group_state" in group:
        expect(group["group_state"] == "Stable", f"listed {group}")
    stable_only = {g.get("group_id") for g in admin.list_groups(states_filter=["Stable"])}
    expect(GROUP in stable_only, f"states_filter=Stable lacks {GROUP}: {stable_only}")
    empty_only = {g.get("group_id") for g in admin.list_groups(states_filter=["Empty"])}
    expect(GROUP not in empty_only, f"states_filter=Empty lists the Stable {GROUP}")

    step("describe_groups shows one member holding every partition")
    group = describe(admin)
    expect(group.get("group_state") == "Stable", f"described {group}")
    expect(group.get("protocol_type") == "consumer", f"described {group}")
    expect(group.get("protocol_data") in ("range", "roundrobin", "sticky"), f"described {group}")
    members = group.get("members") or []
    expect(len(members) == 1, f"members {members}")
    expect(field(members[0], "client_id") == CLIENT_ID, f"member {members[0]}")
    expect(
        assigned_partitions(members[0]) == {(TOPIC, p) for p in range(PARTITIONS)},
        f"assignment {assigned_partitions(members[0])}",
    )

    step("list_group_offsets agrees with committed()")
    offsets = admin.list_group_offsets(GROUP).get(GROUP, {})
    by_partition = {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == TOPIC}
    expect(by_partition == {p: PER_PARTITION for p in range(PARTITIONS)}, f"offsets {offsets}")

    step("close() leaves the group: it becomes Empty and keeps its offsets")
    consumer.close()
    closed_at = time.monotonic()
    while True:
        group = describe(admin)
        if group.get("group_state") == "Empty" and not group.get("members"):
            break
        # Well inside the session timeout: only the LeaveGroup, not an expiry, can empty it.
        if time.monotonic() > closed_at + LEAVE_DEADLINE_S:
            fail(f"group {LEAVE_DEADLINE_S}s after close: {group}")
        time.sleep(0.1)
    listing = listed(admin).get(GROUP)
    expect(listing is not None, f"the Empty group vanished from list_groups: {admin.list_groups()}")
    if "group_state" in listing:
        expect(listing["group_state"] == "Empty", f"listed after close {listing}")
    offsets = admin.list_group_offsets(GROUP).get(GROUP, {})
    kept = {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == TOPIC}
    expect(kept == by_partition, f"offsets after close {kept}, before {by_partition}")
    admin.close()
    print("OK")


if __name__ == "__main__":
    main()
