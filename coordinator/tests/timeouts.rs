//! Every timer of the classic protocol, driven by the fake clock: session expiry, the
//! rebalance timeout (max.poll.interval.ms), the pending-sync timeout, the new-member join
//! timeout, and the cleanup of empty groups.

mod common;

use common::*;
use spate_coordinator::*;

#[test]
fn session_expiry_removes_the_silent_member_and_the_rest_are_reassigned() {
    let mut h = Harness::default();
    let joined = h.stable_group(&["a", "b", "c"]);
    let (a, b, c) = (&joined[0], &joined[1], &joined[2]);
    let expired_at = h.now + i64::from(SESSION_MS);

    // a and b heartbeat every 3 s; c has gone silent.
    while h.now + 3_000 < expired_at {
        h.advance(3_000);
        assert_eq!(h.heartbeat(&a.member_id, 1), ErrorCode::None);
        assert_eq!(h.heartbeat(&b.member_id, 1), ErrorCode::None);
    }
    assert_eq!(h.state(), GroupState::Stable);
    assert_eq!(
        h.c.next_deadline(),
        Some(expired_at),
        "c's session is the next deadline"
    );
    h.advance(expired_at - h.now);
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    assert!(!h.member_ids().contains(&c.member_id));

    assert_eq!(h.heartbeat(&a.member_id, 1), ErrorCode::RebalanceInProgress);
    let ta = h.join_later(join_req(&a.member_id, "a"));
    assert_eq!(h.heartbeat(&b.member_id, 1), ErrorCode::RebalanceInProgress);
    let tb = h.join_later(join_req(&b.member_id, "b"));
    let rejoined = [ta, tb].map(|t| Joined::from(h.joined(t).expect("rejoined")));
    assert_eq!(rejoined[0].generation, 2);
    assert_eq!(rejoined[0].members.len(), 2);
    h.sync_all(&rejoined);
    assert_eq!(h.state(), GroupState::Stable);
    assert_eq!(h.heartbeat(&c.member_id, 1), ErrorCode::UnknownMemberId);
}

#[test]
fn rebalance_timeout_removes_a_member_that_heartbeats_but_never_rejoins() {
    let mut h = Harness::default();
    let joined = h.stable_group(&["a", "b"]);
    let (a, b) = (&joined[0], &joined[1]);
    let started = h.now;
    let ta = h.join_later(join_req(&a.member_id, "a"));

    // b is stuck in its poll loop: its heartbeat thread keeps it alive, but it does not
    // rejoin within max.poll.interval.ms (its rebalance timeout).
    while h.now + 3_000 < started + i64::from(REBALANCE_MS) {
        h.advance(3_000);
        assert_eq!(h.heartbeat(&b.member_id, 1), ErrorCode::RebalanceInProgress);
        assert!(h.joined(ta).is_none());
    }
    h.advance(started + i64::from(REBALANCE_MS) - h.now);
    let r = h
        .joined(ta)
        .expect("join phase completed at the rebalance timeout");
    assert_eq!((r.generation_id, r.members.len()), (2, 1));
    assert_eq!(h.heartbeat(&b.member_id, 1), ErrorCode::UnknownMemberId);
    assert_eq!(h.member_ids(), vec![a.member_id.clone()]);
}

#[test]
fn leadership_passes_to_a_member_that_rejoined_when_the_leader_did_not() {
    let mut h = Harness::default();
    let joined = h.stable_group(&["a", "b"]);
    let (a, b) = (&joined[0], &joined[1]);
    assert!(a.is_leader());
    let mut changed = join_req(&b.member_id, "b");
    changed.protocols = vec![protocol("range", bytes::Bytes::from_static(b"new topics"))];
    let tb = h.join_later(changed);
    for _ in 0..20 {
        h.advance(1_500);
        h.heartbeat(&a.member_id, 1);
    }
    let r = h.joined(tb).expect("completed at the rebalance timeout");
    assert_eq!(r.leader, b.member_id);
    assert_eq!(r.members.len(), 1);
}

#[test]
fn followers_that_never_sync_are_removed_and_the_group_rebalances() {
    let mut h = Harness::default();
    let ta = h.join_later(join_req("", "a"));
    let tb = h.join_later(join_req("", "b"));
    h.wait_for_joins(&[ta, tb]);
    let joined_at = h.now;
    let [a, b] = [ta, tb].map(|t| Joined::from(h.joined(t).expect("joined")));
    // The leader syncs; b got its JoinGroup answer but never sends SyncGroup.
    h.sync_later(sync_req(
        &a.member_id,
        1,
        vec![(b.member_id.clone(), assignment_of(&b.member_id))],
    ));
    assert_eq!(h.state(), GroupState::Stable);
    // Both heartbeat (b's heartbeat thread runs; its SyncGroup got lost).
    while h.now + 3_000 < joined_at + i64::from(REBALANCE_MS) {
        h.advance(3_000);
        assert_eq!(h.heartbeat(&a.member_id, 1), ErrorCode::None);
        assert_eq!(h.heartbeat(&b.member_id, 1), ErrorCode::None);
    }
    h.advance(joined_at + i64::from(REBALANCE_MS) - h.now);
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    assert_eq!(h.member_ids(), vec![a.member_id.clone()]);
    assert_eq!(h.heartbeat(&b.member_id, 1), ErrorCode::UnknownMemberId);
}

