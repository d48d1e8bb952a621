//! A consumer group's committed offsets survive the `kill -9` of the node that leads its
//! `__consumer_offsets` partition.
//!
//! A group's coordinator is the leader of the `__consumer_offsets` partition its id hashes
//! to (`abs(groupId.hashCode()) % offsets.topic.num.partitions`), and an OffsetCommit is
//! acknowledged once the commit record is written there with `acks=all`. With
//! `offsets.topic.replication.factor=3`, a committed offset is therefore on every in-sync
//! replica. When the coordinator dies, the new leader of that partition becomes the group's
//! coordinator and rebuilds the group from the log. A member that takes over resumes from the
//! last committed offset: nothing committed is forgotten, so no committed record is processed
//! again, and nothing is skipped. This is Kafka's at-least-once contract for consumer groups,
//! and it relies on replication.
//!
//! Three nodes, `__consumer_offsets` with replication factor 3, a data topic with replication
//! factor 3. A confluent-kafka producer keeps producing, and a confluent-kafka group member
//! consumes and commits synchronously after every poll (retrying commits that fail while the
//! coordinator moves). The test finds the coordinator with FindCoordinator, checks that it
//! leads the group's `__consumer_offsets` partition, and `kill -9`s it. It waits for a new
//! coordinator and for commits to succeed through it, then stops the member. A new member of
//! the same group, started while the old coordinator is still dead, must see exactly the last
//! committed offsets, resume every partition there, and read on without a gap. The test
//! also checks that no node panicked and that all nodes agree on the final Metadata.

#![allow(
    clippy::unwrap_used,
    reason = "test code: helpers outside #[test] fns fail the test by panicking, as the tests do"
)]

#[path = "cluster_replication_support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use spate_tests::cluster_requests::ClusterMetadata;
use spate_tests::group_requests::{GroupConnection, find_group_coordinator};
use spate_tests::replication::{BackgroundClient, create_topic_with_configs, topic_fully_in_sync};
use spate_tests::{Cluster, ClusterOptions, NodeId};
use support::{assert_cluster_healthy, assert_no_failures};

const TOPIC: &str = "orders";
const GROUP: &str = "billing-replicated";
const PARTITION_COUNT: i32 = 3;
const OFFSETS_TOPIC: &str = "__consumer_offsets";
const OFFSETS_PARTITION_COUNT: i32 = 10;
/// Commits that must succeed before the kill, and again after the new coordinator is found.
const COMMITS_BEFORE_KILL: u64 = 5;
const COMMITS_AFTER_FAILOVER: u64 = 5;
const COMMITS_TIMEOUT: Duration = Duration::from_secs(40);
/// From the kill to a new coordinator: the 3 s session timeout, the election, and slack.
const FAILOVER_TIMEOUT: Duration = Duration::from_secs(30);
const CLIENT_EXIT_TIMEOUT: Duration = Duration::from_secs(150);
const AGREEMENT_TIMEOUT: Duration = Duration::from_secs(40);

