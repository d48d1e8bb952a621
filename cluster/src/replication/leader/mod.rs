//! The leader's side of one partition, on the leader's shard: follower fetches, the high
//! watermark, `acks=all`, ListOffsets (here) and ISR changes ([`isr`]).
//!
//! A `LeaderReplica` lives for one leader epoch (a tenure). It starts with every
//! follower's position unknown, so its HW is frozen until each ISR member has fetched in
//! the new epoch (`Partition.makeLeader`, `Replica.resetReplicaState`); a new leader epoch
//! means a new `LeaderReplica` ([`Transition::Rebuild`]).

mod isr;

use std::collections::BTreeMap;
use std::time::Instant;

pub use isr::{IsrChangeRequest, IsrMember, IsrRefusal};

use super::progress::Progress;
use super::{
    BrokerView, EpochSource, LocalOffsets, ReplicaError, ReplicationConfig, RoleError, Transition,
    check_local, effective_min_isr,
};
use crate::NodeId;
use crate::bugs::{self, Bug};
use crate::image::PartitionState;
use crate::records::LeaderRecoveryState;

/// One partition of a follower's fetch (Kafka's `FetchRequest` partition, v15+, plus
/// Spate's durable offset). Every field is peer input: [`LeaderReplica::on_fetch`] checks
/// them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerFetch {
    /// The leader epoch the follower believes current (KIP-320 fencing).
    pub current_leader_epoch: i32,
    /// Its log end: it holds everything below, and wants what follows.
    pub fetch_offset: i64,
    /// The end of what it has made durable (≤ `fetch_offset`; notes §5).
    pub durable_offset: i64,
    /// The epoch of the last batch it appended, or of its own last tenure (KIP-595's
    /// `LastFetchedEpoch`); `None` when its epoch cache is empty.
    pub last_fetched_epoch: Option<i32>,
    /// Its log start offset.
    pub log_start: i64,
    /// Its broker epoch (KIP-903's `ReplicaState.ReplicaEpoch`).
    pub broker_epoch: i64,
}

/// What the leader answers a fetch with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchDecision {
    /// Send records from `from` (the fetch offset) up to the log end, with this HW and log
    /// start (snapshotted together, KAFKA-7104).
    Read {
        from: i64,
        high_watermark: i64,
        log_start: i64,
    },
    /// The follower's log diverges: it must truncate (no records go with this answer;
    /// KIP-595's `DivergingEpoch`). Its positions were not recorded.
    Diverging {
        epoch: i32,
        end_offset: i64,
        high_watermark: i64,
        log_start: i64,
    },
    /// The fetch offset is outside the leader's log (`OFFSET_OUT_OF_RANGE`). Spate sends the
    /// leader's log start and log end with it, so the follower can resolve it without the
    /// ListOffsets round trips Kafka's fetcher makes (KAFKA-7414).
    OffsetOutOfRange {
        log_start: i64,
        log_end: i64,
    },
    Error(ReplicaError),
}

/// Why an `acks=all` produce fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProduceRefusal {
    /// `NOT_ENOUGH_REPLICAS`: refused before the append; nothing was written.
    #[error("the ISR has {isr} replicas; min.insync.replicas needs {min}")]
    NotEnoughReplicas { isr: usize, min: usize },
    /// `NOT_ENOUGH_REPLICAS_AFTER_APPEND`: the record *is* committed (the HW passed it), but
    /// the ISR shrank below the minimum meanwhile; the client cannot tell, so it is an
    /// ambiguous error (`Partition.checkEnoughReplicasReachOffset`).
    #[error("committed, but the ISR has {isr} replicas; min.insync.replicas needs {min}")]
    NotEnoughReplicasAfterAppend { isr: usize, min: usize },
}

/// Why ListOffsets(latest) has no answer yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ListOffsetsRefusal {
    /// `OFFSET_NOT_AVAILABLE`: a new leader's HW is still below the start of its epoch, so
    /// answering it could send clients backwards (KIP-207, KAFKA-2334).
    #[error("the high watermark {high_watermark} is below the epoch's start {epoch_start_offset}")]
    OffsetNotAvailable {
        high_watermark: i64,
        epoch_start_offset: i64,
    },
}

