//! OffsetCommit, OffsetFetch, OffsetDelete, DeleteGroups and KIP-211 offset expiry.

mod common;

use bytes::Bytes;
use common::*;
use spate_coordinator::records::{OffsetValue, Record};
use spate_coordinator::*;

const RETENTION_MS: i64 = 60_000;

fn short_retention() -> Harness {
    Harness::new(CoordinatorConfig {
        offsets_retention_ms: RETENTION_MS,
        ..config()
    })
}

fn outside(offsets: &[(&str, i32, i64)]) -> OffsetCommit {
    commit_req("", -1, offsets)
}

fn fetch(h: &Harness, keys: &[(&str, i32)]) -> Vec<Option<i64>> {
    let keys: Vec<PartitionKey> = keys
        .iter()
        .map(|(t, p)| PartitionKey::new(*t, *p))
        .collect();
    let fetched =
        h.c.fetch_offsets(GROUP, Some(&keys))
            .expect("fetch never fails");
    assert_eq!(
        fetched.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(),
        keys
    );
    fetched
        .into_iter()
        .map(|(_, o)| o.map(|o| o.offset))
        .collect()
}

/// A ConsumerProtocolSubscription v0 naming `topics`.
fn subscription(topics: &[&str]) -> Bytes {
    let mut bytes = 0i16.to_be_bytes().to_vec();
    bytes.extend((topics.len() as i32).to_be_bytes());
    for topic in topics {
        bytes.extend((topic.len() as i16).to_be_bytes());
        bytes.extend(topic.as_bytes());
    }
    bytes.extend((-1i32).to_be_bytes());
    Bytes::from(bytes)
}

#[test]
fn a_consumer_outside_any_group_commits_into_a_simple_group() {
    let mut h = Harness::default();
    let results = h
        .commit(outside(&[("t", 0, 10), ("t", 1, 20)]))
        .expect("accepted");
    assert!(results.iter().all(|(_, e)| *e == ErrorCode::None));
    assert_eq!(
        fetch(&h, &[("t", 0), ("t", 1), ("t", 2)]),
        vec![Some(10), Some(20), None]
    );
    let described = h.c.describe_group(GROUP);
    assert_eq!(
        (described.state, described.protocol_type.as_str()),
        (GroupState::Empty, "")
    );
    assert_eq!(
        h.c.list_groups(),
        vec![ListedGroup {
            group_id: GROUP.into(),
            protocol_type: String::new(),
            state: GroupState::Empty
        }]
    );
    assert!(
        group_records(&h.log, GROUP).is_empty(),
        "a simple group has no group record"
    );

    let all = h.c.fetch_offsets(GROUP, None).expect("fetch");
    let stored = all[0].1.clone().expect("committed");
    assert_eq!(
        stored,
        OffsetAndMetadata {
            offset: 10,
            leader_epoch: 3,
            metadata: "meta-10".into(),
            commit_timestamp_ms: h.now,
            expire_timestamp_ms: None,
        }
    );
}

#[test]
fn commit_errors() {
    let mut h = Harness::default();
    let mut no_group = outside(&[("t", 0, 1)]);
    no_group.group_id = String::new();
    assert_eq!(h.commit(no_group).err(), Some(ErrorCode::InvalidGroupId));
    assert_eq!(
        h.commit(commit_req("m", 3, &[("t", 0, 1)])).err(),
        Some(ErrorCode::IllegalGeneration)
    );

    let ta = h.join_later(join_req("", "a"));
    let tb = h.join_later(join_req("", "b"));
    h.wait_for_joins(&[ta, tb]);
    let [a, b] = [ta, tb].map(|t| Joined::from(h.joined(t).expect("joined")));
    let commit = |member: &str, generation| commit_req(member, generation, &[("t", 0, 5)]);
    assert_eq!(
        h.commit(commit(&a.member_id, 1)).err(),
        Some(ErrorCode::RebalanceInProgress)
    );
    h.sync_all(&[a.clone(), b.clone()]);
    assert_eq!(
        h.commit(commit("stranger", 1)).err(),
        Some(ErrorCode::UnknownMemberId)
    );
    assert_eq!(
        h.commit(commit(&a.member_id, 0)).err(),
        Some(ErrorCode::IllegalGeneration)
    );
    assert_eq!(
        h.commit(commit("", -1)).err(),
        Some(ErrorCode::UnknownMemberId),
        "the group is not empty"
    );
    assert!(h.commit(commit(&b.member_id, 1)).is_ok());

    // During a rebalance the old generation may still commit (e.g. before revoking).
    h.join_later(join_req(&a.member_id, "a"));
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    assert!(h.commit(commit(&b.member_id, 1)).is_ok());
}