#[test]
fn committed_offsets_survive_the_kill9_of_the_group_coordinator() {
    let started = Instant::now();
    let mut cluster = Cluster::start(ClusterOptions {
        extra_args: vec![
            "--offsets-topic-replication-factor".into(),
            "3".into(),
            "--offsets-topic-num-partitions".into(),
            OFFSETS_PARTITION_COUNT.to_string(),
        ],
        ..ClusterOptions::default()
    })
    .unwrap();
    create_topic_with_configs(
        &cluster,
        1,
        TOPIC,
        PARTITION_COUNT,
        3,
        &[("min.insync.replicas", "2")],
    )
    .unwrap();
    agreed(&cluster, "the data topic", |m| {
        topic_fully_in_sync(m, TOPIC, PARTITION_COUNT as usize, 3)
    });

    let mut producer = BackgroundClient::spawn(
        "replication_producer.py",
        &[
            &cluster.bootstrap(),
            TOPIC,
            &PARTITION_COUNT.to_string(),
            "idempotent",
        ],
    )
    .unwrap();
    let mut member = BackgroundClient::spawn(
        "replication_group_member.py",
        &[&cluster.bootstrap(), TOPIC, GROUP, "commit"],
    )
    .unwrap();
    wait_for_commits(&cluster, &mut member, COMMITS_BEFORE_KILL);

    // The coordinator leads the group's __consumer_offsets partition, replicated 3 times.
    let offsets_partition = offsets_partition_of(GROUP);
    let before = agreed(&cluster, "the offsets topic", |m| {
        topic_fully_in_sync(m, OFFSETS_TOPIC, OFFSETS_PARTITION_COUNT as usize, 3)
    });
    let coordinator = coordinator_from(&cluster, 1).unwrap();
    let offsets_leader = before
        .topic(OFFSETS_TOPIC)
        .unwrap()
        .partition(offsets_partition)
        .unwrap()
        .clone();
    assert_eq!(
        coordinator, offsets_leader.leader,
        "FindCoordinator names node {coordinator} for {GROUP}, but {OFFSETS_TOPIC}-\
         {offsets_partition} is led by {offsets_leader:?}"
    );
    let commits_at_kill = commits(&member);
    eprintln!(
        "group {GROUP}: coordinator node {coordinator} leads {OFFSETS_TOPIC}-{offsets_partition} \
         (ISR {:?}); {commits_at_kill} commits so far; killing it",
        offsets_leader.isr
    );

    let killed_at = Instant::now();
    cluster.kill9(coordinator).unwrap();
    let survivor = cluster.running_ids()[0];
    let new_coordinator = cluster
        .poll(FAILOVER_TIMEOUT, |c| {
            let leader = c
                .metadata(survivor)
                .ok()?
                .topic(OFFSETS_TOPIC)?
                .partition(offsets_partition)?
                .leader;
            let named = coordinator_from(c, survivor)?;
            (leader >= 0 && leader != coordinator && named == leader).then_some(named)
        })
        .unwrap_or_else(|| {
            panic!(
                "no new coordinator for {GROUP} within {FAILOVER_TIMEOUT:?} after the kill of \
                 node {coordinator}; Metadata: {:?}\n{}",
                cluster.metadata(survivor).map(|m| m
                    .topic(OFFSETS_TOPIC)
                    .and_then(|t| t.partition(offsets_partition).cloned())),
                cluster.logs()
            )
        });
    let failover = killed_at.elapsed();
    wait_for_commits(
        &cluster,
        &mut member,
        commits_at_kill + COMMITS_AFTER_FAILOVER,
    );
    eprintln!(
        "node {new_coordinator} coordinates {GROUP} {} ms after the kill; commits resumed \
         {} ms after the kill",
        failover.as_millis(),
        killed_at.elapsed().as_millis()
    );

    // Stop producing, then stop the member: the group's offsets are its last commit.
    std::fs::write(producer.dir().join("stop"), b"").unwrap();
    let produced = producer.wait(CLIENT_EXIT_TIMEOUT).unwrap();
    assert!(produced.status.success(), "{}", produced.describe());
    std::fs::write(member.dir().join("stop"), b"").unwrap();
    let stopped = member.wait(CLIENT_EXIT_TIMEOUT).unwrap();
    assert!(stopped.status.success(), "{}", stopped.describe());
    let last = read_json(&member.dir().join("committed.json"));
    eprintln!("the member's last successful commit: {last}");
    let committed: BTreeMap<String, i64> = last["offsets"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(p, o)| (p.clone(), o.as_i64().unwrap()))
        .collect();

    // A new member, while the old coordinator is still dead.
    let mut resumed = BackgroundClient::spawn(
        "replication_group_member.py",
        &[&cluster.bootstrap(), TOPIC, GROUP, "resume"],
    )
    .unwrap();
    let output = resumed.wait(CLIENT_EXIT_TIMEOUT).unwrap();
    assert!(
        output.status.success(),
        "{}\n{}",
        output.describe(),
        cluster.logs()
    );
    let resume = read_json(&resumed.dir().join("resume.json"));
    let mut failures = Vec::new();
    for partition in 0..PARTITION_COUNT {
        let key = partition.to_string();
        let Some(last_commit) = committed.get(&key).copied() else {
            failures.push(format!("the member never committed partition {partition}"));
            continue;
        };
        let seen = resume["committed"][&key].as_i64();
        if seen != Some(last_commit) {
            failures.push(format!(
                "partition {partition}: the new member sees committed offset {seen:?}, the last \
                 successful commit was {last_commit}"
            ));
        }
        let end = resume["ends"][&key].as_i64().unwrap_or(-1);
        let read: Vec<i64> = resume["read"][&key]
            .as_array()
            .map(|offsets| offsets.iter().filter_map(|o| o.as_i64()).collect())
            .unwrap_or_default();
        let expected: Vec<i64> = (last_commit..end).collect();
        if read != expected {
            failures.push(format!(
                "partition {partition}: the new member read offsets {}..{} ({} records), \
                 expected exactly {last_commit}..{end}: {}",
                read.first().copied().unwrap_or(-1),
                read.last().map_or(-1, |o| o + 1),
                read.len(),
                if read.first().is_some_and(|first| *first < last_commit) {
                    "committed records were processed again"
                } else {
                    "records were skipped or repeated"
                }
            ));
        }
    }
    eprintln!(
        "the new member resumed at {} and read to {}",
        resume["committed"], resume["ends"]
    );

    cluster.restart(coordinator).unwrap();
    assert_cluster_healthy(&cluster, "both topics whole again", |m| {
        topic_fully_in_sync(m, TOPIC, PARTITION_COUNT as usize, 3)
            && topic_fully_in_sync(m, OFFSETS_TOPIC, OFFSETS_PARTITION_COUNT as usize, 3)
    });
    eprintln!("whole test {} ms", started.elapsed().as_millis());
    assert_no_failures(&cluster, &failures);
}

