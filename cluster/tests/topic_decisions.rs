//! Topic decisions, checked by applying their records to an image.
#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{Cluster, any_configs, check_invariants, topic_id};
use spate_cluster::controller::topics::{
    self, BROKER_REPLICAS_MAX, CreateTopic, TopicDefaults, TopicError,
};
use spate_cluster::image::PARTITION_COUNT_MAX;
use spate_cluster::{NO_LEADER, NodeId, RecordBody};

const DEFAULTS: TopicDefaults = TopicDefaults {
    partition_count: 2,
    replication_factor: None,
};

fn request(name: &str, partition_count: i32, replication_factor: i16) -> CreateTopic {
    CreateTopic {
        name: name.into(),
        partition_count,
        replication_factor,
        assignments: None,
        configs: BTreeMap::new(),
    }
}

fn live_cluster(ids: &[NodeId]) -> Cluster {
    let mut cluster = Cluster::new();
    for &id in ids {
        cluster.add_live_broker(id, None);
    }
    cluster
}

fn create(cluster: &mut Cluster, request: &CreateTopic, id: u8) -> Result<(), TopicError> {
    let records = topics::create_topic(
        &cluster.image,
        request,
        &DEFAULTS,
        topic_id(id),
        &any_configs,
    )?;
    cluster.apply(records).unwrap();
    check_invariants(&cluster.image).unwrap();
    Ok(())
}

fn invalid<T: std::fmt::Debug>(outcome: Result<T, TopicError>) -> TopicError {
    outcome.unwrap_err()
}

#[test]
fn six_partitions_of_three_replicas_over_three_brokers_give_each_broker_two_leaderships() {
    let mut cluster = live_cluster(&[1, 2, 3]);
    create(&mut cluster, &request("orders", 6, 3), 1).unwrap();
    let topic = cluster.image.topic("orders").unwrap();
    assert_eq!(topic.partition_count(), 6);
    assert_eq!(
        cluster.leader_counts(),
        BTreeMap::from([(1, 2), (2, 2), (3, 2)])
    );
    for partition in &topic.partitions {
        assert_eq!(partition.isr, partition.replicas);
        assert_eq!(partition.leader, partition.replicas[0]);
        assert_eq!((partition.leader_epoch, partition.partition_epoch), (0, 0));
        assert_eq!(partition.replicas.iter().collect::<BTreeSet<_>>().len(), 3);
    }
}

#[test]
fn replicas_spread_over_racks() {
    let mut cluster = Cluster::new();
    for (id, rack) in [(1, "a"), (2, "a"), (3, "b"), (4, "b"), (5, "c"), (6, "c")] {
        cluster.add_live_broker(id, Some(rack));
    }
    create(&mut cluster, &request("orders", 12, 3), 1).unwrap();
    for partition in &cluster.image.topic("orders").unwrap().partitions {
        let racks: BTreeSet<_> = partition
            .replicas
            .iter()
            .map(|&id| cluster.image.broker(id).unwrap().rack.clone())
            .collect();
        assert_eq!(racks.len(), 3, "{partition:?}");
    }
    assert!(cluster.leader_counts().values().all(|&n| n == 2));
}

#[test]
fn successive_topics_start_their_leaders_on_different_brokers() {
    let mut cluster = live_cluster(&[1, 2, 3]);
    create(&mut cluster, &request("a", 1, 1), 1).unwrap();
    create(&mut cluster, &request("b", 1, 1), 2).unwrap();
    create(&mut cluster, &request("c", 1, 1), 3).unwrap();
    assert_eq!(
        cluster.leader_counts(),
        BTreeMap::from([(1, 1), (2, 1), (3, 1)])
    );
}

#[test]
fn defaults_fill_in_partition_count_and_replication_factor() {
    let mut cluster = live_cluster(&[1, 2]);
    create(&mut cluster, &request("a", -1, -1), 1).unwrap();
    let topic = cluster.image.topic("a").unwrap();
    assert_eq!(topic.partition_count(), DEFAULTS.partition_count);
    assert_eq!(
        topic.partitions[0].replicas.len(),
        2,
        "min(3, live brokers)"
    );

    let one = TopicDefaults {
        partition_count: 3,
        replication_factor: Some(1),
    };
    let records = topics::create_topic(
        &cluster.image,
        &request("b", -1, -1),
        &one,
        topic_id(2),
        &any_configs,
    )
    .unwrap();
    cluster.apply(records).unwrap();
    assert_eq!(
        cluster.image.topic("b").unwrap().partitions[0]
            .replicas
            .len(),
        1
    );
}

