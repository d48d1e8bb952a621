//! KIP-345 static membership and KIP-814 skip-assignment.

mod common;

use bytes::Bytes;
use common::*;
use spate_coordinator::records::Record;
use spate_coordinator::*;

/// Two static members, i1 (the leader) and i2, Stable at generation 1.
fn stable_static_group(h: &mut Harness) -> (Joined, Joined) {
    let t1 = h.join_later(static_join_req("", "c1", "i1"));
    let t2 = h.join_later(static_join_req("", "c2", "i2"));
    h.wait_for_joins(&[t1, t2]);
    let (s1, s2) = (
        Joined::from(h.joined(t1).expect("j")),
        Joined::from(h.joined(t2).expect("j")),
    );
    assert!(
        s1.member_id.starts_with("i1-"),
        "static ids start with the instance id"
    );
    assert!(s1.is_leader());
    h.sync_all(&[s1.clone(), s2.clone()]);
    (s1, s2)
}

fn static_sync(member_id: &str, instance: &str) -> SyncGroup {
    SyncGroup {
        group_instance_id: Some(instance.into()),
        ..sync_req(member_id, 1, vec![])
    }
}

#[test]
fn a_static_member_restarting_within_its_session_keeps_its_place_without_a_rebalance() {
    let mut h = Harness::default();
    let (s1, s2) = stable_static_group(&mut h);
    h.advance(5_000);
    assert_eq!(h.static_heartbeat(&s1.member_id, "i1", 1), ErrorCode::None);
    h.events.clear();

    let token = h.join_later(static_join_req("", "c2", "i2"));
    // The new member id is written before the member is told about it.
    let [Event::Append(records), Event::Join(answered)] = h.events.as_slice() else {
        panic!("append, then the join answer: {:?}", h.events);
    };
    assert_eq!(*answered, token);
    let r = h.joined(token).expect("answered").clone();
    assert_eq!(
        (r.error, r.generation_id, r.skip_assignment),
        (ErrorCode::None, 1, false)
    );
    assert!(r.members.is_empty(), "a follower gets no member list");
    assert_ne!(r.member_id, s2.member_id);
    assert_eq!(r.leader, s1.member_id);
    let [
        Record::Group {
            value: Some(value), ..
        },
    ] = records.as_slice()
    else {
        panic!("{records:?}");
    };
    let ids: Vec<&str> = value.members.iter().map(|m| m.member_id.as_str()).collect();
    assert_eq!(ids, vec![s1.member_id.as_str(), r.member_id.as_str()]);
    assert_eq!(
        value.members[1].assignment,
        assignment_of(&s2.member_id),
        "assignment carried over"
    );

    assert_eq!(h.state(), GroupState::Stable);
    assert_eq!(
        h.static_heartbeat(&s2.member_id, "i2", 1),
        ErrorCode::FencedInstanceId
    );
    assert_eq!(
        h.sync_now(static_sync(&s2.member_id, "i2")).error,
        ErrorCode::FencedInstanceId
    );
    let mut zombie_commit = commit_req(&s2.member_id, 1, &[("t", 0, 10)]);
    zombie_commit.group_instance_id = Some("i2".into());
    assert_eq!(
        h.commit(zombie_commit).err(),
        Some(ErrorCode::FencedInstanceId)
    );
    // Without its instance id the old id is simply unknown.
    assert_eq!(h.heartbeat(&s2.member_id, 1), ErrorCode::UnknownMemberId);

    assert_eq!(h.static_heartbeat(&r.member_id, "i2", 1), ErrorCode::None);
    let synced = h.sync_now(static_sync(&r.member_id, "i2"));
    assert_eq!(
        (synced.error, synced.assignment),
        (ErrorCode::None, assignment_of(&s2.member_id))
    );
}

#[test]
fn a_static_leader_restarting_is_told_to_skip_the_assignment() {
    let mut h = Harness::default();
    let (s1, s2) = stable_static_group(&mut h);
    let token = h.join_later(static_join_req("", "c1", "i1"));
    let r = h.joined(token).expect("answered").clone();
    assert!(r.skip_assignment);
    assert_eq!(r.leader, r.member_id, "leadership moves to the new id");
    let ids: Vec<&str> = r.members.iter().map(|m| m.member_id.as_str()).collect();
    assert_eq!(ids, vec![r.member_id.as_str(), s2.member_id.as_str()]);
    assert_eq!(r.members[0].group_instance_id.as_deref(), Some("i1"));
    assert_eq!(h.state(), GroupState::Stable);
    assert_eq!(
        h.static_heartbeat(&s1.member_id, "i1", 1),
        ErrorCode::FencedInstanceId
    );
}

#[test]
fn a_static_member_restarting_with_another_protocol_triggers_a_rebalance() {
    let mut h = Harness::default();
    let t = h.join_later(static_join_req("", "c1", "i1"));
    h.wait_for_joins(&[t]);
    let s1 = Joined::from(h.joined(t).expect("joined"));
    h.sync_all(std::slice::from_ref(&s1));

    // Same protocol preferred: no rebalance (covered above). Now it prefers another one
    // that the group can switch to, so the selected protocol would change.
    let mut req = static_join_req("", "c1", "i1");
    req.protocols = vec![
        protocol("roundrobin", Bytes::new()),
        protocol("range", Bytes::new()),
    ];
    let t = h.join_later(req);
    let r = h
        .joined(t)
        .expect("the only member rejoined: the join phase completes");
    assert_eq!(
        (r.generation_id, r.protocol_name.as_deref()),
        (2, Some("roundrobin"))
    );
    assert!(!r.skip_assignment, "a real rebalance: the leader assigns");
    assert_eq!(h.state(), GroupState::CompletingRebalance);
}

