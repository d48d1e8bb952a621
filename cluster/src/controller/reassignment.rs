//! Partition reassignment (KIP-455): AlterPartitionReassignments,
//! ListPartitionReassignments, and the completion that follows once the new replicas
//! have caught up.
//!
//! A reassignment to `target` makes the replicas `target` followed by the current replicas
//! outside it, with `adding = target − current` and `removing = current − target`
//! (`PartitionReassignmentReplicas`). The leader brings the adding replicas into the ISR as
//! they catch up; once all are in it, the partition moves to `target`: the removing replicas
//! leave the replicas and the ISR, a removed leader is replaced by a live ISR member of the
//! target, and the leader epoch bumps so the removed replicas are fenced. Completion is
//! checked in every AlterPartition ([`super::alter_partition()`]) and by
//! [`complete_reassignments`].
//!
//! Cancelling reverts: the adding replicas leave the replicas and the ISR. If that would
//! leave the ISR empty it is refused (Kafka allows it only with an unclean election).

use std::collections::BTreeSet;

use crate::NodeId;
use crate::image::{ClusterImage, REPLICATION_FACTOR_MAX};
use crate::records::RecordBody;
use crate::topic_id::TopicId;

use super::partition_change::{Target, is_live, partition_of};
use super::topics::check_broker_replicas;

/// Why a partition's reassignment change was refused. Each maps to one Kafka error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReassignmentError {
    #[error("the partition does not exist")]
    UnknownTopicOrPartition,
    #[error("{0}")]
    InvalidReplicaAssignment(String),
    #[error("no reassignment is in progress")]
    NoReassignmentInProgress,
}

/// The records of an AlterPartitionReassignments request, and each partition's result.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ReassignmentOutcome {
    pub records: Vec<RecordBody>,
    pub results: Vec<(TopicId, i32, Result<(), ReassignmentError>)>,
}

/// One ongoing reassignment, as ListPartitionReassignments reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OngoingReassignment {
    pub topic_id: TopicId,
    pub partition: i32,
    pub replicas: Vec<NodeId>,
    pub adding_replicas: Vec<NodeId>,
    pub removing_replicas: Vec<NodeId>,
}

/// AlterPartitionReassignments: for each partition, `Some(target)` starts (or replaces) a
/// reassignment to `target`, `None` cancels the one in progress.
pub fn alter_partition_reassignments(
    image: &ClusterImage,
    changes: &[(TopicId, i32, Option<Vec<NodeId>>)],
) -> ReassignmentOutcome {
    let mut outcome = ReassignmentOutcome::default();
    let mut seen = BTreeSet::new();
    for (topic_id, partition, target) in changes {
        let result = if seen.insert((*topic_id, *partition)) {
            match target {
                Some(target) => reassign(image, *topic_id, *partition, target),
                None => cancel(image, *topic_id, *partition),
            }
        } else {
            Err(ReassignmentError::InvalidReplicaAssignment(
                "the partition is listed twice".to_owned(),
            ))
        };
        let result = result.map(|record| outcome.records.extend(record));
        outcome.results.push((*topic_id, *partition, result));
    }
    outcome
}

fn reassign(
    image: &ClusterImage,
    topic_id: TopicId,
    partition: i32,
    target: &[NodeId],
) -> Result<Option<RecordBody>, ReassignmentError> {
    let current = partition_of(image, topic_id, partition)
        .ok_or(ReassignmentError::UnknownTopicOrPartition)?;
    check_target(image, target)?;
    let replicas: Vec<NodeId> = target
        .iter()
        .chain(current.replicas.iter().filter(|r| !target.contains(r)))
        .copied()
        .collect();
    if replicas.len() > REPLICATION_FACTOR_MAX {
        return Err(ReassignmentError::InvalidReplicaAssignment(format!(
            "The old and new replicas together are {}; at most {REPLICATION_FACTOR_MAX} may be assigned during a reassignment.",
            replicas.len()
        )));
    }
    let adding: Vec<NodeId> = target
        .iter()
        .copied()
        .filter(|r| !current.replicas.contains(r))
        .collect();
    check_broker_replicas(image, std::slice::from_ref(&adding))
        .map_err(|e| ReassignmentError::InvalidReplicaAssignment(e.to_string()))?;
    let mut next = Target::of(current);
    next.removing = current
        .replicas
        .iter()
        .copied()
        .filter(|r| !target.contains(r))
        .collect();
    next.adding = adding;
    next.replicas = replicas;
    if next.complete_reassignment() {
        next.keep_or_elect_leader(&is_live(image));
    }
    Ok(next.record(topic_id, partition, current))
}

