//! One partition's replicas, ISR, leader and epochs, as the metadata image holds them, with
//! the invariants [`crate::image::ClusterImage::apply`] keeps.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::image::REPLICATION_FACTOR_MAX;
use crate::records::LeaderRecoveryState;
use crate::{NO_LEADER, NodeId};

/// One partition's replica set and leadership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionState {
    /// In assignment order: the first is the preferred leader.
    pub replicas: Vec<NodeId>,
    /// Never empty: when the last in-sync replica is fenced it stays here, leaderless, so
    /// the controller knows who holds the committed data.
    pub isr: Vec<NodeId>,
    /// [`NO_LEADER`] when no ISR member is live.
    pub leader: NodeId,
    /// Bumps on every leader change; stamped into batches and checked on fetches (KIP-320).
    pub leader_epoch: i32,
    /// Bumps on every change (KIP-497); guards [`crate::records::RecordBody::PartitionChange`].
    pub partition_epoch: i32,
    /// Replicas an ongoing reassignment adds (KIP-455): in `replicas`, not in
    /// `removing_replicas`. Empty when no reassignment is under way.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adding_replicas: Vec<NodeId>,
    /// Replicas an ongoing reassignment removes once every adding replica is in the ISR.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removing_replicas: Vec<NodeId>,
    /// `Recovering` after an unclean election, until the leader's first ISR expansion
    /// (KIP-704).
    #[serde(default, skip_serializing_if = "LeaderRecoveryState::is_recovered")]
    pub leader_recovery_state: LeaderRecoveryState,
}

impl PartitionState {
    /// A partition with no reassignment under way and a leader that recovered.
    pub fn new(
        replicas: Vec<NodeId>,
        isr: Vec<NodeId>,
        leader: NodeId,
        leader_epoch: i32,
        partition_epoch: i32,
    ) -> Self {
        Self {
            replicas,
            isr,
            leader,
            leader_epoch,
            partition_epoch,
            adding_replicas: Vec::new(),
            removing_replicas: Vec::new(),
            leader_recovery_state: LeaderRecoveryState::Recovered,
        }
    }

    /// Whether a reassignment is under way (KIP-455).
    pub fn is_reassigning(&self) -> bool {
        !self.adding_replicas.is_empty() || !self.removing_replicas.is_empty()
    }

    /// The replicas the partition will have once its reassignment completes (all of them
    /// when none is under way), in assignment order.
    pub fn target_replicas(&self) -> Vec<NodeId> {
        self.replicas
            .iter()
            .copied()
            .filter(|r| !self.removing_replicas.contains(r))
            .collect()
    }

    /// The replicas the partition had before its reassignment started, in assignment
    /// order.
    pub fn original_replicas(&self) -> Vec<NodeId> {
        self.replicas
            .iter()
            .copied()
            .filter(|r| !self.adding_replicas.contains(r))
            .collect()
    }

    pub(crate) fn check(&self) -> Result<(), String> {
        if self.replicas.is_empty() || self.replicas.len() > REPLICATION_FACTOR_MAX {
            return Err(format!(
                "{} replicas (1 to {REPLICATION_FACTOR_MAX} allowed)",
                self.replicas.len()
            ));
        }
        check_node_list("replicas", &self.replicas)?;
        if self.isr.is_empty() {
            return Err("the ISR is empty".to_owned());
        }
        check_node_list("isr", &self.isr)?;
        if let Some(stray) = self.isr.iter().find(|n| !self.replicas.contains(n)) {
            return Err(format!("ISR member {stray} is not a replica"));
        }
        if self.leader != NO_LEADER && !self.isr.contains(&self.leader) {
            return Err(format!("leader {} is not in the ISR", self.leader));
        }
        if self.leader_epoch < 0 || self.partition_epoch < 0 {
            return Err("negative epoch".to_owned());
        }
        check_node_list("adding replicas", &self.adding_replicas)?;
        check_node_list("removing replicas", &self.removing_replicas)?;
        let moving = self.adding_replicas.iter().chain(&self.removing_replicas);
        if let Some(stray) = moving.clone().find(|n| !self.replicas.contains(n)) {
            return Err(format!("reassigned replica {stray} is not a replica"));
        }
        if let Some(both) = self
            .adding_replicas
            .iter()
            .find(|n| self.removing_replicas.contains(n))
        {
            return Err(format!("replica {both} is both added and removed"));
        }
        if self.removing_replicas.len() >= self.replicas.len() {
            return Err("a reassignment would leave no replica".to_owned());
        }
        Ok(())
    }
}

fn check_node_list(what: &str, nodes: &[NodeId]) -> Result<(), String> {
    let mut seen = BTreeSet::new();
    for &node in nodes {
        if node < 0 {
            return Err(format!("{what} holds negative node id {node}"));
        }
        if !seen.insert(node) {
            return Err(format!("{what} lists node {node} twice"));
        }
    }
    Ok(())
}
