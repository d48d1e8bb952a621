//! A leader that dies holding records no follower has truncates them when it returns
//! (KIP-101, KIP-279), and ends byte-identical to the new leader.
//!
//! `acks=1` is acknowledged by the leader alone. If the leader dies before any follower has
//! fetched the record, a follower from the ISR becomes leader without it and writes new
//! records at the same offsets, in a new leader epoch. Kafka documents that loss: an `acks=1`
//! record can be lost on failover, and `acks=all` exists to prevent it. When the old leader
//! comes back as a follower, its tail from the old epoch diverges from the new leader's log.
//! Before KIP-101 it truncated to its high watermark, which lost committed data in some
//! cases and let logs diverge in others (KAFKA-1211). Since KIP-101/279 it asks the leader
//! where its last epoch ended (Spate: the `DivergingEpoch` of a KIP-595 fetch) and truncates
//! to that offset, then fetches the new records. The logs converge, the `acks=1`-only records
//! are gone from every replica, and nothing acknowledged with `acks=all` is lost.
//!
//! Three brokers and a dedicated controller. The controller is a separate node so that
//! stopping both followers does not stop the metadata quorum. The topic has replication
//! factor 3 and `min.insync.replicas=1`, and `replica.lag.time.max.ms` is 60 s so the ISR
//! does not shrink while the followers are stopped. The session timeout is 8 s: long enough
//! that the stopped followers are not fenced, short enough that the dead leader is soon
//! replaced. The test:
//!
//! 1. produces records with `acks=all` (committed on all three);
//! 2. SIGSTOPs both followers;
//! 3. produces records with `acks=1` (on the leader only);
//! 4. `kill -9`s the leader and SIGCONTs the followers;
//! 5. waits for a clean election (both followers are still in the ISR);
//! 6. produces records with `acks=all` to the new leader;
//! 7. restarts the old leader.
//!
//! The old leader must log that it truncated a divergent tail at the first `acks=1` offset,
//! rejoin the ISR, and hold a log byte-identical to the new leader's: the `acks=all` records
//! of both epochs at their acknowledged offsets, and none of the `acks=1` records. The test
//! also checks that no node panicked and that all nodes agree on the final Metadata.

#![allow(
    clippy::unwrap_used,
    reason = "test code: helpers outside #[test] fns fail the test by panicking, as the tests do"
)]

#[path = "cluster_replication_support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use spate_tests::cluster_requests::{ClusterMetadata, PartitionMetadata};
use spate_tests::kafka_requests::produce_v7;
use spate_tests::record_batch::{TestRecord, encode_batch};
use spate_tests::replication::{
    create_topic_with_configs, log_lines_containing, stored_batches, stored_records,
    topic_fully_in_sync, wait_for_identical_replicas,
};
use spate_tests::wire::KafkaConnection;
use spate_tests::{Cluster, ClusterOptions, NodeId, NodeRole};
use support::{assert_cluster_healthy, assert_no_failures, read_to_high_watermark};

const TOPIC: &str = "divergence";
const CONTROLLER: NodeId = 4;
const BROKERS: [NodeId; 3] = [1, 2, 3];
const SESSION_TIMEOUT_MS: u64 = 8_000;
const LAG_TIME_MAX_MS: u64 = 60_000;
/// Batches and records per batch of each phase.
const COMMITTED_BATCHES: usize = 4;
const LEADER_ONLY_BATCHES: usize = 3;
const AFTER_FAILOVER_BATCHES: usize = 5;
const RECORDS_PER_BATCH: usize = 4;
/// From the kill to the new leader: the session timeout, the election, and slack.
const FAILOVER_TIMEOUT: Duration = Duration::from_secs(30);
const REJOIN_TIMEOUT: Duration = Duration::from_secs(40);
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(30);
/// What the old leader logs when it cuts its tail from the old epoch.
const TRUNCATION_LINE: &str = "truncating a divergent tail";
/// What a follower logs when it truncates below its own high watermark (not expected here).
const BELOW_HIGH_WATERMARK_LINE: &str = "truncating below this replica's high watermark";

