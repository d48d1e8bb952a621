//! Static membership (KIP-345) and LeaveGroup, single and batched.

use crate::support::*;

#[test]
fn static_member_rejoining_takes_over_without_a_rebalance_and_fences_the_old_id() {
    let broker = start_broker();
    let group = "static-g";
    create_topic(&broker, "t", 3);
    let members = form_group(
        &broker,
        group,
        &[Joiner {
            instance: Some("inst-1"),
            topics: &["t"],
        }],
    );
    let old = &members[0];
    ensure!(
        &broker,
        old.generation == 1,
        "static member's first generation {}",
        old.generation
    );

    // The same instance restarts (twice): empty member id, same group.instance.id, no
    // MEMBER_ID_REQUIRED. It was the leader, so Kafka tells it so, but a client before JoinGroup
    // v9 gets no member list (it must not reassign), while v9+ gets the list with
    // skip_assignment set (KIP-814).
    let mut restarted = Client::coordinator(&broker, group);
    let mut previous_id = old.member_id.clone();
    for version in [5, 9] {
        let what = format!("static rejoin at JoinGroup v{version} with an empty member id");
        let answer = restarted.call(&consumer_join(group, "", Some("inst-1"), &["t"]), version);
        expect_code(&broker, answer.error_code, ErrorCode::None, &what);
        ensure!(
            &broker,
            !answer.member_id.is_empty() && answer.member_id != previous_id,
            "{what}: the static member gets a new member id, got {:?}",
            answer.member_id
        );
        ensure!(
            &broker,
            answer.generation_id == old.generation,
            "{what}: KIP-345, a static rejoin with unchanged metadata does not rebalance; \
             generation {} became {}",
            old.generation,
            answer.generation_id
        );
        ensure!(
            &broker,
            answer.leader == answer.member_id,
            "{what}: the replaced leader's leadership passes to its new member id; leader {:?}",
            answer.leader
        );
        let listed: Vec<&str> = answer
            .members
            .iter()
            .map(|m| m.member_id.as_str())
            .collect();
        if version >= 9 {
            ensure!(
                &broker,
                answer.skip_assignment && listed == [answer.member_id.as_str()],
                "{what}: v9+ hands the leader the members with skip_assignment set: {answer:?}"
            );
        } else {
            ensure!(
                &broker,
                !answer.skip_assignment && listed.is_empty(),
                "{what}: before v9 the leader gets no member list: {answer:?}"
            );
        }
        previous_id = answer.member_id.clone();
    }
    let new_id = previous_id;
    let described = describe_group(&mut restarted.connection, group).unwrap();
    ensure!(
        &broker,
        described.group_state == "Stable"
            && described.members.len() == 1
            && described.members[0].member_id == new_id
            && described.members[0].group_instance_id.as_deref() == Some("inst-1"),
        "the new id replaced the old one in a Stable group: {described:?}"
    );

    let answer = restarted.call(
        &heartbeat(group, old.generation, &old.member_id, Some("inst-1")),
        4,
    );
    expect_code(
        &broker,
        answer.error_code,
        ErrorCode::FencedInstanceId,
        "Heartbeat from the replaced member id",
    );
    let commit = offset_commit(
        group,
        old.generation,
        &old.member_id,
        Some("inst-1"),
        &[("t", 0, 5, None)],
    );
    let answer = restarted.call(&commit, 7);
    for (topic, partition, code) in commit_errors(&answer) {
        expect_code(
            &broker,
            code,
            ErrorCode::FencedInstanceId,
            &format!("OffsetCommit v7 from the replaced member id ({topic}-{partition})"),
        );
    }
    let answer = restarted.call(
        &consumer_join(group, &old.member_id, Some("inst-1"), &["t"]),
        5,
    );
    expect_code(
        &broker,
        answer.error_code,
        ErrorCode::FencedInstanceId,
        "JoinGroup from the replaced member id",
    );

    let answer = restarted.call(
        &heartbeat(group, old.generation, &new_id, Some("inst-1")),
        4,
    );
    expect_code(
        &broker,
        answer.error_code,
        ErrorCode::None,
        "Heartbeat from the new member id",
    );
    let answer = restarted.call(
        &consumer_sync(group, old.generation, &new_id, Some("inst-1"), &[]),
        5,
    );
    expect_code(
        &broker,
        answer.error_code,
        ErrorCode::None,
        "SyncGroup from the new member id",
    );
    ensure!(
        &broker,
        answer.assignment[..] == old.assignment[..],
        "the new member id inherits the static member's assignment"
    );
    let commit = offset_commit(
        group,
        old.generation,
        &new_id,
        Some("inst-1"),
        &[("t", 0, 5, None)],
    );
    let answer = restarted.call(&commit, 7);
    for (topic, partition, code) in commit_errors(&answer) {
        expect_code(
            &broker,
            code,
            ErrorCode::None,
            &format!("OffsetCommit v7 from the new member id ({topic}-{partition})"),
        );
    }
}

#[test]
fn leave_group_batches_by_member_and_instance_id_and_empties_the_group() {
    let broker = start_broker();
    let group = "leave-g";
    let members = form_group(
        &broker,
        group,
        &[
            DYNAMIC_ON_T,
            Joiner {
                instance: Some("leave-inst"),
                topics: &["t"],
            },
        ],
    );
    let dynamic_id = members[0].member_id.clone();
    let mut client = Client::coordinator(&broker, group);
    let identity = |member_id: &str, instance: Option<&str>| MemberIdentity {
        member_id: member_id.into(),
        group_instance_id: instance.map(str::to_owned),
        reason: Some("test leaves".into()),
        ..Default::default()
    };
    let request = LeaveGroupRequest {
        group_id: group.into(),
        members: vec![
            identity(&dynamic_id, None),
            identity("", Some("leave-inst")),
            identity("ghost-member", None),
            identity("", Some("ghost-instance")),
        ],
        ..Default::default()
    };
    let answer = client.call(&request, 5);
    expect_code(
        &broker,
        answer.error_code,
        ErrorCode::None,
        "LeaveGroup v5 top-level error (member errors are per member from v3)",
    );
    let codes: Vec<i16> = answer.members.iter().map(|m| m.error_code).collect();
    let expected = [
        ErrorCode::None,
        ErrorCode::None,
        ErrorCode::UnknownMemberId,
        ErrorCode::UnknownMemberId,
    ];
    ensure!(
        &broker,
        codes == expected.map(ErrorCode::code),
        "per-member LeaveGroup errors: by member id, by instance id, unknown member, unknown \
         instance; Kafka answers {expected:?}, got {:?}",
        codes.iter().map(|c| code_name(*c)).collect::<Vec<_>>()
    );
    ensure!(
        &broker,
        answer.members[1].group_instance_id.as_deref() == Some("leave-inst")
            && answer.members[3].group_instance_id.as_deref() == Some("ghost-instance"),
        "each member's answer echoes its instance id: {:?}",
        answer.members
    );
    wait_for_state(&broker, group, "Empty");
    let described = describe_group(&mut client.connection, group).unwrap();
    ensure!(
        &broker,
        described.members.is_empty(),
        "an Empty group has no members: {described:?}"
    );

    // v0–v2: one member, its error at the top level.
    for version in 0..=2 {
        let request = LeaveGroupRequest {
            group_id: group.into(),
            member_id: "ghost-member".into(),
            ..Default::default()
        };
        let answer = client.call(&request, version);
        expect_code(
            &broker,
            answer.error_code,
            ErrorCode::UnknownMemberId,
            &format!("LeaveGroup v{version} of an unknown member"),
        );
    }
}
