"""kafka-python (pure Python, its own protocol code) against Spate: admin create with configs,
describe configs, create partitions and delete topics; and a produce/consume round trip of
keyed records with headers, consumed with assign() (no group) and checked byte for byte.

kafka-python probes the broker with ApiVersions at a high version and relies on the v0-format
UNSUPPORTED_VERSION answer to pick a version, so merely connecting exercises that path.

Usage: python kafka_python_clients.py BOOTSTRAP
Exits non-zero with a FAILED line on the first thing that is wrong.
"""

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

from check import bootstrap_from_argv, expect, fail, message_for, step, wait_until

TOPIC = "kafka-python-admin"
RECORD_COUNT = 5_000
TIMEOUT_MS = 30_000


def partition_count(admin, topic):
    for described in admin.describe_topics([topic]):
        if described.get("name") == topic and described.get("error_code", 0) == 0:
            return len(described.get("partitions", []))
    return None


def admin_checks(admin):
    step("create_topics with configs")
    configs = {"retention.ms": "7200000", "cleanup.policy": "delete"}
    admin.create_topics(
        {TOPIC: {"num_partitions": 2, "replication_factor": 1, "configs": configs}},
        timeout_ms=TIMEOUT_MS,
    )
    wait_until(lambda: TOPIC in admin.list_topics(), "topic in list_topics")
    expect(partition_count(admin, TOPIC) == 2, f"partitions: {admin.describe_topics([TOPIC])}")

    step("describe_configs (all)")
    described = admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, TOPIC)], config_filter="all"
    )
    entries = find_config_entries(described, TOPIC)
    for key, value in configs.items():
        entry = entries.get(key)
        expect(entry is not None, f"describe_configs lacks {key}: {sorted(entries)}")
        expect(entry.get("value") == value, f"{key}: {entry}")
    for key in ("segment.bytes", "retention.bytes", "max.message.bytes"):
        expect(key in entries, f"describe_configs lacks default {key}: {sorted(entries)}")

    step("alter_configs retention.ms")
    admin.alter_configs(
        [ConfigResource(ConfigResourceType.TOPIC, TOPIC, configs={"retention.ms": "900000"})]
    )
    described = admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, TOPIC)], config_filter="all"
    )
    entry = find_config_entries(described, TOPIC).get("retention.ms") or {}
    expect(entry.get("value") == "900000", f"retention.ms after alter: {entry}")

    step("describe_cluster")
    cluster = admin.describe_cluster()
    brokers = cluster.get("brokers") or []
    expect(len(brokers) == 1, f"one broker expected: {cluster}")

    step("create_partitions 2 -> 4")
    admin.create_partitions({TOPIC: 4}, timeout_ms=TIMEOUT_MS)
    wait_until(lambda: partition_count(admin, TOPIC) == 4, "4 partitions")


def find_config_entries(described, topic):
    """describe_configs answers {resource_type: {name: {key: {value, ...}}}}; the type key's
    spelling differs between versions, so search by topic name."""
    if isinstance(described, dict):
        for by_name in described.values():
            if isinstance(by_name, dict) and topic in by_name:
                entries = by_name[topic]
                if isinstance(entries, dict):
                    return entries
    fail(f"describe_configs answer without {topic}: {described!r}")


def round_trip(bootstrap):
    step(f"produce {RECORD_COUNT} keyed records with headers")
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=10)
    futures = []
    for index in range(RECORD_COUNT):
        key, value, headers = message_for(index)
        futures.append(
            producer.send(TOPIC, key=key, value=value, headers=headers, partition=index % 4)
        )
    producer.flush(timeout=TIMEOUT_MS / 1000)
    acked = {}
    for index, future in enumerate(futures):
        metadata = future.get(timeout=TIMEOUT_MS / 1000)
        acked[index] = (metadata.partition, metadata.offset)
    producer.close()

    step("consume with assign(), no group")
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    partitions = [TopicPartition(TOPIC, p) for p in range(4)]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    seen = set()
    idle_polls = 0
    while len(seen) < RECORD_COUNT:
        batches = consumer.poll(timeout_ms=1000)
        if not batches:
            idle_polls += 1
            expect(idle_polls < 30, f"no records for 30s after {len(seen)} of {RECORD_COUNT}")
            continue
        idle_polls = 0
        for records in batches.values():
            for record in records:
                index = int(dict(record.headers)["idx"])
                expect(index not in seen, f"record {index} consumed twice")
                key, value, headers = message_for(index)
                expect(record.key == key, f"record {index}: key {record.key!r}")
                expect(record.value == value, f"record {index}: value differs")
                expect(list(record.headers) == headers, f"record {index}: headers {record.headers}")
                expect(
                    (record.partition, record.offset) == acked[index],
                    f"record {index} at {(record.partition, record.offset)}, acked {acked[index]}",
                )
                seen.add(index)
    consumer.close()


def main():
    bootstrap = bootstrap_from_argv()
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=TIMEOUT_MS)
    admin_checks(admin)
    round_trip(bootstrap)
    step("delete_topics")
    admin.delete_topics([TOPIC], timeout_ms=TIMEOUT_MS)
    wait_until(lambda: TOPIC not in admin.list_topics(), "topic gone from list_topics")

    step("a topic re-created under the same name starts empty")
    admin.create_topics(
        {TOPIC: {"num_partitions": 1, "replication_factor": 1}}, timeout_ms=TIMEOUT_MS
    )
    wait_until(lambda: partition_count(admin, TOPIC) == 1, "re-created topic")
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    partition = TopicPartition(TOPIC, 0)
    ends = consumer.end_offsets([partition])
    expect(ends.get(partition) == 0, f"re-created topic still holds records: {ends}")
    consumer.close()
    admin.close()
    step("OK")


if __name__ == "__main__":
    main()