#[test]
fn a_replication_factor_above_the_live_brokers_is_refused_with_kafkas_message() {
    let mut cluster = live_cluster(&[1, 2]);
    // A fenced broker does not count.
    cluster
        .apply(vec![common::register_record(3, "x", None)])
        .unwrap();
    let error = invalid(create(&mut cluster, &request("a", 1, 3), 1));
    assert_eq!(
        error,
        TopicError::InvalidReplicationFactor(
            "Unable to replicate the partition 3 time(s): The target replication factor of 3 cannot be reached because only 2 broker(s) are registered.".into()
        )
    );
    for factor in [0, -2, 33] {
        let error = invalid(create(&mut cluster, &request("a", 1, factor), 1));
        assert!(
            matches!(error, TopicError::InvalidReplicationFactor(_)),
            "{factor}: {error}"
        );
    }
    let none = Cluster::new();
    let error = topics::create_topic(
        &none.image,
        &request("a", 1, -1),
        &DEFAULTS,
        topic_id(1),
        &any_configs,
    );
    assert!(
        matches!(error, Err(TopicError::InvalidReplicationFactor(m)) if m.contains("only 0 broker(s)"))
    );
}

#[test]
fn brokers_that_are_fenced_or_shutting_down_get_no_new_replicas() {
    let mut cluster = live_cluster(&[1, 2, 3]);
    cluster
        .apply(vec![RecordBody::BrokerChange {
            node_id: 2,
            broker_epoch: cluster.epoch(2),
            fenced: None,
            in_controlled_shutdown: Some(true),
        }])
        .unwrap();
    cluster
        .apply(vec![common::register_record(4, "x", None)])
        .unwrap();
    create(&mut cluster, &request("a", 10, 2), 1).unwrap();
    for partition in &cluster.image.topic("a").unwrap().partitions {
        let replicas: BTreeSet<_> = partition.replicas.iter().copied().collect();
        assert_eq!(replicas, BTreeSet::from([1, 3]));
    }
}

#[test]
fn bad_names_existing_topics_and_bad_configs_are_refused() {
    let mut cluster = live_cluster(&[1]);
    create(&mut cluster, &request("orders.eu", 1, 1), 1).unwrap();
    assert!(matches!(
        invalid(create(&mut cluster, &request("a/b", 1, 1), 2)),
        TopicError::InvalidName(_)
    ));
    assert!(matches!(
        invalid(create(&mut cluster, &request("", 1, 1), 2)),
        TopicError::InvalidName(_)
    ));
    assert_eq!(
        invalid(create(&mut cluster, &request("orders.eu", 1, 1), 2)),
        TopicError::AlreadyExists("orders.eu".into())
    );
    let collision = invalid(create(&mut cluster, &request("orders_eu", 1, 1), 2));
    assert!(
        matches!(&collision, TopicError::InvalidName(m) if m.contains("collides")),
        "{collision}"
    );

    let mut with_configs = request("b", 1, 1);
    with_configs
        .configs
        .insert("retention.ms".into(), "-5".into());
    let refuse = |_: &BTreeMap<String, String>| Err("retention.ms must be >= -1".to_owned());
    assert_eq!(
        topics::create_topic(
            &cluster.image,
            &with_configs,
            &DEFAULTS,
            topic_id(2),
            &refuse
        ),
        Err(TopicError::InvalidConfig(
            "retention.ms must be >= -1".into()
        ))
    );
    with_configs.configs.insert("x".into(), "y".repeat(5000));
    assert!(matches!(
        invalid(create(&mut cluster, &with_configs, 2)),
        TopicError::InvalidConfig(_)
    ));
}

#[test]
fn partition_counts_outside_the_limits_are_refused() {
    let mut cluster = live_cluster(&[1]);
    for count in [0, -2, PARTITION_COUNT_MAX + 1, i32::MAX] {
        let error = invalid(create(&mut cluster, &request("a", count, 1), 1));
        assert!(
            matches!(error, TopicError::InvalidPartitions(_)),
            "{count}: {error}"
        );
    }
    create(&mut cluster, &request("a", PARTITION_COUNT_MAX, 1), 1).unwrap();
}

