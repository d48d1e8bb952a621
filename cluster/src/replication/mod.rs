//! Partition replication, sans-IO: Kafka's ISR protocol, with Spate's durable offsets.
//!
//! One partition has one [`LeaderReplica`] (on the leader's shard) and a [`FollowerReplica`]
//! on each follower's shard. Followers fetch from the leader; the leader tracks what each
//! follower holds, computes the high watermark (HW), decides when the ISR should shrink or
//! grow (it asks the controller, KIP-497), and tells `acks=all` producers when their records
//! are committed. Followers truncate by leader epoch (KIP-101, KIP-279, KIP-595) and apply
//! the leader's HW. Every rule cites the Kafka code or KIP it follows; the reasoning is in
//! `replication-notes.md` (§2 for the leader, §3 for the follower, §5 for durability).
//!
//! **Spate's durability twist** (notes §5): a follower reports two positions on every
//! fetch, its *fetch offset* (its log end: what it holds, so the leader does not resend it)
//! and its *durable offset* (what it has synced under `flush=always`; its written end under
//! `flush=never`). The HW, the ISR join, the caught-up clock and `acks=all` count durable
//! offsets only, and the leader's own term is its stable end, not its log end. Every record
//! below the HW is therefore synced on at least min-ISR replicas, and a power loss of the
//! whole ISR cannot take back a record a consumer has seen.
//!
//! **What this module does not do**: it reads no records, writes no file and sends no
//! message. Time is an `Instant` argument; the local log is described by [`LocalOffsets`]
//! and [`EpochSource`]; the glue (in `server/`) moves bytes and carries out the
//! [`FollowerAction`]s in the order given. The controller's side (AlterPartition,
//! elections, reassignments) is in [`crate::controller`].
//!
//! # The glue's part
//!
//! - **Roles.** Build replicas only from an image that holds this broker's current
//!   registration (image offset ≥ its broker epoch), as KRaft brokers do: a restarted broker
//!   acting on an older image could lead an epoch it led before its crash, with another log.
//!   [`Role::of`] names the role; every [`Transition::Rebuild`] means build it again.
//! - **Leader.** Record (leader epoch, log end) in the epoch cache, then
//!   [`LeaderReplica::new`]. Per replica fetch: [`LeaderReplica::on_fetch`], read what
//!   [`FetchDecision::Read`] says (from the log end's snapshot taken with the HW), then
//!   [`LeaderReplica::poll_isr_change`] and send what it returns as an AlterPartition. After
//!   each append and each sync: [`LeaderReplica::on_local`]. On every HW move, re-check parked
//!   `acks=all` produces with [`LeaderReplica::acks_all_outcome`]. Wake the replica at
//!   [`LeaderReplica::next_deadline`] with `poll_isr_change`. The controller's answer goes to
//!   [`LeaderReplica::on_isr_change_accepted`] (the partition as it answered, also when it
//!   wrote nothing) or [`LeaderReplica::on_isr_change_refused`]
//!   ([`crate::controller::AlterPartitionError::refusal`]; a timeout is
//!   [`IsrRefusal::Retry`]); metadata goes to [`LeaderReplica::on_partition_state`].
//! - **Follower.** Send [`FollowerReplica::next_fetch`] whenever it has one (after every
//!   answer, action and timer), and [`FollowerReplica::durable_report`] after every sync. Pass
//!   the leader's answer with the fetch it answers to [`FollowerReplica::on_answer`], carry
//!   out its actions in order, then report the log with [`FollowerReplica::on_local`] (after
//!   the append, and after each sync) and expose [`FollowerReplica::high_watermark`].
//! - **Epoch lookups** follow Kafka's `LeaderEpochFileCache.endOffsetFor` exactly
//!   ([`EpochSource::end_offset_for`]), edges included (an epoch below every entry, or
//!   above the latest); a plain floor lookup differs there, and the truncation points with
//!   it.

mod epochs;
mod follower;
mod leader;
mod progress;

use std::time::Duration;

pub use epochs::{EpochCache, EpochView};
pub use follower::{FollowerAction, FollowerReplica, LeaderAnswer};
pub use leader::{
    FetchDecision, FollowerFetch, FollowerPosition, IsrChangeRequest, IsrMember, IsrRefusal,
    LeaderReplica, LeaderStart, ListOffsetsRefusal, ProduceRefusal,
};

