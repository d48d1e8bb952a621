//! A data dir from a single-node release (topics in `spate-metadata.toml`, no metadata log)
//! starts as a cluster of one with nothing lost: the topics keep their ids, partition counts,
//! configs and records, the cluster keeps its id, producer ids keep increasing, and the old
//! file is kept as `.migrated`. And partitions whose metadata is lost are adopted, never
//! deleted.

#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::path::Path;

use common::{TestBroker, batch, create_topic, fetch, metadata_for, produce};
use spate_protocol::api_key::ApiKey;
use spate_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse};
use spate_protocol::records::read_all_records;

fn producer_id(client: &mut common::Client) -> i64 {
    let response: InitProducerIdResponse = client.call(
        ApiKey::InitProducerId,
        4,
        &InitProducerIdRequest {
            transactional_id: None,
            producer_id: -1,
            producer_epoch: -1,
            ..Default::default()
        },
    );
    assert_eq!(response.error_code, 0);
    response.producer_id
}

/// Takes the cluster-era metadata away, leaving the partition folders, as a single-node
/// release would have left the directory (its metadata written to `legacy_toml`).
fn make_legacy(dir: &Path, legacy_toml: Option<String>) {
    fs::remove_dir_all(dir.join("__cluster_metadata")).unwrap();
    fs::remove_file(dir.join("meta.properties")).unwrap();
    fs::remove_file(dir.join("replica-topic-ids.json")).unwrap();
    if let Some(text) = legacy_toml {
        fs::write(dir.join("spate-metadata.toml"), text).unwrap();
        fs::write(dir.join("cluster-id"), "legacy-cluster-7\n").unwrap();
    }
}

#[test]
fn a_single_node_data_dir_is_migrated_into_the_metadata_log() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path());
    let mut client = broker.client();
    assert_eq!(create_topic(&mut client, "legacy", 2, &[]), 0);
    let id = metadata_for(&mut client, "legacy").topics[0].topic_id;
    assert_eq!(produce(&mut client, "legacy", 0, batch(4)), (0, 0));
    drop(client);
    broker.stop();

    let id_text = {
        let hex: String = id.0.iter().map(|b| format!("{b:02x}")).collect();
        format!(
            "{}-{}-{}-{}-{}",
            &hex[0..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..]
        )
    };
    make_legacy(
        dir.path(),
        Some(format!(
            "format_version = 1\nproducer_id_reserved_until = 5000\n\n[[topics]]\nname = \"legacy\"\nid = \"{id_text}\"\npartitions = 2\n\n[topics.configs]\n\"retention.ms\" = \"86400000\"\n"
        )),
    );

    let broker = TestBroker::start(dir.path());
    let mut client = broker.client();
    let meta = metadata_for(&mut client, "legacy");
    assert_eq!(meta.cluster_id.as_deref(), Some("legacy-cluster-7"));
    let topic = &meta.topics[0];
    assert_eq!(topic.error_code, 0);
    assert_eq!(topic.topic_id, id, "the topic keeps its id");
    assert_eq!(topic.partitions.len(), 2);
    let (code, high_watermark, records) = fetch(&mut client, "legacy", 0, 0);
    assert_eq!((code, high_watermark), (0, 4));
    assert_eq!(read_all_records(&records, 1 << 20).unwrap().len(), 4);
    assert!(
        producer_id(&mut client) >= 5000,
        "producer ids continue past the reservation"
    );
    assert!(dir.path().join("spate-metadata.toml.migrated").exists());
    assert!(!dir.path().join("spate-metadata.toml").exists());
    let stamp = fs::read_to_string(dir.path().join("meta.properties")).unwrap();
    assert!(stamp.contains("cluster.id=legacy-cluster-7"), "{stamp}");
    drop(client);
    broker.stop();

    // A second start reads the metadata log, not the old file.
    let broker = TestBroker::start(dir.path());
    let mut client = broker.client();
    assert_eq!(metadata_for(&mut client, "legacy").topics[0].topic_id, id);
    assert_eq!(produce(&mut client, "legacy", 0, batch(1)), (0, 4));
}

#[test]
fn partitions_whose_metadata_log_is_lost_are_adopted_not_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path());
    let mut client = broker.client();
    assert_eq!(create_topic(&mut client, "kept", 1, &[]), 0);
    let id = metadata_for(&mut client, "kept").topics[0].topic_id;
    assert_eq!(produce(&mut client, "kept", 0, batch(3)), (0, 0));
    drop(client);
    broker.stop();

    fs::remove_dir_all(dir.path().join("__cluster_metadata")).unwrap();

    let broker = TestBroker::start(dir.path());
    let mut client = broker.client();
    let meta = metadata_for(&mut client, "kept");
    assert_eq!(
        meta.topics[0].topic_id, id,
        "the recorded topic id is reused"
    );
    let (code, high_watermark, records) = fetch(&mut client, "kept", 0, 0);
    assert_eq!((code, high_watermark), (0, 3));
    assert_eq!(read_all_records(&records, 1 << 20).unwrap().len(), 3);
}
