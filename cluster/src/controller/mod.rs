//! What the active controller decides. Each decision is a function of the current image
//! (and, for broker sessions, of a time passed in) that returns the records to write;
//! `server/` writes them through the quorum and answers the caller once they are applied.
//!
//! Decisions are made one at a time on the image that includes every earlier decision, so
//! they never race; the preconditions the records carry (broker and partition epochs) make
//! a stale decision harmless if leadership moves mid-write.

pub mod alter_partition;
pub mod elections;
mod leadership;
mod partition_change;
pub mod reassignment;
pub mod sessions;
pub mod topics;

pub use alter_partition::{AlterPartition, AlterPartitionError, alter_partition};
pub use elections::{
    ElectionError, ElectionKind, ElectionOutcome, elect_leaders, preferred_leader_rebalance,
    unclean_elections,
};
pub use reassignment::{
    OngoingReassignment, ReassignmentError, ReassignmentOutcome, alter_partition_reassignments,
    complete_reassignments, list_partition_reassignments,
};
pub use sessions::{BrokerSessions, Heartbeat, HeartbeatReply, RegisterBroker, SessionError};
pub use topics::{CreateTopic, TopicDefaults, TopicError, ValidateConfigs};
