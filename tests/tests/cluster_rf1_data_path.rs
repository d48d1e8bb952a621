//! Records reach the node that leads their partition, and clients find it: on a three-node
//! cluster, a 6-partition topic with one replica per partition is spread two leaderships per
//! node; confluent-kafka's idempotent producer (acks=all), bootstrapped with a single node,
//! writes 60,000 keyed records and an assign() consumer reads every one back exactly once, at
//! its acknowledged offset, each key's records in order. Every partition (so every node) got
//! records, a raw Produce or Fetch sent to a node that does not lead the partition is refused
//! with NOT_LEADER_OR_FOLLOWER (from Produce v10 on with KIP-951's hint: the leader, its epoch
//! and its endpoint), and each leader's high watermark is exactly the records read.

#![allow(
    clippy::unwrap_used,
    reason = "test code: helpers outside #[test] fns fail the test by panicking, as the tests do"
)]

use std::collections::BTreeMap;
use std::time::Duration;

use spate_tests::clients::run_python_script;
use spate_tests::cluster_requests::{ClusterMetadata, produce_v10};
use spate_tests::fetch_request::{FetchParams, fetch_v5};
use spate_tests::kafka_requests::produce_v7;
use spate_tests::record_batch::{TestRecord, encode_batch};
use spate_tests::wire::KafkaConnection;
use spate_tests::{Cluster, ClusterOptions};

const TOPIC: &str = "keyed";
const PARTITION_COUNT: i32 = 6;
const RECORD_COUNT: usize = 60_000;
/// Kafka's NOT_LEADER_OR_FOLLOWER.
const NOT_LEADER_OR_FOLLOWER: i16 = 6;
/// 60,000 small records through a debug build on a loaded 2-core machine, both ways.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(240);
const AGREEMENT_TIMEOUT: Duration = Duration::from_secs(30);

#[test]
fn keyed_records_round_trip_through_every_partition_leader() {
    let cluster = Cluster::start(ClusterOptions::default()).unwrap();
    cluster.create_topic(1, TOPIC, PARTITION_COUNT, 1).unwrap();
    let metadata = cluster
        .agreed_metadata(AGREEMENT_TIMEOUT, "the new topic", topic_is_led)
        .unwrap();
    let topic = metadata.topic(TOPIC).unwrap();
    let leader_counts = topic.leader_counts();
    eprintln!("leaderships per node: {leader_counts:?}");
    assert_eq!(
        leader_counts,
        BTreeMap::from([(1, 2), (2, 2), (3, 2)]),
        "six single-replica partitions over three nodes: two each"
    );

    let output = run_python_script(
        "cluster_keyed_round_trip.py",
        &cluster.node(3).bootstrap(),
        &[
            TOPIC,
            &PARTITION_COUNT.to_string(),
            &RECORD_COUNT.to_string(),
        ],
        SCRIPT_TIMEOUT,
    )
    .unwrap();
    assert!(
        output.status.success(),
        "{}\n{}",
        output.describe(),
        cluster.logs()
    );
    let summary: serde_json::Value =
        serde_json::from_str(output.stdout_text().lines().last().unwrap()).unwrap();
    eprintln!("records per partition: {summary}");
    for partition in 0..PARTITION_COUNT {
        let count = summary["per_partition"][partition.to_string()]
            .as_u64()
            .unwrap_or(0);
        assert!(count > 0, "partition {partition} got no records: {summary}");
    }

    for partition in &topic.partitions {
        let fetch = FetchParams {
            topic: TOPIC,
            partition: partition.index,
            fetch_offset: 0,
            max_wait_ms: 0,
            min_bytes: 1,
            max_bytes: 1 << 20,
            partition_max_bytes: 1 << 20,
        };
        let stranger = cluster
            .node_ids()
            .into_iter()
            .find(|id| *id != partition.leader)
            .unwrap();
        let mut connection = KafkaConnection::connect(cluster.node(stranger).kafka_addr()).unwrap();
        let batch = encode_batch(&[TestRecord::value(b"misdirected".to_vec())], 0);
        let produced = produce_v7(&mut connection, TOPIC, partition.index, &batch, -1).unwrap();
        assert_eq!(
            produced.error_code, NOT_LEADER_OR_FOLLOWER,
            "Produce of partition {} (led by {}) to node {stranger}",
            partition.index, partition.leader
        );
        let fetched = fetch_v5(&mut connection, &fetch).unwrap();
        assert_eq!(
            fetched.error_code, NOT_LEADER_OR_FOLLOWER,
            "Fetch of partition {} (led by {}) from node {stranger}",
            partition.index, partition.leader
        );

        let hinted = produce_v10(
            cluster.node(stranger).kafka_addr(),
            TOPIC,
            partition.index,
            &batch,
        )
        .unwrap();
        let leader = metadata
            .brokers
            .iter()
            .find(|b| b.node_id == partition.leader)
            .unwrap();
        assert_eq!(
            (hinted.error_code, hinted.current_leader),
            (
                NOT_LEADER_OR_FOLLOWER,
                (partition.leader, partition.leader_epoch)
            ),
            "Produce v10 of partition {} to node {stranger}: KIP-951 names the leader: {hinted:?}",
            partition.index
        );
        assert!(
            hinted
                .node_endpoints
                .contains(&(leader.node_id, leader.host.clone(), leader.port)),
            "the hint carries the leader's endpoint {leader:?}: {hinted:?}"
        );

        let mut connection =
            KafkaConnection::connect(cluster.node(partition.leader).kafka_addr()).unwrap();
        let fetched = fetch_v5(&mut connection, &fetch).unwrap();
        assert_eq!(fetched.error_code, 0, "Fetch from the leader: {fetched:?}");
        assert_eq!(
            Some(fetched.high_watermark),
            summary["per_partition"][partition.index.to_string()].as_i64(),
            "partition {}: the leader's high watermark is the records read",
            partition.index
        );
    }
}

fn topic_is_led(metadata: &ClusterMetadata) -> bool {
    metadata.topic(TOPIC).is_some_and(|topic| {
        topic.partitions.len() == usize::try_from(PARTITION_COUNT).unwrap()
            && topic.partitions.iter().all(|p| p.leader >= 0)
    })
}
