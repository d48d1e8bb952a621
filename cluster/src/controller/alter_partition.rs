//! AlterPartition (KIP-497): a partition leader asks to change its ISR.
//!
//! The checks are Kafka's (`ReplicationControlManager.alterPartition` and
//! `validateAlterPartitionData`), in its order: the sender's broker epoch, the partition,
//! the epochs (newer than this image → `NOT_CONTROLLER`, an older leader epoch →
//! `FENCED_LEADER_EPOCH`, an older partition epoch → `INVALID_UPDATE_VERSION`), the sender
//! leads, the ISR (replicas only, no repeats, the leader in it; KIP-704: at most the leader
//! while recovering, and no way back to recovering), and every member eligible (registered,
//! unfenced, not shutting down, and at the broker epoch the leader saw; KIP-841, KIP-903).
//!
//! An accepted change is one [`RecordBody::PartitionChange`]: the partition epoch bumps,
//! the leader epoch does not (an ISR change fences nobody; KAFKA-15021 era). If the new ISR
//! completes a reassignment, the same record completes it (and then, if the leader was
//! removed, elects another and bumps the leader epoch).

use crate::NodeId;
use crate::image::ClusterImage;
use crate::records::{LeaderRecoveryState, RecordBody};
use crate::replication::{IsrChangeRequest, IsrMember, IsrRefusal};
use crate::topic_id::TopicId;

use super::partition_change::{Target, is_live, partition_of};

/// An AlterPartition for one partition, as the controller receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlterPartition {
    /// The sender (the partition's leader) and its broker epoch.
    pub broker: NodeId,
    pub broker_epoch: i64,
    pub topic_id: TopicId,
    pub partition: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub new_isr: Vec<IsrMember>,
    pub leader_recovery_state: LeaderRecoveryState,
}

impl AlterPartition {
    /// The request a leader's [`IsrChangeRequest`] becomes, sent by `broker`.
    pub fn from_request(
        broker: NodeId,
        broker_epoch: i64,
        topic_id: TopicId,
        partition: i32,
        request: &IsrChangeRequest,
    ) -> Self {
        Self {
            broker,
            broker_epoch,
            topic_id,
            partition,
            leader_epoch: request.leader_epoch,
            partition_epoch: request.partition_epoch,
            new_isr: request.new_isr.clone(),
            leader_recovery_state: request.leader_recovery_state,
        }
    }
}

/// Why an AlterPartition is refused. Each maps to one Kafka error code in `server/`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AlterPartitionError {
    /// `STALE_BROKER_EPOCH`: the sender is not registered, or not at that epoch.
    #[error("broker {broker} is not registered at epoch {broker_epoch}")]
    StaleBrokerEpoch { broker: NodeId, broker_epoch: i64 },
    /// `UNKNOWN_TOPIC_OR_PARTITION`.
    #[error("partition {partition} of topic {topic_id} does not exist")]
    UnknownTopicOrPartition { topic_id: TopicId, partition: i32 },
    /// `NOT_CONTROLLER`: the request names epochs newer than this controller's image, so
    /// this controller is probably no longer the active one.
    #[error("the request is newer than this controller's metadata")]
    NotController,
    /// `FENCED_LEADER_EPOCH`.
    #[error("leader epoch {found} is stale; the partition is at {current}")]
    FencedLeaderEpoch { found: i32, current: i32 },
    /// `INVALID_UPDATE_VERSION`.
    #[error("partition epoch {found} is stale; the partition is at {current}")]
    InvalidUpdateVersion { found: i32, current: i32 },
    /// `NOT_LEADER_OR_FOLLOWER`: the sender does not lead the partition.
    #[error("broker {broker} does not lead the partition (the leader is {leader})")]
    NotLeaderOrFollower { broker: NodeId, leader: NodeId },
    /// `INVALID_REQUEST`.
    #[error("invalid AlterPartition: {0}")]
    InvalidRequest(String),
    /// `INELIGIBLE_REPLICA`.
    #[error("replica {node} cannot join the ISR: {reason}")]
    IneligibleReplica { node: NodeId, reason: &'static str },
}

impl AlterPartitionError {
    /// What the leader does about it (`Partition.handleAlterPartitionError`).
    pub fn refusal(&self) -> IsrRefusal {
        match self {
            AlterPartitionError::IneligibleReplica { .. } => IsrRefusal::Ineligible,
            AlterPartitionError::NotController => IsrRefusal::Retry,
            AlterPartitionError::StaleBrokerEpoch { .. }
            | AlterPartitionError::UnknownTopicOrPartition { .. }
            | AlterPartitionError::FencedLeaderEpoch { .. }
            | AlterPartitionError::InvalidUpdateVersion { .. }
            | AlterPartitionError::NotLeaderOrFollower { .. }
            | AlterPartitionError::InvalidRequest(_) => IsrRefusal::AwaitMetadata,
        }
    }
}

