//! The follower's side of one partition, on the follower's shard: what to fetch, and what
//! to do with the leader's answer.
//!
//! One fetch is in flight at a time. Its answer is applied only if it still matches: it
//! answers the fetch outstanding (same leader epoch, fetch offset, last fetched epoch, log
//! start and broker epoch; a durable report of it counts as it), with the local log still
//! ending there (`AbstractFetcherThread.processFetchRequest`); anything else is a late
//! answer and is dropped. The leader never rewrites its log within its epoch, so two
//! answers to the same fetch are interchangeable. Matching on the offset and epoch alone is
//! not enough: a follower that truncated and fetched its way back to the same offset asks
//! from another log, and a late `DivergingEpoch` meant for the old one would cut committed
//! records from the new one (the simulator found this with a duplicated fetch).
//!
//! Truncation is by leader epoch only, never to the local HW (KIP-101), iterating when the
//! leader names an epoch this log lacks (KIP-279), and always before anything else from the
//! same answer (KAFKA-14704). A truncation below the local HW is carried out, so logs
//! converge, and counted ([`FollowerReplica::truncations_below_high_watermark`]): after a
//! clean election it cannot happen, so it means an unclean election or lost data.

use std::time::Instant;

use super::leader::FollowerFetch;
use super::{
    EpochSource, LocalOffsets, ReplicaError, ReplicationConfig, Role, RoleError, Transition,
    check_local,
};
use crate::bugs::{self, Bug};
use crate::image::PartitionState;
use crate::{NO_LEADER, NodeId};

/// Whether an answer to `sent` answers `outstanding`: the same request, but for the durable
/// offset, which a report moves on and which does not change the answer.
fn same_fetch(outstanding: &FollowerFetch, sent: &FollowerFetch) -> bool {
    FollowerFetch {
        durable_offset: outstanding.durable_offset,
        ..*sent
    } == *outstanding
}

/// The durable offset this follower tells the leader: what it has synced. (With the injected
/// `ack-before-fsync` bug, tests only: what it has written.)
fn reported_durable(local: &LocalOffsets) -> i64 {
    if bugs::enabled(Bug::AckBeforeFsync) {
        local.log_end
    } else {
        local.durable()
    }
}

/// The leader's answer to a fetch, as the glue read it off the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaderAnswer {
    /// Records from the fetch offset up to `records_end` (exclusive; the fetch offset when
    /// none came), with the leader's HW and log start.
    Records {
        high_watermark: i64,
        log_start: i64,
        records_end: i64,
    },
    /// KIP-595's `DivergingEpoch`. The answer's HW is not used: it is only safe once the
    /// log matches the leader's, which the next fetch confirms (KAFKA-14704).
    Diverging {
        epoch: i32,
        end_offset: i64,
    },
    /// `OFFSET_OUT_OF_RANGE`, with the leader's log start and end.
    OffsetOutOfRange {
        log_start: i64,
        log_end: i64,
    },
    Error(ReplicaError),
}

/// What the glue must do, in the order given, before it calls this follower again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowerAction {
    /// Truncate the log and its epoch cache to `to`: drop every offset ≥ `to`, and every
    /// epoch entry starting at or after it, even when `to` is the log end (Kafka's
    /// `UnifiedLog.truncateTo` drops a tenure that began there with no append). The
    /// truncation must be durable before a durable offset above `to` is reported.
    /// `below_high_watermark`: it removes records this replica had exposed (log it as an
    /// event; expected only after an unclean election or data loss).
    Truncate { to: i64, below_high_watermark: bool },
    /// Drop the whole log and start empty at `offset` (KAFKA-7414: this log ends below the
    /// leader's log start, or must be cut below its own start).
    StartAt { offset: i64 },
    /// Append this answer's records as the leader wrote them (offsets and epochs kept);
    /// they cover `[from, to)`. Then report the new offsets with
    /// [`FollowerReplica::on_local`], after the append and after each sync.
    Append { from: i64, to: i64 },
    /// Move the log start up to `offset` (the leader's retention or DeleteRecords).
    AdvanceLogStart { offset: i64 },
    /// Set the local HW to `offset` (on a follower it can go down: a new leader's may lag).
    SetHighWatermark { offset: i64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Fetching,
    /// `UNKNOWN_LEADER_EPOCH`, `NOT_LEADER_OR_FOLLOWER`, a transport error: fetch again then.
    BackingOff {
        until: Instant,
    },
    /// `FENCED_LEADER_EPOCH`, or no leader: wait for newer metadata.
    AwaitingMetadata,
}

