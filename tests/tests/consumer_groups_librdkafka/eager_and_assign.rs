//! Part of `consumer_groups_librdkafka.rs`: the eager assignors, and assign() without a group.

use super::*;

/// Two members with one eager assignor: both hold partitions, disjointly, covering the topic,
/// split the way that assignor splits; DescribeGroups agrees member by member.
fn eager_assignor_splits_the_topic(strategy: &str, expected_split: [[i32; 3]; 2]) {
    let topic = format!("eager-{strategy}");
    let group = format!("group-{strategy}");
    let broker = start_broker();
    let bootstrap = broker.bootstrap();
    create_topic(&broker, &topic, 6);
    let members = ["member-a", "member-b"].map(|id| {
        let log = Arc::new(MemberLog::default());
        let consumer: BaseConsumer<Recorder> = member_config(&bootstrap, &group, id, strategy)
            .create_with_context(Recorder { log: log.clone() })
            .unwrap();
        consumer.subscribe(&[&topic]).unwrap();
        (consumer, log)
    });
    let assignment = |index: usize| partitions_of(&members[index].0.assignment().unwrap());
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        for (consumer, _) in &members {
            let _ = consumer.poll(Duration::from_millis(50));
        }
        let (held_a, held_b) = (assignment(0), assignment(1));
        let covered = held_a.is_disjoint(&held_b) && held_a.union(&held_b).count() == 6;
        if !held_a.is_empty() && !held_b.is_empty() && covered {
            let described = describe_group(&broker, &group);
            if described.state == "Stable" && described.members.len() == 2 {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{strategy}: no disjoint cover; A {held_a:?} B {held_b:?}\nA: {}\nB: {}\n{}",
            members[0].1.summary(),
            members[1].1.summary(),
            broker.log_tail(LOG_TAIL_BYTES)
        );
    }
    for (consumer, log) in &members {
        assert!(matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Eager
        ));
        assert!(log.events().iter().all(|e| !e.cooperative));
    }
    let split = BTreeSet::from([assignment(0), assignment(1)]);
    let expected: BTreeSet<BTreeSet<i32>> = expected_split
        .iter()
        .map(|p| p.iter().copied().collect())
        .collect();
    assert_eq!(
        split, expected,
        "{strategy} splits 6 partitions between 2 members this way"
    );

    let described = describe_group(&broker, &group);
    assert_eq!(described.error_code, error_code::NONE);
    assert_eq!(described.protocol_type, "consumer");
    assert_eq!(described.protocol, strategy, "the group's chosen assignor");
    for (index, id) in ["member-a", "member-b"].iter().enumerate() {
        let member = described.members.iter().find(|m| m.0 == *id);
        assert_eq!(
            member.map(|m| &m.1),
            Some(&assignment(index)),
            "DescribeGroups assignment of {id}: {described:?}"
        );
    }
}

#[test]
fn range_assignor_gives_each_of_two_members_a_contiguous_half() {
    eager_assignor_splits_the_topic("range", [[0, 1, 2], [3, 4, 5]]);
}

#[test]
fn roundrobin_assignor_gives_two_members_alternate_partitions() {
    eager_assignor_splits_the_topic("roundrobin", [[0, 2, 4], [1, 3, 5]]);
}

#[test]
fn assign_without_subscribe_never_creates_the_group_or_commits() {
    const TOPIC: &str = "assigned";
    const GROUP: &str = "assign-only";
    const CONTROL_GROUP: &str = "subscribed-control";
    const RECORDS_PER_PARTITION: i64 = 10;
    let broker = start_broker();
    let bootstrap = broker.bootstrap();
    create_topic(&broker, TOPIC, 2);
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    for sequence in 0..2 * RECORDS_PER_PARTITION {
        let value = format!("v{sequence}");
        let record: BaseRecord<'_, (), str> = BaseRecord::to(TOPIC)
            .partition((sequence % 2) as i32)
            .payload(&value);
        producer.send(record).map_err(|(e, _)| e).unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", GROUP)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    for partition in 0..2 {
        assignment
            .add_partition_offset(TOPIC, partition, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut next = [0i64; 2];
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    while next != [RECORDS_PER_PARTITION; 2] {
        assert!(Instant::now() < deadline, "consumed only up to {next:?}");
        if let Some(result) = consumer.poll(Duration::from_millis(100)) {
            let message = result.unwrap();
            let partition = message.partition() as usize;
            assert_eq!(message.offset(), next[partition], "partition {partition}");
            next[partition] += 1;
        }
    }
    let committed = consumer
        .committed_offsets(assignment.clone(), Duration::from_secs(10))
        .unwrap();
    for element in committed.elements() {
        assert_eq!(element.offset(), Offset::Invalid, "{committed:?}");
    }
    drop(consumer);

    // A control consumer that does subscribe shows that ListGroups would list a real group.
    let control = Member::spawn(
        member_config(&bootstrap, CONTROL_GROUP, "control", "range"),
        TOPIC,
    );
    wait_until(
        &broker,
        "the control consumer to be assigned",
        SETTLE_TIMEOUT,
        || control.log.assignment().len() == 2,
        || control.log.summary(),
    );
    let groups = list_groups(&broker);
    assert!(
        groups.contains(&(CONTROL_GROUP.to_string(), "consumer".to_string())),
        "{groups:?}"
    );
    assert!(
        groups.iter().all(|g| g.0 != GROUP),
        "assign() created a group: {groups:?}"
    );
    control.close();

    let described = describe_group(&broker, GROUP);
    let unknown = described.error_code == GROUP_ID_NOT_FOUND
        || (described.error_code == error_code::NONE && described.state == "Dead");
    assert!(unknown && described.members.is_empty(), "{described:?}");

    let (code, rows) = offset_fetch(&broker, GROUP, Some((TOPIC, &[0, 1])));
    assert_eq!(code, error_code::NONE);
    assert_eq!(rows.len(), 2, "{rows:?}");
    for row in &rows {
        assert_eq!(
            (row.offset, row.error_code),
            (-1, error_code::NONE),
            "{rows:?}"
        );
    }
    let (code, rows) = offset_fetch(&broker, GROUP, None);
    assert_eq!(code, error_code::NONE);
    assert!(rows.is_empty(), "nothing committed for {GROUP}: {rows:?}");
}
