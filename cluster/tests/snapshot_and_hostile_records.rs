//! The image is what its log says, whatever the log holds.
//!
//! - A snapshot restores exactly the image it was taken of, and the restored image then
//!   evolves exactly as the original under the same further records.
//! - Metadata batches and snapshots come from disk and from peers: damaged or hostile bytes
//!   are an error, never a panic, and never an image that breaks its invariants. A refused
//!   batch changes nothing but the offset.
#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use common::driver::{Driver, decision_or_raw, populated};
use common::{Cluster, assert_snapshot_round_trips, check_invariants};
use proptest::prelude::*;
use serde_json::{Value, json};
use spate_cluster::{ClusterImage, LeaderRecoveryState, MetadataBatch, RecordBody};

/// Applies `bytes` as a log entry to `image`, checking everything that must hold whether
/// the bytes decode and apply or not.
fn apply_hostile(image: &ClusterImage, bytes: &[u8]) -> Result<(), TestCaseError> {
    let Ok(batch) = MetadataBatch::decode(bytes) else {
        return Ok(());
    };

    let mut after = image.clone();
    let index = image.offset() + 1;
    match after.apply(index, &batch) {
        Ok(()) => {
            prop_assert!(
                check_invariants(&after).is_ok(),
                "{:?}",
                check_invariants(&after)
            );
            let restored = ClusterImage::from_snapshot(&after.to_snapshot());
            prop_assert_eq!(restored.as_ref(), Ok(&after));
            // What decoded re-encodes to the same records.
            prop_assert_eq!(MetadataBatch::decode(&batch.encode()), Ok(batch));
        }
        Err(_) => {
            let mut unchanged = image.clone();
            unchanged.advance_offset(index);
            prop_assert_eq!(after, unchanged, "a refused batch changed the image");
        }
    }
    Ok(())
}

/// A change to one node of a JSON document.
#[derive(Debug, Clone)]
enum Mutation {
    /// A hostile value of the node's own kind (a number for a number, a node list for an
    /// array, …), so the document still decodes and the change reaches `apply`.
    SameKind(usize),
    Replace(Value),
    /// Drops an object's first field or an array's first element.
    RemoveFirst,
    /// Repeats an array's first element (duplicate replicas, duplicate records).
    DuplicateFirst,
}

fn hostile_numbers() -> Vec<Value> {
    vec![
        json!(-1),
        json!(-2),
        json!(0),
        json!(1),
        json!(2),
        json!(3),
        json!(7),
        json!(i32::MAX),
        json!(i64::from(i32::MAX) + 1),
        json!(i64::MIN),
        json!(i64::MAX),
        json!(u64::MAX),
        json!(1e300),
        json!(0.5),
    ]
}

fn hostile_strings() -> Vec<Value> {
    vec![
        json!(""),
        json!("x".repeat(300)),
        json!("teleport"),
        json!("partition_change"),
        json!("remove_topic"),
        json!("00000000-0000-0000-0000-000000000000"),
        json!("a0000000-0000-0000-0000-000000000001"),
        json!("__consumer_offsets"),
        json!(".."),
        json!("orders"),
        json!("audit"),
    ]
}

fn hostile_arrays() -> Vec<Value> {
    vec![
        json!([]),
        json!([1, 1]),
        json!([-1]),
        json!([0]),
        json!([3, 0, 1]),
        json!([9, 8]),
        json!((0..33).collect::<Vec<_>>()),
        json!([[1]]),
    ]
}

fn hostile_value() -> impl Strategy<Value = Value> {
    let mut fixed = hostile_numbers();
    fixed.extend(hostile_strings());
    fixed.extend(hostile_arrays());
    fixed.extend([Value::Null, json!(true), json!({}), nested(200)]);
    prop_oneof![
        3 => prop::sample::select(fixed),
        1 => any::<i64>().prop_map(Value::from),
        1 => "[a-z_.-]{0,12}".prop_map(Value::from),
    ]
}

fn nested(depth: usize) -> Value {
    (0..depth).fold(json!(1), |inner, _| json!([inner]))
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        8 => any::<usize>().prop_map(Mutation::SameKind),
        1 => hostile_value().prop_map(Mutation::Replace),
        1 => Just(Mutation::RemoveFirst),
        1 => Just(Mutation::DuplicateFirst),
    ]
}

