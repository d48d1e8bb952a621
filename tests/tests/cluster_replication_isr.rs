//! The ISR shrinks when followers stop, `acks=all` is refused below `min.insync.replicas`,
//! and the ISR grows back when they return.
//!
//! Kafka's durability contract for `acks=all` rests on the ISR: the leader removes a
//! follower that has not caught up for `replica.lag.time.max.ms` (so one slow replica does
//! not stall every producer), and refuses an `acks=all` produce with NOT_ENOUGH_REPLICAS
//! (error 19) *before appending* once the ISR is smaller than `min.insync.replicas`
//! (`Partition.appendRecordsToLeader`), while `acks=1` still succeeds. Under the ISR minimum
//! the high watermark does not advance (strict min ISR, KAFKA-15583), so an `acks=1` record
//! written then stays invisible to consumers until enough replicas hold it. A follower that
//! catches up rejoins (KIP-497 AlterPartition) and its log ends byte-identical to the
//! leader's.
//!
//! Three brokers and one dedicated controller (so that stopping two brokers does not take
//! the metadata quorum with them), a topic with replication factor 3 and
//! `min.insync.replicas=2`, `replica.lag.time.max.ms` = 2 s. Each follower is stopped with
//! SIGSTOP in turn. A stopped broker also stops heartbeating, so two variants:
//!
//! - the session timeout is long (60 s): only the leader's lag check can shrink the ISR;
//! - the session timeout is the harness's 3 s: the controller fences the stopped brokers,
//!   which also removes them from the ISR. Whichever comes first, the expectations are the
//!   same.
//!
//! Both also check that no node panicked and that all nodes agree on the final Metadata.

#![allow(
    clippy::unwrap_used,
    reason = "test code: helpers outside #[test] fns fail the test by panicking, as the tests do"
)]

#[path = "cluster_replication_support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use spate_tests::cluster_requests::{ClusterMetadata, PartitionMetadata};
use spate_tests::fetch_request::{FetchParams, fetch_v5};
use spate_tests::replication::{
    create_topic_with_configs, produce_value, topic_fully_in_sync, wait_for_identical_replicas,
};
use spate_tests::wire::KafkaConnection;
use spate_tests::{Cluster, ClusterOptions, NodeId, NodeRole};
use support::{assert_cluster_healthy, assert_no_failures, read_to_high_watermark};

const TOPIC: &str = "isr";
const LAG_TIME_MAX_MS: u64 = 2_000;
/// The node that only votes in the metadata quorum.
const CONTROLLER: NodeId = 4;
const BROKERS: [NodeId; 3] = [1, 2, 3];
/// Kafka's NOT_ENOUGH_REPLICAS.
const NOT_ENOUGH_REPLICAS: i16 = 19;
/// A session long enough that no broker is fenced while it is stopped in this test.
const LONG_SESSION_TIMEOUT_MS: u64 = 60_000;
/// From a SIGSTOP to the ISR without the stopped follower: the lag time, up to half of it
/// again for the periodic check, the AlterPartition and a loaded debug build's slack.
const SHRINK_TIMEOUT: Duration = Duration::from_secs(20);
/// From a SIGCONT to the full ISR.
const EXPAND_TIMEOUT: Duration = Duration::from_secs(30);
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(30);

#[test]
fn lagging_followers_leave_the_isr_and_acks_all_is_refused_below_min_isr() {
    // The lag check alone shrinks the ISR: nobody is fenced within 60 s.
    shrink_and_expand(LONG_SESSION_TIMEOUT_MS, "lag");
}

#[test]
fn fenced_followers_leave_the_isr_and_acks_all_is_refused_below_min_isr() {
    // The harness's 3 s session: fencing and the lag check race to shrink the ISR.
    shrink_and_expand(spate_tests::cluster::SESSION_TIMEOUT_MS, "fencing or lag");
}