/// Kafka's `validateManualPartitionAssignment`: not empty, no repeats, registered brokers.
fn check_target(image: &ClusterImage, target: &[NodeId]) -> Result<(), ReassignmentError> {
    let invalid = |message: String| Err(ReassignmentError::InvalidReplicaAssignment(message));
    if target.is_empty() {
        return invalid(
            "The manual partition assignment includes an empty replica list.".to_owned(),
        );
    }
    if target.len() > REPLICATION_FACTOR_MAX {
        return invalid(format!(
            "The manual partition assignment lists {} replicas; the maximum is {REPLICATION_FACTOR_MAX}.",
            target.len()
        ));
    }
    for (index, id) in target.iter().enumerate() {
        if target[..index].contains(id) {
            return invalid(format!(
                "The manual partition assignment includes the broker {id} more than once."
            ));
        }
        if image.broker(*id).is_none() {
            return invalid(format!(
                "The manual partition assignment includes broker {id}, but no such broker is registered."
            ));
        }
    }
    Ok(())
}

/// Kafka's `PartitionReassignmentRevert`: the adding replicas leave the replicas and ISR.
fn cancel(
    image: &ClusterImage,
    topic_id: TopicId,
    partition: i32,
) -> Result<Option<RecordBody>, ReassignmentError> {
    let current = partition_of(image, topic_id, partition)
        .ok_or(ReassignmentError::UnknownTopicOrPartition)?;
    if !current.is_reassigning() {
        return Err(ReassignmentError::NoReassignmentInProgress);
    }
    let mut next = Target::of(current);
    next.replicas = current.original_replicas();
    next.isr.retain(|r| !current.adding_replicas.contains(r));
    if next.isr.is_empty() {
        return Err(ReassignmentError::InvalidReplicaAssignment(
            "Unable to revert the partition assignment because it would require an unclean leader election.".to_owned(),
        ));
    }
    next.adding.clear();
    next.removing.clear();
    next.keep_or_elect_leader(&is_live(image));
    Ok(next.record(topic_id, partition, current))
}

/// The records that complete every reassignment whose adding replicas are all in the ISR
/// (for the controller to run after ISR changes it did not see through AlterPartition,
/// and at start).
pub fn complete_reassignments(image: &ClusterImage) -> Vec<RecordBody> {
    let live = is_live(image);
    let mut records = Vec::new();
    for topic in image.topics() {
        for (index, partition) in (0..).zip(&topic.partitions) {
            let mut next = Target::of(partition);
            if next.complete_reassignment() {
                next.keep_or_elect_leader(&live);
                records.extend(next.record(topic.id, index, partition));
            }
        }
    }
    records
}

/// ListPartitionReassignments: the ongoing reassignments among `partitions` (all of them
/// when `None`), in topic-name and partition order.
pub fn list_partition_reassignments(
    image: &ClusterImage,
    partitions: Option<&[(TopicId, i32)]>,
) -> Vec<OngoingReassignment> {
    let mut ongoing = Vec::new();
    for topic in image.topics() {
        for (index, partition) in (0..).zip(&topic.partitions) {
            let wanted = partitions.is_none_or(|list| list.contains(&(topic.id, index)));
            if wanted && partition.is_reassigning() {
                ongoing.push(OngoingReassignment {
                    topic_id: topic.id,
                    partition: index,
                    replicas: partition.replicas.clone(),
                    adding_replicas: partition.adding_replicas.clone(),
                    removing_replicas: partition.removing_replicas.clone(),
                });
            }
        }
    }
    ongoing
}
