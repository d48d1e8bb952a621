"""confluent-kafka (librdkafka) against Spate: AdminClient create (with configs and
validate_only), describe configs, create partitions and delete topics; and a produce/consume
round trip of keyed records with headers, consumed with assign() and checked byte for byte.

Usage: python confluent_kafka_clients.py BOOTSTRAP
Exits non-zero with a FAILED line on the first thing that is wrong.
"""

from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
    OFFSET_BEGINNING,
)
from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    NewTopic,
)

from check import bootstrap_from_argv, expect, fail, message_for, step, wait_until

TOPIC = "confluent-admin"
RECORD_COUNT = 10_000
TIMEOUT_S = 30


def wait_futures(futures, what):
    for name, future in futures.items():
        try:
            future.result(timeout=TIMEOUT_S)
        except Exception as error:  # noqa: BLE001 - any failure is the test's failure
            fail(f"{what} {name}: {error!r}")


def source_of(entry):
    """ConfigEntry.source is a ConfigSource in some confluent-kafka versions, an int in others."""
    return ConfigSource(getattr(entry.source, "value", entry.source))


def partition_count(admin, topic):
    metadata = admin.list_topics(timeout=TIMEOUT_S)
    found = metadata.topics.get(topic)
    if found is None or found.error is not None:
        return None
    return len(found.partitions)


def admin_checks(admin):
    step("create_topics validate_only: nothing may be created")
    wait_futures(
        admin.create_topics([NewTopic("validate-only", 2, 1)], validate_only=True),
        "validate-only create",
    )
    expect(partition_count(admin, "validate-only") is None, "validate_only created the topic")

    step("create_topics with configs")
    configs = {"retention.ms": "3600000", "max.message.bytes": "2000000"}
    wait_futures(admin.create_topics([NewTopic(TOPIC, 3, 1, config=configs)]), "create")
    wait_until(lambda: partition_count(admin, TOPIC) == 3, "3 partitions in metadata")

    step("create_topics of an existing topic is refused")
    futures = admin.create_topics([NewTopic(TOPIC, 3, 1)])
    try:
        futures[TOPIC].result(timeout=TIMEOUT_S)
        fail("creating an existing topic succeeded")
    except KafkaException as error:
        code = error.args[0].code()
        expect(code == KafkaError.TOPIC_ALREADY_EXISTS, f"duplicate create: {error!r}")

    step("create_topics with an invalid name is refused")
    futures = admin.create_topics([NewTopic("bad name!", 1, 1)])
    try:
        futures["bad name!"].result(timeout=TIMEOUT_S)
        fail("creating topic 'bad name!' succeeded")
    except KafkaException as error:
        code = error.args[0].code()
        expect(code == KafkaError.TOPIC_EXCEPTION, f"invalid name: {error!r}")

    step("describe_configs")
    resource = ConfigResource(ConfigResource.Type.TOPIC, TOPIC)
    described = admin.describe_configs([resource])[resource].result(timeout=TIMEOUT_S)
    for key, value in configs.items():
        entry = described.get(key)
        expect(entry is not None, f"describe_configs lacks {key}: {sorted(described)}")
        expect(entry.value == value, f"{key} = {entry.value!r}, want {value!r}")
        expect(
            source_of(entry) == ConfigSource.DYNAMIC_TOPIC_CONFIG,
            f"{key} source {entry.source}, want DYNAMIC_TOPIC_CONFIG",
        )
    for key in ("segment.bytes", "retention.bytes", "cleanup.policy", "message.timestamp.type"):
        entry = described.get(key)
        expect(entry is not None, f"describe_configs lacks default {key}: {sorted(described)}")
        expect(
            source_of(entry) == ConfigSource.DEFAULT_CONFIG,
            f"{key} was never set, so its source should be DEFAULT_CONFIG: {source_of(entry)}",
        )

    step("incremental_alter_configs SET retention.ms")
    altered = ConfigResource(
        ConfigResource.Type.TOPIC,
        TOPIC,
        incremental_configs=[
            ConfigEntry("retention.ms", "1800000", incremental_operation=AlterConfigOpType.SET)
        ],
    )
    wait_futures(admin.incremental_alter_configs([altered]), "incremental_alter_configs")
    described = admin.describe_configs([resource])[resource].result(timeout=TIMEOUT_S)
    expect(
        described["retention.ms"].value == "1800000",
        f"retention.ms after alter: {described['retention.ms'].value}",
    )

    step("describe_cluster")
    cluster = admin.describe_cluster().result(timeout=TIMEOUT_S)
    expect(len(cluster.nodes) == 1, f"one node expected: {cluster.nodes}")
    expect(cluster.controller is not None, "describe_cluster names no controller")

    step("create_partitions 3 -> 5")
    wait_futures(admin.create_partitions([NewPartitions(TOPIC, 5)]), "create_partitions")
    wait_until(lambda: partition_count(admin, TOPIC) == 5, "5 partitions in metadata")