fn shrink_and_expand(session_timeout_ms: u64, path: &str) {
    let started = Instant::now();
    let mut cluster = Cluster::start(ClusterOptions {
        nodes: 4,
        roles: HashMap::from([
            (1, NodeRole::Broker),
            (2, NodeRole::Broker),
            (3, NodeRole::Broker),
            (CONTROLLER, NodeRole::Controller),
        ]),
        session_timeout_ms,
        extra_args: vec![
            "--replica-lag-time-max-ms".into(),
            LAG_TIME_MAX_MS.to_string(),
            "--auto-leader-rebalance-enable".into(),
            "false".into(),
        ],
        ..ClusterOptions::default()
    })
    .unwrap();
    create_topic_with_configs(&cluster, 1, TOPIC, 1, 3, &[("min.insync.replicas", "2")]).unwrap();
    let metadata = cluster
        .agreed_metadata(EXPAND_TIMEOUT, "the new topic", |m| {
            topic_fully_in_sync(m, TOPIC, 1, 3)
        })
        .unwrap();
    let initial = partition_of(&metadata);
    let leader = initial.leader;
    let followers: Vec<NodeId> = initial
        .replicas
        .iter()
        .copied()
        .filter(|id| *id != leader)
        .collect();
    eprintln!(
        "[{path}] leader {leader}, followers {followers:?}, ISR {:?}",
        initial.isr
    );
    let mut failures = Vec::new();
    let code = produce_one(&cluster, leader, -1, 1);
    assert_eq!(code, 0, "acks=all with the whole ISR\n{}", cluster.logs());

    // One follower stops. A follower whose log still ends where the leader's does counts
    // as caught up however long it is silent (`Replica.isCaughtUp`), so the lag check drops
    // it only once the leader's log grows past it: an acks=all produce does that, waits
    // while the stopped follower holds the high watermark back, and is answered once the
    // leader has dropped it from the ISR (or the controller has fenced it).
    let paused_at = Instant::now();
    cluster.pause(followers[0]).unwrap();
    let code = produce_one(&cluster, leader, -1, 2);
    let answered = paused_at.elapsed();
    if code != 0 {
        failures.push(format!(
            "acks=all while follower {} was stopped was answered with error {code} after {} ms; \
             expected success once the ISR shrank to the leader and node {} \
             (min.insync.replicas=2)",
            followers[0],
            answered.as_millis(),
            followers[1]
        ));
    }
    let shrunk = wait_for_isr(&cluster, leader, &[leader, followers[1]], SHRINK_TIMEOUT);
    eprintln!(
        "[{path}] SIGSTOP of node {} to ISR {:?}: {} ms; the acks=all produce waiting on it \
         was answered after {} ms (lag time {LAG_TIME_MAX_MS} ms, session \
         {session_timeout_ms} ms)",
        followers[0],
        shrunk.isr,
        paused_at.elapsed().as_millis(),
        answered.as_millis()
    );

    // The second follower stops too; an acks=1 record makes it lag, and the ISR goes below
    // min.insync.replicas.
    let paused_at = Instant::now();
    cluster.pause(followers[1]).unwrap();
    let code = produce_one(&cluster, leader, 1, 3);
    if code != 0 {
        failures.push(format!(
            "acks=1 with follower {} stopped was answered with error {code}",
            followers[1]
        ));
    }
    let alone = wait_for_isr(&cluster, leader, &[leader], SHRINK_TIMEOUT);
    eprintln!(
        "[{path}] SIGSTOP of node {} to ISR {:?}: {} ms",
        followers[1],
        alone.isr,
        paused_at.elapsed().as_millis()
    );
    // Records 1 and 2 were committed; record 3 reached only the leader.
    let committed = 2;
    let high_watermark_before = high_watermark(&cluster, leader);
    if high_watermark_before != committed {
        failures.push(format!(
            "with ISR {:?} the high watermark is {high_watermark_before}, expected {committed}: \
             the acks=all records are committed, the acks=1 record that only the leader holds \
             is not",
            alone.isr
        ));
    }
    let log_end_before = log_end(&cluster, leader);
    let code = produce_one(&cluster, leader, -1, 4);
    if code != NOT_ENOUGH_REPLICAS {
        failures.push(format!(
            "acks=all with ISR {:?} below min.insync.replicas=2 was answered with error {code}, \
             not NOT_ENOUGH_REPLICAS ({NOT_ENOUGH_REPLICAS})",
            alone.isr
        ));
    }
    match librdkafka_acks_all(&cluster.node(leader).bootstrap()) {
        Err(KafkaError::MessageProduction(RDKafkaErrorCode::NotEnoughReplicas)) => {}
        other => failures.push(format!(
            "librdkafka's acks=all delivery report with ISR {:?}: {other:?}, expected \
             NotEnoughReplicas",
            alone.isr
        )),
    }
    if log_end(&cluster, leader) != log_end_before {
        failures.push(format!(
            "refused acks=all records were appended: the leader's log end went from \
             {log_end_before} to {} (NOT_ENOUGH_REPLICAS must write nothing)",
            log_end(&cluster, leader)
        ));
    }
    let code = produce_one(&cluster, leader, 1, 5);
    if code != 0 {
        failures.push(format!(
            "acks=1 with ISR {:?} was answered with error {code}; only acks=all needs the ISR",
            alone.isr
        ));
    }
    let high_watermark_after = high_watermark(&cluster, leader);
    if high_watermark_after != high_watermark_before {
        failures.push(format!(
            "the high watermark moved from {high_watermark_before} to {high_watermark_after} \
             while the ISR {:?} was below min.insync.replicas (strict min ISR, KAFKA-15583)",
            alone.isr
        ));
    }

    // Both come back: the ISR is whole again and acks=all works.
    let resumed_at = Instant::now();
    cluster.resume(followers[0]).unwrap();
    cluster.resume(followers[1]).unwrap();
    let whole = cluster
        .agreed_metadata(
            EXPAND_TIMEOUT,
            "the resumed followers back in the ISR",
            |m| topic_fully_in_sync(m, TOPIC, 1, 3) && m.broker_ids().len() == 3,
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    eprintln!(
        "[{path}] SIGCONT of both to ISR {:?}: {} ms",
        partition_of(&whole).isr,
        resumed_at.elapsed().as_millis()
    );
    if partition_of(&whole).leader != leader {
        eprintln!(
            "[{path}] note: leadership moved to node {} meanwhile",
            partition_of(&whole).leader
        );
    }
    let leader = partition_of(&whole).leader;
    let code = produce_one(&cluster, leader, -1, 1_000);
    if code != 0 {
        failures.push(format!(
            "acks=all with the whole ISR again was answered with error {code}"
        ));
    }
    match wait_for_identical_replicas(&cluster, &BROKERS, TOPIC, 0, CONVERGE_TIMEOUT) {
        Ok(_) => {}
        Err(e) => failures.push(e),
    }
    let read = read_to_high_watermark(&cluster.bootstrap(), TOPIC, 1, CONVERGE_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    let values: Vec<String> = read[&0]
        .iter()
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        .collect();
    // Records 1 and 2 (acks=all), 3 (acks=1), 4 (refused), 5 (acks=1), 1000 (acks=all).
    let expected = ["value-1", "value-2", "value-3", "value-5", "value-1000"];
    if values != expected {
        failures.push(format!(
            "a consumer reads {values:?}, expected {expected:?} (the refused record absent, \
             the acks=1 ones present once the followers caught up)"
        ));
    }
    assert_cluster_healthy(&cluster, "the whole ISR", |m| {
        topic_fully_in_sync(m, TOPIC, 1, 3)
    });
    eprintln!("[{path}] whole test {} ms", started.elapsed().as_millis());
    assert_no_failures(&cluster, &failures);
}

fn partition_of(metadata: &ClusterMetadata) -> PartitionMetadata {
    metadata
        .topic(TOPIC)
        .and_then(|t| t.partition(0))
        .cloned()
        .unwrap()
}

/// Waits until `leader`'s Metadata shows the ISR `expected` (in any order); a stopped node
/// cannot answer, so only the leader is asked.
fn wait_for_isr(
    cluster: &Cluster,
    leader: NodeId,
    expected: &[NodeId],
    timeout: Duration,
) -> PartitionMetadata {
    let mut sorted = expected.to_vec();
    sorted.sort_unstable();
    let mut last = None;
    let found = cluster.poll(timeout, |c| {
        let partition = c.metadata(leader).ok().map(|m| partition_of(&m))?;
        let mut isr = partition.isr.clone();
        isr.sort_unstable();
        let matched = (isr == sorted && partition.leader == leader).then(|| partition.clone());
        last = Some(partition);
        matched
    });
    found.unwrap_or_else(|| {
        panic!(
            "node {leader}'s Metadata did not show the ISR {expected:?} within {timeout:?}; \
             last: {last:?}\n{}",
            cluster.logs()
        )
    })
}

/// Produce v7 of one record `value-<n>` to the leader with `acks`; returns the error code.
fn produce_one(cluster: &Cluster, leader: NodeId, acks: i16, n: u32) -> i16 {
    produce_value(cluster, leader, TOPIC, 0, &format!("value-{n}"), acks)
        .unwrap_or_else(|e| panic!("produce acks={acks} to node {leader}: {e}"))
}

fn fetch_from_leader(cluster: &Cluster, leader: NodeId) -> spate_tests::fetch_request::FetchReply {
    let mut connection = KafkaConnection::connect(cluster.node(leader).kafka_addr()).unwrap();
    let reply = fetch_v5(
        &mut connection,
        &FetchParams {
            topic: TOPIC,
            partition: 0,
            fetch_offset: 0,
            max_wait_ms: 0,
            min_bytes: 0,
            max_bytes: 1 << 20,
            partition_max_bytes: 1 << 20,
        },
    )
    .unwrap();
    assert_eq!(reply.error_code, 0, "Fetch from the leader: {reply:?}");
    reply
}

/// The high watermark the leader gives consumers.
fn high_watermark(cluster: &Cluster, leader: NodeId) -> i64 {
    fetch_from_leader(cluster, leader).high_watermark
}

/// The leader's log end, from its data directory.
fn log_end(cluster: &Cluster, leader: NodeId) -> i64 {
    let log = spate_tests::replication::replica_log(cluster, leader, TOPIC, 0).unwrap();
    spate_tests::replication::stored_batches(&log)
        .last()
        .map_or(0, |b| b.last_offset + 1)
}

struct Outcome(Mutex<Vec<Result<(), KafkaError>>>);

impl ClientContext for Outcome {}

impl ProducerContext for Outcome {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        self.0
            .lock()
            .unwrap()
            .push(result.as_ref().map(|_| ()).map_err(|(e, _)| e.clone()));
    }
}

/// One record through librdkafka with acks=all and no retries: its delivery report.
fn librdkafka_acks_all(bootstrap: &str) -> Result<(), KafkaError> {
    let producer: BaseProducer<Outcome> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "false")
        .set("retries", "0")
        .set("message.timeout.ms", "10000")
        .create_with_context(Outcome(Mutex::new(Vec::new())))
        .unwrap();
    producer
        .send(
            BaseRecord::<(), [u8]>::to(TOPIC)
                .partition(0)
                .payload(&b"librdkafka"[..]),
        )
        .map_err(|(e, _)| e)?;
    let _ = producer.flush(Duration::from_secs(15));
    let outcome = producer.context().0.lock().unwrap().pop();
    outcome.unwrap_or(Err(KafkaError::Flush(RDKafkaErrorCode::MessageTimedOut)))
}
