//! JoinGroup and SyncGroup: validation, the initial delay, the protocol vote, leader
//! election, and the order in which the sync phase writes and answers.

mod common;

use bytes::Bytes;
use common::*;
use spate_coordinator::records::Record;
use spate_coordinator::*;

#[test]
fn join_is_validated_in_kafkas_order() {
    let mut h = Harness::default();

    let mut req = join_req("m", "c1");
    req.group_id = String::new();
    let r = h.join_now(req);
    assert_eq!(
        (r.error, r.member_id.as_str()),
        (ErrorCode::InvalidGroupId, "m")
    );

    for session_timeout_ms in [5_999, 1_800_001, -1] {
        let mut req = join_req("", "c1");
        req.session_timeout_ms = session_timeout_ms;
        assert_eq!(h.join_now(req).error, ErrorCode::InvalidSessionTimeout);
    }

    let mut no_type = join_req("", "c1");
    no_type.protocol_type = String::new();
    assert_eq!(
        h.join_now(no_type).error,
        ErrorCode::InconsistentGroupProtocol
    );
    let mut no_protocols = join_req("", "c1");
    no_protocols.protocols.clear();
    assert_eq!(
        h.join_now(no_protocols).error,
        ErrorCode::InconsistentGroupProtocol
    );
    assert_eq!(
        h.state(),
        GroupState::Dead,
        "a refused join leaves no group behind"
    );

    let r = h.join_now(join_req("made-up", "c1"));
    assert_eq!(
        (r.error, r.member_id.as_str()),
        (ErrorCode::UnknownMemberId, "made-up")
    );

    h.join_later(join_req("", "c1"));
    let mut other_type = join_req("", "c2");
    other_type.protocol_type = "connect".into();
    assert_eq!(
        h.join_now(other_type).error,
        ErrorCode::InconsistentGroupProtocol
    );
    let mut other_protocol = join_req("", "c2");
    other_protocol.protocols = vec![protocol("roundrobin", Bytes::new())];
    assert_eq!(
        h.join_now(other_protocol).error,
        ErrorCode::InconsistentGroupProtocol
    );
    assert_eq!(
        h.join_now(join_req("made-up", "c2")).error,
        ErrorCode::UnknownMemberId
    );
    assert_eq!(h.member_ids().len(), 1);
}

#[test]
fn group_max_size_refuses_new_members_but_not_existing_ones() {
    let mut h = Harness::new(CoordinatorConfig {
        max_group_size: 2,
        ..config()
    });
    let joined = h.stable_group(&["a", "b"]);
    let r = h.join_now(join_req("", "c"));
    assert_eq!(
        (r.error, r.member_id.as_str()),
        (ErrorCode::GroupMaxSizeReached, "")
    );
    // A member already in the group may rejoin (here: the leader, forcing a rebalance).
    let leader = joined.iter().find(|j| j.is_leader()).expect("leader");
    h.join_later(join_req(&leader.member_id, "a"));
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    assert_eq!(
        h.join_now(join_req("", "c")).error,
        ErrorCode::GroupMaxSizeReached
    );
    assert_eq!(h.member_ids().len(), 2);
}

#[test]
fn member_id_required_then_rejoin_with_the_given_id_is_accepted() {
    let mut h = Harness::default();
    let mut first = join_req("", "c1");
    first.require_known_member_id = true;
    let r = h.join_now(first.clone());
    assert_eq!(r.error, ErrorCode::MemberIdRequired);
    assert!(r.member_id.starts_with("c1-"), "{}", r.member_id);
    assert_eq!(h.state(), GroupState::Empty);
    assert!(
        h.member_ids().is_empty(),
        "a pending member is not a member yet"
    );

    let token = h.join_later(JoinGroup {
        member_id: r.member_id.clone(),
        ..first
    });
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    h.advance(i64::from(DELAY_MS));
    let joined = h.joined(token).expect("join completed");
    assert_eq!(joined.error, ErrorCode::None);
    assert_eq!(joined.member_id, r.member_id);
    assert_eq!(joined.leader, r.member_id);
    assert_eq!(joined.generation_id, 1);
}

