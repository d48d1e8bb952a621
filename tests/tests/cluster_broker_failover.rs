//! Partition leadership leaves a broker that dies or stops, and only for a member of the ISR.
//!
//! (a) `kill -9` of a broker that is not the controller: once its session expires (3 s here,
//! heartbeats every 500 ms), every replicated partition it led has a new leader from its
//! previous ISR with a higher leader epoch, and the dead broker is out of every ISR; a partition
//! whose only replica it held is leaderless (LEADER_NOT_AVAILABLE, the broker listed offline)
//! rather than moved. Restarted, it is an unfenced broker again in `/cluster` and in Metadata,
//! and its single-replica partition is led by it again. The time from the kill to the moved
//! leaderships is measured and bounded loosely (session timeout + one heartbeat + CI slack).
//!
//! (a') The same for a broker stopped with SIGSTOP (a long pause): it is fenced and its
//! leaderships move; after SIGCONT it catches up, is unfenced in every node's view and leads its
//! single-replica partition again.
//!
//! (b) SIGTERM of a broker that leads replicated partitions is a controlled shutdown: while it
//! stops, Metadata (polled from another node) never shows a leaderless partition, and by the
//! time the process has exited, successfully, none of its partitions is led by it and it is in
//! no ISR.

#![allow(
    clippy::unwrap_used,
    reason = "test code: helpers outside #[test] fns fail the test by panicking, as the tests do"
)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use spate_tests::cluster::{HEARTBEAT_INTERVAL_MS, SESSION_TIMEOUT_MS, broker_in, is_unfenced_in};
use spate_tests::cluster_requests::{
    ClusterMetadata, LEADER_NOT_AVAILABLE, NO_LEADER, PartitionMetadata, TopicMetadata,
};
use spate_tests::{Cluster, ClusterOptions, NodeId};

const REPLICATED: &str = "replicated";
const SINGLE: &str = "single";
const PARTITION_COUNT: i32 = 6;
/// Slack on top of session timeout + heartbeat interval for a debug build on a loaded 2-core
/// machine: the controller's expiry check, the metadata commit and every node's apply.
const FAILOVER_SLACK_MS: u64 = 10_000;
const AGREEMENT_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the controlled-shutdown test looks at Metadata while the broker stops.
const OBSERVE_INTERVAL_MS: u64 = 10;

#[test]
fn killed_broker_loses_leaderships_to_its_isr_and_is_unfenced_after_restart() {
    let mut cluster = Cluster::start(ClusterOptions::default()).unwrap();
    let before = create_topics(&cluster);
    let controller = cluster.controller_leader().unwrap();
    let victim = busiest_leader_other_than(before.topic(REPLICATED).unwrap(), controller);
    let led: Vec<PartitionMetadata> = led_by(before.topic(REPLICATED).unwrap(), victim);
    let single = led_by(before.topic(SINGLE).unwrap(), victim);
    assert!(
        !single.is_empty(),
        "every node leads a single-replica partition: {before:#?}"
    );
    eprintln!(
        "killing node {victim} (controller is {controller}); it leads replicated partitions {:?}",
        led.iter().map(|p| p.index).collect::<Vec<_>>()
    );

    let killed_at = Instant::now();
    cluster.kill9(victim).unwrap();
    let bound =
        Duration::from_millis(SESSION_TIMEOUT_MS + HEARTBEAT_INTERVAL_MS + FAILOVER_SLACK_MS);
    let fenced = cluster
        .poll(bound, |c| {
            let now = c.metadata(controller).ok()?;
            victim_is_out(&now, &led, &single, victim).then_some(now)
        })
        .unwrap_or_else(|| {
            panic!(
                "node {victim} was not fenced and its leaderships moved within {bound:?}; \
                 last Metadata: {:#?}\n{}",
                cluster.metadata(controller),
                cluster.logs()
            )
        });
    let failover = killed_at.elapsed();
    eprintln!(
        "kill -9 of node {victim} to new leaders for all {} of its partitions: {} ms \
         (session timeout {SESSION_TIMEOUT_MS} ms, heartbeat {HEARTBEAT_INTERVAL_MS} ms)",
        led.len(),
        failover.as_millis()
    );
    eprintln!(
        "leaderships now: {:?}",
        fenced.topic(REPLICATED).unwrap().leader_counts()
    );
    let status = cluster.status(controller).unwrap();
    assert_eq!(
        broker_in(&status, victim).map(|b| b["fenced"].clone()),
        Some(serde_json::Value::Bool(true)),
        "{status}"
    );

    let restarted_at = Instant::now();
    cluster.restart(victim).unwrap();
    let ready = restarted_at.elapsed();
    let back = cluster
        .agreed_metadata(AGREEMENT_TIMEOUT, "the restarted broker", |m| {
            m.broker_ids().contains(&victim)
                && single
                    .iter()
                    .all(|p| m.topic(SINGLE).unwrap().partition(p.index).unwrap().leader == victim)
        })
        .unwrap();
    for id in cluster.node_ids() {
        let status = cluster.status(id).unwrap();
        assert!(is_unfenced_in(&status, victim), "node {id}: {status}");
    }
    eprintln!(
        "node {victim} restarted: ready after {} ms, agreed by all after {} ms; leaderships {:?}",
        ready.as_millis(),
        restarted_at.elapsed().as_millis(),
        back.topic(REPLICATED).unwrap().leader_counts()
    );
}

