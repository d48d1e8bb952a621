//! One partition's next state, built field by field and written as the one
//! [`RecordBody::PartitionChange`] that moves it there (Kafka's `PartitionChangeBuilder`).
//!
//! The decisions in this module's siblings (AlterPartition, elections, reassignments) each
//! set what they decide; then [`Target::complete_reassignment`] finishes a reassignment
//! whose adding replicas are all in the ISR, and [`Target::keep_or_elect_leader`] makes sure
//! the leader is an acceptable one. One record per partition per batch: the record expects
//! the partition epoch it was decided on, so a second one would be refused.

use crate::image::{ClusterImage, PartitionState};
use crate::records::{LeaderRecoveryState, RecordBody};
use crate::topic_id::TopicId;
use crate::{NO_LEADER, NodeId};

/// What a partition should become.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub(crate) replicas: Vec<NodeId>,
    pub(crate) isr: Vec<NodeId>,
    pub(crate) leader: NodeId,
    pub(crate) adding: Vec<NodeId>,
    pub(crate) removing: Vec<NodeId>,
    pub(crate) recovery: LeaderRecoveryState,
}

impl Target {
    /// The target that changes nothing.
    pub(crate) fn of(partition: &PartitionState) -> Self {
        Self {
            replicas: partition.replicas.clone(),
            isr: partition.isr.clone(),
            leader: partition.leader,
            adding: partition.adding_replicas.clone(),
            removing: partition.removing_replicas.clone(),
            recovery: partition.leader_recovery_state,
        }
    }

    /// KIP-455 (`PartitionReassignmentReplicas.maybeCompleteReassignment`): once every
    /// adding replica is in the ISR, the removing replicas leave the replicas and the ISR,
    /// unless that would empty the ISR. Returns whether it completed.
    pub(crate) fn complete_reassignment(&mut self) -> bool {
        if self.adding.is_empty() && self.removing.is_empty() {
            return false;
        }
        if !self.adding.iter().all(|r| self.isr.contains(r)) {
            return false;
        }
        let removing = std::mem::take(&mut self.removing);
        let isr: Vec<NodeId> = self
            .isr
            .iter()
            .copied()
            .filter(|r| !removing.contains(r))
            .collect();
        if isr.is_empty() {
            self.removing = removing;
            return false;
        }
        self.isr = isr;
        self.replicas.retain(|r| !removing.contains(r));
        self.adding.clear();
        true
    }

    /// Keeps the leader if it is still a live replica in the ISR; otherwise the first
    /// replica in assignment order that is in the ISR and live leads, or nobody
    /// (`PartitionChangeBuilder.electAnyLeader`, clean elections only).
    pub(crate) fn keep_or_elect_leader(&mut self, is_live: &dyn Fn(NodeId) -> bool) {
        let acceptable =
            |r: NodeId| self.isr.contains(&r) && self.replicas.contains(&r) && is_live(r);
        if self.leader != NO_LEADER && acceptable(self.leader) {
            return;
        }
        self.leader = self
            .replicas
            .iter()
            .copied()
            .find(|&r| acceptable(r))
            .unwrap_or(NO_LEADER);
    }

    /// The record that moves `current` to this target (only the fields that change, at
    /// `current`'s partition epoch), or `None` if nothing changes.
    pub(crate) fn record(
        &self,
        topic_id: TopicId,
        partition: i32,
        current: &PartitionState,
    ) -> Option<RecordBody> {
        let leader = (self.leader != current.leader).then_some(self.leader);
        let isr = (self.isr != current.isr).then(|| self.isr.clone());
        let replicas = (self.replicas != current.replicas).then(|| self.replicas.clone());
        let adding_replicas = (self.adding != current.adding_replicas).then(|| self.adding.clone());
        let removing_replicas =
            (self.removing != current.removing_replicas).then(|| self.removing.clone());
        let leader_recovery_state =
            (self.recovery != current.leader_recovery_state).then_some(self.recovery);
        if leader.is_none()
            && isr.is_none()
            && replicas.is_none()
            && adding_replicas.is_none()
            && removing_replicas.is_none()
            && leader_recovery_state.is_none()
        {
            return None;
        }
        Some(RecordBody::PartitionChange {
            topic_id,
            partition,
            expected_partition_epoch: current.partition_epoch,
            leader,
            isr,
            replicas,
            adding_replicas,
            removing_replicas,
            leader_recovery_state,
        })
    }
}

/// Live in the image: registered, unfenced, not in controlled shutdown.
pub(crate) fn is_live(image: &ClusterImage) -> impl Fn(NodeId) -> bool + '_ {
    move |id| image.broker(id).is_some_and(|b| b.is_live())
}

/// The partition `(topic_id, partition)`, if it exists.
pub(crate) fn partition_of(
    image: &ClusterImage,
    topic_id: TopicId,
    partition: i32,
) -> Option<&PartitionState> {
    image.topic_by_id(topic_id)?.partition(partition)
}
