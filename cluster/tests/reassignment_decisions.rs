//! Partition reassignment (KIP-455): AlterPartitionReassignments, its completion through
//! AlterPartition or `complete_reassignments`, cancellation, and
//! ListPartitionReassignments, checked by applying the records to an image.
#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use common::decisions::{ORDERS, alter, apply, cluster_with, partition, set_partition};
use common::topic_id;
use spate_cluster::controller::alter_partition::alter_partition;
use spate_cluster::controller::reassignment::{
    OngoingReassignment, ReassignmentError, alter_partition_reassignments, complete_reassignments,
    list_partition_reassignments,
};
use spate_cluster::{NodeId, RecordBody};

#[test]
fn a_reassignment_adds_replicas_then_completes_once_they_are_in_sync_moving_a_removed_leader() {
    let mut cluster = cluster_with(4, &[&[0, 1, 2]]);
    let outcome = alter_partition_reassignments(
        &cluster.image,
        &[(topic_id(ORDERS), 0, Some(vec![1, 2, 3]))],
    );
    assert_eq!(outcome.results[0].2, Ok(()));
    apply(&mut cluster, outcome.records);
    let p = partition(&cluster, 0);
    assert_eq!(
        p.replicas,
        [1, 2, 3, 0],
        "the target first, then the replicas it drops"
    );
    assert_eq!(
        (p.adding_replicas.clone(), p.removing_replicas.clone()),
        (vec![3], vec![0])
    );
    assert_eq!(
        (p.leader, p.leader_epoch, p.isr.clone()),
        (0, 0, vec![0, 1, 2])
    );
    assert_eq!(
        list_partition_reassignments(&cluster.image, None),
        [OngoingReassignment {
            topic_id: topic_id(ORDERS),
            partition: 0,
            replicas: vec![1, 2, 3, 0],
            adding_replicas: vec![3],
            removing_replicas: vec![0],
        }]
    );
    assert!(
        complete_reassignments(&cluster.image).is_empty(),
        "node 3 is not in sync yet"
    );
    // The leader adds node 3: the same record completes the reassignment.
    let records = alter_partition(&cluster.image, &alter(&cluster, 0, &[0, 1, 2, 3])).unwrap();
    assert_eq!(records.len(), 1);
    apply(&mut cluster, records);
    let done = partition(&cluster, 0);
    assert_eq!(
        (done.replicas.clone(), done.isr.clone(), done.leader),
        (vec![1, 2, 3], vec![1, 2, 3], 1)
    );
    assert!(!done.is_reassigning());
    assert_eq!(done.leader_epoch, 1, "node 0 is fenced out");
    assert!(list_partition_reassignments(&cluster.image, None).is_empty());
}

#[test]
fn a_reassignment_that_only_removes_completes_at_once_and_bumps_the_leader_epoch() {
    let mut cluster = cluster_with(3, &[&[0, 1, 2]]);
    let outcome =
        alter_partition_reassignments(&cluster.image, &[(topic_id(ORDERS), 0, Some(vec![0, 1]))]);
    apply(&mut cluster, outcome.records);
    let p = partition(&cluster, 0);
    assert_eq!(
        (p.replicas.clone(), p.isr.clone(), p.leader),
        (vec![0, 1], vec![0, 1], 0)
    );
    assert_eq!(
        p.leader_epoch, 1,
        "same leader, new epoch: node 2's fetches are fenced"
    );
    // The same target again changes nothing.
    let again =
        alter_partition_reassignments(&cluster.image, &[(topic_id(ORDERS), 0, Some(vec![0, 1]))]);
    assert_eq!(again.results[0].2, Ok(()));
    assert!(again.records.is_empty());
}

#[test]
fn cancelling_a_reassignment_reverts_it_unless_that_would_empty_the_isr() {
    let mut cluster = cluster_with(5, &[&[0, 1]]);
    let id = topic_id(ORDERS);
    assert_eq!(
        alter_partition_reassignments(&cluster.image, &[(id, 0, None)]).results[0].2,
        Err(ReassignmentError::NoReassignmentInProgress)
    );
    let outcome = alter_partition_reassignments(&cluster.image, &[(id, 0, Some(vec![2, 3]))]);
    apply(&mut cluster, outcome.records);
    let mut reverted = cluster.clone();
    let outcome = alter_partition_reassignments(&reverted.image, &[(id, 0, None)]);
    apply(&mut reverted, outcome.records);
    let p = partition(&reverted, 0);
    assert_eq!(
        (p.replicas.clone(), p.isr.clone(), p.leader),
        (vec![0, 1], vec![0, 1], 0)
    );
    assert!(!p.is_reassigning());
    // Once only the adding replicas are in the ISR, reverting would need an unclean election.
    set_partition(&mut cluster, 2, &[2]);
    let refused = alter_partition_reassignments(&cluster.image, &[(id, 0, None)]);
    assert!(matches!(
        refused.results[0].2,
        Err(ReassignmentError::InvalidReplicaAssignment(_))
    ));
    assert!(refused.records.is_empty());
}

#[test]
fn reassignment_targets_are_checked_like_manual_assignments() {
    let cluster = cluster_with(3, &[&[0, 1]]);
    let id = topic_id(ORDERS);
    let thirty_three: Vec<NodeId> = (0..33).collect();
    for target in [vec![], vec![1, 1], vec![0, 9], thirty_three] {
        let outcome =
            alter_partition_reassignments(&cluster.image, &[(id, 0, Some(target.clone()))]);
        assert!(
            matches!(
                outcome.results[0].2,
                Err(ReassignmentError::InvalidReplicaAssignment(_))
            ),
            "{target:?}"
        );
    }
    let outcome = alter_partition_reassignments(&cluster.image, &[(id, 3, Some(vec![0]))]);
    assert_eq!(
        outcome.results[0].2,
        Err(ReassignmentError::UnknownTopicOrPartition)
    );
    let twice = alter_partition_reassignments(
        &cluster.image,
        &[(id, 0, Some(vec![2, 1])), (id, 0, Some(vec![2]))],
    );
    assert_eq!(twice.results[0].2, Ok(()));
    assert!(twice.results[1].2.is_err(), "a partition listed twice");
    assert_eq!(twice.records.len(), 1);
}

#[test]
fn complete_reassignments_finishes_those_whose_adding_replicas_are_in_the_isr() {
    let mut cluster = cluster_with(4, &[&[0, 1], &[1, 2]]);
    let id = topic_id(ORDERS);
    let outcome = alter_partition_reassignments(
        &cluster.image,
        &[(id, 0, Some(vec![3, 1])), (id, 1, Some(vec![3, 2]))],
    );
    apply(&mut cluster, outcome.records);
    // Partition 0's ISR takes node 3 by a change the controller made itself.
    let p = partition(&cluster, 0);
    apply(
        &mut cluster,
        vec![RecordBody::PartitionChange {
            topic_id: id,
            partition: 0,
            expected_partition_epoch: p.partition_epoch,
            leader: None,
            isr: Some(vec![0, 1, 3]),
            replicas: None,
            adding_replicas: None,
            removing_replicas: None,
            leader_recovery_state: None,
        }],
    );
    let records = complete_reassignments(&cluster.image);
    assert_eq!(records.len(), 1);
    apply(&mut cluster, records);
    let p0 = partition(&cluster, 0);
    assert_eq!(
        (p0.replicas.clone(), p0.isr.clone(), p0.leader),
        (vec![3, 1], vec![1, 3], 3),
        "node 0 leaves; the first target replica in the ISR leads"
    );
    assert!(partition(&cluster, 1).is_reassigning());
}
