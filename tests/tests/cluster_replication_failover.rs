//! An acknowledged `acks=all` write survives the `kill -9` of its partition's leader.
//!
//! This is the promise replication exists for. Kafka acknowledges an `acks=all` produce
//! once the high watermark has passed it, which means every member of the ISR holds it, and
//! `min.insync.replicas=2` means at least two do. Leaders are elected only from the ISR, so
//! the new leader has every acknowledged record. In Spate followers report the offset they
//! have *fsynced*, and the high watermark counts only those offsets, so even a `kill -9` of
//! every ISR member could not lose the record (replication-notes §5).
//!
//! Three nodes, a topic with 3 partitions, replication factor 3 and
//! `min.insync.replicas=2`. A confluent-kafka producer (acks=all) runs in a Python
//! subprocess and produces unique sequential values, recording every record a delivery
//! report acknowledged as (partition, offset, value). Meanwhile the test `kill -9`s the
//! leader of a partition, waits for the controller to elect another leader from the ISR,
//! restarts the killed node, and waits until it is back in every ISR and acks are flowing
//! again. It does this `SPATE_REPLICATION_KILL_ROUNDS` times (10 by default; a soak can ask
//! for 50). Then it reads every partition back from the start and checks:
//!
//! - every acknowledged value is at its acknowledged offset;
//! - with an idempotent producer (KIP-98), no value is stored twice and each partition holds
//!   its values in production order, even though batches were retried across leader
//!   changes (the new leader rebuilt the producer state from its log, replication-notes §4);
//! - with a plain producer (no idempotence), retries may store a value twice (Kafka's
//!   at-least-once), so duplicates are only counted and reported;
//! - the three replicas of each partition hold byte-identical logs once they are all back in
//!   the ISR: followers store the leader's batches unchanged, and every divergent tail left
//!   by a killed leader was truncated (KIP-101, KIP-279).
//!
//! Every test also checks that no node panicked and that all nodes answer the same Metadata.

#![allow(
    clippy::unwrap_used,
    reason = "test code: helpers outside #[test] fns fail the test by panicking, as the tests do"
)]

#[path = "cluster_replication_support/mod.rs"]
mod support;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use spate_tests::replication::{
    BackgroundClient, create_topic_with_configs, stored_batches, topic_fully_in_sync,
    wait_for_identical_replicas,
};
use spate_tests::{Cluster, ClusterOptions, NodeId};
use support::{assert_cluster_healthy, assert_no_failures, read_to_high_watermark};

const PARTITION_COUNT: i32 = 3;
const REPLICATION_FACTOR: usize = 3;
/// The soak knob: how many leaders to kill.
const KILL_ROUNDS_VAR: &str = "SPATE_REPLICATION_KILL_ROUNDS";
const KILL_ROUNDS_DEFAULT: usize = 10;
/// From a `kill -9` to a new leader in Metadata: the 3 s session timeout, the election, and
/// a loaded debug build's slack.
const FAILOVER_TIMEOUT: Duration = Duration::from_secs(20);
/// From a restart to every ISR full again: the node's recovery and catch-up.
const REJOIN_TIMEOUT: Duration = Duration::from_secs(40);
/// Records that must be acknowledged after a round before the next kill: acks flow again.
const ACKS_BETWEEN_ROUNDS: u64 = 100;
const ACKS_TIMEOUT: Duration = Duration::from_secs(30);
/// The producer's final flush (it gives up on a record after 120 s, see the script).
const PRODUCER_EXIT_TIMEOUT: Duration = Duration::from_secs(150);
const READ_TIMEOUT: Duration = Duration::from_secs(60);
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Idempotent,
    Plain,
}

impl Mode {
    fn arg(self) -> &'static str {
        match self {
            Mode::Idempotent => "idempotent",
            Mode::Plain => "plain",
        }
    }
}

#[test]
fn idempotent_acks_all_writes_survive_repeated_leader_kill9() {
    kill_leaders_while_producing(
        Mode::Idempotent,
        "failover-idempotent",
        &[Disruption::LeaderKill],
    );
}

#[test]
fn idempotent_acks_all_writes_survive_double_failovers_and_whole_cluster_kill9() {
    kill_leaders_while_producing(
        Mode::Idempotent,
        "failover-double",
        &[
            Disruption::BackToBackLeaderKills,
            Disruption::WholeClusterKill,
        ],
    );
}

#[test]
fn plain_acks_all_writes_survive_repeated_leader_kill9() {
    kill_leaders_while_producing(Mode::Plain, "failover-plain", &[Disruption::LeaderKill]);
}