#[test]
fn oversized_metadata_refuses_only_its_partition() {
    let mut h = Harness::default();
    let mut req = outside(&[("t", 0, 1), ("t", 1, 2), ("t", 2, 3)]);
    req.partitions[1].metadata = Some("x".repeat(4097));
    req.partitions[2].metadata = Some("y".repeat(4096));
    let prepared = h.c.prepare_commit(h.now, req).expect("accepted");
    let errors: Vec<ErrorCode> = prepared.results.iter().map(|(_, e)| *e).collect();
    assert_eq!(
        errors,
        vec![
            ErrorCode::None,
            ErrorCode::OffsetMetadataTooLarge,
            ErrorCode::None
        ]
    );
    assert_eq!(
        prepared.records.len(),
        2,
        "no record for the refused partition"
    );
    h.c.commit_written(h.now, &prepared);
    assert_eq!(
        fetch(&h, &[("t", 0), ("t", 1), ("t", 2)]),
        vec![Some(1), None, Some(3)]
    );
}

#[test]
fn offsets_are_invisible_until_written() {
    let mut h = Harness::default();
    let prepared =
        h.c.prepare_commit(h.now, outside(&[("t", 0, 42)]))
            .expect("accepted");
    let Record::Offset {
        value: Some(value), ..
    } = &prepared.records[0]
    else {
        panic!("{:?}", prepared.records);
    };
    assert_eq!(
        value,
        &OffsetValue {
            offset: 42,
            leader_epoch: 3,
            metadata: "meta-42".into(),
            commit_timestamp_ms: h.now,
            expire_timestamp_ms: -1,
        }
    );
    assert_eq!(fetch(&h, &[("t", 0)]), vec![None]);
    assert!(h.c.fetch_offsets(GROUP, None).expect("fetch").is_empty());
    h.c.commit_written(h.now, &prepared);
    assert_eq!(fetch(&h, &[("t", 0)]), vec![Some(42)]);
}

#[test]
fn fetching_from_an_unknown_group_finds_nothing() {
    let h = Harness::default();
    assert_eq!(fetch(&h, &[("t", 0), ("u", 7)]), vec![None, None]);
    assert_eq!(h.c.fetch_offsets("nope", None), Ok(vec![]));
}

#[test]
fn a_commit_keeps_the_member_alive_like_a_heartbeat() {
    let mut h = Harness::default();
    let joined = h.stable_group(&["a"]);
    for i in 0..10 {
        h.advance(3_000);
        assert!(
            h.commit(commit_req(&joined[0].member_id, 1, &[("t", 0, i)]))
                .is_ok()
        );
    }
    assert_eq!(h.state(), GroupState::Stable);
    assert_eq!(h.heartbeat(&joined[0].member_id, 1), ErrorCode::None);
}