/// A local log change the glue must make before the next fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Awaiting {
    LogEndAtMost(i64),
    LogEndAtLeast(i64),
}

impl Awaiting {
    fn done(&self, local: &LocalOffsets) -> bool {
        match *self {
            Awaiting::LogEndAtMost(end) => local.log_end <= end,
            Awaiting::LogEndAtLeast(end) => local.log_end >= end,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct InFlight {
    fetch: FollowerFetch,
    sent_at: Instant,
    /// The highest durable offset sent for this fetch offset (the fetch or a report).
    durable_reported: i64,
}

/// The follower side of one partition.
#[derive(Debug, Clone)]
pub struct FollowerReplica {
    node: NodeId,
    broker_epoch: i64,
    config: ReplicationConfig,
    leader: NodeId,
    leader_epoch: i32,
    partition_epoch: i32,
    phase: Phase,
    in_flight: Option<InFlight>,
    awaiting: Option<Awaiting>,
    /// The highest HW the leader of this tenure has sent.
    leader_high_watermark: Option<i64>,
    high_watermark: i64,
    truncations_below_high_watermark: u64,
    late_answers: u64,
}

impl FollowerReplica {
    /// Starts following (at start, or on any leader epoch change that leaves this node a
    /// follower). `high_watermark` is the local one (checkpointed, or kept from a previous
    /// role); it is clamped to the durable log. `broker_epoch` is this broker's own (sent on
    /// every fetch, KIP-903).
    pub fn new(
        node: NodeId,
        broker_epoch: i64,
        state: &PartitionState,
        local: LocalOffsets,
        high_watermark: i64,
        config: &ReplicationConfig,
    ) -> Result<Self, RoleError> {
        if Role::of(node, state)
            != (Role::Follower {
                leader: state.leader,
            })
        {
            return Err(RoleError::NotFollower { node });
        }
        check_local(&local)?;
        Ok(Self {
            node,
            broker_epoch,
            config: config.clone(),
            leader: state.leader,
            leader_epoch: state.leader_epoch,
            partition_epoch: state.partition_epoch,
            phase: if state.leader == NO_LEADER {
                Phase::AwaitingMetadata
            } else {
                Phase::Fetching
            },
            in_flight: None,
            awaiting: None,
            leader_high_watermark: None,
            high_watermark: high_watermark
                .clamp(local.log_start, local.durable().max(local.log_start)),
            truncations_below_high_watermark: 0,
            late_answers: 0,
        })
    }

    /// The fetch to send now, or `None` (one is in flight, backing off, waiting for
    /// metadata or for the glue to carry out the last actions). It asks from the log end,
    /// reports the durable offset, and names the epoch of the last batch appended (KIP-595).
    /// A fetch unanswered after `fetch_timeout` is given up and sent again.
    pub fn next_fetch(
        &mut self,
        now: Instant,
        local: LocalOffsets,
        epochs: &dyn EpochSource,
    ) -> Option<FollowerFetch> {
        match self.phase {
            Phase::AwaitingMetadata => return None,
            Phase::BackingOff { until } if now < until => return None,
            Phase::BackingOff { .. } => self.phase = Phase::Fetching,
            Phase::Fetching => {}
        }
        if let Some(in_flight) = &self.in_flight {
            if now.saturating_duration_since(in_flight.sent_at) < self.config.fetch_timeout {
                return None;
            }
            self.in_flight = None;
        }
        if let Some(awaiting) = self.awaiting {
            if !awaiting.done(&local) {
                return None;
            }
            self.awaiting = None;
        }
        // Injected bug (tests only): skipping the epoch check skips the truncation a leader
        // change calls for (the leader cannot see that this log diverges).
        let last_fetched_epoch = if bugs::enabled(Bug::SkipTruncation) {
            None
        } else {
            epochs.latest_epoch()
        };
        let fetch = FollowerFetch {
            current_leader_epoch: self.leader_epoch,
            fetch_offset: local.log_end,
            durable_offset: reported_durable(&local),
            last_fetched_epoch,
            log_start: local.log_start,
            broker_epoch: self.broker_epoch,
        };
        self.in_flight = Some(InFlight {
            fetch,
            sent_at: now,
            durable_reported: fetch.durable_offset,
        });
        Some(fetch)
    }

    /// A report of a durable offset that moved while a fetch is in flight (its sync
    /// completed): the in-flight fetch with the new durable offset. Send it at once, so
    /// the HW and `acks=all` do not wait for the leader's long poll to end (notes §5); the
    /// leader handles it as a fetch ([`crate::replication::LeaderReplica::on_fetch`]), and
    /// its answer, if any, is interchangeable with the fetch's.
    pub fn durable_report(&mut self, local: LocalOffsets) -> Option<FollowerFetch> {
        let in_flight = self.in_flight.as_mut()?;
        let durable = reported_durable(&local);
        if local.log_end != in_flight.fetch.fetch_offset || durable <= in_flight.durable_reported {
            return None;
        }
        in_flight.durable_reported = durable;
        Some(FollowerFetch {
            durable_offset: durable,
            ..in_flight.fetch
        })
    }

    /// The leader's answer to `sent`. Returns what the glue must do, in order; nothing when
    /// the answer is late or the state has moved on.
    pub fn on_answer(
        &mut self,
        now: Instant,
        sent: &FollowerFetch,
        answer: LeaderAnswer,
        local: LocalOffsets,
        epochs: &dyn EpochSource,
    ) -> Vec<FollowerAction> {
        let answers_in_flight = self.in_flight.is_some_and(|f| same_fetch(&f.fetch, sent));
        if !answers_in_flight
            || self.phase != Phase::Fetching
            || sent.current_leader_epoch != self.leader_epoch
            || local.log_end != sent.fetch_offset
        {
            self.late_answers += 1;
            return Vec::new();
        }
        self.in_flight = None;
        match answer {
            LeaderAnswer::Records {
                high_watermark,
                log_start,
                records_end,
            } => self.on_records(now, sent, high_watermark, log_start, records_end, local),
            LeaderAnswer::Diverging { epoch, end_offset } => {
                if epoch < 0 || end_offset < 0 {
                    self.back_off(now);
                    return Vec::new();
                }
                self.on_diverging(epoch, end_offset, local, epochs)
            }
            LeaderAnswer::OffsetOutOfRange { log_start, log_end } => {
                if log_start < 0 || log_end < log_start {
                    self.back_off(now);
                    return Vec::new();
                }
                self.on_out_of_range(log_start, log_end, local)
            }
            LeaderAnswer::Error(ReplicaError::FencedLeaderEpoch { .. }) => {
                self.phase = Phase::AwaitingMetadata;
                Vec::new()
            }
            LeaderAnswer::Error(_) => {
                self.back_off(now);
                Vec::new()
            }
        }
    }

    /// Records from the fetch offset: append them, take the leader's HW and log start
    /// (`ReplicaFetcherThread.processPartitionData`; HW = min(leader HW, own durable offset),
    /// notes §5).
    fn on_records(
        &mut self,
        now: Instant,
        sent: &FollowerFetch,
        high_watermark: i64,
        log_start: i64,
        records_end: i64,
        local: LocalOffsets,
    ) -> Vec<FollowerAction> {
        if records_end < sent.fetch_offset || high_watermark < 0 || log_start < 0 {
            self.back_off(now);
            return Vec::new();
        }
        let mut actions = Vec::new();
        if records_end > sent.fetch_offset {
            actions.push(FollowerAction::Append {
                from: sent.fetch_offset,
                to: records_end,
            });
            self.awaiting = Some(Awaiting::LogEndAtLeast(records_end));
        }
        let leader_high_watermark = self
            .leader_high_watermark
            .map_or(high_watermark, |h| h.max(high_watermark));
        self.leader_high_watermark = Some(leader_high_watermark);
        let before = self.high_watermark;
        self.high_watermark = leader_high_watermark.min(local.durable());
        let log_start = log_start.min(self.high_watermark);
        if log_start > local.log_start {
            actions.push(FollowerAction::AdvanceLogStart { offset: log_start });
        }
        if self.high_watermark != before {
            actions.push(FollowerAction::SetHighWatermark {
                offset: self.high_watermark,
            });
        }
        actions
    }

    /// KIP-279's truncation target (`AbstractFetcherThread.getOffsetTruncationState`): if
    /// this log has the leader's epoch, the smaller of both ends for it; if not, its own end
    /// for the largest epoch below it (the next fetch names that epoch and the leader
    /// answers again); never above the log end.
    fn on_diverging(
        &mut self,
        epoch: i32,
        end_offset: i64,
        local: LocalOffsets,
        epochs: &dyn EpochSource,
    ) -> Vec<FollowerAction> {
        let target = match epochs.end_offset_for(epoch) {
            Some((own_epoch, own_end)) if own_epoch == epoch => own_end.min(end_offset),
            Some((_, own_end)) => own_end,
            None => end_offset,
        };
        self.truncate(target.min(local.log_end), local)
    }

    /// `OFFSET_OUT_OF_RANGE` is never fatal (KAFKA-7414, `fetchOffsetAndTruncate`): a leader
    /// log that ends below this one means truncating to its end (the unclean case); a leader
    /// log that starts above this one's end means starting over at its start.
    fn on_out_of_range(
        &mut self,
        log_start: i64,
        log_end: i64,
        local: LocalOffsets,
    ) -> Vec<FollowerAction> {
        if log_end < local.log_end {
            return self.truncate(log_end, local);
        }
        if local.log_end < log_start {
            self.awaiting = Some(Awaiting::LogEndAtLeast(log_start));
            let mut actions = vec![FollowerAction::StartAt { offset: log_start }];
            if self.high_watermark != log_start {
                self.high_watermark = log_start;
                actions.push(FollowerAction::SetHighWatermark { offset: log_start });
            }
            return actions;
        }
        Vec::new()
    }

    fn truncate(&mut self, to: i64, local: LocalOffsets) -> Vec<FollowerAction> {
        let below_high_watermark = to < self.high_watermark;
        if below_high_watermark {
            self.truncations_below_high_watermark += 1;
        }
        let mut actions = Vec::with_capacity(2);
        if to < local.log_start {
            actions.push(FollowerAction::StartAt { offset: to });
        } else {
            actions.push(FollowerAction::Truncate {
                to,
                below_high_watermark,
            });
        }
        self.awaiting = Some(Awaiting::LogEndAtMost(to));
        if self.high_watermark > to {
            self.high_watermark = to;
            actions.push(FollowerAction::SetHighWatermark { offset: to });
        }
        actions
    }

    fn back_off(&mut self, now: Instant) {
        self.in_flight = None;
        self.phase = Phase::BackingOff {
            until: now + self.config.fetch_backoff,
        };
    }

    /// The fetch `sent` got no answer (the connection failed): back off and send again.
    pub fn on_fetch_failed(&mut self, now: Instant, sent: &FollowerFetch) {
        if self.in_flight.is_some_and(|f| same_fetch(&f.fetch, sent))
            && sent.current_leader_epoch == self.leader_epoch
        {
            self.back_off(now);
        }
    }

    /// The glue could not carry out an action (the engine refused an append, a write or a
    /// truncation failed): stop waiting for it and fetch again after the back-off, from the
    /// log end as it is. A truncation still owed comes back as a diverging answer.
    pub fn on_action_failed(&mut self, now: Instant) {
        self.awaiting = None;
        self.back_off(now);
    }

    /// The local log moved (an append, a sync, a truncation). Returns the new HW if it
    /// changed: min(the leader's HW, the durable offset), never above a truncation still to
    /// be made.
    pub fn on_local(&mut self, local: LocalOffsets) -> Option<i64> {
        let mut high_watermark = self
            .leader_high_watermark
            .unwrap_or(self.high_watermark)
            .min(local.durable());
        if let Some(Awaiting::LogEndAtMost(to)) = self.awaiting {
            high_watermark = high_watermark.min(to);
        }
        (high_watermark != self.high_watermark).then(|| {
            self.high_watermark = high_watermark;
            high_watermark
        })
    }

    /// A metadata change for this partition. A lower partition epoch is stale. A new leader
    /// epoch (even with the same leader) or a new leader restarts fetching; answers to
    /// earlier fetches are then dropped. This node leading, or no longer being a replica,
    /// is [`Transition::Rebuild`].
    pub fn on_partition_state(&mut self, state: &PartitionState) -> Transition {
        if state.partition_epoch < self.partition_epoch || state.leader_epoch < self.leader_epoch {
            return Transition::Stale;
        }
        if Role::of(self.node, state)
            != (Role::Follower {
                leader: state.leader,
            })
        {
            return Transition::Rebuild;
        }
        if state.leader_epoch != self.leader_epoch || state.leader != self.leader {
            self.leader = state.leader;
            self.leader_epoch = state.leader_epoch;
            self.partition_epoch = state.partition_epoch;
            self.in_flight = None;
            self.leader_high_watermark = None;
            self.phase = if state.leader == NO_LEADER {
                Phase::AwaitingMetadata
            } else {
                Phase::Fetching
            };
            return Transition::Restarted;
        }
        if state.partition_epoch == self.partition_epoch {
            return Transition::Unchanged;
        }
        self.partition_epoch = state.partition_epoch;
        Transition::Updated
    }

    /// When [`FollowerReplica::next_fetch`] may have something to send: a back-off ends or
    /// the fetch in flight times out.
    pub fn next_deadline(&self) -> Option<Instant> {
        let backoff = match self.phase {
            Phase::BackingOff { until } => Some(until),
            _ => None,
        };
        let timeout = self
            .in_flight
            .and_then(|f| f.sent_at.checked_add(self.config.fetch_timeout));
        backoff.into_iter().chain(timeout).min()
    }

    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    pub fn leader(&self) -> NodeId {
        self.leader
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch
    }

    pub fn partition_epoch(&self) -> i32 {
        self.partition_epoch
    }

    /// Whether a fetch is outstanding.
    pub fn is_fetching(&self) -> bool {
        self.in_flight.is_some()
    }

    /// Whether it waits for newer metadata (fenced, or no leader).
    pub fn is_awaiting_metadata(&self) -> bool {
        self.phase == Phase::AwaitingMetadata
    }

    /// Truncations that removed records below the local HW (exposed ones) since this
    /// follower was built.
    pub fn truncations_below_high_watermark(&self) -> u64 {
        self.truncations_below_high_watermark
    }

    /// Answers dropped as late (another fetch outstanding, another epoch, another offset).
    pub fn late_answers(&self) -> u64 {
        self.late_answers
    }
}
