//! SyncGroup and Heartbeat: assignments, and the generation, member and rebalance errors.

use crate::support::*;

#[test]
fn sync_group_checks_member_generation_and_protocol_then_hands_out_assignments() {
    let broker = start_broker();
    let group = "sync-g";
    let mut client = Client::coordinator(&broker, group);
    let first = client.call(&consumer_join(group, "", None, &["t"]), 5);
    let joined = client.call(&consumer_join(group, &first.member_id, None, &["t"]), 5);
    expect_code(&broker, joined.error_code, ErrorCode::None, "JoinGroup");
    let me = joined.member_id.clone();
    let mine = consumer_assignment(&[("t", &[0, 1, 2])]);
    let assignment = [(me.as_str(), mine.clone())];

    let answer = client.call(
        &consumer_sync(group, joined.generation_id + 1, &me, None, &assignment),
        5,
    );
    expect_code(
        &broker,
        answer.error_code,
        ErrorCode::IllegalGeneration,
        "SyncGroup with a generation ahead of the group's",
    );
    let answer = client.call(
        &consumer_sync(group, joined.generation_id, "stranger", None, &assignment),
        5,
    );
    expect_code(
        &broker,
        answer.error_code,
        ErrorCode::UnknownMemberId,
        "SyncGroup from a member the group does not have",
    );
    let mut wrong_protocol = consumer_sync(group, joined.generation_id, &me, None, &assignment);
    wrong_protocol.protocol_name = Some("roundrobin".into());
    let answer = client.call(&wrong_protocol, 5);
    expect_code(
        &broker,
        answer.error_code,
        ErrorCode::InconsistentGroupProtocol,
        "SyncGroup v5 naming a protocol other than the chosen one",
    );

    let answer = client.call(
        &consumer_sync(group, joined.generation_id, &me, None, &assignment),
        5,
    );
    expect_code(
        &broker,
        answer.error_code,
        ErrorCode::None,
        "leader's SyncGroup",
    );
    ensure!(
        &broker,
        answer.assignment[..] == mine[..],
        "the leader gets its own assignment back, byte for byte"
    );
    ensure!(
        &broker,
        answer.protocol_type.as_deref() == Some(CONSUMER_PROTOCOL_TYPE)
            && answer.protocol_name.as_deref() == Some(RANGE_ASSIGNOR),
        "SyncGroup v5 names the group's protocol: {answer:?}"
    );
    wait_for_state(&broker, group, "Stable");

    // Once Stable, a SyncGroup (here v0, no protocol fields) returns the stored assignment.
    let again = SyncGroupRequest {
        group_id: group.into(),
        generation_id: joined.generation_id,
        member_id: me.clone(),
        ..Default::default()
    };
    let answer = client.call(&again, 0);
    expect_code(
        &broker,
        answer.error_code,
        ErrorCode::None,
        "SyncGroup v0 in Stable",
    );
    ensure!(
        &broker,
        answer.assignment[..] == mine[..],
        "Stable SyncGroup returns the member's assignment"
    );
}

#[test]
fn heartbeat_reports_generation_member_and_rebalance_errors() {
    let broker = start_broker();
    create_topic(&broker, "t", 3);
    let group = "hb-g";
    let mut members = form_group(&broker, group, &[DYNAMIC_ON_T]);
    let leader = &mut members[0];
    let (id, generation) = (leader.member_id.clone(), leader.generation);

    for version in 0..=4 {
        let answer = leader
            .client
            .call(&heartbeat(group, generation, &id, None), version);
        expect_code(
            &broker,
            answer.error_code,
            ErrorCode::None,
            &format!("Heartbeat v{version} of a Stable member"),
        );
    }
    let answer = leader
        .client
        .call(&heartbeat(group, generation + 1, &id, None), 4);
    expect_code(
        &broker,
        answer.error_code,
        ErrorCode::IllegalGeneration,
        "Heartbeat with the wrong generation",
    );
    let answer = leader
        .client
        .call(&heartbeat(group, generation, "stranger", None), 4);
    expect_code(
        &broker,
        answer.error_code,
        ErrorCode::UnknownMemberId,
        "Heartbeat from an unknown member",
    );
    let answer = leader
        .client
        .call(&heartbeat("hb-nowhere", generation, &id, None), 4);
    expect_code(
        &broker,
        answer.error_code,
        ErrorCode::UnknownMemberId,
        "Heartbeat to a group that does not exist (Kafka: \"Group not found\" as UNKNOWN_MEMBER_ID)",
    );
    let answer = leader.client.call(&heartbeat("", generation, &id, None), 4);
    expect_code(
        &broker,
        answer.error_code,
        ErrorCode::InvalidGroupId,
        "Heartbeat with an empty group id",
    );

    // A newcomer (JoinGroup v3: no MEMBER_ID_REQUIRED) starts a rebalance; its join is held
    // until the existing member rejoins, so it goes on its own connection, unanswered for now.
    let mut newcomer = Client::coordinator(&broker, group);
    let held = newcomer.send(&consumer_join(group, "", None, &["t"]), 3);
    let deadline = Instant::now() + Duration::from_millis(STATE_WAIT_MS);
    loop {
        let answer = leader
            .client
            .call(&heartbeat(group, generation, &id, None), 4);
        if answer.error_code == ErrorCode::RebalanceInProgress.code() {
            break;
        }
        expect_code(
            &broker,
            answer.error_code,
            ErrorCode::None,
            "Heartbeat while the newcomer's join arrives",
        );
        ensure!(
            &broker,
            Instant::now() < deadline,
            "Heartbeat never said REBALANCE_IN_PROGRESS after a second member joined"
        );
        std::thread::sleep(Duration::from_millis(POLL_INTERVAL_MS));
    }

    let rejoin = leader
        .client
        .call(&consumer_join(group, &id, None, &["t"]), 5);
    expect_code(
        &broker,
        rejoin.error_code,
        ErrorCode::None,
        "rejoin during the rebalance",
    );
    let joined: JoinGroupResponse = newcomer.receive(held);
    expect_code(
        &broker,
        joined.error_code,
        ErrorCode::None,
        "the held JoinGroup",
    );
    ensure!(
        &broker,
        rejoin.generation_id == generation + 1 && joined.generation_id == generation + 1,
        "both members get the next generation: {} and {}",
        rejoin.generation_id,
        joined.generation_id
    );
    ensure!(
        &broker,
        rejoin.leader == id && joined.leader == id,
        "the existing leader keeps leading: {:?}",
        rejoin.leader
    );
    ensure!(
        &broker,
        rejoin.members.len() == 2,
        "the leader sees both members: {:?}",
        rejoin.members
    );
    ensure!(
        &broker,
        joined.members.is_empty(),
        "a follower gets no member list: {:?}",
        joined.members
    );
    // Between join and sync (CompletingRebalance) a heartbeat at the new generation is fine.
    let answer = leader
        .client
        .call(&heartbeat(group, generation + 1, &id, None), 4);
    expect_code(
        &broker,
        answer.error_code,
        ErrorCode::None,
        "Heartbeat in CompletingRebalance",
    );
    // ... but a commit is not: the member must sync first (ClassicGroup.validateOffsetCommit).
    let commit = offset_commit(group, generation + 1, &id, None, &[("t", 0, 1, None)]);
    for (_, _, code) in commit_errors(&leader.client.call(&commit, 8)) {
        expect_code(
            &broker,
            code,
            ErrorCode::RebalanceInProgress,
            "OffsetCommit in CompletingRebalance",
        );
    }
}
