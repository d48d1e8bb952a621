//! Restart: replaying the records a coordinator wrote rebuilds the same groups and offsets,
//! and members that come back within their session carry on without a rebalance.

mod common;

use common::*;
use spate_coordinator::records::Record;
use spate_coordinator::*;

fn replayed(log: &[Record], config: CoordinatorConfig, now: Millis) -> Coordinator {
    let mut c = Coordinator::new(config);
    for record in log {
        c.load_record(record.clone());
    }
    c.finish_loading(now);
    c
}

fn assert_same_groups(a: &Coordinator, b: &Coordinator) {
    let mut listed_a = a.list_groups();
    let mut listed_b = b.list_groups();
    listed_a.sort_by(|x, y| x.group_id.cmp(&y.group_id));
    listed_b.sort_by(|x, y| x.group_id.cmp(&y.group_id));
    assert_eq!(listed_a, listed_b);
    for group in &listed_a {
        assert_eq!(
            a.describe_group(&group.group_id),
            b.describe_group(&group.group_id)
        );
        assert_eq!(
            a.fetch_offsets(&group.group_id, None),
            b.fetch_offsets(&group.group_id, None)
        );
    }
}

/// A coordinator with a Stable group with offsets, an empty group with offsets, a simple
/// group, and traces of a deleted group and a deleted offset.
fn busy_harness() -> (Harness, Vec<Joined>) {
    let mut h = Harness::default();
    let joined = h.stable_group(&["a", "b"]);
    h.commit(commit_req(
        &joined[0].member_id,
        1,
        &[("t", 0, 100), ("t", 1, 200), ("x", 0, 1)],
    ))
    .expect("ok");
    let (_, tombstones) =
        h.c.delete_offsets(h.now, GROUP, &[PartitionKey::new("x", 0)])
            .expect("ok");
    assert!(tombstones.is_empty(), "x is not deletable while subscribed");

    for (group, offset) in [("simple", 5), ("doomed", 6)] {
        let mut req = commit_req("", -1, &[("s", 0, offset)]);
        req.group_id = group.into();
        h.commit(req).expect("ok");
    }
    let (_, tombstones) = h.c.delete_groups(h.now, &["doomed".to_owned()]);
    h.log.extend(tombstones);

    // A second group that had members and is empty now.
    let mut req = join_req("", "e");
    req.group_id = "emptied".into();
    let token = h.join_later(req);
    h.wait_for_joins(&[token]);
    let e = Joined::from(h.joined(token).expect("joined"));
    let mut commit = commit_req(&e.member_id, 1, &[("t", 0, 9)]);
    commit.group_id = "emptied".into();
    assert_eq!(h.commit(commit).err(), Some(ErrorCode::RebalanceInProgress));
    h.c.leave_group(h.now, "emptied", vec![leaving(&e.member_id, None)]);
    h.pump();
    let mut commit = commit_req("", -1, &[("t", 0, 9)]);
    commit.group_id = "emptied".into();
    h.commit(commit).expect("ok");
    (h, joined)
}

#[test]
fn a_restarted_coordinator_has_the_same_groups_and_offsets() {
    let (h, joined) = busy_harness();
    let restarted = replayed(&h.log, config(), h.now + 1_000);
    assert_same_groups(&h.c, &restarted);
    assert_eq!(restarted.describe_group(GROUP).state, GroupState::Stable);
    assert_eq!(restarted.describe_group("doomed").state, GroupState::Dead);
    assert_eq!(restarted.describe_group("emptied").state, GroupState::Empty);
    let members = restarted.describe_group(GROUP).members;
    assert_eq!(members[1].assignment, assignment_of(&joined[1].member_id));
}

#[test]
fn members_that_come_back_within_their_session_carry_on() {
    let (h, joined) = busy_harness();
    let loaded_at = h.now + 2_000;
    let mut r = Harness::default();
    r.c = replayed(&h.log, config(), loaded_at);
    r.now = loaded_at;
    let (a, b) = (&joined[0], &joined[1]);

    r.advance(i64::from(SESSION_MS) - 1);
    assert_eq!(r.heartbeat(&a.member_id, 1), ErrorCode::None);
    let synced = r.sync_now(sync_req(&a.member_id, 1, vec![]));
    assert_eq!(synced.assignment, assignment_of(&a.member_id));
    assert_eq!(r.state(), GroupState::Stable);
    // b never came back: its session, started at load time, expires.
    r.advance(1);
    assert_eq!(r.state(), GroupState::PreparingRebalance);
    assert_eq!(r.heartbeat(&b.member_id, 1), ErrorCode::UnknownMemberId);
}

#[test]
fn a_static_member_restarting_after_a_broker_restart_does_not_rebalance() {
    let mut h = Harness::default();
    let t = h.join_later(static_join_req("", "c1", "i1"));
    h.wait_for_joins(&[t]);
    let s1 = Joined::from(h.joined(t).expect("joined"));
    h.sync_all(std::slice::from_ref(&s1));

    let mut r = Harness::default();
    r.c = replayed(&h.log, config(), h.now + 1_000);
    r.now = h.now + 1_000;
    let token = r.join_later(static_join_req("", "c1", "i1"));
    let result = r.joined(token).expect("answered");
    assert_eq!((result.generation_id, result.skip_assignment), (1, true));
    assert_eq!(r.state(), GroupState::Stable);
}

#[test]
fn an_empty_group_loaded_keeps_aging_from_when_it_emptied() {
    let mut h = Harness::new(CoordinatorConfig {
        offsets_retention_ms: 60_000,
        ..config()
    });
    let joined = h.stable_group(&["a"]);
    h.commit(commit_req(&joined[0].member_id, 1, &[("t", 0, 1)]))
        .expect("ok");
    h.leave(vec![leaving(&joined[0].member_id, None)]);
    let emptied = h.now;

    let mut r = Harness::new(h.c.config().clone());
    r.c = replayed(&h.log, h.c.config().clone(), emptied + 30_000);
    r.now = emptied + 30_000;
    let described = r.c.describe_group(GROUP);
    assert_eq!(described.state, GroupState::Empty);
    assert_eq!(r.c.next_deadline(), Some(emptied + 60_000));
    r.advance(30_000);
    assert_eq!(r.state(), GroupState::Dead);
    // A new member joining the reloaded group continues its generations.
    r.join_later(join_req("", "a"));
    let t = r.join_later(join_req("", "b"));
    r.wait_for_joins(&[t]);
    assert_eq!(
        r.joined(t).map(|x| x.generation_id),
        Some(1),
        "deleted groups start over"
    );
}

#[test]
fn a_snapshot_replays_to_the_same_state() {
    let (h, _) = busy_harness();
    let snapshot = h.c.snapshot();
    assert!(snapshot.iter().all(|r| !matches!(
        r,
        Record::Group { value: None, .. } | Record::Offset { value: None, .. }
    )));
    let restored = replayed(&snapshot, config(), h.now);
    assert_same_groups(&h.c, &restored);
    assert_eq!(restored.snapshot(), snapshot);
}

#[test]
fn records_survive_their_encoding() {
    let (h, _) = busy_harness();
    let decoded: Vec<Record> = h
        .log
        .iter()
        .map(|r| Record::decode(&r.encode_key(), r.encode_value().as_deref()).expect("decodes"))
        .collect();
    let restarted = replayed(&decoded, config(), h.now);
    assert_same_groups(&h.c, &restarted);
}
