//! JoinGroup: member ids, first generations, and every refusal a client can meet.

use crate::support::*;

#[test]
fn join_group_hands_out_member_ids_and_forms_generation_one_at_every_version() {
    let broker = start_broker();
    let subscription = consumer_subscription(&["t"]);
    for version in 0..=9 {
        let group = format!("join-v{version}");
        let mut client = Client::coordinator(&broker, &group);
        let mut request = consumer_join(&group, "", None, &["t"]);
        if version == 0 {
            request.rebalance_timeout_ms = -1; // not on the wire before v1
        }
        let mut answer = client.call(&request, version);
        if version >= 4 {
            // KIP-394: a v4+ dynamic member must come back with the id it is handed.
            expect_code(
                &broker,
                answer.error_code,
                ErrorCode::MemberIdRequired,
                &format!("JoinGroup v{version} with no member id"),
            );
            ensure!(
                &broker,
                !answer.member_id.is_empty(),
                "v{version}: MEMBER_ID_REQUIRED came without a member id"
            );
            request.member_id = answer.member_id.clone();
            answer = client.call(&request, version);
        }
        let what = format!("JoinGroup v{version}");
        expect_code(&broker, answer.error_code, ErrorCode::None, &what);
        ensure!(
            &broker,
            answer.generation_id == 1,
            "{what}: a new group's first generation is 1, got {}",
            answer.generation_id
        );
        ensure!(
            &broker,
            !answer.member_id.is_empty(),
            "{what}: no member id"
        );
        if version >= 4 {
            ensure!(
                &broker,
                answer.member_id == request.member_id,
                "{what}: member id changed on rejoin"
            );
        }
        ensure!(
            &broker,
            answer.leader == answer.member_id,
            "{what}: the only member leads; leader {:?}, me {:?}",
            answer.leader,
            answer.member_id
        );
        ensure!(
            &broker,
            answer.protocol_name.as_deref() == Some(RANGE_ASSIGNOR),
            "{what}: protocol {:?}",
            answer.protocol_name
        );
        if version >= 7 {
            ensure!(
                &broker,
                answer.protocol_type.as_deref() == Some(CONSUMER_PROTOCOL_TYPE),
                "{what}: protocol type {:?}",
                answer.protocol_type
            );
        }
        ensure!(
            &broker,
            answer.members.len() == 1
                && answer.members[0].member_id == answer.member_id
                && answer.members[0].metadata[..] == subscription[..],
            "{what}: the leader gets every member with its metadata, byte for byte: {:?}",
            answer.members
        );
    }
}

#[test]
fn join_group_refuses_bad_session_timeouts_protocols_members_and_group_ids() {
    let broker = start_broker();
    let mut client = Client::coordinator(&broker, "bad-join");

    for (timeout, expected) in [
        (5_999, ErrorCode::InvalidSessionTimeout),
        (1_800_001, ErrorCode::InvalidSessionTimeout),
        (6_000, ErrorCode::MemberIdRequired),
        (1_800_000, ErrorCode::MemberIdRequired),
    ] {
        let mut request = consumer_join("bad-join-timeouts", "", None, &["t"]);
        request.session_timeout_ms = timeout;
        let answer = client.call(&request, 5);
        expect_code(
            &broker,
            answer.error_code,
            expected,
            &format!("session timeout {timeout} ms against [6000, 1800000]"),
        );
    }

    let mut no_protocols = consumer_join("bad-join-protocols", "", None, &["t"]);
    no_protocols.protocols.clear();
    let answer = client.call(&no_protocols, 5);
    expect_code(
        &broker,
        answer.error_code,
        ErrorCode::InconsistentGroupProtocol,
        "first member with an empty protocol list",
    );
    let mut no_type = consumer_join("bad-join-protocols", "", None, &["t"]);
    no_type.protocol_type.clear();
    let answer = client.call(&no_type, 5);
    expect_code(
        &broker,
        answer.error_code,
        ErrorCode::InconsistentGroupProtocol,
        "first member with an empty protocol type",
    );

    let members = form_group(&broker, "bad-join-live", &[DYNAMIC_ON_T]);
    let mut other_type = consumer_join("bad-join-live", "", None, &["t"]);
    other_type.protocol_type = "connect".into();
    let answer = client.call(&other_type, 5);
    expect_code(
        &broker,
        answer.error_code,
        ErrorCode::InconsistentGroupProtocol,
        "newcomer with another protocol type",
    );
    let mut other_assignor = consumer_join("bad-join-live", "", None, &["t"]);
    other_assignor.protocols[0].name = "roundrobin".into();
    let answer = client.call(&other_assignor, 5);
    expect_code(
        &broker,
        answer.error_code,
        ErrorCode::InconsistentGroupProtocol,
        "newcomer sharing no protocol with the group",
    );

    let answer = client.call(
        &consumer_join("bad-join-live", "never-handed-out", None, &["t"]),
        5,
    );
    expect_code(
        &broker,
        answer.error_code,
        ErrorCode::UnknownMemberId,
        "JoinGroup with a member id the group never gave",
    );
    let answer = client.call(
        &consumer_join("bad-join-nowhere", "never-handed-out", None, &["t"]),
        5,
    );
    expect_code(
        &broker,
        answer.error_code,
        ErrorCode::UnknownMemberId,
        "JoinGroup with a member id to a group that does not exist",
    );

    for version in [0, 5, 9] {
        let mut request = consumer_join("", "", None, &["t"]);
        if version == 0 {
            request.rebalance_timeout_ms = -1;
        }
        let answer = client.call(&request, version);
        expect_code(
            &broker,
            answer.error_code,
            ErrorCode::InvalidGroupId,
            &format!("JoinGroup v{version} with an empty group id"),
        );
    }

    // None of the refused joins disturbed the live group.
    let described = describe_group(&mut client.connection, "bad-join-live").unwrap();
    ensure!(
        &broker,
        described.group_state == "Stable"
            && described.members.len() == 1
            && described.members[0].member_id == members[0].member_id,
        "refused joins changed the group: {described:?}"
    );
}