fn kill_rounds() -> usize {
    std::env::var(KILL_ROUNDS_VAR)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(KILL_ROUNDS_DEFAULT)
}

/// What the producer script wrote at the end.
struct ProducerResult {
    /// (partition, offset, seq) of every acknowledged record.
    acked: Vec<(i32, i64, u64)>,
    errors: Vec<serde_json::Value>,
    sent: u64,
    unflushed: u64,
    fatal: Option<String>,
}

/// What each round does to the cluster.
#[derive(Debug, Clone, Copy)]
enum Disruption {
    /// `kill -9` of one partition's leader; restart once another leads.
    LeaderKill,
    /// The same, then at once the same for the new leader.
    BackToBackLeaderKills,
    /// `kill -9` of every node at once (a process crash everywhere), then restart them all.
    WholeClusterKill,
}

/// `kill -9`s the leader of `topic`-`partition` and waits until another replica from its ISR
/// leads at a higher epoch, without the victim in the ISR; returns the victim and what
/// happened.
fn kill_leader(
    cluster: &mut Cluster,
    topic: &str,
    partition: i32,
    round: usize,
) -> (NodeId, String) {
    let before = cluster
        .agreed_metadata(
            FAILOVER_TIMEOUT,
            "the partition's leader before the kill",
            |m| {
                m.topic(topic)
                    .and_then(|t| t.partition(partition))
                    .is_some_and(|p| p.leader >= 0)
            },
        )
        .unwrap_or_else(|e| panic!("round {round}: {e}\n{}", cluster.logs()));
    let old = before
        .topic(topic)
        .unwrap()
        .partition(partition)
        .unwrap()
        .clone();
    let victim = old.leader;
    let killed_at = Instant::now();
    cluster.kill9(victim).unwrap();
    let after = cluster
        .agreed_metadata(
            FAILOVER_TIMEOUT,
            &format!("a new leader of {topic}-{partition} after the kill of node {victim}"),
            |m| {
                m.topic(topic)
                    .and_then(|t| t.partition(partition))
                    .is_some_and(|p| {
                        // Not `old.isr.contains(leader)`: the ISR may grow between the
                        // snapshot and the kill (a restarted node that caught up), and that
                        // node is then a clean choice. That no acknowledged record is lost
                        // is checked at the end; elections from outside the ISR are the
                        // simulator's `unclean-election` bug test.
                        p.leader >= 0
                            && p.leader != victim
                            && p.leader_epoch > old.leader_epoch
                            && old.replicas.contains(&p.leader)
                            && p.isr.contains(&p.leader)
                            && !p.isr.contains(&victim)
                    })
            },
        )
        .unwrap_or_else(|e| panic!("round {round}: {e}\n{}", cluster.logs()));
    let new = after.topic(topic).unwrap().partition(partition).unwrap();
    let story = format!(
        "killed node {victim}, leader of {topic}-{partition} at epoch {} with ISR {:?}; node {} \
         leads at epoch {} with ISR {:?} after {} ms",
        old.leader_epoch,
        old.isr,
        new.leader,
        new.leader_epoch,
        new.isr,
        killed_at.elapsed().as_millis()
    );
    (victim, story)
}