#[test]
fn unused_pending_member_id_holds_the_join_phase_until_its_session_expires() {
    let mut h = Harness::default();
    let joined = h.stable_group(&["a"]);
    let a = &joined[0];

    let mut b = join_req("", "b");
    b.require_known_member_id = true;
    let pending = h.join_now(b.clone());
    assert_eq!(pending.error, ErrorCode::MemberIdRequired);

    // The leader rejoins: a rebalance that also waits for the pending member.
    let token = h.join_later(join_req(&a.member_id, "a"));
    h.advance(i64::from(SESSION_MS) - 1);
    assert!(h.joined(token).is_none());
    h.advance(1);
    let r = h
        .joined(token)
        .expect("completes once the pending id expired");
    assert_eq!((r.error, r.generation_id), (ErrorCode::None, 2));
    assert_eq!(r.members.len(), 1);

    let late = h.join_now(JoinGroup {
        member_id: pending.member_id,
        ..b
    });
    assert_eq!(late.error, ErrorCode::UnknownMemberId);
}

#[test]
fn members_joining_together_share_one_rebalance_after_the_initial_delay() {
    let mut h = Harness::default();
    let t0 = h.now;
    let a = h.join_later(join_req("", "a"));
    h.advance(1_000);
    let b = h.join_later(join_req("", "b"));
    h.advance(1_000);
    let c = h.join_later(join_req("", "c"));
    // Members kept arriving during the first delay: it is extended once, then completes.
    assert_eq!(h.advance_to_next_deadline() - t0, i64::from(DELAY_MS));
    assert!(h.joins.is_empty());
    h.advance(1_000);
    let d = h.join_later(join_req("", "d"));
    assert_eq!(h.advance_to_next_deadline() - t0, 2 * i64::from(DELAY_MS));
    assert!(
        h.joins.is_empty(),
        "d arrived during the extension: one more delay"
    );
    assert_eq!(h.advance_to_next_deadline() - t0, 3 * i64::from(DELAY_MS));

    let results: Vec<&JoinResult> = [a, b, c, d]
        .iter()
        .map(|t| h.joined(*t).expect("joined"))
        .collect();
    assert!(
        results
            .iter()
            .all(|r| r.error == ErrorCode::None && r.generation_id == 1)
    );
    let leader = &results[0].member_id;
    assert!(
        results.iter().all(|r| &r.leader == leader),
        "the first member leads"
    );
    assert_eq!(results[0].members.len(), 4);
    assert!(results[1..].iter().all(|r| r.members.is_empty()));
    assert_eq!(h.state(), GroupState::CompletingRebalance);
}

#[test]
fn initial_delay_extensions_stop_at_the_rebalance_timeout() {
    let mut h = Harness::default();
    let t0 = h.now;
    let mut tokens = Vec::new();
    for i in 0..10 {
        let mut req = join_req("", &format!("c{i}"));
        req.rebalance_timeout_ms = 5_000;
        tokens.push(h.join_later(req));
        h.advance(1_000);
        if tokens.iter().all(|t| h.joined(*t).is_some()) {
            break;
        }
    }
    assert_eq!(
        h.now - t0,
        5_000,
        "completed at the rebalance timeout despite new members"
    );
    assert!(
        tokens
            .iter()
            .all(|t| h.joined(*t).is_some_and(|r| r.generation_id == 1))
    );
}

#[test]
fn protocol_is_chosen_by_vote_among_protocols_all_members_support() {
    let mut h = Harness::default();
    let with = |client: &str, names: &[&str]| JoinGroup {
        protocols: names
            .iter()
            .map(|n| protocol(n, Bytes::from(format!("{client}/{n}"))))
            .collect(),
        ..join_req("", client)
    };
    let a = h.join_later(with("a", &["range", "roundrobin", "sticky"]));
    let b = h.join_later(with("b", &["roundrobin", "range"]));
    let c = h.join_later(with("c", &["range", "roundrobin"]));
    h.wait_for_joins(&[a, b, c]);
    let leader = h.joined(a).expect("a").clone();
    assert_eq!(
        leader.protocol_name.as_deref(),
        Some("range"),
        "2 votes to 1; sticky is not common"
    );
    assert_eq!(leader.protocol_type.as_deref(), Some("consumer"));
    let metadata: Vec<&[u8]> = leader.members.iter().map(|m| m.metadata.as_ref()).collect();
    assert_eq!(metadata, vec![&b"a/range"[..], b"b/range", b"c/range"]);
}