/// The record that applies `request`, none if it changes nothing (the leader's ISR is the
/// committed one already: answer with the partition as it is), or why it is refused.
pub fn alter_partition(
    image: &ClusterImage,
    request: &AlterPartition,
) -> Result<Vec<RecordBody>, AlterPartitionError> {
    if image.broker(request.broker).map(|b| b.broker_epoch) != Some(request.broker_epoch) {
        return Err(AlterPartitionError::StaleBrokerEpoch {
            broker: request.broker,
            broker_epoch: request.broker_epoch,
        });
    }
    let partition = partition_of(image, request.topic_id, request.partition).ok_or(
        AlterPartitionError::UnknownTopicOrPartition {
            topic_id: request.topic_id,
            partition: request.partition,
        },
    )?;
    if request.leader_epoch > partition.leader_epoch
        || request.partition_epoch > partition.partition_epoch
    {
        return Err(AlterPartitionError::NotController);
    }
    if request.leader_epoch < partition.leader_epoch {
        return Err(AlterPartitionError::FencedLeaderEpoch {
            found: request.leader_epoch,
            current: partition.leader_epoch,
        });
    }
    if request.partition_epoch < partition.partition_epoch {
        return Err(AlterPartitionError::InvalidUpdateVersion {
            found: request.partition_epoch,
            current: partition.partition_epoch,
        });
    }
    if partition.leader != request.broker {
        return Err(AlterPartitionError::NotLeaderOrFollower {
            broker: request.broker,
            leader: partition.leader,
        });
    }
    let new_isr: Vec<NodeId> = request.new_isr.iter().map(|m| m.node).collect();
    check_isr(&new_isr, &partition.replicas, partition.leader)?;
    let recovering = request.leader_recovery_state == LeaderRecoveryState::Recovering;
    if recovering && new_isr.len() > 1 {
        return Err(AlterPartitionError::InvalidRequest(
            "a recovering leader's ISR is the leader alone (KIP-704)".to_owned(),
        ));
    }
    if recovering && partition.leader_recovery_state == LeaderRecoveryState::Recovered {
        return Err(AlterPartitionError::InvalidRequest(
            "a recovered partition cannot go back to recovering (KIP-704)".to_owned(),
        ));
    }
    for member in &request.new_isr {
        check_eligible(image, member)?;
    }
    let mut target = Target::of(partition);
    target.isr = new_isr;
    target.recovery = request.leader_recovery_state;
    if target.complete_reassignment() {
        target.keep_or_elect_leader(&is_live(image));
    }
    Ok(target
        .record(request.topic_id, request.partition, partition)
        .into_iter()
        .collect())
}

fn check_isr(
    isr: &[NodeId],
    replicas: &[NodeId],
    leader: NodeId,
) -> Result<(), AlterPartitionError> {
    let invalid = |message: String| Err(AlterPartitionError::InvalidRequest(message));
    if let Some(stray) = isr.iter().find(|m| !replicas.contains(m)) {
        return invalid(format!("ISR member {stray} is not a replica"));
    }
    let repeated = isr
        .iter()
        .enumerate()
        .find(|(i, m)| isr[..*i].contains(m))
        .map(|(_, m)| m);
    if let Some(repeated) = repeated {
        return invalid(format!("ISR lists {repeated} twice"));
    }
    if !isr.contains(&leader) {
        return invalid(format!("the ISR must hold the leader {leader}"));
    }
    Ok(())
}

/// Kafka's `ineligibleReplicasForIsr`, for every member of the proposed ISR.
fn check_eligible(image: &ClusterImage, member: &IsrMember) -> Result<(), AlterPartitionError> {
    let ineligible = |reason| {
        Err(AlterPartitionError::IneligibleReplica {
            node: member.node,
            reason,
        })
    };
    let Some(broker) = image.broker(member.node) else {
        return ineligible("not registered");
    };
    if broker.in_controlled_shutdown {
        return ineligible("in controlled shutdown");
    }
    if broker.fenced {
        return ineligible("fenced");
    }
    if member
        .broker_epoch
        .is_some_and(|e| e != broker.broker_epoch)
    {
        return ineligible("restarted since the leader saw it (broker epoch mismatch)");
    }
    Ok(())
}
