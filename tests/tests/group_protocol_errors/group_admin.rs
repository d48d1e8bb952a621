//! The admin side: ListGroups filters, DescribeGroups, DeleteGroups and OffsetDelete.

use crate::support::*;

fn listed_groups(
    client: &mut Client<'_>,
    version: i16,
    states: &[&str],
    types: &[&str],
) -> Vec<(String, String, String, String)> {
    let request = ListGroupsRequest {
        states_filter: states.iter().map(|s| (*s).to_owned()).collect(),
        types_filter: types.iter().map(|s| (*s).to_owned()).collect(),
        ..Default::default()
    };
    let answer = client.call(&request, version);
    expect_code(
        client.broker,
        answer.error_code,
        ErrorCode::None,
        &format!("ListGroups v{version}"),
    );
    let mut groups: Vec<_> = answer
        .groups
        .into_iter()
        .map(|g| (g.group_id, g.protocol_type, g.group_state, g.group_type))
        .collect();
    groups.sort();
    groups
}

#[test]
fn list_describe_and_delete_groups_follow_kafka_states_and_errors() {
    let broker = start_broker();
    create_topic(&broker, "t", 3);
    let members = form_group(&broker, "stable-g", &[DYNAMIC_ON_T]);
    let mut client = Client::coordinator(&broker, "simple-g");
    for (_, _, code) in commit_errors(&client.call(
        &offset_commit("simple-g", -1, "", None, &[("t", 0, 7, None)]),
        8,
    )) {
        expect_code(&broker, code, ErrorCode::None, "simple commit");
    }

    let all = listed_groups(&mut client, 0, &[], &[]);
    let names: Vec<(&str, &str)> = all.iter().map(|g| (g.0.as_str(), g.1.as_str())).collect();
    ensure!(
        &broker,
        names == [("simple-g", ""), ("stable-g", CONSUMER_PROTOCOL_TYPE)],
        "ListGroups v0 lists every group with its protocol type (\"\" for a commit-only group): {names:?}"
    );
    let stable = listed_groups(&mut client, 4, &["Stable"], &[]);
    ensure!(
        &broker,
        stable.len() == 1 && stable[0].0 == "stable-g" && stable[0].2 == "Stable",
        "ListGroups v4 states filter Stable: {stable:?}"
    );
    let empty = listed_groups(&mut client, 4, &["Empty"], &[]);
    ensure!(
        &broker,
        empty.len() == 1 && empty[0].0 == "simple-g" && empty[0].2 == "Empty",
        "ListGroups v4 states filter Empty: {empty:?}"
    );
    let both = listed_groups(&mut client, 4, &["Empty", "Stable"], &[]);
    ensure!(
        &broker,
        both.len() == 2,
        "ListGroups v4 with two states: {both:?}"
    );
    let classic = listed_groups(&mut client, 5, &[], &["classic"]);
    ensure!(
        &broker,
        classic.len() == 2 && classic.iter().all(|g| g.3 == "classic"),
        "ListGroups v5 types filter classic lists both, typed classic: {classic:?}"
    );
    let consumer = listed_groups(&mut client, 5, &[], &["consumer"]);
    ensure!(
        &broker,
        consumer.is_empty(),
        "no KIP-848 consumer groups exist: {consumer:?}"
    );

    for version in 0..=5 {
        let request = DescribeGroupsRequest {
            groups: vec!["ghost-g".into(), "stable-g".into()],
            ..Default::default()
        };
        let answer = client.call(&request, version);
        ensure!(&broker, answer.groups.len() == 2, "v{version}: {answer:?}");
        let ghost = &answer.groups[0];
        expect_code(
            &broker,
            ghost.error_code,
            ErrorCode::None,
            &format!("DescribeGroups v{version} of an unknown group"),
        );
        ensure!(
            &broker,
            ghost.group_id == "ghost-g"
                && ghost.group_state == "Dead"
                && ghost.members.is_empty()
                && ghost.protocol_type.is_empty(),
            "DescribeGroups v{version}: an unknown group is Dead with no members: {ghost:?}"
        );
        let live = &answer.groups[1];
        expect_code(
            &broker,
            live.error_code,
            ErrorCode::None,
            &format!("DescribeGroups v{version} of stable-g"),
        );
        ensure!(
            &broker,
            live.group_state == "Stable"
                && live.protocol_type == CONSUMER_PROTOCOL_TYPE
                && live.protocol_data == RANGE_ASSIGNOR,
            "DescribeGroups v{version}: {live:?}"
        );
        ensure!(
            &broker,
            live.members.len() == 1
                && live.members[0].member_id == members[0].member_id
                && live.members[0].client_id == CLIENT_ID
                && live.members[0].member_metadata[..] == consumer_subscription(&["t"])[..]
                && live.members[0].member_assignment[..] == members[0].assignment[..],
            "DescribeGroups v{version} describes the member with its client id, metadata and assignment: {:?}",
            live.members
        );
    }

    let request = DeleteGroupsRequest {
        groups_names: vec!["stable-g".into(), "ghost-g".into(), "simple-g".into()],
        ..Default::default()
    };
    let answer = client.call(&request, 2);
    let results: Vec<(&str, i16)> = answer
        .results
        .iter()
        .map(|r| (r.group_id.as_str(), r.error_code))
        .collect();
    let expected = [
        ("stable-g", ErrorCode::NonEmptyGroup.code()),
        ("ghost-g", ErrorCode::GroupIdNotFound.code()),
        ("simple-g", ErrorCode::None.code()),
    ];
    ensure!(
        &broker,
        results == expected,
        "DeleteGroups: a group with members is NON_EMPTY_GROUP, an unknown one GROUP_ID_NOT_FOUND, an \
         empty one is deleted; got {:?}",
        results
            .iter()
            .map(|(g, c)| (*g, code_name(*c)))
            .collect::<Vec<_>>()
    );
    for version in 0..=1 {
        let request = DeleteGroupsRequest {
            groups_names: vec!["simple-g".into()],
            ..Default::default()
        };
        let answer = client.call(&request, version);
        expect_code(
            &broker,
            answer.results[0].error_code,
            ErrorCode::GroupIdNotFound,
            &format!("DeleteGroups v{version} of an already deleted group"),
        );
    }
    let answer = client.call(&offset_fetch_v8("simple-g", None), 8);
    ensure!(
        &broker,
        answer.groups[0].topics.is_empty(),
        "a deleted group's offsets are gone: {:?}",
        answer.groups[0]
    );
    let described = describe_group(&mut client.connection, "simple-g").unwrap();
    ensure!(
        &broker,
        described.group_state == "Dead",
        "a deleted group is Dead: {described:?}"
    );
    let still = describe_group(&mut client.connection, "stable-g").unwrap();
    ensure!(
        &broker,
        still.group_state == "Stable",
        "the refused delete left stable-g alone: {still:?}"
    );
}