#[test]
fn sync_parks_followers_until_the_leader_and_answers_after_the_group_is_written() {
    let mut h = Harness::default();
    let ta = h.join_later(join_req("", "a"));
    let tb = h.join_later(join_req("", "b"));
    let tc = h.join_later(join_req("", "c"));
    h.wait_for_joins(&[ta, tb, tc]);
    let [a, b, c] = [ta, tb, tc].map(|t| Joined::from(h.joined(t).expect("joined")));
    assert!(a.is_leader());

    let sb = h.sync_later(sync_req(&b.member_id, 1, vec![]));
    assert!(h.syncs.is_empty(), "a follower waits for the leader");
    assert_eq!(h.heartbeat(&b.member_id, 1), ErrorCode::None);
    h.events.clear();
    // The leader leaves c out: c gets an empty assignment.
    let sa = h.sync_later(sync_req(
        &a.member_id,
        1,
        vec![
            (a.member_id.clone(), assignment_of(&a.member_id)),
            (b.member_id.clone(), assignment_of(&b.member_id)),
            ("stranger".into(), Bytes::from_static(b"ignored")),
        ],
    ));

    assert_eq!(h.events.len(), 3, "{:?}", h.events);
    let Event::Append(records) = &h.events[0] else {
        panic!(
            "the group is written before anyone is answered: {:?}",
            h.events
        );
    };
    assert_eq!(&h.events[1..], &[Event::Sync(sa), Event::Sync(sb)]);
    let [
        Record::Group {
            group,
            value: Some(value),
        },
    ] = records.as_slice()
    else {
        panic!("one group record: {records:?}");
    };
    assert_eq!(group, GROUP);
    assert_eq!(
        (value.generation, value.protocol.as_deref()),
        (1, Some("range"))
    );
    assert_eq!(value.leader.as_deref(), Some(a.member_id.as_str()));
    let stored: Vec<(&str, &[u8], &[u8])> = value
        .members
        .iter()
        .map(|m| {
            (
                m.member_id.as_str(),
                m.subscription.as_ref(),
                m.assignment.as_ref(),
            )
        })
        .collect();
    assert_eq!(
        stored,
        vec![
            (
                a.member_id.as_str(),
                metadata_of("a").as_ref(),
                assignment_of(&a.member_id).as_ref()
            ),
            (
                b.member_id.as_str(),
                metadata_of("b").as_ref(),
                assignment_of(&b.member_id).as_ref()
            ),
            (c.member_id.as_str(), metadata_of("c").as_ref(), &b""[..]),
        ]
    );

    let answer = &h.syncs[&sb];
    assert_eq!(answer.error, ErrorCode::None);
    assert_eq!(answer.assignment, assignment_of(&b.member_id));
    assert_eq!(answer.protocol_name.as_deref(), Some("range"));
    assert_eq!(h.syncs[&sa].assignment, assignment_of(&a.member_id));
    assert_eq!(h.state(), GroupState::Stable);

    // Stable: a late follower gets its (empty) assignment at once.
    let late = h.sync_now(sync_req(&c.member_id, 1, vec![]));
    assert_eq!(
        (late.error, late.assignment),
        (ErrorCode::None, Bytes::new())
    );

    let described = h.c.describe_group(GROUP);
    assert_eq!(described.protocol, "range");
    assert_eq!(described.members[1].metadata, metadata_of("b"));
    assert_eq!(described.members[1].assignment, assignment_of(&b.member_id));
}

