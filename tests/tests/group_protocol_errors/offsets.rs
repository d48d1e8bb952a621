//! OffsetCommit and OffsetFetch at every version, and offsets surviving `kill -9`.

use crate::support::*;

#[test]
fn offset_commit_checks_membership_generation_metadata_size_and_topics() {
    let broker = start_broker();
    create_topic(&broker, "t", 3);
    let mut client = Client::coordinator(&broker, "commit-g");

    // Outside any group (generation -1, empty member id), as an admin tool or a manual-assign
    // consumer commits: accepted, at non-flexible and flexible versions.
    for version in [2, 8] {
        let commit = offset_commit(
            "commit-simple",
            -1,
            "",
            None,
            &[("t", 0, 10 + i64::from(version), None)],
        );
        for (_, partition, code) in commit_errors(&client.call(&commit, version)) {
            expect_code(
                &broker,
                code,
                ErrorCode::None,
                &format!("OffsetCommit v{version} outside a group, partition {partition}"),
            );
        }
    }

    let mut members = form_group(&broker, "commit-g", &[DYNAMIC_ON_T]);
    let member = &mut members[0];
    let (id, generation) = (member.member_id.clone(), member.generation);
    let cases: [(i32, &str, ErrorCode, &str); 3] = [
        (
            generation + 1,
            id.as_str(),
            ErrorCode::IllegalGeneration,
            "a member's commit with the wrong generation",
        ),
        (
            generation,
            "stranger",
            ErrorCode::UnknownMemberId,
            "a commit from an unknown member",
        ),
        (
            -1,
            "",
            ErrorCode::UnknownMemberId,
            "a commit without membership to a group that has members",
        ),
    ];
    for (commit_generation, commit_member, expected, what) in cases {
        let commit = offset_commit(
            "commit-g",
            commit_generation,
            commit_member,
            None,
            &[("t", 0, 1, None), ("t", 1, 1, None)],
        );
        let errors = commit_errors(&member.client.call(&commit, 8));
        ensure!(
            &broker,
            errors.len() == 2,
            "{what}: every partition is answered: {errors:?}"
        );
        for (_, _, code) in errors {
            expect_code(&broker, code, expected, what);
        }
    }

    // offset.metadata.max.bytes is 4096: one byte more fails that partition alone.
    let at_limit = "m".repeat(4096);
    let over_limit = "m".repeat(4097);
    let commit = offset_commit(
        "commit-g",
        generation,
        &id,
        None,
        &[
            ("t", 0, 100, Some(over_limit.as_str())),
            ("t", 1, 101, Some(at_limit.as_str())),
            ("no-such-topic", 0, 102, None),
            ("t", 99, 103, None),
            ("t", 2, 104, None),
        ],
    );
    let errors = commit_errors(&member.client.call(&commit, 8));
    let expected = [
        ("t", 0, ErrorCode::OffsetMetadataTooLarge),
        ("t", 1, ErrorCode::None),
        ("no-such-topic", 0, ErrorCode::UnknownTopicOrPartition),
        ("t", 99, ErrorCode::UnknownTopicOrPartition),
        ("t", 2, ErrorCode::None),
    ];
    for (topic, partition, code) in expected {
        let got = errors
            .iter()
            .find(|(t, p, _)| t == topic && *p == partition)
            .unwrap_or_else(|| {
                fail(
                    &broker,
                    &format!("{topic}-{partition} not answered: {errors:?}"),
                )
            });
        // Kafka 4.0's KafkaApis refuses topics and partitions absent from its metadata cache
        // with UNKNOWN_TOPIC_OR_PARTITION before the coordinator sees them.
        expect_code(
            &broker,
            got.2,
            code,
            &format!("OffsetCommit of {topic}-{partition}"),
        );
    }
    let fetched = fetch(
        &mut member.client,
        "commit-g",
        &[("t", &[0, 1, 2, 99]), ("no-such-topic", &[0])],
    );
    ensure!(
        &broker,
        offset_of(&fetched, "t", 0).0 == -1,
        "a refused commit stores nothing: {fetched:?}"
    );
    ensure!(
        &broker,
        offset_of(&fetched, "t", 1) == (101, Some(at_limit.clone())),
        "4096 bytes of metadata are kept whole"
    );
    ensure!(
        &broker,
        offset_of(&fetched, "t", 2).0 == 104,
        "the valid partitions of a mixed commit are stored"
    );
    ensure!(
        &broker,
        offset_of(&fetched, "t", 99).0 == -1 && offset_of(&fetched, "no-such-topic", 0).0 == -1,
        "refused partitions have no offset"
    );

    let commit = offset_commit("", -1, "", None, &[("t", 0, 1, None)]);
    for (_, _, code) in commit_errors(&member.client.call(&commit, 8)) {
        expect_code(
            &broker,
            code,
            ErrorCode::InvalidGroupId,
            "OffsetCommit with an empty group id",
        );
    }
}