/// What a new leader starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaderStart {
    pub local: LocalOffsets,
    /// Its own HW (its follower HW or its checkpoint), which may lag; clamped to its log.
    pub high_watermark: i64,
    /// Where its epoch starts: its log end when it recorded (leader epoch, log end) in the
    /// epoch cache (KAFKA-7415).
    pub epoch_start_offset: i64,
    /// The topic's `min.insync.replicas`.
    pub min_insync_replicas: usize,
}

/// A follower as the leader sees it (for metrics, DescribeTopicPartitions and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerPosition {
    pub node: NodeId,
    pub fetch_offset: Option<i64>,
    pub durable_offset: Option<i64>,
    pub last_caught_up_at: Option<Instant>,
    pub caught_up: bool,
}

/// The leader side of one partition for one leader epoch.
#[derive(Debug, Clone)]
pub struct LeaderReplica {
    node: NodeId,
    config: ReplicationConfig,
    leader_epoch: i32,
    partition_epoch: i32,
    /// In assignment order (reassignment included).
    replicas: Vec<NodeId>,
    /// The committed ISR, as the metadata says.
    isr: Vec<NodeId>,
    recovery: LeaderRecoveryState,
    pending: Option<isr::Pending>,
    min_insync_replicas: usize,
    local: LocalOffsets,
    high_watermark: i64,
    epoch_start_offset: i64,
    followers: BTreeMap<NodeId, Progress>,
    /// The latest time any call passed in.
    now: Instant,
}

impl LeaderReplica {
    /// Starts a tenure. The glue first records (leader epoch, log end) in the epoch cache
    /// and passes that log end as `start.epoch_start_offset` (KAFKA-7415); `epochs` proves
    /// it did.
    pub fn new(
        now: Instant,
        node: NodeId,
        state: &PartitionState,
        start: LeaderStart,
        config: &ReplicationConfig,
        epochs: &dyn EpochSource,
    ) -> Result<Self, RoleError> {
        if state.leader != node {
            return Err(RoleError::NotLeader {
                node,
                leader: state.leader,
            });
        }
        if epochs.latest_epoch() != Some(state.leader_epoch) {
            return Err(RoleError::EpochNotAssigned {
                epoch: state.leader_epoch,
            });
        }
        let local = start.local;
        check_local(&local)?;
        if !(local.log_start..=local.log_end).contains(&start.epoch_start_offset) {
            return Err(RoleError::InvalidOffsets("epoch start outside the log"));
        }
        let followers = state
            .replicas
            .iter()
            .filter(|&&r| r != node)
            .map(|&r| (r, Progress::new(now, state.isr.contains(&r))))
            .collect();
        let mut leader = Self {
            node,
            config: config.clone(),
            leader_epoch: state.leader_epoch,
            partition_epoch: state.partition_epoch,
            replicas: state.replicas.clone(),
            isr: state.isr.clone(),
            recovery: state.leader_recovery_state,
            pending: None,
            min_insync_replicas: start.min_insync_replicas,
            local,
            high_watermark: start
                .high_watermark
                .clamp(local.log_start, local.durable().max(local.log_start)),
            epoch_start_offset: start.epoch_start_offset,
            followers,
            now,
        };
        leader.update_high_watermark(now);
        Ok(leader)
    }