/// Applies `mutation` to one node of `value`, picked by `target`: any node, or for
/// [`Mutation::SameKind`] a scalar or a list of scalars (where a decodable change lives).
fn mutate(value: &mut Value, target: usize, mutation: &Mutation) {
    let mut all = Vec::new();
    let mut scalar_sites = Vec::new();
    collect_paths(value, String::new(), &mut all, &mut scalar_sites);
    let candidates = match mutation {
        Mutation::SameKind(_) if !scalar_sites.is_empty() => &scalar_sites,
        _ => &all,
    };
    let path = &candidates[target % candidates.len()];
    if let Some(node) = value.pointer_mut(path) {
        mutate_node(node, mutation);
    }
}

/// JSON pointers (RFC 6901) to every node, and to the scalar-ish ones.
fn collect_paths(
    value: &Value,
    path: String,
    all: &mut Vec<String>,
    scalar_sites: &mut Vec<String>,
) {
    all.push(path.clone());
    match value {
        Value::Array(items) => {
            if items
                .iter()
                .all(|item| !item.is_array() && !item.is_object())
            {
                scalar_sites.push(path.clone());
            }
            for (i, item) in items.iter().enumerate() {
                collect_paths(item, format!("{path}/{i}"), all, scalar_sites);
            }
        }
        Value::Object(fields) => {
            for (key, field) in fields {
                let key = key.replace('~', "~0").replace('/', "~1");
                collect_paths(field, format!("{path}/{key}"), all, scalar_sites);
            }
        }
        _ => scalar_sites.push(path),
    }
}

fn mutate_node(value: &mut Value, mutation: &Mutation) {
    let pick = |choices: Vec<Value>, choice: usize| choices[choice % choices.len()].clone();
    match (mutation, &mut *value) {
        (Mutation::Replace(new), _) => *value = new.clone(),
        (Mutation::SameKind(choice), Value::Number(_)) => *value = pick(hostile_numbers(), *choice),
        (Mutation::SameKind(choice), Value::String(_)) => *value = pick(hostile_strings(), *choice),
        (Mutation::SameKind(choice), Value::Array(_)) => *value = pick(hostile_arrays(), *choice),
        (Mutation::SameKind(_), Value::Bool(flag)) => *flag = !*flag,
        (Mutation::SameKind(_), Value::Null) => *value = json!(0),
        (Mutation::RemoveFirst, Value::Array(items)) if !items.is_empty() => {
            items.remove(0);
        }
        (Mutation::RemoveFirst, Value::Object(fields)) => {
            if let Some(key) = fields.keys().next().cloned() {
                fields.remove(&key);
            }
        }
        (Mutation::DuplicateFirst, Value::Array(items)) if !items.is_empty() => {
            let first = items[0].clone();
            items.push(first);
        }
        (_, other) => *other = Value::Null,
    }
}