#[test]
fn sync_errors() {
    let mut h = Harness::default();
    let unknown_group = h.sync_now(sync_req("x", 1, vec![]));
    assert_eq!(unknown_group.error, ErrorCode::UnknownMemberId);

    let t = h.join_later(join_req("", "a"));
    let tb = h.join_later(join_req("", "b"));
    assert_eq!(
        h.sync_now(sync_req("x", 0, vec![])).error,
        ErrorCode::UnknownMemberId
    );
    h.wait_for_joins(&[t, tb]);
    let a = Joined::from(h.joined(t).expect("joined"));
    assert_eq!(
        h.sync_now(sync_req("nobody", 1, vec![])).error,
        ErrorCode::UnknownMemberId
    );
    assert_eq!(
        h.sync_now(sync_req(&a.member_id, 2, vec![])).error,
        ErrorCode::IllegalGeneration
    );
    let mut wrong_name = sync_req(&a.member_id, 1, vec![]);
    wrong_name.protocol_name = Some("roundrobin".into());
    assert_eq!(
        h.sync_now(wrong_name).error,
        ErrorCode::InconsistentGroupProtocol
    );
    let mut wrong_type = sync_req(&a.member_id, 1, vec![]);
    wrong_type.protocol_type = Some("connect".into());
    assert_eq!(
        h.sync_now(wrong_type).error,
        ErrorCode::InconsistentGroupProtocol
    );
    // v0–v4 name no protocol: nothing to disagree with.
    let b = Joined::from(h.joined(tb).expect("joined"));
    assert!(a.is_leader() && !b.is_leader());
    let mut unnamed = sync_req(&b.member_id, 1, vec![]);
    (unnamed.protocol_type, unnamed.protocol_name) = (None, None);
    let parked = h.sync_later(unnamed);

    // A new member starts a rebalance: the follower's parked sync is told to rejoin.
    h.join_later(join_req("", "c"));
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    assert_eq!(h.syncs[&parked].error, ErrorCode::RebalanceInProgress);
    assert_eq!(
        h.sync_now(sync_req(&a.member_id, 1, vec![])).error,
        ErrorCode::RebalanceInProgress
    );
}

#[test]
fn follower_rejoining_a_stable_group_unchanged_gets_the_current_generation() {
    let mut h = Harness::default();
    let joined = h.stable_group(&["a", "b"]);
    let b = joined.iter().find(|j| !j.is_leader()).expect("follower");
    let r = h.join_now(join_req(&b.member_id, "b"));
    assert_eq!((r.error, r.generation_id), (ErrorCode::None, 1));
    assert!(r.members.is_empty() && !r.skip_assignment);
    assert_eq!(r.leader, joined[0].member_id);
    assert_eq!(h.state(), GroupState::Stable);
}

#[test]
fn rejoining_with_new_metadata_or_as_leader_starts_a_rebalance() {
    for rejoin_as_leader in [false, true] {
        let mut h = Harness::default();
        let joined = h.stable_group(&["a", "b"]);
        let (leader, follower) = (&joined[0], &joined[1]);
        let first = if rejoin_as_leader {
            h.join_later(join_req(&leader.member_id, "a"))
        } else {
            // KIP-429: a cooperative member rejoins with its revoked partitions gone.
            let mut req = join_req(&follower.member_id, "b");
            req.protocols = vec![protocol("range", Bytes::from_static(b"changed"))];
            h.join_later(req)
        };
        assert_eq!(h.state(), GroupState::PreparingRebalance);
        assert_eq!(
            h.heartbeat(&leader.member_id, 1),
            ErrorCode::RebalanceInProgress
        );
        let other = if rejoin_as_leader {
            h.join_later(join_req(&follower.member_id, "b"))
        } else {
            h.join_later(join_req(&leader.member_id, "a"))
        };
        // Everyone rejoined: no need to wait for the rebalance timeout.
        let (x, y) = (
            h.joined(first).expect("done"),
            h.joined(other).expect("done"),
        );
        assert_eq!((x.generation_id, y.generation_id), (2, 2));
        assert_eq!(h.state(), GroupState::CompletingRebalance);
    }
}

#[test]
fn join_repeated_while_completing_rebalance_gets_the_same_answer() {
    let mut h = Harness::default();
    let ta = h.join_later(join_req("", "a"));
    let tb = h.join_later(join_req("", "b"));
    h.wait_for_joins(&[ta, tb]);
    let first = h.joined(ta).expect("joined").clone();
    let again = h.join_now(join_req(&first.member_id, "a"));
    assert_eq!(again, first, "a lost JoinGroup answer is repeated");

    let b = Joined::from(h.joined(tb).expect("joined"));
    let parked = h.sync_later(sync_req(&b.member_id, 1, vec![]));
    let mut changed = join_req(&first.member_id, "a");
    changed.protocols = vec![protocol("range", Bytes::from_static(b"new"))];
    h.join_later(changed);
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    assert_eq!(h.syncs[&parked].error, ErrorCode::RebalanceInProgress);
}