use crate::NodeId;
use crate::image::{ClusterImage, PartitionState};

/// Replication settings, with Kafka's names and defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationConfig {
    /// `replica.lag.time.max.ms` (30 s): a follower that has not caught up with the
    /// leader's log end for this long leaves the ISR. Spate checks at the exact deadline
    /// ([`LeaderReplica::next_deadline`]) rather than every half lag, so removal takes 1×,
    /// not up to 1.5×.
    pub replica_lag_time_max: Duration,
    /// `replica.fetch.backoff.ms` (1 s): how long a follower waits after an error before it
    /// fetches again.
    pub fetch_backoff: Duration,
    /// `replica.socket.timeout.ms` (30 s): a fetch with no answer by then is given up and
    /// sent again. Must exceed the leader's long-poll wait (`replica.fetch.wait.max.ms`,
    /// 500 ms).
    pub fetch_timeout: Duration,
    /// How long the leader waits before sending an AlterPartition again after a transport
    /// error or `NOT_CONTROLLER` (Kafka's `AlterPartitionManager` retries after
    /// `retry.backoff.ms`, 100 ms).
    pub isr_change_retry_backoff: Duration,
}

impl Default for ReplicationConfig {
    fn default() -> Self {
        Self {
            replica_lag_time_max: Duration::from_secs(30),
            fetch_backoff: Duration::from_secs(1),
            fetch_timeout: Duration::from_secs(30),
            isr_change_retry_backoff: Duration::from_millis(100),
        }
    }
}

/// The local log's marks, as the engine reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalOffsets {
    /// The first offset still held (retention moves it up).
    pub log_start: i64,
    /// The next offset to write: everything below is written (maybe not synced).
    pub log_end: i64,
    /// The end of what is durable under the topic's flush policy: synced under
    /// `flush=always`, written under `flush=never`. Never above `log_end`.
    pub stable_end: i64,
}

impl LocalOffsets {
    /// A log with every mark at `offset` (empty, or fully synced and nothing else).
    pub fn at(offset: i64) -> Self {
        Self {
            log_start: offset,
            log_end: offset,
            stable_end: offset,
        }
    }

    /// The offset this replica may report durable: its stable end, never above its log end.
    pub fn durable(&self) -> i64 {
        self.stable_end.min(self.log_end)
    }
}

/// Lookups in the local log's leader-epoch cache (epoch → start offset), which the engine
/// keeps beside the log.
pub trait EpochSource {
    /// Kafka's `LeaderEpochFileCache.endOffsetFor`: for the largest epoch ≤ `epoch` in the
    /// cache, that epoch and its end (the start offset of the next epoch in the cache, or the
    /// log end for the latest). For an `epoch` below every entry: `epoch` itself and the
    /// first entry's start. `None` when the cache is empty or `epoch` is above its latest
    /// (Kafka's `UNDEFINED_EPOCH_OFFSET`). [`EpochCache`] is the reference implementation.
    fn end_offset_for(&self, epoch: i32) -> Option<(i32, i64)>;
    /// The latest epoch in the cache: the epoch of the last batch appended, or of a leader
    /// tenure begun with no append yet (KAFKA-7415).
    fn latest_epoch(&self) -> Option<i32>;
}

/// What replication needs to know about brokers: the metadata image answers it.
pub trait BrokerView {
    /// The broker epoch of `node`'s current registration, if it is registered.
    fn broker_epoch(&self, node: NodeId) -> Option<i64>;
    /// Whether `node` may join an ISR: registered, unfenced and not in controlled shutdown
    /// (Kafka's `Partition.isReplicaIsrEligible`, KIP-841).
    fn is_isr_eligible(&self, node: NodeId) -> bool;
}

impl BrokerView for ClusterImage {
    fn broker_epoch(&self, node: NodeId) -> Option<i64> {
        self.broker(node).map(|b| b.broker_epoch)
    }

    fn is_isr_eligible(&self, node: NodeId) -> bool {
        self.broker(node).is_some_and(|b| b.is_live())
    }
}

