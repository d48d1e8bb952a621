//! A follower cut off from its leader leaves the ISR, `acks=all` goes on without it, and
//! once the link heals it catches up and rejoins with a byte-identical log.
//!
//! This is the failure the ISR exists for. The follower process is healthy and can still
//! reach the controller, but it cannot fetch. The leader drops it from the ISR after
//! `replica.lag.time.max.ms` without a caught-up fetch (KIP-497 AlterPartition), so
//! producers with `acks=all` keep getting answers from the remaining replicas
//! (`min.insync.replicas=2`), instead of waiting on one that cannot progress. When the link
//! comes back, the follower fetches what it missed and is added back to the ISR once it has
//! caught up (Kafka's `isFollowerInSync`, KAFKA-7128). A follower that is also cut from the
//! controller's quorum leader is fenced instead, which removes it from the ISR too. The test
//! picks nodes so that this does not happen, accepts it if it does, and reports which path
//! was taken.
//!
//! Three nodes. The UDP traffic between the leader of one partition and one of its
//! followers is dropped with nftables; the node that leads the metadata quorum is the
//! partition's other replica, so both cut nodes still reach it. The test skips, saying why,
//! where nftables cannot be used. It also checks that no node panicked and that all nodes
//! agree on the final Metadata.

#![allow(
    clippy::unwrap_used,
    reason = "test code: helpers outside #[test] fns fail the test by panicking, as the tests do"
)]

#[path = "cluster_replication_support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use spate_tests::cluster_requests::{ClusterMetadata, PartitionMetadata};
use spate_tests::netfilter::LinkCut;
use spate_tests::replication::{
    create_topic_with_configs, log_lines_containing, produce_value, replica_log, stored_batches,
    topic_fully_in_sync, wait_for_identical_replicas,
};
use spate_tests::{Cluster, ClusterOptions, NodeId};
use support::{assert_cluster_healthy, assert_no_failures, read_to_high_watermark};

const TOPIC: &str = "cut-link";
const PARTITION_COUNT: i32 = 3;
const LAG_TIME_MAX_MS: u64 = 2_000;
/// Batches produced with acks=all while the follower is cut off.
const BATCHES_WHILE_CUT: usize = 20;
/// From the cut to the ISR without the follower: the lag time, half of it again for the
/// periodic check, the AlterPartition, and a loaded debug build's slack.
const SHRINK_TIMEOUT: Duration = Duration::from_secs(20);
/// From the cut to the leader giving up on the follower's QUIC connection (its idle timeout
/// is 6 s).
const CONNECTION_LOSS_TIMEOUT: Duration = Duration::from_secs(30);
/// Pace of the records produced while the link is cut.
const PRODUCE_INTERVAL_MS: u64 = 100;
/// From the heal to the full ISR: the QUIC connection comes back, then the catch-up.
const HEAL_TIMEOUT: Duration = Duration::from_secs(40);
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(30);
const AGREEMENT_TIMEOUT: Duration = Duration::from_secs(30);