#[test]
fn offset_fetch_serves_listed_and_all_partitions_at_every_version() {
    let broker = start_broker();
    create_topic(&broker, "t", 3);
    create_topic(&broker, "u", 1);
    let group = "fetch-g";
    let mut client = Client::coordinator(&broker, group);
    let unicode = "ünïcødé ✓ \"quoted\" \\ tab\t end";
    let entries: [CommitEntry<'_>; 3] = [
        ("t", 0, 10, Some(unicode)),
        ("t", 1, 20, Some("")),
        ("u", 0, 5, None),
    ];
    for (_, partition, code) in
        commit_errors(&client.call(&offset_commit(group, -1, "", None, &entries), 8))
    {
        expect_code(
            &broker,
            code,
            ErrorCode::None,
            &format!("OffsetCommit partition {partition}"),
        );
    }
    // Kafka stores a null commit metadata as "" and answers "" (NO_METADATA) where nothing
    // is committed.
    let committed = |topic: &str, partition: i32, offset: i64, metadata: &str| FetchedOffset {
        topic: topic.into(),
        partition,
        offset,
        metadata: Some(metadata.into()),
        error_code: 0,
    };
    let sorted = |mut offsets: Vec<FetchedOffset>| {
        offsets.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        offsets
    };
    let listed_expected = sorted(vec![
        committed("t", 0, 10, unicode),
        committed("t", 1, 20, ""),
        committed("t", 2, -1, ""),
        committed("never-created", 4, -1, ""),
    ]);
    let all_expected = sorted(vec![
        committed("t", 0, 10, unicode),
        committed("t", 1, 20, ""),
        committed("u", 0, 5, ""),
    ]);

    for version in 0..=7 {
        let listed = OffsetFetchRequest {
            group_id: group.into(),
            topics: Some(vec![
                OffsetFetchRequestTopic {
                    name: "t".into(),
                    partition_indexes: vec![0, 1, 2],
                    ..Default::default()
                },
                OffsetFetchRequestTopic {
                    name: "never-created".into(),
                    partition_indexes: vec![4],
                    ..Default::default()
                },
            ]),
            ..Default::default()
        };
        let answer = client.call(&listed, version);
        expect_code(
            &broker,
            answer.error_code,
            ErrorCode::None,
            &format!("OffsetFetch v{version} top-level error"),
        );
        let got = sorted(fetched_v0_to_v7(&answer));
        ensure!(
            &broker,
            got == listed_expected,
            "OffsetFetch v{version} of listed partitions: committed ones with metadata byte for \
             byte, uncommitted and unknown ones as -1 with \"\" and NONE\n got {got:#?}"
        );
        if version >= 2 {
            let all = OffsetFetchRequest {
                group_id: group.into(),
                topics: None,
                ..Default::default()
            };
            let got = sorted(fetched_v0_to_v7(&client.call(&all, version)));
            ensure!(
                &broker,
                got == all_expected,
                "OffsetFetch v{version} with null topics returns every committed partition and only those\n got {got:#?}"
            );
        }
    }
    for version in 8..=9 {
        let listed: &[(&str, &[i32])] = &[("t", &[0, 1, 2]), ("never-created", &[4])];
        let mut request = offset_fetch_v8(group, Some(listed));
        let mut all_of_fresh = offset_fetch_v8("fetch-never-committed", None);
        request.groups.append(&mut all_of_fresh.groups);
        let mut all = offset_fetch_v8(group, None);
        request.groups.append(&mut all.groups);
        let answer = client.call(&request, version);
        let ids: Vec<&str> = answer.groups.iter().map(|g| g.group_id.as_str()).collect();
        ensure!(
            &broker,
            ids == [group, "fetch-never-committed", group],
            "OffsetFetch v{version} answers each group in order: {ids:?}"
        );
        for answered in &answer.groups {
            expect_code(
                &broker,
                answered.error_code,
                ErrorCode::None,
                &format!("OffsetFetch v{version} group {}", answered.group_id),
            );
        }
        let got = sorted(fetched_v8(&answer.groups[0]));
        ensure!(
            &broker,
            got == listed_expected,
            "OffsetFetch v{version} listed\n got {got:#?}"
        );
        ensure!(
            &broker,
            answer.groups[1].topics.is_empty(),
            "a group with no commits has no offsets: {:?}",
            answer.groups[1]
        );
        let got = sorted(fetched_v8(&answer.groups[2]));
        ensure!(
            &broker,
            got == all_expected,
            "OffsetFetch v{version} all partitions\n got {got:#?}"
        );
    }
}

#[test]
fn committed_offsets_and_metadata_survive_kill9() {
    let mut broker = start_broker();
    create_topic(&broker, "t", 3);
    let metadata = "näive metadata ✓ 0123456789";
    {
        let mut client = Client::coordinator(&broker, "durable-g");
        let commit = offset_commit(
            "durable-g",
            -1,
            "",
            None,
            &[("t", 0, 42, Some(metadata)), ("t", 2, 7, Some(""))],
        );
        for (_, _, code) in commit_errors(&client.call(&commit, 8)) {
            expect_code(
                &broker,
                code,
                ErrorCode::None,
                "OffsetCommit before kill -9",
            );
        }
    }
    broker.kill9().unwrap();
    broker.restart().unwrap();

    let mut client = Client::coordinator(&broker, "durable-g");
    let deadline = Instant::now() + Duration::from_millis(STATE_WAIT_MS);
    let fetched = loop {
        let answer = client.call(&offset_fetch_v8("durable-g", None), 8);
        let code = answer
            .groups
            .first()
            .map_or(ErrorCode::None.code(), |g| g.error_code);
        // COORDINATOR_LOAD_IN_PROGRESS is Kafka's answer while it replays __consumer_offsets.
        if code == ErrorCode::CoordinatorLoadInProgress.code() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(POLL_INTERVAL_MS));
            continue;
        }
        expect_code(&broker, code, ErrorCode::None, "OffsetFetch after restart");
        break fetched_v8(&answer.groups[0]);
    };
    ensure!(
        &broker,
        fetched.len() == 2,
        "exactly the two committed partitions come back: {fetched:?}"
    );
    ensure!(
        &broker,
        offset_of(&fetched, "t", 0) == (42, Some(metadata.to_owned())),
        "offset and metadata of t-0 after kill -9: {fetched:?}"
    );
    ensure!(
        &broker,
        offset_of(&fetched, "t", 2) == (7, Some(String::new())),
        "offset of t-2 after kill -9: {fetched:?}"
    );
}
