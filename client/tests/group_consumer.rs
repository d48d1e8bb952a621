//! The group consumer against the real broker: partitions split and handed over, committed
//! offsets resumed, auto-commit on close, and a fenced static member.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::group::{Running, create_topic, group_broker, member_config, produce, tps, wait_until};
use spate_client::{Admin, Assignor, ClientConfig, GroupConsumer};

/// Two members split four partitions 2/2, consume everything exactly once, and when one
/// closes the other takes all four and resumes where the closed one committed.
async fn split_and_hand_over(assignors: &[Assignor]) {
    let broker = group_broker();
    create_topic(&broker, "t", 4).await;
    produce(&broker, "t", 4, 10).await;
    let config = member_config(&broker, "g", assignors);

    let first = GroupConsumer::new(config.clone()).await.unwrap();
    first.subscribe(&["t"]);
    let first = Running::start(first);
    wait_until(
        "the first member owning all four partitions",
        || first.log.assignment() == tps("t", 0..4),
        || format!("{:?}", first.log.assignments.lock().unwrap()),
    )
    .await;

    let second = GroupConsumer::new(config.clone()).await.unwrap();
    second.subscribe(&["t"]);
    let second = Running::start(second);
    wait_until(
        "a 2/2 split",
        || {
            let (a, b) = (first.log.assignment(), second.log.assignment());
            a.len() == 2 && b.len() == 2 && a.is_disjoint(&b)
        },
        || {
            format!(
                "first {:?}\nsecond {:?}",
                first.log.assignments.lock().unwrap(),
                second.log.assignments.lock().unwrap()
            )
        },
    )
    .await;
    let (g1, g2) = (
        first.consumer.generation().unwrap(),
        second.consumer.generation().unwrap(),
    );
    assert_eq!(g1.0, g2.0, "both in one generation");
    assert_ne!(g1.1, g2.1, "distinct member ids");

    produce(&broker, "t", 4, 10).await;
    wait_until(
        "all 80 records consumed",
        || first.log.record_count() + second.log.record_count() >= 80,
        || {
            format!(
                "{} + {}",
                first.log.record_count(),
                second.log.record_count()
            )
        },
    )
    .await;

    let (closing, second_log) = second.stop().await;
    closing.close().await.unwrap();
    wait_until(
        "the remaining member owning all four",
        || first.log.assignment() == tps("t", 0..4),
        || format!("{:?}", first.log.assignments.lock().unwrap()),
    )
    .await;
    produce(&broker, "t", 4, 10).await;
    wait_until(
        "all 120 records consumed",
        || first.log.record_count() + second_log.record_count() >= 120,
        || {
            format!(
                "{} + {}",
                first.log.record_count(),
                second_log.record_count()
            )
        },
    )
    .await;
    // Let anything duplicated arrive before counting.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (remaining, first_log) = first.stop().await;
    remaining.close().await.unwrap();

    let mut all: Vec<(String, i32, i64)> = first_log.records.lock().unwrap().clone();
    all.extend(second_log.records.lock().unwrap().iter().cloned());
    let distinct: BTreeSet<(String, i32, i64)> = all.iter().cloned().collect();
    assert_eq!(distinct.len(), 120, "every record consumed");
    assert_eq!(all.len(), 120, "no record consumed twice");
    assert!(second_log.record_count() > 0, "the second member consumed");
    assert!(first_log.errors.lock().unwrap().is_empty());
    assert!(second_log.errors.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_members_split_and_hand_over() {
    split_and_hand_over(&[Assignor::Range]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cooperative_sticky_members_split_and_hand_over() {
    split_and_hand_over(&[Assignor::CooperativeSticky]).await;
}

/// A member commits half, closes; a new member of the group starts exactly there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_offsets_are_resumed_by_the_next_member() {
    let broker = group_broker();
    create_topic(&broker, "r", 2).await;
    produce(&broker, "r", 2, 10).await;
    let mut config = member_config(&broker, "resume", &[Assignor::Range]);
    config.enable_auto_commit = false;
    config.consumer.max_poll_records = 3;

    let first = GroupConsumer::new(config.clone()).await.unwrap();
    first.subscribe(&["r"]);
    let mut consumed = Vec::new();
    while consumed.len() < 8 {
        consumed.extend(first.poll(Duration::from_millis(200)).await.unwrap());
    }
    first.commit_sync().await.unwrap();
    let mut expected: BTreeMap<(String, i32), Option<i64>> =
        tps("r", 0..2).into_iter().map(|tp| (tp, None)).collect();
    for record in &consumed {
        expected.insert(
            (record.topic.clone(), record.partition),
            Some(record.offset + 1),
        );
    }
    let partitions: Vec<(String, i32)> = tps("r", 0..2).into_iter().collect();
    let committed = first.committed(&partitions).await.unwrap();
    for (tp, offset) in &expected {
        // A partition with no record polled yet is committed at its position (0) if known.
        assert_eq!(
            committed[tp].unwrap_or(0),
            offset.unwrap_or(0),
            "{tp:?}: {committed:?}"
        );
    }
    first.close().await.unwrap();

    let second = GroupConsumer::new(config).await.unwrap();
    second.subscribe(&["r"]);
    let mut rest = Vec::new();
    while consumed.len() + rest.len() < 20 {
        rest.extend(second.poll(Duration::from_millis(200)).await.unwrap());
    }
    for partition in 0..2 {
        let first_offset = rest
            .iter()
            .find(|r| r.partition == partition)
            .map(|r| r.offset);
        let start = committed[&("r".to_string(), partition)].unwrap_or(0);
        if start < 10 {
            assert_eq!(
                first_offset,
                Some(start),
                "partition {partition} resumes at {start}"
            );
        }
    }
    let before: BTreeSet<(i32, i64)> = consumed.iter().map(|r| (r.partition, r.offset)).collect();
    let after: BTreeSet<(i32, i64)> = rest.iter().map(|r| (r.partition, r.offset)).collect();
    assert!(before.is_disjoint(&after), "nothing read twice");
    assert_eq!(before.len() + after.len(), 20);
    assert_eq!(rest.len(), after.len());
    second.close().await.unwrap();
}

/// With auto-commit, close commits exactly the positions of what poll returned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_commit_on_close_commits_what_was_polled() {
    let broker = group_broker();
    create_topic(&broker, "a", 3).await;
    produce(&broker, "a", 3, 10).await;
    let mut config = member_config(&broker, "auto", &[Assignor::Range]);
    config.consumer.max_poll_records = 4;
    // Longer than the test: only the commit on close can have written the offsets.
    config.auto_commit_interval = Duration::from_secs(600);

    let member = GroupConsumer::new(config).await.unwrap();
    member.subscribe(&["a"]);
    let mut next: BTreeMap<(String, i32), i64> = BTreeMap::new();
    let mut count = 0;
    while count < 9 {
        for record in member.poll(Duration::from_millis(200)).await.unwrap() {
            next.insert((record.topic, record.partition), record.offset + 1);
            count += 1;
        }
    }
    assert!(count < 30, "only part of the topic was polled");
    let admin = Admin::new(ClientConfig::new(broker.bootstrap()))
        .await
        .unwrap();
    assert!(
        admin
            .list_committed_offsets("auto", None)
            .await
            .unwrap()
            .is_empty(),
        "nothing committed before close"
    );
    member.close().await.unwrap();
    let committed = admin.list_committed_offsets("auto", None).await.unwrap();
    for partition in 0..3 {
        let tp = ("a".to_string(), partition);
        assert_eq!(
            committed.get(&tp).copied().unwrap_or(0),
            next.get(&tp).copied().unwrap_or(0),
            "{tp:?}: committed {committed:?}, polled up to {next:?}"
        );
    }
    assert!(!committed.is_empty());
    // The member left: the group is empty, so an admin reset is accepted.
    let described = admin.describe_group("auto").await.unwrap();
    assert!(described.members.is_empty(), "{described:?}");
}

/// A second static member with the same instance id takes the first one's place; the first
/// learns it from poll, with the group and instance id named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_static_member_reports_it_from_poll() {
    let broker = group_broker();
    create_topic(&broker, "s", 1).await;
    let mut config = member_config(&broker, "static", &[Assignor::Range]);
    config.group_instance_id = Some("instance-1".into());

    let first = GroupConsumer::new(config.clone()).await.unwrap();
    first.subscribe(&["s"]);
    let first = Running::start(first);
    wait_until(
        "the first static member owning the partition",
        || first.log.assignment() == tps("s", 0..1),
        || format!("{:?}", first.log.assignments.lock().unwrap()),
    )
    .await;
    let second = GroupConsumer::new(config).await.unwrap();
    second.subscribe(&["s"]);
    let second = Running::start(second);
    wait_until(
        "the first member being fenced",
        || {
            first
                .log
                .errors
                .lock()
                .unwrap()
                .iter()
                .any(|e| e.contains("FENCED_INSTANCE_ID"))
        },
        || format!("{:?}", first.log.errors.lock().unwrap()),
    )
    .await;
    let error = first
        .log
        .errors
        .lock()
        .unwrap()
        .iter()
        .find(|e| e.contains("FENCED_INSTANCE_ID"))
        .cloned()
        .unwrap();
    assert!(
        error.contains("static") && error.contains("instance-1"),
        "{error}"
    );
    wait_until(
        "the second member owning the partition",
        || second.log.assignment() == tps("s", 0..1),
        || format!("{:?}", second.log.assignments.lock().unwrap()),
    )
    .await;
    let (second, _) = second.stop().await;
    second.close().await.unwrap();
    let (first, _) = first.stop().await;
    drop(first);
}
