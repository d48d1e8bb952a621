//! When a member rejoins on its own: a subscribed topic grew, or the application stopped
//! polling for longer than `max.poll.interval.ms` (it leaves, then rejoins on its next poll).

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::time::{Duration, Instant};

use common::group::{
    Running, SETTLE, create_topic, group_broker, member_config, produce, tps, wait_until,
};
use spate_client::{Admin, Assignor, ClientConfig, GroupConsumer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_partitions_of_a_subscribed_topic_are_taken_up() {
    let broker = group_broker();
    create_topic(&broker, "grow", 2).await;
    let mut config = member_config(&broker, "grower", &[Assignor::CooperativeSticky]);
    config.consumer.client.metadata_max_age = Duration::from_millis(300);
    let member = GroupConsumer::new(config).await.unwrap();
    member.subscribe(&["grow"]);
    let member = Running::start(member);
    wait_until(
        "the member owning both partitions",
        || member.log.assignment() == tps("grow", 0..2),
        || format!("{:?}", member.log.assignments.lock().unwrap()),
    )
    .await;
    let before = member.consumer.generation().unwrap().0;
    let admin = Admin::new(ClientConfig::new(broker.bootstrap()))
        .await
        .unwrap();
    admin.create_partitions("grow", 4).await.unwrap();
    wait_until(
        "the member owning all four partitions",
        || member.log.assignment() == tps("grow", 0..4),
        || format!("{:?}", member.log.assignments.lock().unwrap()),
    )
    .await;
    assert!(member.consumer.generation().unwrap().0 > before);
    produce(&broker, "grow", 4, 2).await;
    wait_until(
        "records of the new partitions consumed",
        || member.log.records.lock().unwrap().iter().any(|r| r.1 == 3),
        || format!("{:?}", member.log.records.lock().unwrap()),
    )
    .await;
    let (member, _) = member.stop().await;
    member.close().await.unwrap();
}

/// Polls `member` every 50 ms until `condition` holds.
async fn poll_until(member: &GroupConsumer, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + SETTLE;
    while !condition() {
        assert!(Instant::now() < deadline, "{what} never happened");
        member.poll(Duration::from_millis(50)).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_stops_polling_leaves_and_rejoins_on_its_next_poll() {
    let broker = group_broker();
    create_topic(&broker, "slow", 4).await;
    let mut config = member_config(&broker, "slowpoke", &[Assignor::Range]);
    config.max_poll_interval = Duration::from_millis(1500);

    let idle = GroupConsumer::new(config.clone()).await.unwrap();
    idle.subscribe(&["slow"]);
    poll_until(&idle, "the first member owning everything", || {
        idle.assignment().len() == 4
    })
    .await;
    let busy = GroupConsumer::new(config).await.unwrap();
    busy.subscribe(&["slow"]);
    let busy = Running::start(busy);
    poll_until(&idle, "a 2/2 split", || {
        idle.assignment().len() == 2 && busy.log.assignment().len() == 2
    })
    .await;

    // No poll: after max.poll.interval.ms the member leaves and the other takes over.
    let stopped_at = Instant::now();
    wait_until(
        "the polling member owning everything",
        || busy.log.assignment() == tps("slow", 0..4),
        || format!("{:?}", busy.log.assignments.lock().unwrap()),
    )
    .await;
    assert!(stopped_at.elapsed() >= Duration::from_millis(1000));
    assert!(idle.assignment().is_empty());
    assert_eq!(idle.generation(), None);

    poll_until(&idle, "the idle member rejoining", || {
        idle.assignment().len() == 2 && busy.log.assignment().len() == 2
    })
    .await;
    let (busy, log) = busy.stop().await;
    assert!(log.errors.lock().unwrap().is_empty());
    busy.close().await.unwrap();
    idle.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribing_to_nothing_commits_and_leaves() {
    let broker = group_broker();
    create_topic(&broker, "u", 2).await;
    produce(&broker, "u", 2, 3).await;
    let member = GroupConsumer::new(member_config(&broker, "leaver", &[Assignor::Range]))
        .await
        .unwrap();
    member.subscribe(&["u"]);
    let mut polled = 0;
    while polled < 6 {
        polled += member.poll(Duration::from_millis(100)).await.unwrap().len();
    }
    member.subscribe(&[]);
    let admin = Admin::new(ClientConfig::new(broker.bootstrap()))
        .await
        .unwrap();
    let deadline = Instant::now() + SETTLE;
    loop {
        let described = admin.describe_group("leaver").await.unwrap();
        if described.members.is_empty() && member.assignment().is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "still a member: {described:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let committed = admin.list_committed_offsets("leaver", None).await.unwrap();
    assert_eq!(committed.values().copied().collect::<Vec<_>>(), vec![3, 3]);
    member.close().await.unwrap();
}

/// The broker restarts under a member: it finds the coordinator again, keeps (or regains)
/// its partitions and goes on from its positions, losing and repeating nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_survives_a_broker_restart() {
    let mut broker = group_broker();
    create_topic(&broker, "restart", 2).await;
    produce(&broker, "restart", 2, 10).await;
    let member = GroupConsumer::new(member_config(&broker, "survivor", &[Assignor::Range]))
        .await
        .unwrap();
    member.subscribe(&["restart"]);
    let member = Running::start(member);
    wait_until(
        "the first 20 records consumed",
        || member.log.record_count() == 20,
        || format!("{}", member.log.record_count()),
    )
    .await;
    tokio::task::block_in_place(|| broker.restart_on_same_ports()).unwrap();
    produce(&broker, "restart", 2, 10).await;
    wait_until(
        "all 40 records consumed",
        || member.log.record_count() >= 40,
        || {
            format!(
                "{} records; assignments {:?}; errors {:?}",
                member.log.record_count(),
                member.log.assignments.lock().unwrap(),
                member.log.errors.lock().unwrap()
            )
        },
    )
    .await;
    // A commit needs the coordinator found again and the generation still valid.
    member.consumer.commit_sync().await.unwrap();
    let partitions: Vec<(String, i32)> = tps("restart", 0..2).into_iter().collect();
    let committed = member.consumer.committed(&partitions).await.unwrap();
    assert_eq!(
        committed.values().copied().collect::<Vec<_>>(),
        vec![Some(20), Some(20)]
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (member, log) = member.stop().await;
    let records = log.records.lock().unwrap().clone();
    let distinct: std::collections::BTreeSet<_> = records.iter().cloned().collect();
    assert_eq!(
        (records.len(), distinct.len()),
        (40, 40),
        "nothing lost or repeated"
    );
    assert_eq!(member.assignment().len(), 2);
    member.close().await.unwrap();
}