    /// A follower's fetch for this partition (`Partition.fetchRecords` for a follower).
    ///
    /// In Kafka's order: the leader epoch (KIP-320: older → `FENCED_LEADER_EPOCH`, newer →
    /// `UNKNOWN_LEADER_EPOCH`), the replica (unknown → `UNKNOWN_LEADER_EPOCH`), the broker
    /// epoch (KIP-903: older than its registration → fenced), divergence (KIP-595:
    /// `LastFetchedEpoch` looked up in the local epoch cache; a smaller epoch or an end below
    /// the fetch offset → `DivergingEpoch`), then the range (`OFFSET_OUT_OF_RANGE`). Only a
    /// fetch that passes all of them updates the follower's positions and caught-up time and
    /// moves the HW. A fetch that merely reports a new durable offset is handled the same
    /// way; its answer may be dropped.
    pub fn on_fetch(
        &mut self,
        now: Instant,
        follower: NodeId,
        fetch: &FollowerFetch,
        epochs: &dyn EpochSource,
        brokers: &dyn BrokerView,
    ) -> FetchDecision {
        self.see(now);
        if let Err(error) = self.check_fetch(follower, fetch, brokers) {
            return FetchDecision::Error(error);
        }
        if let Some(last_fetched) = fetch.last_fetched_epoch {
            match epochs.end_offset_for(last_fetched) {
                None => return self.out_of_range(),
                Some((epoch, end_offset))
                    if epoch < last_fetched || end_offset < fetch.fetch_offset =>
                {
                    return FetchDecision::Diverging {
                        epoch,
                        end_offset,
                        high_watermark: self.high_watermark,
                        log_start: self.local.log_start,
                    };
                }
                Some(_) => {}
            }
        }
        if fetch.fetch_offset < self.local.log_start || fetch.fetch_offset > self.local.log_end {
            return self.out_of_range();
        }
        let leader_log_end = self.local.log_end;
        let eligible = self.is_eligible(follower, Some(fetch.broker_epoch), brokers);
        if let Some(progress) = self.followers.get_mut(&follower) {
            progress.record(now, fetch, leader_log_end);
            progress.eligible = eligible;
        }
        self.update_high_watermark(now);
        FetchDecision::Read {
            from: fetch.fetch_offset,
            high_watermark: self.high_watermark,
            log_start: self.local.log_start,
        }
    }

    fn check_fetch(
        &self,
        follower: NodeId,
        fetch: &FollowerFetch,
        brokers: &dyn BrokerView,
    ) -> Result<(), ReplicaError> {
        if fetch.fetch_offset < 0
            || fetch.log_start < 0
            || fetch.durable_offset < 0
            || fetch.durable_offset > fetch.fetch_offset
            || fetch.log_start > fetch.fetch_offset
        {
            return Err(ReplicaError::InvalidRequest(
                "offsets must satisfy 0 <= log start, durable offset <= fetch offset",
            ));
        }
        if fetch.last_fetched_epoch.is_some_and(|e| e < 0) {
            return Err(ReplicaError::InvalidRequest("negative last fetched epoch"));
        }
        if fetch.current_leader_epoch < self.leader_epoch {
            return Err(ReplicaError::FencedLeaderEpoch {
                fetched: fetch.current_leader_epoch,
                current: self.leader_epoch,
            });
        }
        if fetch.current_leader_epoch > self.leader_epoch || !self.followers.contains_key(&follower)
        {
            return Err(ReplicaError::UnknownLeaderEpoch {
                fetched: fetch.current_leader_epoch,
            });
        }
        if let Some(current) = brokers.broker_epoch(follower)
            && current > fetch.broker_epoch
        {
            return Err(ReplicaError::StaleBrokerEpoch {
                fetched: fetch.broker_epoch,
                current,
            });
        }
        Ok(())
    }

    fn out_of_range(&self) -> FetchDecision {
        FetchDecision::OffsetOutOfRange {
            log_start: self.local.log_start,
            log_end: self.local.log_end,
        }
    }

    /// The local log moved: an append (or its sync) completed, or retention moved the start.
    /// Recomputes the HW (an ISR of the leader alone commits on its own sync).
    pub fn on_local(&mut self, now: Instant, local: LocalOffsets) {
        self.see(now);
        debug_assert!(
            local.log_end >= self.local.log_end,
            "a leader's log never shrinks"
        );
        self.local = local;
        self.update_high_watermark(now);
    }