#[test]
fn cut_follower_leaves_the_isr_and_rejoins_byte_identical_after_the_heal() {
    let started = Instant::now();
    let cluster = Cluster::start(ClusterOptions {
        extra_args: vec![
            "--replica-lag-time-max-ms".into(),
            LAG_TIME_MAX_MS.to_string(),
            "--auto-leader-rebalance-enable".into(),
            "false".into(),
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
    let metadata = in_sync(&cluster, "the new topic");
    let controller = cluster.controller_leader().unwrap();
    let chosen = metadata
        .topic(TOPIC)
        .unwrap()
        .partitions
        .iter()
        .find(|p| p.leader != controller)
        .cloned()
        .unwrap_or_else(|| panic!("node {controller} leads every partition: {metadata:#?}"));
    let partition = chosen.index;
    let leader = chosen.leader;
    let follower = chosen
        .replicas
        .iter()
        .copied()
        .find(|id| *id != leader && *id != controller)
        .unwrap();
    let mut failures = Vec::new();
    let mut next = 0;
    let mut produce = |cluster: &Cluster| {
        next += 1;
        produce_one(cluster, leader, partition, next)
    };
    let code = produce(&cluster);
    assert_eq!(code, 0, "acks=all before the cut\n{}", cluster.logs());

    let cut = match LinkCut::new(
        cluster.cluster_addr(leader).port(),
        cluster.cluster_addr(follower).port(),
    ) {
        Ok(cut) => cut,
        Err(reason) => {
            eprintln!("skipping: cannot cut a link here: {reason}");
            return;
        }
    };
    let cut_at = Instant::now();
    eprintln!(
        "cut the link between node {leader} (leader of {TOPIC}-{partition}) and node {follower} \
         (its follower); node {controller} leads the metadata quorum"
    );
    // The follower is caught up, so it stays in the ISR until the leader's log grows past it:
    // this acks=all produce does that, and is answered once the ISR has shrunk.
    let code = produce(&cluster);
    let answered = cut_at.elapsed();
    if code != 0 {
        failures.push(format!(
            "the first acks=all produce after the cut was answered with error {code} after {} \
             ms; expected success once the ISR dropped node {follower}",
            answered.as_millis()
        ));
    }
    let shrunk = wait_for_partition(&cluster, leader, partition, SHRINK_TIMEOUT, |p| {
        !p.isr.contains(&follower) && p.isr.len() == 2 && p.leader == leader
    });
    let fenced = !cluster
        .metadata(controller)
        .unwrap()
        .broker_ids()
        .contains(&follower);
    eprintln!(
        "ISR {:?} {} ms after the cut (the produce waiting on it was answered after {} ms); \
         node {follower} {}",
        shrunk.isr,
        cut_at.elapsed().as_millis(),
        answered.as_millis(),
        if fenced {
            "was fenced as well (it lost the quorum leader too)"
        } else {
            "is still an unfenced broker: the lag check alone removed it"
        }
    );

    // Keep producing until the leader has given up on the connection to the follower (the
    // QUIC idle timeout), so that the heal needs a new connection, not just a quiet one.
    let lost_line = format!("lost the connection with node {follower}");
    let mut batches = 0;
    while batches < BATCHES_WHILE_CUT
        || log_lines_containing(&cluster, leader, &lost_line).is_empty()
    {
        let code = produce(&cluster);
        batches += 1;
        if code != 0 {
            failures.push(format!(
                "acks=all with ISR {:?} (min.insync.replicas=2) while the link was cut was \
                 answered with error {code}",
                shrunk.isr
            ));
            break;
        }
        assert!(
            cut_at.elapsed() < CONNECTION_LOSS_TIMEOUT,
            "node {leader} did not log \"{lost_line}\" within {CONNECTION_LOSS_TIMEOUT:?} of \
             the cut\n{}",
            cluster.logs()
        );
        std::thread::sleep(Duration::from_millis(PRODUCE_INTERVAL_MS));
    }
    eprintln!(
        "node {leader} dropped its connection to node {follower} {} ms after the cut; {batches} \
         acks=all records produced meanwhile",
        cut_at.elapsed().as_millis()
    );
    let leader_end = log_end(&cluster, leader, partition);
    let follower_end = log_end(&cluster, follower, partition);
    if follower_end >= leader_end {
        failures.push(format!(
            "node {follower}'s log reached {follower_end} (the leader's ends at {leader_end}) \
             while its link to the leader was cut: was the link really cut?"
        ));
    }

    let healed_at = Instant::now();
    cut.heal();
    let whole = cluster
        .agreed_metadata(
            HEAL_TIMEOUT,
            "the follower back in the ISR after the heal",
            |m| {
                topic_fully_in_sync(m, TOPIC, PARTITION_COUNT as usize, 3)
                    && m.broker_ids().len() == 3
            },
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    eprintln!(
        "node {follower} back in the ISR {:?} {} ms after the heal (it was {} records behind)",
        whole
            .topic(TOPIC)
            .unwrap()
            .partition(partition)
            .unwrap()
            .isr,
        healed_at.elapsed().as_millis(),
        leader_end - follower_end
    );
    let code = produce(&cluster);
    if code != 0 {
        failures.push(format!(
            "acks=all with the whole ISR again was answered with error {code}"
        ));
    }
    for index in 0..PARTITION_COUNT {
        if let Err(e) = wait_for_identical_replicas(
            &cluster,
            &cluster.node_ids(),
            TOPIC,
            index,
            CONVERGE_TIMEOUT,
        ) {
            failures.push(e);
        }
    }
    let read = read_to_high_watermark(
        &cluster.bootstrap(),
        TOPIC,
        PARTITION_COUNT,
        CONVERGE_TIMEOUT,
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    let values: Vec<String> = read[&partition]
        .iter()
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        .collect();
    let expected: Vec<String> = (1..=next).map(|n| format!("record-{n}")).collect();
    if values != expected {
        failures.push(format!(
            "{TOPIC}-{partition} reads {values:?}, expected {expected:?}"
        ));
    }
    assert_cluster_healthy(&cluster, "the healed partition", |m| {
        topic_fully_in_sync(m, TOPIC, PARTITION_COUNT as usize, 3)
    });
    eprintln!("whole test {} ms", started.elapsed().as_millis());
    assert_no_failures(&cluster, &failures);
}

fn in_sync(cluster: &Cluster, what: &str) -> ClusterMetadata {
    cluster
        .agreed_metadata(AGREEMENT_TIMEOUT, what, |m| {
            topic_fully_in_sync(m, TOPIC, PARTITION_COUNT as usize, 3) && m.broker_ids().len() == 3
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()))
}

/// Waits until node `via`'s Metadata shows partition `index` as `accept` wants it.
fn wait_for_partition(
    cluster: &Cluster,
    via: NodeId,
    index: i32,
    timeout: Duration,
    accept: impl Fn(&PartitionMetadata) -> bool,
) -> PartitionMetadata {
    let mut last = None;
    let found = cluster.poll(timeout, |c| {
        let partition = c
            .metadata(via)
            .ok()?
            .topic(TOPIC)?
            .partition(index)?
            .clone();
        let matched = accept(&partition).then(|| partition.clone());
        last = Some(partition);
        matched
    });
    found.unwrap_or_else(|| {
        panic!(
            "node {via}'s Metadata did not show the expected {TOPIC}-{index} within {timeout:?}; \
             last: {last:?}\n{}",
            cluster.logs()
        )
    })
}

/// Produce v7 of one record `record-<n>` with acks=all; returns the error code.
fn produce_one(cluster: &Cluster, leader: NodeId, partition: i32, n: u32) -> i16 {
    produce_value(
        cluster,
        leader,
        TOPIC,
        partition,
        &format!("record-{n}"),
        -1,
    )
    .unwrap_or_else(|e| panic!("produce to node {leader}: {e}"))
}

/// Node `id`'s log end of partition `index`, from its data directory.
fn log_end(cluster: &Cluster, id: NodeId, index: i32) -> i64 {
    let log = replica_log(cluster, id, TOPIC, index).unwrap();
    stored_batches(&log).last().map_or(0, |b| b.last_offset + 1)
}