#[test]
fn manual_assignments_are_checked_as_kafka_checks_them() {
    let mut cluster = live_cluster(&[1, 2, 3]);
    let manual = |lists: Vec<Vec<NodeId>>| CreateTopic {
        assignments: Some(lists),
        ..request("m", 99, 99)
    };
    for (lists, needle) in [
        (vec![vec![1, 2], vec![]], "empty replica list"),
        (vec![vec![1, 1]], "more than once"),
        (vec![vec![1, 9]], "no such broker is registered"),
        (vec![vec![1, 2], vec![3]], "not consistent"),
    ] {
        let error = invalid(create(&mut cluster, &manual(lists.clone()), 1));
        assert!(
            matches!(&error, TopicError::InvalidReplicaAssignment(m) if m.contains(needle)),
            "{lists:?}: {error}"
        );
    }
    // Partition count and replication factor come from the lists, not the request.
    create(&mut cluster, &manual(vec![vec![3, 1], vec![2, 3]]), 1).unwrap();
    let topic = cluster.image.topic("m").unwrap();
    assert_eq!(topic.partition_count(), 2);
    assert_eq!(
        (topic.partitions[0].leader, topic.partitions[1].leader),
        (3, 2)
    );
    // An empty list of lists means "no assignment".
    let empty = CreateTopic {
        assignments: Some(vec![]),
        ..request("n", 2, 1)
    };
    create(&mut cluster, &empty, 2).unwrap();
    assert_eq!(cluster.image.topic("n").unwrap().partition_count(), 2);
}

#[test]
fn a_manual_assignment_skips_fenced_replicas_in_the_isr_or_waits_for_them_all() {
    let mut cluster = live_cluster(&[1]);
    cluster
        .apply(vec![common::register_record(2, "x", None)])
        .unwrap();
    cluster
        .apply(vec![common::register_record(3, "x", None)])
        .unwrap();
    let manual = CreateTopic {
        assignments: Some(vec![vec![2, 1], vec![2, 3]]),
        ..request("m", -1, -1)
    };
    create(&mut cluster, &manual, 1).unwrap();
    let partitions = &cluster.image.topic("m").unwrap().partitions;
    assert_eq!(
        (partitions[0].leader, partitions[0].isr.as_slice()),
        (1, &[1][..])
    );
    assert_eq!(
        (partitions[1].leader, partitions[1].isr.as_slice()),
        (NO_LEADER, &[2, 3][..])
    );
}

#[test]
fn no_broker_may_hold_more_than_the_replica_cap() {
    let mut cluster = live_cluster(&[1]);
    let per_topic = PARTITION_COUNT_MAX - 1;
    let topic_count = BROKER_REPLICAS_MAX / per_topic as usize;
    for i in 0..topic_count {
        create(
            &mut cluster,
            &request(&format!("t{i}"), per_topic, 1),
            i as u8 + 1,
        )
        .unwrap();
    }
    // Exactly at the cap is allowed.
    let room = (BROKER_REPLICAS_MAX - topic_count * per_topic as usize) as i32;
    create(&mut cluster, &request("last", room, 1), 200).unwrap();
    let error = invalid(create(&mut cluster, &request("one-more", 1, 1), 201));
    assert!(
        matches!(&error, TopicError::InvalidPartitions(m) if m.contains("Broker 1")),
        "{error}"
    );
    let grow = topics::create_partitions(&cluster.image, "t0", PARTITION_COUNT_MAX, None);
    assert!(
        matches!(&grow, Err(TopicError::InvalidPartitions(m)) if m.contains("Broker 1")),
        "{grow:?}"
    );
}

#[test]
fn deleting_refuses_unknown_and_internal_topics() {
    let mut cluster = live_cluster(&[1]);
    create(&mut cluster, &request("__consumer_offsets", 1, 1), 1).unwrap();
    create(&mut cluster, &request("orders", 1, 1), 2).unwrap();
    assert_eq!(
        topics::delete_topic(&cluster.image, "nope"),
        Err(TopicError::Unknown("nope".into()))
    );
    assert_eq!(
        topics::delete_topic(&cluster.image, "__consumer_offsets"),
        Err(TopicError::Internal("__consumer_offsets".into()))
    );
    let records = topics::delete_topic(&cluster.image, "orders").unwrap();
    cluster.apply(records).unwrap();
    assert!(cluster.image.topic("orders").is_none());
    assert!(cluster.image.topic_by_id(topic_id(2)).is_none());
}