    /// A metadata change for this partition. A lower partition epoch is stale; a new leader
    /// epoch, or another leader, means this tenure is over ([`Transition::Rebuild`]). A newer
    /// partition epoch in the same tenure brings the committed ISR, replicas and recovery
    /// state, and ends any pending AlterPartition: a request still in flight carries the
    /// older partition epoch, so the controller refuses it (`Partition.makeLeader` sets a
    /// committed state).
    pub fn on_partition_state(
        &mut self,
        now: Instant,
        state: &PartitionState,
        brokers: &dyn BrokerView,
    ) -> Transition {
        self.see(now);
        if state.partition_epoch < self.partition_epoch {
            return Transition::Stale;
        }
        if state.leader != self.node || state.leader_epoch != self.leader_epoch {
            return Transition::Rebuild;
        }
        if state.partition_epoch == self.partition_epoch {
            return Transition::Unchanged;
        }
        self.pending = None;
        self.adopt(now, state);
        self.refresh_eligibility(brokers);
        self.update_high_watermark(now);
        Transition::Updated
    }

    /// Takes `state` (same tenure, newer partition epoch) as the committed state. Followers
    /// that are new replicas start unknown and never caught up; the others keep their
    /// positions and clocks (Kafka resets the clocks on every metadata change; not doing so
    /// keeps an unrelated change from granting a laggard another full lag time).
    fn adopt(&mut self, now: Instant, state: &PartitionState) {
        self.partition_epoch = state.partition_epoch;
        self.replicas = state.replicas.clone();
        self.isr = state.isr.clone();
        self.recovery = state.leader_recovery_state;
        let node = self.node;
        self.followers.retain(|r, _| state.replicas.contains(r));
        for &replica in state.replicas.iter().filter(|&&r| r != node) {
            self.followers
                .entry(replica)
                .or_insert_with(|| Progress::new(now, false));
        }
    }

    /// Updates `min.insync.replicas` (a topic config change).
    pub fn set_min_insync_replicas(&mut self, now: Instant, min_insync_replicas: usize) {
        self.see(now);
        self.min_insync_replicas = min_insync_replicas;
        self.update_high_watermark(now);
    }

    /// Kafka's `Partition.maybeIncrementLeaderHW`, on durable offsets (notes §2, §5):
    ///
    /// - nothing moves while the committed ISR is below min(min.insync, RF) (strict min ISR,
    ///   KAFKA-15583);
    /// - the candidate is the minimum of the leader's stable end, the durable offsets of the
    ///   *maximal* ISR (a pending expansion counts at once, a pending shrink only once
    ///   committed), and those of caught-up, ISR-eligible followers not yet members (so a
    ///   chasing follower can reach the HW and join);
    /// - a member whose position is unknown in this tenure freezes it;
    /// - the HW only moves up.
    fn update_high_watermark(&mut self, now: Instant) {
        if self.isr.len() < self.effective_min_isr() {
            return;
        }
        let mut candidate = self.local.durable();
        // Injected bug (tests only): the leader commits on its own sync, before the ISR has
        // the data.
        let followers_count = !bugs::enabled(Bug::HwBeforeIsr);
        for (replica, progress) in self.followers.iter().filter(|_| followers_count) {
            let counts = self.in_maximal_isr(*replica)
                || (progress.eligible
                    && progress.is_caught_up(
                        now,
                        self.local.log_end,
                        self.config.replica_lag_time_max,
                    ));
            if !counts {
                continue;
            }
            match progress.durable_offset {
                Some(durable) => candidate = candidate.min(durable),
                None => return,
            }
        }
        self.high_watermark = self.high_watermark.max(candidate);
    }

    fn effective_min_isr(&self) -> usize {
        effective_min_isr(self.min_insync_replicas, self.replicas.len())
    }

    fn in_maximal_isr(&self, replica: NodeId) -> bool {
        self.isr.contains(&replica) || self.pending_expansion() == Some(replica)
    }

    /// KIP-841, KIP-903: registered, unfenced, not shutting down, and the broker epoch of its
    /// last fetch is its current registration's.
    fn is_eligible(
        &self,
        replica: NodeId,
        fetched_epoch: Option<i64>,
        brokers: &dyn BrokerView,
    ) -> bool {
        brokers.is_isr_eligible(replica)
            && fetched_epoch.is_some()
            && brokers.broker_epoch(replica) == fetched_epoch
    }