#[test]
fn sigterm_moves_leaderships_away_before_the_broker_exits() {
    let mut cluster = Cluster::start(ClusterOptions::default()).unwrap();
    let before = create_topics(&cluster);
    let controller = cluster.controller_leader().unwrap();
    let stopping = busiest_leader_other_than(before.topic(REPLICATED).unwrap(), controller);
    let led = led_by(before.topic(REPLICATED).unwrap(), stopping);
    let observer = cluster.node(controller).kafka_addr();

    let stopped = AtomicBool::new(false);
    let (status, observed) = std::thread::scope(|scope| {
        let watcher = scope.spawn(|| {
            let mut seen = Vec::new();
            while !stopped.load(Ordering::Acquire) {
                if let Ok(metadata) =
                    spate_tests::cluster_requests::cluster_metadata(observer, None)
                {
                    seen.push(metadata);
                }
                std::thread::sleep(Duration::from_millis(OBSERVE_INTERVAL_MS));
            }
            seen
        });
        let status = cluster.terminate(stopping).unwrap();
        let after_exit = cluster.metadata(controller).unwrap();
        stopped.store(true, Ordering::Release);
        let mut observed = watcher.join().unwrap();
        observed.push(after_exit);
        (status, observed)
    });

    let status = status.unwrap_or_else(|| {
        panic!(
            "node {stopping} had to be SIGKILLed\n{}",
            cluster.log_tail(stopping)
        )
    });
    assert!(
        status.success(),
        "exit {status}\n{}",
        cluster.log_tail(stopping)
    );
    eprintln!(
        "node {stopping} stopped; {} Metadata answers observed during its shutdown",
        observed.len()
    );
    for (index, metadata) in observed.iter().enumerate() {
        for partition in &metadata.topic(REPLICATED).unwrap().partitions {
            assert_ne!(
                partition.leader, NO_LEADER,
                "answer {index} shows a leaderless partition during the shutdown: {partition:?}"
            );
        }
    }
    let after_exit = observed.last().unwrap();
    let topic = after_exit.topic(REPLICATED).unwrap();
    for partition in &topic.partitions {
        assert_ne!(partition.leader, stopping, "{partition:?}");
        assert!(!partition.isr.contains(&stopping), "{partition:?}");
    }
    for old in &led {
        let now = topic.partition(old.index).unwrap();
        assert!(old.isr.contains(&now.leader), "{old:?} -> {now:?}");
        assert!(now.leader_epoch > old.leader_epoch, "{old:?} -> {now:?}");
    }
}