#[test]
fn offsets_of_an_empty_group_expire_a_retention_period_after_it_emptied() {
    let mut h = short_retention();
    let joined = h.stable_group(&["a"]);
    let a = &joined[0];
    assert!(
        h.commit(commit_req(&a.member_id, 1, &[("t", 0, 7), ("u", 0, 8)]))
            .is_ok()
    );
    // With members, offsets never expire (their subscription is unknown here).
    for _ in 0..30 {
        h.advance(3_000);
        assert_eq!(h.heartbeat(&a.member_id, 1), ErrorCode::None);
    }
    assert_eq!(fetch(&h, &[("t", 0)]), vec![Some(7)]);

    h.leave(vec![leaving(&a.member_id, None)]);
    let emptied = h.now;
    h.log.clear();
    h.advance(RETENTION_MS - 1);
    assert_eq!(fetch(&h, &[("t", 0)]), vec![Some(7)]);
    h.advance(1);
    assert_eq!(h.now, emptied + RETENTION_MS);
    assert_eq!(fetch(&h, &[("t", 0), ("u", 0)]), vec![None, None]);
    assert_eq!(
        h.log,
        vec![
            Record::Offset {
                group: GROUP.into(),
                topic: "t".into(),
                partition: 0,
                value: None
            },
            Record::Offset {
                group: GROUP.into(),
                topic: "u".into(),
                partition: 0,
                value: None
            },
            Record::Group {
                group: GROUP.into(),
                value: None
            },
        ]
    );
    assert_eq!(
        h.state(),
        GroupState::Dead,
        "nothing left: the group is deleted"
    );
}

#[test]
fn a_simple_groups_offsets_expire_from_their_commit_time_or_explicit_retention() {
    let mut h = short_retention();
    h.commit(outside(&[("t", 0, 1)])).expect("ok");
    h.advance(10_000);
    let mut explicit = outside(&[("t", 1, 2)]);
    explicit.retention_time_ms = 5_000;
    h.commit(explicit).expect("ok");
    let written = h.c.fetch_offsets(GROUP, None).expect("fetch");
    assert_eq!(
        written[1].1.as_ref().and_then(|o| o.expire_timestamp_ms),
        Some(h.now + 5_000)
    );

    h.advance(5_000);
    assert_eq!(
        fetch(&h, &[("t", 0), ("t", 1)]),
        vec![Some(1), None],
        "explicit expiry first"
    );
    h.advance(RETENTION_MS - 15_000);
    assert_eq!(fetch(&h, &[("t", 0)]), vec![None]);
    assert_eq!(h.state(), GroupState::Dead);
    assert!(
        group_records(&h.log, GROUP).is_empty(),
        "never written, no tombstone"
    );
}

#[test]
fn a_stable_consumer_groups_unsubscribed_topics_expire_but_subscribed_ones_do_not() {
    let mut h = short_retention();
    let mut req = join_req("", "a");
    req.protocols = vec![protocol("range", subscription(&["t"]))];
    let token = h.join_later(req);
    h.wait_for_joins(&[token]);
    let a = Joined::from(h.joined(token).expect("joined"));
    h.sync_all(std::slice::from_ref(&a));
    h.commit(commit_req(&a.member_id, 1, &[("t", 0, 1), ("gone", 0, 2)]))
        .expect("ok");
    for _ in 0..25 {
        h.advance(3_000);
        h.heartbeat(&a.member_id, 1);
    }
    let readable = consumer_protocol::subscribed_topics(&subscription(&["t"])).is_some();
    let expected_gone = if readable { None } else { Some(2) };
    assert_eq!(
        fetch(&h, &[("t", 0), ("gone", 0)]),
        vec![Some(1), expected_gone]
    );
}