/// What a partition-state change means for the replica that received it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// The state is older than the one held (a lower partition epoch): ignored, as Kafka's
    /// brokers skip it (`Partition.makeLeader` / `makeFollower`).
    Stale,
    /// Nothing this replica tracks changed.
    Unchanged,
    /// Same tenure, new replicas, ISR or recovery state.
    Updated,
    /// Follower only: a new leader epoch (or a new leader, or none). Fetching starts over;
    /// answers to fetches sent before are dropped (`Partition.makeFollower`: any epoch bump
    /// restarts the fetcher, even with the same leader).
    Restarted,
    /// This replica's role changed (it leads, follows or is no longer a replica), or, for a
    /// leader, a new leader epoch began: drop this object and build what [`Role::of`] names.
    Rebuild,
}

/// What a node is for one partition, by the metadata image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Build a [`LeaderReplica`] (after recording the epoch's start in the epoch cache).
    Leader,
    /// Build a [`FollowerReplica`]; `leader` is [`crate::NO_LEADER`] while the partition has none
    /// (the follower then waits for metadata).
    Follower { leader: NodeId },
    /// Not a replica: stop replicating (the glue may delete the log once it is safe).
    NotReplica,
}

impl Role {
    pub fn of(node: NodeId, state: &PartitionState) -> Role {
        if !state.replicas.contains(&node) {
            Role::NotReplica
        } else if state.leader == node {
            Role::Leader
        } else {
            Role::Follower {
                leader: state.leader,
            }
        }
    }
}

/// The answer to a replica fetch that failed. Each maps to one Kafka error code in
/// `server/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReplicaError {
    /// `FENCED_LEADER_EPOCH`: the fetch names an older leader epoch than the leader's; the
    /// follower waits for newer metadata (KIP-320).
    #[error("the fetch names leader epoch {fetched}; the current one is {current}")]
    FencedLeaderEpoch { fetched: i32, current: i32 },
    /// `UNKNOWN_LEADER_EPOCH`: the fetch names a newer leader epoch than the leader knows,
    /// or a replica the leader does not know in this epoch; the follower retries (KIP-320).
    #[error("the leader does not know leader epoch {fetched} or this replica in it")]
    UnknownLeaderEpoch { fetched: i32 },
    /// `NOT_LEADER_OR_FOLLOWER`: the fetch carries an older broker epoch than the follower's
    /// registration: it was sent before the follower restarted (KIP-903).
    #[error("the fetch carries broker epoch {fetched}; the broker's is {current}")]
    StaleBrokerEpoch { fetched: i64, current: i64 },
    /// `NOT_LEADER_OR_FOLLOWER`: this node does not lead the partition (the glue answers
    /// with it when it holds no [`LeaderReplica`]).
    #[error("this node does not lead the partition")]
    NotLeaderOrFollower,
    /// `INVALID_REQUEST`: fields that cannot come from a correct follower (a negative
    /// offset, a durable offset above the fetch offset, …).
    #[error("invalid replica fetch: {0}")]
    InvalidRequest(&'static str),
}

/// Why a [`LeaderReplica`] or [`FollowerReplica`] cannot be built from a partition state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RoleError {
    #[error("node {node} does not lead the partition (the leader is {leader})")]
    NotLeader { node: NodeId, leader: NodeId },
    #[error("node {node} is not a follower of the partition")]
    NotFollower { node: NodeId },
    /// KAFKA-7415: a new leader records (its epoch, its log end) in the epoch cache before
    /// it answers a fetch or takes an append.
    #[error("leader epoch {epoch} is not the latest in the local epoch cache; assign it first")]
    EpochNotAssigned { epoch: i32 },
    #[error("invalid local offsets: {0}")]
    InvalidOffsets(&'static str),
}

pub(crate) fn check_local(local: &LocalOffsets) -> Result<(), RoleError> {
    if local.log_start < 0 || local.log_end < local.log_start {
        return Err(RoleError::InvalidOffsets(
            "log start above log end, or negative",
        ));
    }
    if local.stable_end < 0 {
        return Err(RoleError::InvalidOffsets("negative stable end"));
    }
    Ok(())
}

/// `min(min.insync.replicas, replication factor)`, at least 1 (Kafka's
/// `Partition.effectiveMinIsr`): a topic with fewer replicas than its min ISR can still
/// commit once every replica has the record.
pub(crate) fn effective_min_isr(min_insync_replicas: usize, replica_count: usize) -> usize {
    min_insync_replicas.min(replica_count).max(1)
}