#[test]
fn a_superseded_join_is_answered_so_no_request_hangs() {
    let mut h = Harness::default();
    let joined = h.stable_group(&["a", "b"]);
    let leader = &joined[0];
    let first = h.join_later(join_req(&leader.member_id, "a"));
    let second = h.join_later(join_req(&leader.member_id, "a"));
    assert_eq!(
        h.joined(first).map(|r| r.error),
        Some(ErrorCode::RebalanceInProgress)
    );
    assert!(h.joined(second).is_none());
    h.join_later(join_req(&joined[1].member_id, "b"));
    assert_eq!(h.joined(second).map(|r| r.generation_id), Some(2));
}

#[test]
fn heartbeat_answers_per_state() {
    let mut h = Harness::default();
    assert_eq!(h.heartbeat("x", 0), ErrorCode::UnknownMemberId);
    let ta = h.join_later(join_req("", "a"));
    assert_eq!(h.heartbeat("x", 0), ErrorCode::UnknownMemberId);
    h.wait_for_joins(&[ta]);
    let a = Joined::from(h.joined(ta).expect("joined"));
    assert_eq!(
        h.heartbeat(&a.member_id, 1),
        ErrorCode::None,
        "CompletingRebalance"
    );
    assert_eq!(h.heartbeat(&a.member_id, 0), ErrorCode::IllegalGeneration);
    assert_eq!(h.heartbeat("nobody", 1), ErrorCode::UnknownMemberId);
    h.sync_later(sync_req(&a.member_id, 1, vec![]));
    assert_eq!(h.heartbeat(&a.member_id, 1), ErrorCode::None, "Stable");
    h.join_later(join_req("", "b"));
    assert_eq!(h.heartbeat(&a.member_id, 1), ErrorCode::RebalanceInProgress);
}

#[test]
fn leave_rebalances_and_the_last_member_leaving_empties_the_group() {
    let mut h = Harness::default();
    let joined = h.stable_group(&["a", "b"]);
    let (a, b) = (&joined[0], &joined[1]);

    let result = h.leave(vec![leaving(&b.member_id, None), leaving("nobody", None)]);
    assert_eq!(result.error, ErrorCode::None);
    let errors: Vec<ErrorCode> = result.members.iter().map(|m| m.2).collect();
    assert_eq!(errors, vec![ErrorCode::None, ErrorCode::UnknownMemberId]);
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    let t = h.join_later(join_req(&a.member_id, "a"));
    assert_eq!(
        h.joined(t).map(|r| (r.generation_id, r.members.len())),
        Some((2, 1))
    );

    h.log.clear();
    let result = h.leave(vec![leaving(&a.member_id, None)]);
    assert_eq!(result.members[0].2, ErrorCode::None);
    assert_eq!(h.state(), GroupState::Empty);
    let records = group_records(&h.log, GROUP);
    let [Some(empty)] = records.as_slice() else {
        panic!("the empty group is written: {records:?}");
    };
    assert_eq!(
        (
            empty.generation,
            empty.members.len(),
            empty.protocol.clone()
        ),
        (3, 0, None)
    );
    assert_eq!(empty.protocol_type, "consumer");
    assert_eq!(empty.current_state_timestamp_ms, h.now);
}

#[test]
fn leave_from_an_unknown_group_answers_each_member() {
    let mut h = Harness::default();
    let result = h.leave(vec![leaving("m1", None), leaving("", Some("i1"))]);
    assert_eq!(result.error, ErrorCode::None);
    assert_eq!(
        result.members,
        vec![
            ("m1".to_owned(), None, ErrorCode::UnknownMemberId),
            (
                String::new(),
                Some("i1".to_owned()),
                ErrorCode::UnknownMemberId
            ),
        ]
    );
}

#[test]
fn heartbeat_with_an_empty_group_id_is_invalid_group_id() {
    let mut coordinator =
        spate_coordinator::Coordinator::new(spate_coordinator::CoordinatorConfig::default());
    let error = coordinator.heartbeat(
        1,
        spate_coordinator::Heartbeat {
            group_id: String::new(),
            member_id: "m".into(),
            group_instance_id: None,
            generation_id: 1,
        },
    );
    assert_eq!(error, spate_coordinator::ErrorCode::InvalidGroupId);
}
