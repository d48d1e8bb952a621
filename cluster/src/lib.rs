//! Spate's cluster control logic, sans-IO.
//!
//! - [`records`]: the metadata records the controller quorum replicates (openraft log
//!   entries), versioned so a later release can read an older log.
//! - [`image`]: the metadata image those records build (brokers, topics, partitions with
//!   their replicas, ISR, leaders and epochs), and the one `apply` every node runs.
//! - [`placement`], [`election`], [`controller`]: what the active controller decides (where
//!   replicas go, who leads, when a broker is fenced, ISR changes, reassignments), as
//!   functions of the image and of a time passed in.
//! - [`replication`]: partition replication on the brokers (the leader's follower tracking
//!   and high watermark, the follower's fetch and truncation decisions).
//! - [`bugs`]: known replication bugs the simulator must find, behind the test-only
//!   `bug-injection` feature (a constant "off" without it).
//!
//! Nothing here touches a clock, a disk or a socket: `server/` is the glue that stores the
//! log, moves records between nodes and applies images to the engine. That is what lets the
//! simulator drive the same code with a fake clock.

pub mod bugs;
pub mod controller;
pub mod election;
pub mod image;
mod partition;
pub mod placement;
pub mod records;
pub mod replication;
pub mod topic_id;
pub mod topic_name;

pub use image::{BrokerRegistration, ClusterImage, PartitionState, TopicImage};
pub use records::{
    ApplyError, LeaderRecoveryState, MetadataBatch, Record, RecordBody, RecordError,
};
pub use topic_id::TopicId;

/// A node's id, as Kafka's `node.id` / broker id (an int32 on the wire, never negative).
pub type NodeId = i32;

/// Kafka's "no leader" (a partition whose ISR has no live member).
pub const NO_LEADER: NodeId = -1;