/// Batches that apply to [`populated`]: one of each kind, and a few together.
fn valid_batches(cluster: &Cluster) -> Vec<MetadataBatch> {
    let image = &cluster.image;
    let orders = image.topic("orders").unwrap();
    let p0 = &orders.partitions[0];
    let one = |body| MetadataBatch::new([body]);
    vec![
        one(RecordBody::ClusterInit {
            cluster_id: "test-cluster".into(),
        }),
        one(common::register_record(7, "new", Some("rack-9"))),
        one(RecordBody::BrokerChange {
            node_id: 0,
            broker_epoch: image.broker(0).unwrap().broker_epoch,
            fenced: Some(true),
            in_controlled_shutdown: Some(false),
        }),
        MetadataBatch::new([
            RecordBody::Topic {
                topic_id: common::topic_id(99),
                name: "fresh".into(),
                configs: [("cleanup.policy".to_owned(), "compact".to_owned())].into(),
            },
            RecordBody::Partition {
                topic_id: common::topic_id(99),
                partition: 0,
                replicas: vec![0, 1],
                isr: vec![0, 1],
                leader: 0,
                leader_epoch: 0,
                partition_epoch: 0,
                adding_replicas: Vec::new(),
                removing_replicas: Vec::new(),
                leader_recovery_state: LeaderRecoveryState::Recovered,
            },
            // Version 2: mid-reassignment, after an unclean election.
            RecordBody::Partition {
                topic_id: common::topic_id(99),
                partition: 1,
                replicas: vec![1, 4, 0],
                isr: vec![0],
                leader: 0,
                leader_epoch: 3,
                partition_epoch: 5,
                adding_replicas: vec![4],
                removing_replicas: vec![0],
                leader_recovery_state: LeaderRecoveryState::Recovering,
            },
        ]),
        one(RecordBody::PartitionChange {
            topic_id: orders.id,
            partition: 0,
            expected_partition_epoch: p0.partition_epoch,
            leader: Some(p0.isr[p0.isr.len() - 1]),
            isr: Some(p0.isr.clone()),
            replicas: Some(p0.replicas.clone()),
            adding_replicas: None,
            removing_replicas: None,
            leader_recovery_state: None,
        }),
        // Version 2: a reassignment starts.
        one(RecordBody::PartitionChange {
            topic_id: orders.id,
            partition: 0,
            expected_partition_epoch: p0.partition_epoch,
            leader: None,
            isr: None,
            replicas: Some([p0.replicas.clone(), vec![4]].concat()),
            adding_replicas: Some(vec![4]),
            removing_replicas: Some(vec![p0.replicas[0]]),
            leader_recovery_state: Some(LeaderRecoveryState::Recovered),
        }),
        one(RecordBody::TopicConfigs {
            topic_id: orders.id,
            configs: Default::default(),
        }),
        one(RecordBody::RemoveTopic {
            topic_id: orders.id,
        }),
        one(RecordBody::ProducerIds {
            node_id: 1,
            first: image.next_producer_id(),
            count: 5,
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn a_snapshot_restores_the_image_and_evolves_like_it(
        first in prop::collection::vec(decision_or_raw(), 0..60),
        then in prop::collection::vec(decision_or_raw(), 0..30),
    ) {
        let mut driver = Driver::new();
        for op in &first {
            driver.step(op).map_err(TestCaseError::fail)?;
        }
        let image = &driver.cluster.image;
        prop_assert!(check_invariants(image).is_ok(), "{:?}", check_invariants(image));
        let mut restored = ClusterImage::from_snapshot(&image.to_snapshot()).unwrap();
        prop_assert_eq!(&restored, image);

        let mark = driver.applied.len();
        for op in &then {
            driver.step(op).map_err(TestCaseError::fail)?;
        }
        for applied in &driver.applied[mark..] {
            let outcome = restored.apply(applied.index, &applied.batch);
            prop_assert_eq!(&outcome, &applied.outcome);
        }
        prop_assert_eq!(&restored, &driver.cluster.image);
        assert_snapshot_round_trips(&restored);
    }

    #[test]
    fn arbitrary_bytes_never_panic_in_decode_or_apply(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        apply_hostile(&populated().image, &bytes)?;
    }

    #[test]
    fn json_shaped_noise_never_panics_in_decode_or_apply(text in r#"\{"records":\[[\[\]{}":,0-9a-z_ -]{0,200}"#) {
        apply_hostile(&populated().image, text.as_bytes())?;
    }

    #[test]
    fn mutated_valid_batches_are_refused_whole_or_keep_every_invariant(
        which in any::<prop::sample::Index>(),
        mutations in prop::collection::vec((any::<usize>(), mutation()), 1..4),
    ) {
        let cluster = populated();
        let batches = valid_batches(&cluster);
        let mut value = serde_json::to_value(which.get(&batches)).unwrap();
        for (target, mutation) in &mutations {
            mutate(&mut value, *target, mutation);
        }
        apply_hostile(&cluster.image, &serde_json::to_vec(&value).unwrap())?;
    }

    #[test]
    fn mutated_snapshots_are_refused_or_restore_a_valid_image(
        mutations in prop::collection::vec((any::<usize>(), mutation()), 1..4),
        byte_flips in prop::option::weighted(0.2, prop::collection::vec((any::<usize>(), any::<u8>()), 1..3)),
        truncate_to in prop::option::weighted(0.1, any::<usize>()),
    ) {
        let snapshot = populated().image.to_snapshot();
        let mut value: Value = serde_json::from_slice(&snapshot).unwrap();
        for (target, mutation) in &mutations {
            mutate(&mut value, *target, mutation);
        }
        let mut bytes = serde_json::to_vec(&value).unwrap();
        for (at, byte) in byte_flips.iter().flatten() {
            let len = bytes.len();
            bytes[at % len] = *byte;
        }
        if let Some(len) = truncate_to {
            bytes.truncate(len % (bytes.len() + 1));
        }
        if let Ok(image) = ClusterImage::from_snapshot(&bytes) {
            prop_assert!(check_invariants(&image).is_ok(), "{:?}", check_invariants(&image));
            let again = ClusterImage::from_snapshot(&image.to_snapshot());
            prop_assert_eq!(again.as_ref(), Ok(&image));
        }
    }
}

#[test]
fn every_decision_populates_a_valid_image() {
    let cluster = populated();
    check_invariants(&cluster.image).unwrap();
    assert_snapshot_round_trips(&cluster.image);
    let image = &cluster.image;
    assert!(image.broker(2).unwrap().fenced && image.broker(2).unwrap().in_controlled_shutdown);
    assert!(image.broker(3).unwrap().fenced);
    assert!(
        image
            .topic("audit")
            .unwrap()
            .partitions
            .iter()
            .any(|p| p.leader == spate_cluster::NO_LEADER)
    );
    for batch in valid_batches(&cluster) {
        let mut image = cluster.image.clone();
        image
            .apply(image.offset() + 1, &batch)
            .unwrap_or_else(|e| panic!("{batch:?}: {e}"));
    }
}

#[test]
fn newer_versions_and_unknown_kinds_are_refused_for_every_kind() {
    for batch in valid_batches(&populated()) {
        let mut value = serde_json::to_value(&batch).unwrap();
        let newer = batch.records[0].body.version_max() + 1;
        value["records"][0]["v"] = json!(newer);
        let error = MetadataBatch::decode(&serde_json::to_vec(&value).unwrap()).unwrap_err();
        assert!(
            error.to_string().contains(&format!("version {newer}")),
            "{error}"
        );
        value["records"][0]["v"] = json!(1);
        value["records"][0]["type"] = json!("teleport");
        assert!(MetadataBatch::decode(&serde_json::to_vec(&value).unwrap()).is_err());
    }
}

#[test]
fn partition_records_are_written_as_version_1_unless_they_need_version_2() {
    let batches = valid_batches(&populated());
    let versions: Vec<(&str, u16)> = batches
        .iter()
        .flat_map(|b| &b.records)
        .filter(|r| r.body.kind().starts_with("partition"))
        .map(|r| (r.body.kind(), r.version))
        .collect();
    assert_eq!(
        versions,
        [
            ("partition", 1),
            ("partition", 2),
            ("partition_change", 1),
            ("partition_change", 2)
        ]
    );
    // A version 1 record carrying version 2 fields is refused: a version 1 reader would
    // drop them silently and build another image.
    for batch in &batches {
        for record in batch.records.iter().filter(|r| r.version == 2) {
            let mut value = serde_json::to_value(MetadataBatch {
                records: vec![record.clone()],
            })
            .unwrap();
            value["records"][0]["v"] = json!(1);
            let error = MetadataBatch::decode(&serde_json::to_vec(&value).unwrap()).unwrap_err();
            assert!(error.to_string().contains("fields of version 2"), "{error}");
        }
    }
    // Version 1 records (as an older node wrote them) still read.
    let old = br#"{"records":[{"v":1,"type":"partition_change","topic_id":"a0000000-0000-0000-0000-000000000001","partition":0,"expected_partition_epoch":3,"isr":[1]}]}"#;
    let batch = MetadataBatch::decode(old).unwrap();
    assert_eq!(batch.records[0].version, 1);
}

#[test]
fn a_version_1_snapshot_still_restores() {
    let image = populated().image;
    let mut value: Value = serde_json::from_slice(&image.to_snapshot()).unwrap();
    assert_eq!(value["v"], json!(2));
    value["v"] = json!(1);
    let restored = ClusterImage::from_snapshot(&serde_json::to_vec(&value).unwrap()).unwrap();
    assert_eq!(restored, image);
    value["v"] = json!(3);
    assert!(ClusterImage::from_snapshot(&serde_json::to_vec(&value).unwrap()).is_err());
}

#[test]
fn deeply_nested_json_is_an_error_not_a_stack_overflow() {
    for depth in [200, 100_000] {
        let text = format!(
            r#"{{"records":[{{"v":1,"type":"cluster_init","cluster_id":{}1{}}}]}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        );
        assert!(MetadataBatch::decode(text.as_bytes()).is_err());
        let snapshot = format!(
            r#"{{"v":1,"offset":{}0{}}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        );
        assert!(ClusterImage::from_snapshot(snapshot.as_bytes()).is_err());
    }
}

#[test]
fn partition_records_that_break_invariants_are_refused_and_change_nothing() {
    let cluster = populated();
    let orders = cluster.image.topic("orders").unwrap();
    let p0 = orders.partitions[0].clone();
    let change_at = |partition: i32,
                     expected_partition_epoch: i32,
                     leader: Option<i32>,
                     isr: Option<Vec<i32>>,
                     replicas: Option<Vec<i32>>| {
        RecordBody::PartitionChange {
            topic_id: orders.id,
            partition,
            expected_partition_epoch,
            leader,
            isr,
            replicas,
            adding_replicas: None,
            removing_replicas: None,
            leader_recovery_state: None,
        }
    };
    let moving = |adding: Vec<i32>, removing: Vec<i32>| RecordBody::PartitionChange {
        topic_id: orders.id,
        partition: 0,
        expected_partition_epoch: p0.partition_epoch,
        leader: None,
        isr: None,
        replicas: None,
        adding_replicas: Some(adding),
        removing_replicas: Some(removing),
        leader_recovery_state: None,
    };
    let change = |leader, isr, replicas| change_at(0, p0.partition_epoch, leader, isr, replicas);
    let outside_isr = *p0
        .replicas
        .iter()
        .find(|r| !p0.isr.contains(r))
        .unwrap_or(&42);
    let refused = [
        change(Some(outside_isr), None, None),
        change(None, Some(vec![p0.isr[0], p0.isr[0]]), None),
        change(None, Some(vec![]), None),
        change(None, Some(vec![-3]), None),
        change(None, None, Some(vec![p0.replicas[0], p0.replicas[0]])),
        change(Some(-7), None, None),
        change_at(
            i32::MAX,
            p0.partition_epoch,
            None,
            Some(p0.isr.clone()),
            None,
        ),
        change_at(0, p0.partition_epoch + 1, Some(p0.isr[0]), None, None),
        // Reassignment sets outside the replicas, overlapping, or removing every replica.
        moving(vec![42], vec![]),
        moving(vec![], vec![42]),
        moving(vec![p0.replicas[0]], vec![p0.replicas[0]]),
        moving(vec![], p0.replicas.clone()),
        moving(vec![p0.replicas[0], p0.replicas[0]], vec![]),
        RecordBody::Partition {
            topic_id: orders.id,
            partition: 1_000_000,
            replicas: vec![0],
            isr: vec![0],
            leader: 0,
            leader_epoch: 0,
            partition_epoch: 0,
            adding_replicas: Vec::new(),
            removing_replicas: Vec::new(),
            leader_recovery_state: LeaderRecoveryState::Recovered,
        },
        RecordBody::Partition {
            topic_id: orders.id,
            partition: orders.partition_count(),
            replicas: vec![0, 0],
            isr: vec![0],
            leader: 0,
            leader_epoch: -1,
            partition_epoch: 0,
            adding_replicas: Vec::new(),
            removing_replicas: Vec::new(),
            leader_recovery_state: LeaderRecoveryState::Recovered,
        },
        RecordBody::Partition {
            topic_id: orders.id,
            partition: orders.partition_count(),
            replicas: vec![0, 1],
            isr: vec![0],
            leader: 0,
            leader_epoch: 0,
            partition_epoch: 0,
            adding_replicas: vec![2],
            removing_replicas: Vec::new(),
            leader_recovery_state: LeaderRecoveryState::Recovered,
        },
        RecordBody::ProducerIds {
            node_id: -1,
            first: cluster.image.next_producer_id(),
            count: 1,
        },
        RecordBody::BrokerChange {
            node_id: 0,
            broker_epoch: -5,
            fenced: Some(false),
            in_controlled_shutdown: None,
        },
    ];
    for record in refused {
        // Alone, and after a record that would apply: the batch is refused whole.
        let fine = RecordBody::TopicConfigs {
            topic_id: orders.id,
            configs: Default::default(),
        };
        for batch in [
            MetadataBatch::new([record.clone()]),
            MetadataBatch::new([fine, record.clone()]),
        ] {
            let mut image = cluster.image.clone();
            assert!(
                image.apply(image.offset() + 1, &batch).is_err(),
                "applied {record:?}"
            );
            let mut unchanged = cluster.image.clone();
            unchanged.advance_offset(image.offset());
            assert_eq!(image, unchanged, "{record:?}");
        }
    }
}