#[test]
fn delete_offsets_rules() {
    let mut h = Harness::default();
    let key = |t: &str| PartitionKey::new(t, 0);
    assert_eq!(
        h.c.delete_offsets(h.now, GROUP, &[key("t")]).err(),
        Some(ErrorCode::GroupIdNotFound)
    );

    // A consumer group: subscribed topics are refused, others deleted.
    let mut req = join_req("", "a");
    req.protocols = vec![protocol("range", subscription(&["t"]))];
    let token = h.join_later(req);
    h.wait_for_joins(&[token]);
    let a = Joined::from(h.joined(token).expect("joined"));
    h.sync_all(std::slice::from_ref(&a));
    h.commit(commit_req(&a.member_id, 1, &[("t", 0, 1), ("old", 0, 2)]))
        .expect("ok");
    let (results, records) =
        h.c.delete_offsets(h.now, GROUP, &[key("t"), key("old"), key("never")])
            .expect("ok");
    let readable = consumer_protocol::subscribed_topics(&subscription(&["t"])).is_some();
    if readable {
        assert_eq!(
            results,
            vec![
                (key("t"), ErrorCode::GroupSubscribedToTopic),
                (key("old"), ErrorCode::None),
                (key("never"), ErrorCode::None),
            ]
        );
        assert_eq!(
            records,
            vec![Record::Offset {
                group: GROUP.into(),
                topic: "old".into(),
                partition: 0,
                value: None
            }]
        );
    } else {
        // Subscriptions that cannot be read count as subscribed to everything.
        assert!(
            results[..2]
                .iter()
                .all(|(_, e)| *e == ErrorCode::GroupSubscribedToTopic)
        );
    }
    assert_eq!(fetch(&h, &[("t", 0)]), vec![Some(1)]);

    // Another protocol type with members: nothing can be deleted.
    let mut other = Harness::default();
    let mut connect = join_req("", "w");
    connect.protocol_type = "connect".into();
    other.join_later(connect);
    assert_eq!(
        other.c.delete_offsets(other.now, GROUP, &[key("t")]).err(),
        Some(ErrorCode::NonEmptyGroup)
    );

    // An empty group: anything goes.
    h.leave(vec![leaving(&a.member_id, None)]);
    let (results, records) = h.c.delete_offsets(h.now, GROUP, &[key("t")]).expect("ok");
    assert_eq!((results[0].1, records.len()), (ErrorCode::None, 1));
    assert_eq!(fetch(&h, &[("t", 0)]), vec![None]);
}

#[test]
fn delete_groups_rules() {
    let mut h = Harness::default();
    let joined = h.stable_group(&["a"]);
    h.commit(commit_req(
        &joined[0].member_id,
        1,
        &[("t", 0, 1), ("t", 1, 2)],
    ))
    .expect("ok");
    let ids = vec![GROUP.to_owned(), "nope".to_owned()];
    let (results, records) = h.c.delete_groups(h.now, &ids);
    assert_eq!(
        results,
        vec![
            (GROUP.to_owned(), ErrorCode::NonEmptyGroup),
            ("nope".to_owned(), ErrorCode::GroupIdNotFound)
        ]
    );
    assert!(records.is_empty());

    h.leave(vec![leaving(&joined[0].member_id, None)]);
    let (results, records) = h.c.delete_groups(h.now, &ids[..1]);
    assert_eq!(results, vec![(GROUP.to_owned(), ErrorCode::None)]);
    let tombstones: Vec<(String, Option<i32>)> = records
        .iter()
        .map(|r| match r {
            Record::Offset {
                topic,
                partition,
                value: None,
                ..
            } => (topic.clone(), Some(*partition)),
            Record::Group { group, value: None } => (group.clone(), None),
            other => panic!("not a tombstone: {other:?}"),
        })
        .collect();
    assert_eq!(
        tombstones,
        vec![
            ("t".into(), Some(0)),
            ("t".into(), Some(1)),
            (GROUP.into(), None)
        ]
    );
    assert_eq!(h.state(), GroupState::Dead);
    assert_eq!(fetch(&h, &[("t", 0)]), vec![None]);
    assert_eq!(h.c.next_deadline(), None, "no timers outlive the group");
    let (again, _) = h.c.delete_groups(h.now, &ids[..1]);
    assert_eq!(again[0].1, ErrorCode::GroupIdNotFound);
}