fn offset_delete(group: &str, partitions: &[(&str, i32)]) -> OffsetDeleteRequest {
    OffsetDeleteRequest {
        group_id: group.into(),
        topics: partitions
            .iter()
            .map(|(topic, partition)| OffsetDeleteRequestTopic {
                name: (*topic).into(),
                partitions: vec![OffsetDeleteRequestPartition {
                    partition_index: *partition,
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

#[test]
fn offset_delete_refuses_subscribed_topics_and_deletes_the_rest() {
    let broker = start_broker();
    create_topic(&broker, "t", 1);
    create_topic(&broker, "unsub", 1);
    let mut client = Client::coordinator(&broker, "od-g");

    let answer = client.call(&offset_delete("od-ghost", &[("t", 0)]), 0);
    expect_code(
        &broker,
        answer.error_code,
        ErrorCode::GroupIdNotFound,
        "OffsetDelete for a group that does not exist",
    );

    let mut members = form_group(&broker, "od-g", &[DYNAMIC_ON_T]);
    let member = &mut members[0];
    let commit = offset_commit(
        "od-g",
        member.generation,
        &member.member_id.clone(),
        None,
        &[("t", 0, 3, None), ("unsub", 0, 4, None)],
    );
    for (_, _, code) in commit_errors(&member.client.call(&commit, 8)) {
        expect_code(&broker, code, ErrorCode::None, "member commit");
    }
    let answer = client.call(&offset_delete("od-g", &[("t", 0), ("unsub", 0)]), 0);
    expect_code(
        &broker,
        answer.error_code,
        ErrorCode::None,
        "OffsetDelete top-level error for a consumer group",
    );
    let codes: Vec<(String, i16)> = answer
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.name.clone(), p.error_code))
        })
        .collect();
    let expected = vec![
        ("t".to_owned(), ErrorCode::GroupSubscribedToTopic.code()),
        ("unsub".to_owned(), ErrorCode::None.code()),
    ];
    ensure!(
        &broker,
        codes == expected,
        "OffsetDelete: the topic a member's ConsumerProtocolSubscription names is refused with \
         GROUP_SUBSCRIBED_TO_TOPIC, another one is deleted; got {:?}",
        codes
            .iter()
            .map(|(t, c)| (t.as_str(), code_name(*c)))
            .collect::<Vec<_>>()
    );
    let fetched = fetch(&mut client, "od-g", &[("t", &[0]), ("unsub", &[0])]);
    ensure!(
        &broker,
        offset_of(&fetched, "t", 0).0 == 3,
        "the refused delete kept t-0: {fetched:?}"
    );
    ensure!(
        &broker,
        offset_of(&fetched, "unsub", 0).0 == -1,
        "the deleted offset is gone: {fetched:?}"
    );

    // A non-empty group that does not speak the consumer protocol cannot say what it reads.
    let mut connect_member = Client::coordinator(&broker, "od-connect");
    let mut join = consumer_join("od-connect", "", None, &["t"]);
    join.protocol_type = "connect".into();
    let joined = connect_member.call(&join, 3);
    expect_code(
        &broker,
        joined.error_code,
        ErrorCode::None,
        "JoinGroup of a connect worker",
    );
    let answer = client.call(&offset_delete("od-connect", &[("t", 0)]), 0);
    expect_code(
        &broker,
        answer.error_code,
        ErrorCode::NonEmptyGroup,
        "OffsetDelete in a live non-consumer group",
    );
}
