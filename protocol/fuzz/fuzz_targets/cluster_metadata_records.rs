//! Fuzzes spate-cluster's metadata log entries and snapshots: arbitrary bytes decoded as a
//! `MetadataBatch` and applied to a small populated image, and decoded as a snapshot.
//! Nothing may panic. A batch that applies must leave an image its own snapshot restores
//! exactly (so `apply` keeps every invariant `from_snapshot` checks); a refused batch must
//! change nothing but the offset; a snapshot that restores must survive its own round trip.

#![no_main]

use std::sync::OnceLock;

use spate_cluster::records::Endpoint;
use spate_cluster::{ClusterImage, MetadataBatch, RecordBody, TopicId};

/// Topic id of the seed topic, so inputs can name it: `a0000000-0000-0000-0000-000000000001`.
const SEED_TOPIC_ID: TopicId = TopicId([0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);

/// A named cluster with brokers 0 (unfenced, epoch 2) and 1 (fenced, epoch 3), and topic
/// `orders` with two partitions on both.
fn seed_image() -> ClusterImage {
    let register = |node_id| RecordBody::RegisterBroker {
        node_id,
        incarnation_id: format!("inc-{node_id}"),
        kafka: Endpoint {
            host: "127.0.0.1".into(),
            port: 9092,
        },
        cluster_addr: "127.0.0.1:9093".into(),
        rack: None,
    };
    let partition = |partition| RecordBody::Partition {
        topic_id: SEED_TOPIC_ID,
        partition,
        replicas: vec![0, 1],
        isr: vec![0],
        leader: 0,
        leader_epoch: 0,
        partition_epoch: 0,
        adding_replicas: Vec::new(),
        removing_replicas: Vec::new(),
        leader_recovery_state: Default::default(),
    };
    let entries = [
        vec![RecordBody::ClusterInit {
            cluster_id: "fuzz".into(),
        }],
        vec![register(0)],
        vec![register(1)],
        vec![RecordBody::BrokerChange {
            node_id: 0,
            broker_epoch: 2,
            fenced: Some(false),
            in_controlled_shutdown: None,
        }],
        vec![
            RecordBody::Topic {
                topic_id: SEED_TOPIC_ID,
                name: "orders".into(),
                configs: Default::default(),
            },
            partition(0),
            partition(1),
        ],
    ];
    let mut image = ClusterImage::default();
    for (index, records) in (1..).zip(entries) {
        let applied = image.apply(index, &MetadataBatch::new(records));
        assert_eq!(applied, Ok(()), "the seed image must build");
    }
    image
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(batch) = MetadataBatch::decode(data) {
        static SEED: OnceLock<ClusterImage> = OnceLock::new();
        let before = SEED.get_or_init(seed_image);
        let mut image = before.clone();
        let index = image.offset() + 1;
        match image.apply(index, &batch) {
            Ok(()) => {
                let restored = ClusterImage::from_snapshot(&image.to_snapshot());
                assert_eq!(
                    restored.as_ref(),
                    Ok(&image),
                    "an applied image's snapshot differs"
                );
            }
            Err(_) => {
                let mut unchanged = before.clone();
                unchanged.advance_offset(index);
                assert_eq!(image, unchanged, "a refused batch changed the image");
            }
        }
    }
    if let Ok(image) = ClusterImage::from_snapshot(data) {
        let again = ClusterImage::from_snapshot(&image.to_snapshot());
        assert_eq!(
            again.as_ref(),
            Ok(&image),
            "a restored snapshot does not round-trip"
        );
    }
});
