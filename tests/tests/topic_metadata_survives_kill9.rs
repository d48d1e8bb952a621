//! Topic metadata is as durable as records: topics created, grown, reconfigured or deleted
//! through the admin APIs stay that way after `kill -9` right after the answer, with no clean
//! shutdown to write anything down.

#![allow(
    clippy::unwrap_used,
    reason = "test code: helpers outside #[test] fns fail the test by panicking, as the tests do"
)]

use spate_tests::Broker;
use spate_tests::admin_requests::{
    ConfigEntry, create_partitions_v1, delete_topic_v1, describe_topic_configs_v1,
};
use spate_tests::kafka_requests::{MetadataTopic, create_topic_v4, metadata_v4};
use spate_tests::wire::{KafkaConnection, error_code};

/// Kafka's ConfigSource for a value set on the topic itself.
const DYNAMIC_TOPIC_CONFIG: i8 = 1;

fn topics(broker: &Broker) -> Vec<MetadataTopic> {
    let mut connection = KafkaConnection::connect(broker.kafka_addr()).unwrap();
    metadata_v4(&mut connection, None, false).unwrap().topics
}

fn config(entries: &[ConfigEntry], name: &str) -> ConfigEntry {
    entries
        .iter()
        .find(|entry| entry.name == name)
        .cloned()
        .unwrap_or_else(|| panic!("no {name} in {entries:?}"))
}

#[test]
fn created_grown_configured_and_deleted_topics_survive_kill9() {
    let mut broker = Broker::start().unwrap();
    let mut connection = KafkaConnection::connect(broker.kafka_addr()).unwrap();
    let created = create_topic_v4(
        &mut connection,
        "kept",
        2,
        &[("retention.ms", "123456"), ("cleanup.policy", "delete")],
    )
    .unwrap();
    assert_eq!(created, error_code::NONE);
    assert_eq!(
        create_topic_v4(&mut connection, "doomed", 1, &[]).unwrap(),
        error_code::NONE
    );
    assert_eq!(
        create_partitions_v1(&mut connection, "kept", 5).unwrap(),
        error_code::NONE
    );
    assert_eq!(
        delete_topic_v1(&mut connection, "doomed").unwrap(),
        error_code::NONE
    );
    broker.kill9().unwrap();
    broker.restart().unwrap();

    let after = topics(&broker);
    let kept = after
        .iter()
        .find(|t| t.name == "kept")
        .unwrap_or_else(|| panic!("created topic lost: {after:?}"));
    assert_eq!(kept.partition_count, 5, "CreatePartitions lost");
    assert!(
        after.iter().all(|t| t.name != "doomed"),
        "deleted topic is back: {after:?}"
    );

    let mut connection = KafkaConnection::connect(broker.kafka_addr()).unwrap();
    let (code, entries) = describe_topic_configs_v1(&mut connection, "kept").unwrap();
    assert_eq!(code, error_code::NONE);
    let retention = config(&entries, "retention.ms");
    assert_eq!(retention.value.as_deref(), Some("123456"));
    assert_eq!(retention.source, DYNAMIC_TOPIC_CONFIG);
}

#[test]
fn admin_requests_with_bad_arguments_get_kafka_error_codes() {
    /// Kafka's codes for these refusals.
    const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    const TOPIC_ALREADY_EXISTS: i16 = 36;
    const INVALID_PARTITIONS: i16 = 37;
    const INVALID_CONFIG: i16 = 40;

    let broker = Broker::start().unwrap();
    let mut connection = KafkaConnection::connect(broker.kafka_addr()).unwrap();
    assert_eq!(
        create_topic_v4(&mut connection, "three", 3, &[]).unwrap(),
        error_code::NONE
    );
    assert_eq!(
        create_topic_v4(&mut connection, "three", 3, &[]).unwrap(),
        TOPIC_ALREADY_EXISTS
    );
    assert_eq!(
        create_topic_v4(&mut connection, "bad/name", 1, &[]).unwrap(),
        error_code::INVALID_TOPIC_EXCEPTION
    );
    assert_eq!(
        create_topic_v4(&mut connection, "bad-config", 1, &[("no.such.key", "1")]).unwrap(),
        INVALID_CONFIG
    );
    assert_eq!(
        create_topic_v4(&mut connection, "bad-value", 1, &[("segment.bytes", "-5")]).unwrap(),
        INVALID_CONFIG
    );
    assert_eq!(
        create_partitions_v1(&mut connection, "three", 2).unwrap(),
        INVALID_PARTITIONS,
        "shrinking a topic"
    );
    assert_eq!(
        create_partitions_v1(&mut connection, "missing", 4).unwrap(),
        UNKNOWN_TOPIC_OR_PARTITION
    );
    assert_eq!(
        delete_topic_v1(&mut connection, "missing").unwrap(),
        UNKNOWN_TOPIC_OR_PARTITION
    );
    let (code, _) = describe_topic_configs_v1(&mut connection, "missing").unwrap();
    assert_eq!(code, UNKNOWN_TOPIC_OR_PARTITION);
    let names: Vec<String> = metadata_v4(&mut connection, None, false)
        .unwrap()
        .topics
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(
        names,
        vec!["three".to_string()],
        "refused creations left topics behind"
    );
}