fn kill_leaders_while_producing(mode: Mode, topic: &str, disruptions: &[Disruption]) {
    let started = Instant::now();
    let mut cluster = Cluster::start(ClusterOptions::default()).unwrap();
    create_topic_with_configs(
        &cluster,
        1,
        topic,
        PARTITION_COUNT,
        REPLICATION_FACTOR as i16,
        &[("min.insync.replicas", "2")],
    )
    .unwrap();
    in_sync(&cluster, topic, "the new topic");

    let mut producer = BackgroundClient::spawn(
        "replication_producer.py",
        &[
            &cluster.bootstrap(),
            topic,
            &PARTITION_COUNT.to_string(),
            mode.arg(),
        ],
    )
    .unwrap();
    wait_for_acks(&cluster, &mut producer, ACKS_BETWEEN_ROUNDS);

    let rounds = kill_rounds();
    for round in 0..rounds {
        let partition = i32::try_from(round).unwrap() % PARTITION_COUNT;
        let disruption = disruptions[round % disruptions.len()];
        in_sync(&cluster, topic, "every replica before the kill");
        let acked_at_kill = acked_count(&producer);
        let started_at = Instant::now();
        let story = match disruption {
            Disruption::LeaderKill => {
                let (victim, story) = kill_leader(&mut cluster, topic, partition, round);
                cluster.restart(victim).unwrap();
                story
            }
            Disruption::BackToBackLeaderKills => {
                // The first victim is restarted and the second killed at once: the first may
                // not be back in the ISR yet, so the second election may fall to the last
                // replica standing (KIP-101's quick double failover).
                let (first, story_first) = kill_leader(&mut cluster, topic, partition, round);
                cluster.restart(first).unwrap();
                let (second, story_second) = kill_leader(&mut cluster, topic, partition, round);
                cluster.restart(second).unwrap();
                format!("{story_first}; then {story_second}")
            }
            Disruption::WholeClusterKill => {
                cluster.kill9_all().unwrap();
                cluster.restart_stopped().unwrap();
                "killed every node at once and restarted them".to_owned()
            }
        };
        in_sync(&cluster, topic, "every node back in every ISR");
        let rejoined = started_at.elapsed();
        wait_for_acks(&cluster, &mut producer, acked_at_kill + ACKS_BETWEEN_ROUNDS);
        eprintln!(
            "round {}/{rounds}: {story}; every ISR whole again after {} ms; {} records acked so \
             far",
            round + 1,
            rejoined.as_millis(),
            acked_count(&producer)
        );
    }

    std::fs::write(producer.dir().join("stop"), b"").unwrap();
    let output = producer.wait(PRODUCER_EXIT_TIMEOUT).unwrap();
    let result = read_result(producer.dir(), &output);
    eprintln!(
        "producer: sent {}, acked {}, failed {}, unflushed {}",
        result.sent,
        result.acked.len(),
        result.errors.len(),
        result.unflushed
    );

    let mut failures = Vec::new();
    if let Some(fatal) = &result.fatal {
        failures.push(format!("the producer hit a fatal error: {fatal}"));
    }
    if !result.errors.is_empty() {
        failures.push(format!(
            "{} records were never acknowledged (the producer gave up on them); first: {:?}",
            result.errors.len(),
            &result.errors[..result.errors.len().min(3)]
        ));
    }
    if result.unflushed != 0 {
        failures.push(format!(
            "{} records had no delivery report after the final flush",
            result.unflushed
        ));
    }

    let metadata = in_sync(&cluster, topic, "every replica after the producer stopped");
    let read = read_to_high_watermark(&cluster.bootstrap(), topic, PARTITION_COUNT, READ_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    check_acknowledged(mode, &result, &read, &mut failures);

    for partition in 0..PARTITION_COUNT {
        match wait_for_identical_replicas(
            &cluster,
            &cluster.node_ids(),
            topic,
            partition,
            CONVERGE_TIMEOUT,
        ) {
            Ok(log) => {
                let batches = stored_batches(&log);
                let end = batches.last().map_or(0, |b| b.last_offset + 1);
                let read_end = read[&partition].last().map_or(0, |(o, _)| o + 1);
                if end != read_end {
                    failures.push(format!(
                        "{topic}-{partition}: the replicas agree on a log ending at {end}, but a \
                         consumer read up to {read_end} (the high watermark lags the log end)"
                    ));
                }
                let epochs: Vec<i32> = batches.iter().map(|b| b.leader_epoch).collect();
                if epochs.windows(2).any(|w| w[0] > w[1]) {
                    failures.push(format!(
                        "{topic}-{partition}: leader epochs go down in the log: {epochs:?}"
                    ));
                }
            }
            Err(e) => failures.push(e),
        }
    }
    assert_cluster_healthy(&cluster, "the topic after the kills", |m| {
        topic_fully_in_sync(m, topic, PARTITION_COUNT as usize, REPLICATION_FACTOR)
    });
    eprintln!(
        "leaders at the end: {:?}; whole test {} ms",
        metadata.topic(topic).unwrap().leader_counts(),
        started.elapsed().as_millis()
    );
    assert_no_failures(&cluster, &failures);
}

/// Every partition of `topic` has a leader and all three replicas in its ISR, in every
/// node's Metadata.
fn in_sync(
    cluster: &Cluster,
    topic: &str,
    what: &str,
) -> spate_tests::cluster_requests::ClusterMetadata {
    cluster
        .agreed_metadata(REJOIN_TIMEOUT, what, |m| {
            topic_fully_in_sync(m, topic, PARTITION_COUNT as usize, REPLICATION_FACTOR)
                && m.broker_ids().len() == REPLICATION_FACTOR
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()))
}

/// The producer's count of acknowledged records (from its progress file).
fn acked_count(producer: &BackgroundClient) -> u64 {
    std::fs::read_to_string(producer.dir().join("progress"))
        .ok()
        .and_then(|text| text.split_whitespace().next().map(str::to_owned))
        .and_then(|count| count.parse().ok())
        .unwrap_or(0)
}

fn wait_for_acks(cluster: &Cluster, producer: &mut BackgroundClient, count: u64) {
    let deadline = Instant::now() + ACKS_TIMEOUT;
    while acked_count(producer) < count {
        assert!(
            producer.is_running(),
            "the producer exited early\n{}",
            producer.output_tail()
        );
        assert!(
            Instant::now() < deadline,
            "acks did not resume: {} records acknowledged, waiting for {count}, after \
             {ACKS_TIMEOUT:?}\n{}\n{}",
            acked_count(producer),
            producer.output_tail(),
            cluster.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Reads `result.json` of a producer that exited; panics with its output otherwise.
fn read_result(
    producer_dir: &std::path::Path,
    output: &spate_tests::ProcessOutput,
) -> ProducerResult {
    assert!(
        output.status.success(),
        "the producer failed\n{}",
        output.describe()
    );
    let text = std::fs::read_to_string(producer_dir.join("result.json"))
        .unwrap_or_else(|e| panic!("no result.json ({e})\n{}", output.describe()));
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let acked = json["acked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                i32::try_from(a[0].as_i64().unwrap()).unwrap(),
                a[1].as_i64().unwrap(),
                a[2].as_u64().unwrap(),
            )
        })
        .collect();
    ProducerResult {
        acked,
        errors: json["errors"].as_array().cloned().unwrap_or_default(),
        sent: json["sent"].as_u64().unwrap_or(0),
        unflushed: json["unflushed"].as_u64().unwrap_or(0),
        fatal: json["fatal"].as_str().map(str::to_owned),
    }
}

/// Acknowledged values at their offsets; with idempotence, no duplicates and production
/// order per partition.
fn check_acknowledged(
    mode: Mode,
    result: &ProducerResult,
    read: &BTreeMap<i32, support::PartitionRecords>,
    failures: &mut Vec<String>,
) {
    let mut stored: HashMap<(i32, i64), u64> = HashMap::new();
    let mut copies: HashMap<u64, u32> = HashMap::new();
    for (partition, records) in read {
        let mut previous: Option<u64> = None;
        for (offset, value) in records {
            let Some(seq) = seq_of(value) else {
                failures.push(format!(
                    "{partition}@{offset}: a value no producer wrote: {value:?}"
                ));
                continue;
            };
            stored.insert((*partition, *offset), seq);
            *copies.entry(seq).or_default() += 1;
            if i64::try_from(seq).unwrap() % i64::from(PARTITION_COUNT) != i64::from(*partition) {
                failures.push(format!(
                    "{partition}@{offset}: value {seq} belongs to partition {}",
                    seq % PARTITION_COUNT as u64
                ));
            }
            if mode == Mode::Idempotent
                && let Some(previous) = previous
                && seq <= previous
            {
                failures.push(format!(
                    "{partition}@{offset}: value {seq} after {previous}: production order broken"
                ));
            }
            previous = Some(seq);
        }
    }
    let mut missing = Vec::new();
    for (partition, offset, seq) in &result.acked {
        match stored.get(&(*partition, *offset)) {
            Some(found) if found == seq => {}
            found => missing.push(format!(
                "value {seq} acknowledged at {partition}@{offset}, but the log holds {found:?} there"
            )),
        }
    }
    if !missing.is_empty() {
        failures.push(format!(
            "{} of {} acknowledged records are not where their ack said (first 10): {:#?}",
            missing.len(),
            result.acked.len(),
            &missing[..missing.len().min(10)]
        ));
    }
    let duplicated: Vec<(u64, u32)> = copies
        .iter()
        .filter(|(_, count)| **count > 1)
        .map(|(seq, count)| (*seq, *count))
        .collect();
    let total: usize = read.values().map(Vec::len).sum();
    eprintln!(
        "read back {total} records; {} values stored more than once",
        duplicated.len()
    );
    if mode == Mode::Idempotent && !duplicated.is_empty() {
        failures.push(format!(
            "the idempotent producer's values are stored more than once: {} values, e.g. {:?}",
            duplicated.len(),
            &duplicated[..duplicated.len().min(10)]
        ));
    }
}

/// The seq of a value `v%09d`.
fn seq_of(value: &[u8]) -> Option<u64> {
    let digits = value.strip_prefix(b"v")?;
    std::str::from_utf8(digits).ok()?.parse().ok()
}
