//! The openraft type configuration of the controller quorum, and Kafka ↔ openraft node ids.

use serde::{Deserialize, Serialize};
use spate_cluster::{ApplyError, MetadataBatch};

openraft::declare_raft_types!(
    /// The metadata log: entries carry a [`MetadataBatch`]; applying one yields an
    /// [`ApplyOutcome`]. A snapshot travels as the image's bytes
    /// ([`spate_cluster::ClusterImage::to_snapshot`]): the metadata image is small enough to
    /// send whole, which `generic-snapshot-data` lets the network do in one message.
    pub TypeConfig:
        D = MetadataBatch,
        R = ApplyOutcome,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Vec<u8>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// What applying one log entry did. A refused batch is not a failure of the log: every node
/// refuses it the same way, and the proposer learns why from this.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyOutcome(pub Result<(), ApplyError>);

pub type Raft = openraft::Raft<TypeConfig>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type LogId = openraft::LogId<u64>;
pub type Vote = openraft::Vote<u64>;
pub type SnapshotMeta = openraft::SnapshotMeta<u64, openraft::BasicNode>;
pub type StoredMembership = openraft::StoredMembership<u64, openraft::BasicNode>;
pub type Snapshot = openraft::Snapshot<TypeConfig>;
pub type StorageError = openraft::StorageError<u64>;

/// The openraft id of Kafka node `node_id`.
///
/// Kafka ids are never negative (the config refuses them). The mapping is the id's bits as
/// an unsigned 32-bit number, so it is reversible and a negative id, should one slip
/// through, lands above `i32::MAX` where [`from_raft_id`] refuses it instead of colliding
/// with a real node.
pub fn to_raft_id(node_id: i32) -> u64 {
    debug_assert!(node_id >= 0, "negative Kafka node id {node_id}");
    u64::from(node_id.cast_unsigned())
}

/// The Kafka node id of openraft node `raft_id`; `None` if no Kafka node has it.
pub fn from_raft_id(raft_id: u64) -> Option<i32> {
    i32::try_from(raft_id).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_round_trip_and_out_of_range_ids_are_refused() {
        for id in [0, 1, 7, i32::MAX] {
            assert_eq!(from_raft_id(to_raft_id(id)), Some(id));
        }
        assert_eq!(from_raft_id(u64::from(u32::MAX)), None);
        assert_eq!(from_raft_id(1 << 31), None);
    }
}