    fn refresh_eligibility(&mut self, brokers: &dyn BrokerView) {
        let eligible: Vec<(NodeId, bool)> = self
            .followers
            .iter()
            .map(|(&r, p)| (r, self.is_eligible(r, p.broker_epoch, brokers)))
            .collect();
        for (replica, flag) in eligible {
            if let Some(progress) = self.followers.get_mut(&replica) {
                progress.eligible = flag;
            }
        }
    }

    /// `acks=all`, before the append: `NOT_ENOUGH_REPLICAS` while the committed ISR is
    /// below the effective min ISR (`Partition.appendRecordsToLeader`).
    pub fn check_produce_acks_all(&self) -> Result<(), ProduceRefusal> {
        let min = self.effective_min_isr();
        if self.isr.len() < min {
            return Err(ProduceRefusal::NotEnoughReplicas {
                isr: self.isr.len(),
                min,
            });
        }
        Ok(())
    }

    /// `acks=all`, after appending a batch whose last offset is `last_offset`: `None` while
    /// the HW has not passed it; then done, or `NOT_ENOUGH_REPLICAS_AFTER_APPEND` if the
    /// maximal ISR is now below the min ISR (`Partition.checkEnoughReplicasReachOffset`).
    /// Call it again on every HW move; the glue times the request out if it never resolves
    /// (with the strict min ISR, a frozen HW never passes it).
    pub fn acks_all_outcome(&self, last_offset: i64) -> Option<Result<(), ProduceRefusal>> {
        if self.high_watermark <= last_offset {
            return None;
        }
        let min = self.effective_min_isr();
        let maximal = self.maximal_isr().len();
        if maximal < min {
            return Some(Err(ProduceRefusal::NotEnoughReplicasAfterAppend {
                isr: maximal,
                min,
            }));
        }
        Some(Ok(()))
    }

    /// ListOffsets(latest) for a client: the HW, or `OFFSET_NOT_AVAILABLE` while it is below
    /// the start of this leader's epoch (KIP-207, `Partition.fetchOffsetForTimestamp`).
    pub fn latest_offset(&self) -> Result<i64, ListOffsetsRefusal> {
        if self.high_watermark < self.epoch_start_offset {
            return Err(ListOffsetsRefusal::OffsetNotAvailable {
                high_watermark: self.high_watermark,
                epoch_start_offset: self.epoch_start_offset,
            });
        }
        Ok(self.high_watermark)
    }

    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    /// The committed ISR.
    pub fn isr(&self) -> &[NodeId] {
        &self.isr
    }

    /// The committed ISR plus a member whose addition is pending (`PendingExpandIsr`).
    pub fn maximal_isr(&self) -> Vec<NodeId> {
        let mut maximal = self.isr.clone();
        maximal.extend(self.pending_expansion());
        maximal
    }

    pub fn replicas(&self) -> &[NodeId] {
        &self.replicas
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch
    }

    pub fn partition_epoch(&self) -> i32 {
        self.partition_epoch
    }

    pub fn epoch_start_offset(&self) -> i64 {
        self.epoch_start_offset
    }

    pub fn leader_recovery_state(&self) -> LeaderRecoveryState {
        self.recovery
    }

    pub fn local(&self) -> LocalOffsets {
        self.local
    }

    /// Every follower's position, in node order.
    pub fn followers(&self) -> impl Iterator<Item = FollowerPosition> + '_ {
        self.followers.iter().map(|(&node, p)| FollowerPosition {
            node,
            fetch_offset: p.fetch_offset,
            durable_offset: p.durable_offset,
            last_caught_up_at: p.last_caught_up_at,
            caught_up: p.is_caught_up(
                self.now,
                self.local.log_end,
                self.config.replica_lag_time_max,
            ),
        })
    }

    fn see(&mut self, now: Instant) {
        self.now = self.now.max(now);
    }
}