def expect_create_refused(admin, topic, configs, want_code, what):
    future = admin.create_topics([NewTopic(topic, 1, 1, config=configs)])[topic]
    try:
        future.result(timeout=TIMEOUT_S)
        fail(f"{what} was accepted")
    except KafkaException as error:
        code = error.args[0].code()
        expect(code == want_code, f"{what}: {error!r}, want code {want_code}")
    expect(partition_count(admin, topic) is None, f"{what} created the topic anyway")


def topic_config_checks(admin, bootstrap):
    step("unknown config and bad value are refused with INVALID_CONFIG")
    expect_create_refused(
        admin, "unknown-config", {"no.such.config": "1"}, KafkaError.INVALID_CONFIG, "unknown config"
    )
    expect_create_refused(
        admin, "bad-value", {"retention.ms": "soon"}, KafkaError.INVALID_CONFIG, "bad retention.ms"
    )

    step("max.message.bytes is honoured per topic")
    wait_futures(
        admin.create_topics([NewTopic("small-max", 1, 1, config={"max.message.bytes": "10000"})]),
        "create small-max",
    )
    outcome = {}
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    # One flush each: in one batch, the small record would share the big one's fate.
    producer.produce("small-max", value=b"x" * 20_000, on_delivery=lambda e, m: outcome.update(e=e))
    expect(producer.flush(TIMEOUT_S) == 0, "small-max delivery still pending")
    producer.produce("small-max", value=b"y" * 100, on_delivery=lambda e, m: outcome.update(ok=e))
    expect(producer.flush(TIMEOUT_S) == 0, "small-max delivery still pending")
    big_error = outcome.get("e")
    expect(
        big_error is not None and big_error.code() == KafkaError.MSG_SIZE_TOO_LARGE,
        f"20 kB record on a 10 kB topic: {big_error!r}",
    )
    expect(outcome.get("ok") is None, f"small record refused: {outcome.get('ok')!r}")

    step("message.timestamp.type=LogAppendTime replaces the producer's timestamp")
    wait_futures(
        admin.create_topics(
            [NewTopic("append-time", 1, 1, config={"message.timestamp.type": "LogAppendTime"})]
        ),
        "create append-time",
    )
    producer.produce("append-time", value=b"old", timestamp=1_000_000_000_000)
    expect(producer.flush(TIMEOUT_S) == 0, "append-time delivery pending")
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "unused-with-assign", "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition("append-time", 0, OFFSET_BEGINNING)])
    message = consumer.poll(TIMEOUT_S)
    expect(message is not None and message.error() is None, f"append-time consume: {message}")
    kind, timestamp_ms = message.timestamp()
    expect(kind == TIMESTAMP_LOG_APPEND_TIME, f"timestamp type {kind}, want LogAppendTime")
    expect(timestamp_ms > 1_600_000_000_000, f"timestamp {timestamp_ms} is the producer's")
    consumer.close()


def round_trip(bootstrap):
    step(f"produce {RECORD_COUNT} keyed records with headers")
    delivered = {}
    errors = []

    def on_delivery_of(index):
        # Delivery reports carry no headers, so each callback remembers its record's index.
        def on_delivery(error, message):
            if error is not None:
                errors.append(error)
            else:
                delivered[index] = (message.partition(), message.offset())

        return on_delivery

    producer = Producer(
        {"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 10, "enable.idempotence": True}
    )
    for index in range(RECORD_COUNT):
        key, value, headers = message_for(index)
        while True:
            try:
                producer.produce(
                    TOPIC, value=value, key=key, headers=headers, on_delivery=on_delivery_of(index)
                )
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    remaining = producer.flush(TIMEOUT_S)
    expect(remaining == 0, f"{remaining} records still unacknowledged after flush")
    expect(not errors, f"delivery errors: {errors[:3]}")
    expect(len(delivered) == RECORD_COUNT, f"{len(delivered)} delivery reports")

    step("consume with assign() from the beginning")
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "unused-with-assign", "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(TOPIC, p, OFFSET_BEGINNING) for p in range(5)])
    seen = {}
    while len(seen) < RECORD_COUNT:
        message = consumer.poll(TIMEOUT_S)
        if message is None:
            fail(f"no message for {TIMEOUT_S}s after {len(seen)} of {RECORD_COUNT}")
        if message.error() is not None:
            fail(f"consume error: {message.error()}")
        index = int(message.headers()[0][1])
        expect(index not in seen, f"record {index} consumed twice")
        key, value, headers = message_for(index)
        expect(message.key() == key, f"record {index}: key {message.key()!r}")
        expect(message.value() == value, f"record {index}: value differs")
        expect(message.headers() == headers, f"record {index}: headers {message.headers()!r}")
        expect(
            (message.partition(), message.offset()) == delivered[index],
            f"record {index} at {(message.partition(), message.offset())}, acked at {delivered[index]}",
        )
        seen[index] = True
    consumer.close()


def main():
    bootstrap = bootstrap_from_argv()
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin_checks(admin)
    topic_config_checks(admin, bootstrap)
    round_trip(bootstrap)
    step("delete_topics")
    wait_futures(admin.delete_topics([TOPIC]), "delete")
    wait_until(lambda: partition_count(admin, TOPIC) is None, "topic gone from metadata")
    step("OK")


if __name__ == "__main__":
    main()
