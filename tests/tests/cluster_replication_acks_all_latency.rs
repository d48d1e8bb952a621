//! An `acks=all` produce is answered as soon as the in-sync replicas hold it, never after a
//! follower's long-poll wait.
//!
//! A follower fetches with a long poll: the leader parks the fetch while it has nothing new,
//! for up to `replica.fetch.wait.max.ms`. An append must wake the parked fetch, and the
//! follower must report its new durable offset as soon as its fsync completes
//! (replication-notes §5: "Do not wait for new data or for the long-poll wait to expire, or
//! the HW (and acks=all latency) stalls by up to the fetch max wait"). A lost wake-up on
//! either side does not lose data. It shows up only as latency: the `acks=all` answer waits
//! for the wait to run out.
//!
//! To make such a stall unmistakable, the nodes run with `replica.fetch.wait.max.ms` = 5 s
//! (from a config file). A correct broker answers these produces in milliseconds; a lost
//! wake-up costs about 5 s. Three nodes. A background producer writes ~400 records/s to
//! another replicated topic, so the followers' fetch loops are busy with other partitions (the
//! stall was seen only under such load). The test then sends single-record `acks=all`
//! produces one after the other to a replication-factor-3 partition, and fails if any takes
//! more than half the fetch wait. It also checks that no node panicked and that all nodes
//! agree on the final Metadata.

#![allow(
    clippy::unwrap_used,
    reason = "test code: helpers outside #[test] fns fail the test by panicking, as the tests do"
)]

#[path = "cluster_replication_support/mod.rs"]
mod support;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use spate_tests::kafka_requests::produce_v7;
use spate_tests::record_batch::{TestRecord, encode_batch};
use spate_tests::replication::{BackgroundClient, create_topic_with_configs, topic_fully_in_sync};
use spate_tests::wire::KafkaConnection;
use spate_tests::{Cluster, ClusterOptions};
use support::{assert_cluster_healthy, assert_no_failures};

const BACKGROUND: &str = "background";
const PROBE: &str = "probe";
const FETCH_WAIT_MAX_MS: u64 = 5_000;
/// Answers slower than this waited for a parked fetch to expire.
const STALL_MS: u128 = (FETCH_WAIT_MAX_MS / 2) as u128;
const PROBE_COUNT: usize = 300;
/// Stop probing after this many stalls: the point is made, and each costs 5 s.
const STALLS_MAX: usize = 3;
const AGREEMENT_TIMEOUT: Duration = Duration::from_secs(30);
/// Background records acknowledged before probing starts.
const BACKGROUND_ACKS_MIN: u64 = 200;
const BACKGROUND_ACKS_TIMEOUT: Duration = Duration::from_secs(30);
const PRODUCER_EXIT_TIMEOUT: Duration = Duration::from_secs(150);

#[test]
fn acks_all_is_answered_without_waiting_for_a_follower_long_poll() {
    let config_dir = tempfile::tempdir().unwrap();
    let config = config_dir.path().join("server.toml");
    std::fs::write(
        &config,
        format!("\"replica.fetch.wait.max.ms\" = {FETCH_WAIT_MAX_MS}\n"),
    )
    .unwrap();
    let cluster = Cluster::start(ClusterOptions {
        extra_args: vec!["--config".into(), config.display().to_string()],
        ..ClusterOptions::default()
    })
    .unwrap();
    create_topic_with_configs(
        &cluster,
        1,
        BACKGROUND,
        3,
        3,
        &[("min.insync.replicas", "2")],
    )
    .unwrap();
    create_topic_with_configs(&cluster, 1, PROBE, 1, 3, &[("min.insync.replicas", "2")]).unwrap();
    let metadata = cluster
        .agreed_metadata(AGREEMENT_TIMEOUT, "both topics", |m| {
            topic_fully_in_sync(m, BACKGROUND, 3, 3) && topic_fully_in_sync(m, PROBE, 1, 3)
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    let leader = metadata.topic(PROBE).unwrap().partition(0).unwrap().leader;

    let mut producer = BackgroundClient::spawn(
        "replication_producer.py",
        &[&cluster.bootstrap(), BACKGROUND, "3", "idempotent"],
    )
    .unwrap();
    let deadline = Instant::now() + BACKGROUND_ACKS_TIMEOUT;
    while background_acks(&producer) < BACKGROUND_ACKS_MIN {
        assert!(
            producer.is_running() && Instant::now() < deadline,
            "the background producer got {} acks\n{}",
            background_acks(&producer),
            producer.output_tail()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let mut connection = KafkaConnection::connect(cluster.node(leader).kafka_addr()).unwrap();
    let mut latencies_ms = Vec::with_capacity(PROBE_COUNT);
    let mut stalls = Vec::new();
    let mut failures = Vec::new();
    for n in 0..PROBE_COUNT {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(0));
        let batch = encode_batch(&[TestRecord::value(format!("probe-{n}"))], now_ms);
        let sent = Instant::now();
        let reply = produce_v7(&mut connection, PROBE, 0, &batch, -1).unwrap();
        let took = sent.elapsed().as_millis();
        if reply.error_code != 0 {
            failures.push(format!(
                "probe {n} was answered with error {}",
                reply.error_code
            ));
            break;
        }
        latencies_ms.push(took);
        if took > STALL_MS {
            stalls.push((n, reply.base_offset, took));
            if stalls.len() >= STALLS_MAX {
                break;
            }
        }
    }
    std::fs::write(producer.dir().join("stop"), b"").unwrap();
    let output = producer.wait(PRODUCER_EXIT_TIMEOUT).unwrap();
    assert!(output.status.success(), "{}", output.describe());

    let mut sorted = latencies_ms.clone();
    sorted.sort_unstable();
    let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q) as usize];
    eprintln!(
        "{} acks=all probes to node {leader}: p50 {} ms, p99 {} ms, max {} ms; {} took longer \
         than {STALL_MS} ms: {stalls:?} (probe, offset, ms)",
        sorted.len(),
        at(0.5),
        at(0.99),
        at(1.0),
        stalls.len()
    );
    if !stalls.is_empty() {
        failures.push(format!(
            "{} of {} acks=all produces took longer than {STALL_MS} ms, i.e. waited for a \
             follower's fetch to run out its {FETCH_WAIT_MAX_MS} ms long poll \
             (replica.fetch.wait.max.ms) instead of being woken by the append or the \
             follower's durable-offset report: {stalls:?} (probe, offset, ms)",
            stalls.len(),
            latencies_ms.len()
        ));
    }
    assert_cluster_healthy(&cluster, "both topics", |m| {
        topic_fully_in_sync(m, BACKGROUND, 3, 3) && topic_fully_in_sync(m, PROBE, 1, 3)
    });
    assert_no_failures(&cluster, &failures);
}

fn background_acks(producer: &BackgroundClient) -> u64 {
    std::fs::read_to_string(producer.dir().join("progress"))
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}