/// Kafka's `abs(groupId.hashCode()) % offsets.topic.num.partitions` (Java's String hash
/// over UTF-16 code units; `Utils.abs` masks the sign bit).
fn offsets_partition_of(group: &str) -> i32 {
    let hash = group.encode_utf16().fold(0i32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(i32::from(unit))
    });
    (hash & 0x7fff_ffff) % OFFSETS_PARTITION_COUNT
}

/// The coordinator FindCoordinator (asked of node `via`) names for the group, if it names one.
fn coordinator_from(cluster: &Cluster, via: NodeId) -> Option<NodeId> {
    let mut connection = GroupConnection::connect(cluster.node(via).kafka_addr()).ok()?;
    let answer = find_group_coordinator(&mut connection, GROUP).ok()?;
    (answer.error_code == 0).then_some(answer.node_id)
}

fn agreed(
    cluster: &Cluster,
    what: &str,
    accept: impl Fn(&ClusterMetadata) -> bool,
) -> ClusterMetadata {
    cluster
        .agreed_metadata(AGREEMENT_TIMEOUT, what, accept)
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()))
}

fn read_json(path: &std::path::Path) -> serde_json::Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// The member's count of successful commits, counted only once its commits cover every
/// partition (until then the test would not prove much about the ones left out).
fn commits(member: &BackgroundClient) -> u64 {
    std::fs::read_to_string(member.dir().join("committed.json"))
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .filter(|state| {
            state["offsets"]
                .as_object()
                .is_some_and(|offsets| offsets.len() == PARTITION_COUNT as usize)
        })
        .and_then(|state| state["commits"].as_u64())
        .unwrap_or(0)
}

/// Waits until `count` commits covering every partition have succeeded.
fn wait_for_commits(cluster: &Cluster, member: &mut BackgroundClient, count: u64) {
    let deadline = Instant::now() + COMMITS_TIMEOUT;
    while commits(member) < count {
        assert!(
            member.is_running(),
            "the group member exited early\n{}",
            member.output_tail()
        );
        assert!(
            Instant::now() < deadline,
            "{} commits covering all {PARTITION_COUNT} partitions succeeded, waiting for \
             {count}, after {COMMITS_TIMEOUT:?}\n{}\n{}",
            commits(member),
            member.output_tail(),
            cluster.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