#[test]
fn a_leader_that_never_syncs_is_removed_and_parked_followers_told_to_rejoin() {
    let mut h = Harness::default();
    let ta = h.join_later(join_req("", "a"));
    let tb = h.join_later(join_req("", "b"));
    h.wait_for_joins(&[ta, tb]);
    let joined_at = h.now;
    let [a, b] = [ta, tb].map(|t| Joined::from(h.joined(t).expect("joined")));
    let parked = h.sync_later(sync_req(&b.member_id, 1, vec![]));
    // The leader heartbeats but its assignor never finishes.
    while h.now + 3_000 < joined_at + i64::from(REBALANCE_MS) {
        h.advance(3_000);
        assert_eq!(h.heartbeat(&a.member_id, 1), ErrorCode::None);
    }
    assert_eq!(h.state(), GroupState::CompletingRebalance);
    assert!(h.syncs.is_empty());
    h.advance(joined_at + i64::from(REBALANCE_MS) - h.now);
    assert_eq!(h.syncs[&parked].error, ErrorCode::RebalanceInProgress);
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    assert_eq!(h.member_ids(), vec![b.member_id.clone()]);
}

#[test]
fn a_new_member_parked_too_long_is_dropped_after_the_new_member_join_timeout() {
    let mut h = Harness::default();
    let mut slow = join_req("", "a");
    slow.rebalance_timeout_ms = 600_000;
    let ta = h.join_later(slow.clone());
    h.wait_for_joins(&[ta]);
    let a = Joined::from(h.joined(ta).expect("joined"));
    h.sync_later(sync_req(&a.member_id, 1, vec![]));

    // b joins; a keeps heartbeating but takes its time to rejoin (10 min allowed).
    let tb = h.join_later(join_req("", "b"));
    let joined_at = h.now;
    while h.now < joined_at + 300_000 - 3_000 {
        h.advance(3_000);
        assert_eq!(h.heartbeat(&a.member_id, 1), ErrorCode::RebalanceInProgress);
    }
    assert!(h.joined(tb).is_none());
    h.advance(joined_at + 300_000 - h.now);
    let r = h.joined(tb).expect("b was given up on");
    assert_eq!(
        (r.error, r.member_id.as_str()),
        (ErrorCode::UnknownMemberId, "")
    );
    assert_eq!(h.member_ids(), vec![a.member_id.clone()]);
}

#[test]
fn a_rejoined_member_is_not_expired_while_it_waits_for_the_others() {
    let mut h = Harness::default();
    let joined = h.stable_group(&["a", "b"]);
    let (a, b) = (&joined[0], &joined[1]);
    let ta = h.join_later(join_req(&a.member_id, "a"));
    // a is parked in JoinGroup and cannot heartbeat; b heartbeats but rejoins late.
    for _ in 0..8 {
        h.advance(3_000);
        assert_eq!(h.heartbeat(&b.member_id, 1), ErrorCode::RebalanceInProgress);
    }
    assert!(
        h.member_ids().contains(&a.member_id),
        "parked members skip heartbeats"
    );
    h.join_later(join_req(&b.member_id, "b"));
    assert_eq!(h.joined(ta).map(|r| r.generation_id), Some(2));
}

#[test]
fn the_last_member_expiring_empties_the_group() {
    let mut h = Harness::default();
    h.stable_group(&["a"]);
    h.log.clear();
    h.advance(i64::from(SESSION_MS));
    assert_eq!(h.state(), GroupState::Empty);
    let records = group_records(&h.log, GROUP);
    assert!(matches!(records.as_slice(), [Some(v)] if v.members.is_empty() && v.generation == 2));
}

#[test]
fn an_empty_group_without_offsets_is_deleted_after_the_cleanup_delay() {
    let mut h = Harness::default();
    let joined = h.stable_group(&["a"]);
    h.leave(vec![leaving(&joined[0].member_id, None)]);
    assert_eq!(h.state(), GroupState::Empty);
    h.log.clear();
    h.advance(599_999);
    assert_eq!(h.state(), GroupState::Empty);
    h.advance(1);
    assert_eq!(h.state(), GroupState::Dead);
    assert_eq!(
        group_records(&h.log, GROUP),
        vec![None],
        "a group tombstone is written"
    );
    assert_eq!(h.c.next_deadline(), None);
    assert!(h.c.list_groups().is_empty());
}

#[test]
fn next_deadline_follows_the_earliest_timer() {
    let mut h = Harness::default();
    assert_eq!(h.c.next_deadline(), None);
    h.join_later(join_req("", "a"));
    assert_eq!(h.c.next_deadline(), Some(h.now + i64::from(DELAY_MS)));
    h.advance_to_next_deadline();
    // Joined: the pending sync expires after the rebalance timeout; a's session first.
    assert_eq!(h.c.next_deadline(), Some(h.now + i64::from(SESSION_MS)));
}
