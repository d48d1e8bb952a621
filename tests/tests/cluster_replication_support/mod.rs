//! Shared by the `cluster_replication_*` tests: reading partitions back with librdkafka (the
//! `rdkafka` crate, a dev-dependency, so it cannot live in the harness library), and the
//! checks every replication test ends with.

#![allow(
    dead_code,
    reason = "each test file includes this module and uses only some of it"
)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use spate_tests::Cluster;
use spate_tests::cluster_requests::ClusterMetadata;
use spate_tests::replication::panics;

/// One partition as a consumer reads it: (offset, value) in offset order.
pub type PartitionRecords = Vec<(i64, Vec<u8>)>;

/// Reads every partition of `topic` from its log start up to its high watermark (as the
/// leader reports it when the read starts) with an assign() consumer, through `bootstrap`.
/// Retries through leader moves; fails after `timeout` naming what it had read.
pub fn read_to_high_watermark(
    bootstrap: &str,
    topic: &str,
    partition_count: i32,
    timeout: Duration,
) -> Result<BTreeMap<i32, PartitionRecords>, String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        // librdkafka refuses assign() without a group id; it is never joined nor committed to.
        .set("group.id", "spate-replication-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("fetch.wait.max.ms", "100")
        .create()
        .map_err(|e| format!("create consumer: {e}"))?;
    let deadline = Instant::now() + timeout;
    let mut ends = BTreeMap::new();
    for partition in 0..partition_count {
        let high = loop {
            match consumer.fetch_watermarks(topic, partition, Duration::from_secs(5)) {
                Ok((_, high)) => break high,
                Err(e) if Instant::now() >= deadline => {
                    return Err(format!("watermarks of {topic}-{partition}: {e}"));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        };
        ends.insert(partition, high);
    }
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partition_count {
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .map_err(|e| e.to_string())?;
    }
    consumer.assign(&assignment).map_err(|e| e.to_string())?;
    let mut read: BTreeMap<i32, PartitionRecords> =
        (0..partition_count).map(|p| (p, Vec::new())).collect();
    let done = |read: &BTreeMap<i32, PartitionRecords>| {
        ends.iter().all(|(partition, high)| {
            read[partition]
                .last()
                .map_or(*high == 0, |(offset, _)| offset + 1 >= *high)
        })
    };
    while !done(&read) {
        if Instant::now() >= deadline {
            let positions: BTreeMap<i32, Option<i64>> = read
                .iter()
                .map(|(p, records)| (*p, records.last().map(|(o, _)| *o)))
                .collect();
            return Err(format!(
                "read {topic} up to {positions:?} (last offsets), not to the high watermarks \
                 {ends:?}, within {timeout:?}"
            ));
        }
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Ok(message)) => {
                let partition = message.partition();
                let offset = message.offset();
                if offset < ends[&partition] {
                    read.get_mut(&partition)
                        .ok_or_else(|| format!("a record of unknown partition {partition}"))?
                        .push((offset, message.payload().unwrap_or_default().to_vec()));
                }
            }
            Some(Err(KafkaError::PartitionEOF(_))) => {}
            Some(Err(e)) => eprintln!("consumer: {e} (retrying)"),
        }
    }
    Ok(read)
}

/// The checks every replication test ends with: no node panicked, and every running broker
/// answers the same Metadata, in which `accept` holds.
pub fn assert_cluster_healthy(
    cluster: &Cluster,
    what: &str,
    accept: impl Fn(&ClusterMetadata) -> bool,
) -> ClusterMetadata {
    let panicked = panics(cluster);
    assert!(
        panicked.is_empty(),
        "a node panicked: {panicked:#?}\n{}",
        cluster.logs()
    );
    cluster
        .agreed_metadata(Duration::from_secs(30), what, accept)
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()))
}

/// Panics with every failure found (one per line) and the cluster's log tails, if any.
pub fn assert_no_failures(cluster: &Cluster, failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{} check(s) failed:\n- {}\n{}",
        failures.len(),
        failures.join("\n- "),
        cluster.logs()
    );
}