#[test]
fn a_restart_while_the_old_instance_is_parked_fences_the_parked_join() {
    let mut h = Harness::default();
    let (s1, s2) = stable_static_group(&mut h);
    let old = h.join_later(static_join_req(&s1.member_id, "c1", "i1"));
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    let new = h.join_later(static_join_req("", "c1", "i1"));
    assert_eq!(
        h.joined(old).map(|r| r.error),
        Some(ErrorCode::FencedInstanceId)
    );
    h.join_later(static_join_req(&s2.member_id, "c2", "i2"));
    let r = h
        .joined(new)
        .expect("the new instance completes the rebalance");
    assert_eq!((r.error, r.generation_id), (ErrorCode::None, 2));
    assert_eq!(r.leader, r.member_id);
}

#[test]
fn static_members_are_removed_by_instance_id_in_one_batch() {
    let mut h = Harness::default();
    let (s1, _s2) = stable_static_group(&mut h);
    let result = h.leave(vec![
        leaving("", Some("i1")),
        leaving("", Some("i2")),
        leaving("", Some("nope")),
        leaving("", None),
    ]);
    let errors: Vec<ErrorCode> = result.members.iter().map(|m| m.2).collect();
    assert_eq!(
        errors,
        vec![
            ErrorCode::None,
            ErrorCode::None,
            ErrorCode::UnknownMemberId,
            ErrorCode::UnknownMemberId
        ]
    );
    assert_eq!(h.state(), GroupState::Empty);
    let last = group_records(&h.log, GROUP)
        .pop()
        .flatten()
        .expect("the empty group is written");
    assert!(last.members.is_empty());
    assert_eq!(
        h.static_heartbeat(&s1.member_id, "i1", 1),
        ErrorCode::UnknownMemberId
    );
}

#[test]
fn leaving_with_a_stale_member_id_for_an_instance_is_fenced() {
    let mut h = Harness::default();
    let (s1, _) = stable_static_group(&mut h);
    let result = h.leave(vec![leaving("stale-id", Some("i1"))]);
    assert_eq!(result.members[0].2, ErrorCode::FencedInstanceId);
    assert!(h.member_ids().contains(&s1.member_id));
    assert_eq!(h.state(), GroupState::Stable);
}

#[test]
fn a_static_member_that_does_not_rejoin_stays_until_its_session_expires() {
    let mut h = Harness::default();
    let (s1, s2) = stable_static_group(&mut h);
    let t1 = h.join_later(static_join_req(&s1.member_id, "c1", "i1"));
    // i2 is gone (no LeaveGroup: static members do not send one) but still heartbeats
    // for a while; the join phase waits for it up to the rebalance timeout.
    h.advance(5_000);
    assert_eq!(
        h.static_heartbeat(&s2.member_id, "i2", 1),
        ErrorCode::RebalanceInProgress
    );
    h.advance(i64::from(SESSION_MS));
    assert!(
        !h.member_ids().contains(&s2.member_id),
        "expired by its session"
    );
    let r = h.joined(t1).expect("completed without i2");
    assert_eq!((r.generation_id, r.members.len()), (2, 1));
}

#[test]
fn a_static_member_kept_past_the_rebalance_timeout_must_sync_in_time() {
    let mut h = Harness::default();
    let config = CoordinatorConfig {
        max_session_timeout_ms: 3_600_000,
        ..config()
    };
    h.c = Coordinator::new(config);
    let mut long = static_join_req("", "c2", "i2");
    long.session_timeout_ms = 600_000;
    let t1 = h.join_later(static_join_req("", "c1", "i1"));
    let t2 = h.join_later(long);
    h.wait_for_joins(&[t1, t2]);
    let (s1, s2) = (
        Joined::from(h.joined(t1).expect("j")),
        Joined::from(h.joined(t2).expect("j")),
    );
    h.sync_all(&[s1.clone(), s2.clone()]);

    // s1 rejoins; s2 stays silent but its session is long: at the rebalance timeout the
    // join phase completes with s2 still a member (static members are not dropped)...
    let t = h.join_later(static_join_req(&s1.member_id, "c1", "i1"));
    h.advance(i64::from(REBALANCE_MS));
    let r = h.joined(t).expect("completed");
    assert_eq!((r.generation_id, r.members.len()), (2, 2));
    // ...and when it never syncs, the pending-sync timeout removes it.
    h.sync_later(sync_req(&s1.member_id, 2, vec![]));
    for _ in 0..10 {
        h.advance(3_000);
        h.static_heartbeat(&s1.member_id, "i1", 2);
    }
    assert_eq!(h.member_ids(), vec![s1.member_id.clone()]);
    assert_eq!(h.state(), GroupState::PreparingRebalance);
}