#[test]
fn old_leader_truncates_its_acks1_tail_and_converges_with_the_new_leader() {
    let started = Instant::now();
    let mut cluster = Cluster::start(ClusterOptions {
        nodes: 4,
        roles: HashMap::from([
            (1, NodeRole::Broker),
            (2, NodeRole::Broker),
            (3, NodeRole::Broker),
            (CONTROLLER, NodeRole::Controller),
        ]),
        session_timeout_ms: SESSION_TIMEOUT_MS,
        extra_args: vec![
            "--replica-lag-time-max-ms".into(),
            LAG_TIME_MAX_MS.to_string(),
            "--auto-leader-rebalance-enable".into(),
            "false".into(),
        ],
        ..ClusterOptions::default()
    })
    .unwrap();
    create_topic_with_configs(&cluster, 1, TOPIC, 1, 3, &[("min.insync.replicas", "1")]).unwrap();
    let initial = partition_of(&in_sync(&cluster, "the new topic"));
    let old_leader = initial.leader;
    let followers: Vec<NodeId> = BROKERS
        .iter()
        .copied()
        .filter(|id| *id != old_leader)
        .collect();
    let mut failures = Vec::new();

    // 1. Committed everywhere.
    let committed = produce_batches(&cluster, old_leader, -1, "committed", COMMITTED_BATCHES);
    let committed_end = committed.last().unwrap().0 + 1;

    // 2.-3. Both followers stop; the leader alone acknowledges acks=1 records.
    for id in &followers {
        cluster.pause(*id).unwrap();
    }
    let paused_at = Instant::now();
    let leader_only = produce_batches(&cluster, old_leader, 1, "acks1-only", LEADER_ONLY_BATCHES);
    assert_eq!(
        leader_only.first().unwrap().0,
        committed_end,
        "the acks=1 records follow the committed ones"
    );

    // 4. The leader dies before anyone fetched them; the followers come back.
    cluster.kill9(old_leader).unwrap();
    for id in &followers {
        cluster.resume(*id).unwrap();
    }
    eprintln!(
        "followers {followers:?} were stopped for {} ms; node {old_leader} acknowledged \
         offsets {}..{} with acks=1 alone, then was killed",
        paused_at.elapsed().as_millis(),
        committed_end,
        leader_only.last().unwrap().0 + 1
    );

    // 5. A clean election: the followers are still in the ISR.
    let killed_at = Instant::now();
    let after = cluster
        .agreed_metadata(FAILOVER_TIMEOUT, "a new leader from the ISR", |m| {
            m.topic(TOPIC)
                .and_then(|t| t.partition(0))
                .is_some_and(|p| {
                    followers.contains(&p.leader) && p.leader_epoch > initial.leader_epoch
                })
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    let new = partition_of(&after);
    eprintln!(
        "node {} leads at epoch {} with ISR {:?}, {} ms after the kill",
        new.leader,
        new.leader_epoch,
        new.isr,
        killed_at.elapsed().as_millis()
    );

    // 6. New records in the new epoch, at the offsets the lost ones had.
    let after_failover = produce_batches(
        &cluster,
        new.leader,
        -1,
        "after-failover",
        AFTER_FAILOVER_BATCHES,
    );
    // Where the new leader's epoch starts: its log end when it was elected. A follower may
    // have received the first acks=1 batch before it stopped (its fetch was parked on the
    // leader and answered by that append, the answer waiting in its socket), and then the
    // new leader keeps it, as Kafka's would; the later acks=1 batches can have reached
    // nobody.
    let epoch_start = after_failover.first().unwrap().0;
    let leader_only_end = leader_only.last().unwrap().0 + 1;
    let survivors = usize::try_from(epoch_start - committed_end).unwrap_or(usize::MAX);
    eprintln!(
        "the new leader's epoch starts at offset {epoch_start}: {survivors} of the {} acks=1 \
         records had reached a follower before it stopped",
        leader_only.len()
    );
    assert!(
        (committed_end..leader_only_end).contains(&epoch_start),
        "the new leader's epoch starts at {epoch_start}, expected within \
         {committed_end}..{leader_only_end}: below would lose acks=all records, at the end means \
         no divergent tail was left to test\n{}",
        cluster.logs()
    );

    // 7. The old leader returns as a follower and must cut its acks=1 tail.
    let restarted_at = Instant::now();
    cluster.restart(old_leader).unwrap();
    in_sync(&cluster, "the old leader back in the ISR");
    eprintln!(
        "node {old_leader} back in the ISR {} ms after its restart",
        restarted_at.elapsed().as_millis()
    );
    let converged = wait_for_identical_replicas(&cluster, &BROKERS, TOPIC, 0, CONVERGE_TIMEOUT);
    let log = match converged {
        Ok(log) => log,
        Err(e) => {
            failures.push(e);
            spate_tests::replication::replica_log(&cluster, new.leader, TOPIC, 0).unwrap()
        }
    };

    let truncations = log_lines_containing(&cluster, old_leader, TRUNCATION_LINE);
    eprintln!("node {old_leader} logged: {truncations:#?}");
    let expected_to = format!("to={epoch_start}");
    if !truncations.iter().any(|line| line.contains(&expected_to)) {
        failures.push(format!(
            "node {old_leader} did not log \"{TRUNCATION_LINE}\" with {expected_to}; it logged \
             {truncations:?}"
        ));
    }
    for id in BROKERS {
        let below = log_lines_containing(&cluster, id, BELOW_HIGH_WATERMARK_LINE);
        if !below.is_empty() {
            failures.push(format!(
                "node {id} truncated below its high watermark after a clean election: {below:?}"
            ));
        }
    }

    // The stored log: the committed records, the acks=1 records the new leader had, then the
    // new epoch's; nothing of the dead leader's divergent tail.
    let expected: Vec<(i64, String)> = committed
        .iter()
        .chain(leader_only.iter().take(survivors))
        .chain(after_failover.iter())
        .cloned()
        .collect();
    let stored: Vec<(i64, String)> = stored_records(&log)
        .into_iter()
        .map(|(offset, value)| {
            (
                offset,
                String::from_utf8_lossy(&value.unwrap_or_default()).into_owned(),
            )
        })
        .collect();
    if stored != expected {
        failures.push(format!(
            "the converged log holds {stored:?}\nexpected {expected:?}"
        ));
    }
    let epochs: Vec<(i64, i32)> = stored_batches(&log)
        .iter()
        .map(|b| (b.base_offset, b.leader_epoch))
        .collect();
    eprintln!("batches (base offset, leader epoch): {epochs:?}");
    if !epochs
        .iter()
        .all(|(offset, epoch)| (*offset < epoch_start) == (*epoch == initial.leader_epoch))
    {
        failures.push(format!(
            "the batches below {epoch_start} should carry epoch {} and those from it on the new \
             leader's: {epochs:?}",
            initial.leader_epoch
        ));
    }
    let divergent: Vec<&String> = leader_only
        .iter()
        .skip(survivors)
        .map(|(_, value)| value)
        .collect();
    for id in BROKERS {
        let replica = spate_tests::replication::replica_log(&cluster, id, TOPIC, 0).unwrap();
        let kept: Vec<String> = stored_records(&replica)
            .into_iter()
            .filter_map(|(offset, value)| {
                let value = String::from_utf8_lossy(&value.unwrap_or_default()).into_owned();
                divergent
                    .contains(&&value)
                    .then(|| format!("{offset}: {value}"))
            })
            .collect();
        if !kept.is_empty() {
            failures.push(format!(
                "node {id} still holds records of the dead leader's divergent tail: {kept:?}"
            ));
        }
    }
    let read = read_to_high_watermark(&cluster.bootstrap(), TOPIC, 1, CONVERGE_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    let consumed: Vec<(i64, String)> = read[&0]
        .iter()
        .map(|(offset, value)| (*offset, String::from_utf8_lossy(value).into_owned()))
        .collect();
    if consumed != expected {
        failures.push(format!(
            "a consumer reads {consumed:?}\nexpected {expected:?}"
        ));
    }
    assert_cluster_healthy(&cluster, "the converged partition", |m| {
        topic_fully_in_sync(m, TOPIC, 1, 3)
    });
    eprintln!("whole test {} ms", started.elapsed().as_millis());
    assert_no_failures(&cluster, &failures);
}

fn partition_of(metadata: &ClusterMetadata) -> PartitionMetadata {
    metadata
        .topic(TOPIC)
        .and_then(|t| t.partition(0))
        .cloned()
        .unwrap()
}

fn in_sync(cluster: &Cluster, what: &str) -> ClusterMetadata {
    cluster
        .agreed_metadata(REJOIN_TIMEOUT, what, |m| {
            topic_fully_in_sync(m, TOPIC, 1, 3) && m.broker_ids().len() == 3
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()))
}

/// Produces `batches` batches of [`RECORDS_PER_BATCH`] records `<prefix>-<i>` to `leader`
/// with `acks`, each answered without error; returns (offset, value) of every record.
fn produce_batches(
    cluster: &Cluster,
    leader: NodeId,
    acks: i16,
    prefix: &str,
    batches: usize,
) -> Vec<(i64, String)> {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(0));
    let mut connection = KafkaConnection::connect(cluster.node(leader).kafka_addr()).unwrap();
    let mut written = Vec::new();
    for batch_index in 0..batches {
        let values: Vec<String> = (0..RECORDS_PER_BATCH)
            .map(|i| format!("{prefix}-{}", batch_index * RECORDS_PER_BATCH + i))
            .collect();
        let records: Vec<TestRecord> = values
            .iter()
            .map(|v| TestRecord::value(v.clone()))
            .collect();
        let batch = encode_batch(&records, now_ms);
        let reply = produce_v7(&mut connection, TOPIC, 0, &batch, acks).unwrap();
        assert_eq!(
            reply.error_code,
            0,
            "{prefix} batch {batch_index} with acks={acks} to node {leader}\n{}",
            cluster.logs()
        );
        for (i, value) in values.into_iter().enumerate() {
            written.push((reply.base_offset + i64::try_from(i).unwrap(), value));
        }
    }
    written
}