#[test]
fn paused_broker_is_fenced_and_serves_again_once_resumed() {
    let mut cluster = Cluster::start(ClusterOptions::default()).unwrap();
    let before = create_topics(&cluster);
    let controller = cluster.controller_leader().unwrap();
    let paused = busiest_leader_other_than(before.topic(REPLICATED).unwrap(), controller);
    let led = led_by(before.topic(REPLICATED).unwrap(), paused);
    let single = led_by(before.topic(SINGLE).unwrap(), paused);

    let paused_at = Instant::now();
    cluster.pause(paused).unwrap();
    let bound =
        Duration::from_millis(SESSION_TIMEOUT_MS + HEARTBEAT_INTERVAL_MS + FAILOVER_SLACK_MS);
    cluster
        .wait_until(bound, &format!("paused node {paused} to be fenced"), |c| {
            c.metadata(controller)
                .is_ok_and(|now| victim_is_out(&now, &led, &single, paused))
        })
        .unwrap();
    eprintln!(
        "SIGSTOP of node {paused} to fenced with its leaderships moved: {} ms",
        paused_at.elapsed().as_millis()
    );

    let resumed_at = Instant::now();
    cluster.resume(paused).unwrap();
    cluster
        .wait_until(
            AGREEMENT_TIMEOUT,
            &format!("resumed node {paused} to be unfenced in every view"),
            |c| {
                c.node_ids().into_iter().all(|id| {
                    c.status(id)
                        .is_ok_and(|status| is_unfenced_in(&status, paused))
                })
            },
        )
        .unwrap();
    cluster
        .agreed_metadata(AGREEMENT_TIMEOUT, "the resumed broker", |m| {
            m.broker_ids().contains(&paused)
                && single
                    .iter()
                    .all(|p| m.topic(SINGLE).unwrap().partition(p.index).unwrap().leader == paused)
        })
        .unwrap();
    eprintln!(
        "SIGCONT of node {paused} to unfenced everywhere and leading its single-replica \
         partition again: {} ms",
        resumed_at.elapsed().as_millis()
    );
}

/// A 6-partition topic with three replicas and one with one replica, created through node 1;
/// returns the Metadata once every node agrees that both are fully led and in sync.
fn create_topics(cluster: &Cluster) -> ClusterMetadata {
    cluster
        .create_topic(1, REPLICATED, PARTITION_COUNT, 3)
        .unwrap();
    cluster.create_topic(1, SINGLE, 3, 1).unwrap();
    cluster
        .agreed_metadata(AGREEMENT_TIMEOUT, "both topics", |m| {
            let whole = |name: &str, count: usize, replicas: usize| {
                m.topic(name).is_some_and(|t| {
                    t.partitions.len() == count
                        && t.partitions
                            .iter()
                            .all(|p| p.leader != NO_LEADER && p.isr.len() == replicas)
                })
            };
            whole(REPLICATED, 6, 3) && whole(SINGLE, 3, 1) && m.broker_ids().len() == 3
        })
        .unwrap()
}

/// The node other than `excluded` that leads the most partitions of `topic`.
fn busiest_leader_other_than(topic: &TopicMetadata, excluded: NodeId) -> NodeId {
    topic
        .leader_counts()
        .into_iter()
        .filter(|(node, _)| *node != excluded)
        .max_by_key(|(node, count)| (*count, -node))
        .map(|(node, _)| node)
        .unwrap_or_else(|| panic!("only node {excluded} leads partitions of {topic:?}"))
}

fn led_by(topic: &TopicMetadata, node: NodeId) -> Vec<PartitionMetadata> {
    topic
        .partitions
        .iter()
        .filter(|p| p.leader == node)
        .cloned()
        .collect()
}

/// `victim` is fenced, as Metadata shows it: it is not listed; every replicated partition it
/// `led` has a leader from its old ISR at a higher leader epoch; it is in no replicated
/// partition's ISR and no replicated partition is leaderless; and each `single`-replica
/// partition it led is leaderless (LEADER_NOT_AVAILABLE, `victim` offline, still the ISR).
fn victim_is_out(
    now: &ClusterMetadata,
    led: &[PartitionMetadata],
    single: &[PartitionMetadata],
    victim: NodeId,
) -> bool {
    let (Some(replicated), Some(single_topic)) = (now.topic(REPLICATED), now.topic(SINGLE)) else {
        return false;
    };
    let moved = led.iter().all(|old| {
        replicated.partition(old.index).is_some_and(|p| {
            p.leader != victim && old.isr.contains(&p.leader) && p.leader_epoch > old.leader_epoch
        })
    });
    let out_of_isrs = replicated
        .partitions
        .iter()
        .all(|p| p.leader != NO_LEADER && !p.isr.contains(&victim));
    let stranded = single.iter().all(|old| {
        single_topic.partition(old.index).is_some_and(|p| {
            p.leader == NO_LEADER
                && p.error_code == LEADER_NOT_AVAILABLE
                && p.isr == [victim]
                && p.offline.contains(&victim)
        })
    });
    !now.broker_ids().contains(&victim) && moved && out_of_isrs && stranded
}