#[test]
fn adding_partitions_keeps_the_replication_factor_and_spreads_new_leaders() {
    let mut cluster = live_cluster(&[1, 2, 3]);
    create(&mut cluster, &request("orders", 3, 2), 1).unwrap();
    let records = topics::create_partitions(&cluster.image, "orders", 9, None).unwrap();
    assert_eq!(records.len(), 6);
    cluster.apply(records).unwrap();
    check_invariants(&cluster.image).unwrap();
    let topic = cluster.image.topic("orders").unwrap();
    assert_eq!(topic.partition_count(), 9);
    assert!(topic.partitions.iter().all(|p| p.replicas.len() == 2));
    assert_eq!(
        cluster.leader_counts(),
        BTreeMap::from([(1, 3), (2, 3), (3, 3)])
    );
}

#[test]
fn adding_partitions_refuses_what_kafka_refuses() {
    let mut cluster = live_cluster(&[1, 2]);
    create(&mut cluster, &request("orders", 3, 2), 1).unwrap();
    create(&mut cluster, &request("__consumer_offsets", 1, 1), 2).unwrap();
    let grow = |name: &str, count: i32, manual: Option<&[Vec<NodeId>]>| {
        topics::create_partitions(&cluster.image, name, count, manual)
    };
    assert_eq!(
        grow("orders", 2, None),
        Err(TopicError::InvalidPartitions(
            "The topic orders currently has 3 partition(s); 2 would not be an increase.".into()
        ))
    );
    assert_eq!(
        grow("orders", 3, None),
        Err(TopicError::InvalidPartitions(
            "Topic already has 3 partition(s).".into()
        ))
    );
    assert!(matches!(
        grow("orders", PARTITION_COUNT_MAX + 1, None),
        Err(TopicError::InvalidPartitions(_))
    ));
    assert_eq!(
        grow("nope", 4, None),
        Err(TopicError::Unknown("nope".into()))
    );
    assert_eq!(
        grow("__consumer_offsets", 4, None),
        Err(TopicError::Internal("__consumer_offsets".into()))
    );
    let one_list = [vec![1, 2]];
    assert!(matches!(
        grow("orders", 5, Some(&one_list)),
        Err(TopicError::InvalidReplicaAssignment(_))
    ));
    let too_short = [vec![1]];
    assert!(matches!(
        grow("orders", 4, Some(&too_short)),
        Err(TopicError::InvalidReplicaAssignment(_))
    ));
    let records = grow("orders", 4, Some(&[vec![2, 1]])).unwrap();
    cluster.apply(records).unwrap();
    assert_eq!(cluster.partition("orders", 3).replicas, vec![2, 1]);
}

#[test]
fn topic_configs_are_replaced_only_for_known_topics_with_valid_values() {
    let mut cluster = live_cluster(&[1]);
    create(&mut cluster, &request("orders", 1, 1), 1).unwrap();
    let configs = BTreeMap::from([("retention.ms".to_owned(), "1000".to_owned())]);
    assert_eq!(
        topics::set_topic_configs(&cluster.image, "nope", configs.clone(), &any_configs),
        Err(TopicError::Unknown("nope".into()))
    );
    let refuse = |_: &BTreeMap<String, String>| Err("no".to_owned());
    assert_eq!(
        topics::set_topic_configs(&cluster.image, "orders", configs.clone(), &refuse),
        Err(TopicError::InvalidConfig("no".into()))
    );
    let records =
        topics::set_topic_configs(&cluster.image, "orders", configs.clone(), &any_configs).unwrap();
    cluster.apply(records).unwrap();
    assert_eq!(cluster.image.topic("orders").unwrap().configs, configs);
}

#[test]
fn producer_id_blocks_are_consecutive() {
    let mut cluster = live_cluster(&[1]);
    cluster
        .apply(vec![topics::allocate_producer_ids(&cluster.image, 1, 1000)])
        .unwrap();
    let second = topics::allocate_producer_ids(&cluster.image, 2, 1000);
    assert_eq!(
        second,
        RecordBody::ProducerIds {
            node_id: 2,
            first: 1000,
            count: 1000
        }
    );
    cluster.apply(vec![second]).unwrap();
    assert_eq!(cluster.image.next_producer_id(), 2000);
    assert!(
        cluster
            .apply(vec![topics::allocate_producer_ids(&cluster.image, 1, 0)])
            .is_err()
    );
}
