//! ISR changes, as the leader asks the controller for them (KIP-497's AlterPartition).
//!
//! At most one request is in flight per partition. While it is, the leader counts a
//! pending *expansion* in the HW and in `acks=all` at once (the maximal ISR, which is the
//! stricter choice), and a pending *shrink* only once it is committed
//! (`Partition.PendingExpandIsr` / `PendingShrinkIsr`). A request ends when the controller
//! accepts it ([`LeaderReplica::on_isr_change_accepted`]), when it refuses it
//! ([`LeaderReplica::on_isr_change_refused`]), or when newer metadata arrives
//! ([`LeaderReplica::on_partition_state`]).

use std::time::Instant;

use super::LeaderReplica;
use crate::NodeId;
use crate::image::PartitionState;
use crate::records::LeaderRecoveryState;
use crate::replication::{BrokerView, Transition};

/// One member of a proposed ISR, with the broker epoch the leader saw it fetch with, so
/// the controller can refuse a member that has restarted since (KIP-903's `BrokerState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IsrMember {
    pub node: NodeId,
    /// `None`: not checked (the leader itself, or a member the leader has not heard from in
    /// this tenure; Kafka sends -1).
    pub broker_epoch: Option<i64>,
}

/// An AlterPartition the leader wants sent (the glue adds its own id and broker epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrChangeRequest {
    pub leader_epoch: i32,
    /// The partition epoch the change applies to; the controller refuses it if the
    /// partition has moved on (`INVALID_UPDATE_VERSION`).
    pub partition_epoch: i32,
    pub new_isr: Vec<IsrMember>,
    /// `Recovered` on every expansion (the leader's first one ends KIP-704's recovery),
    /// otherwise the partition's current state.
    pub leader_recovery_state: LeaderRecoveryState,
}

impl IsrChangeRequest {
    /// The proposed ISR's node ids.
    pub fn isr(&self) -> Vec<NodeId> {
        self.new_isr.iter().map(|m| m.node).collect()
    }
}

/// How the controller refused an ISR change, as the leader acts on it
/// (`Partition.handleAlterPartitionError`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsrRefusal {
    /// `INELIGIBLE_REPLICA`, `OPERATION_NOT_ATTEMPTED`: go back to the committed ISR and
    /// decide again.
    Ineligible,
    /// `INVALID_UPDATE_VERSION`, `FENCED_LEADER_EPOCH`, `UNKNOWN_TOPIC_OR_PARTITION`,
    /// `NOT_LEADER_OR_FOLLOWER`, `STALE_BROKER_EPOCH`, `INVALID_REQUEST`: this leader's
    /// state is out of date; keep the request pending until newer metadata ends it.
    AwaitMetadata,
    /// `NOT_CONTROLLER`, a timeout, a lost connection: send the same request again after
    /// [`crate::replication::ReplicationConfig::isr_change_retry_backoff`].
    Retry,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Expand(NodeId),
    Shrink,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    InFlight,
    AwaitingMetadata,
    RetryAt(Instant),
}

/// The one AlterPartition this leader has outstanding.
#[derive(Debug, Clone)]
pub(super) struct Pending {
    request: IsrChangeRequest,
    kind: Kind,
    phase: Phase,
}

impl LeaderReplica {
    /// The AlterPartition to send now, if any; also recomputes the HW as time passes (a
    /// follower that stops counting as caught up no longer holds it back). Call it after
    /// every [`LeaderReplica::on_fetch`] and at [`LeaderReplica::next_deadline`].
    ///
    /// - With a request outstanding: nothing, unless a retry is due (KIP-497: one at a time).
    /// - Shrink first: committed members that are not caught up leave
    ///   (`Partition.maybeShrinkIsr`, `replica.lag.time.max.ms`).
    /// - Then grow by one: the first replica in assignment order that has fetched since the
    ///   last poll (Kafka decides expansions on the fetch path, `maybeExpandIsr`; a follower
    ///   that stopped fetching must not join on an old position), is ISR-eligible, and is in
    ///   sync: its durable offset has reached both the HW and the start of this epoch
    ///   (`Partition.isFollowerInSync`, KAFKA-7128). It counts in the HW from now on.
    pub fn poll_isr_change(
        &mut self,
        now: Instant,
        brokers: &dyn BrokerView,
    ) -> Option<IsrChangeRequest> {
        self.see(now);
        self.refresh_eligibility(brokers);
        self.update_high_watermark(now);
        let fetched: Vec<NodeId> = self
            .followers
            .iter_mut()
            .filter_map(|(&r, p)| std::mem::take(&mut p.fetched_since_poll).then_some(r))
            .collect();
        if let Some(pending) = &mut self.pending {
            return match pending.phase {
                Phase::RetryAt(at) if now >= at => {
                    pending.phase = Phase::InFlight;
                    Some(pending.request.clone())
                }
                _ => None,
            };
        }
        let lag_max = self.config.replica_lag_time_max;
        let log_end = self.local.log_end;
        let out_of_sync: Vec<NodeId> = self
            .isr
            .iter()
            .copied()
            .filter(|&m| m != self.node)
            .filter(|m| {
                self.followers
                    .get(m)
                    .is_none_or(|p| !p.is_caught_up(now, log_end, lag_max))
            })
            .collect();
        if !out_of_sync.is_empty() {
            let kept: Vec<NodeId> = self
                .isr
                .iter()
                .copied()
                .filter(|m| !out_of_sync.contains(m))
                .collect();
            return Some(self.propose(kept, Kind::Shrink, self.recovery));
        }
        let joining = self.replicas.iter().copied().find(|r| {
            !self.isr.contains(r)
                && fetched.contains(r)
                && self.followers.get(r).is_some_and(|p| {
                    p.eligible
                        && p.durable_offset.is_some_and(|durable| {
                            durable >= self.high_watermark && durable >= self.epoch_start_offset
                        })
                })
        })?;
        let mut grown = self.isr.clone();
        grown.push(joining);
        let request = self.propose(grown, Kind::Expand(joining), LeaderRecoveryState::Recovered);
        self.update_high_watermark(now);
        Some(request)
    }

    fn propose(
        &mut self,
        isr: Vec<NodeId>,
        kind: Kind,
        leader_recovery_state: LeaderRecoveryState,
    ) -> IsrChangeRequest {
        let new_isr = isr
            .into_iter()
            .map(|node| IsrMember {
                node,
                broker_epoch: self.followers.get(&node).and_then(|p| p.broker_epoch),
            })
            .collect();
        let request = IsrChangeRequest {
            leader_epoch: self.leader_epoch,
            partition_epoch: self.partition_epoch,
            new_isr,
            leader_recovery_state,
        };
        self.pending = Some(Pending {
            request: request.clone(),
            kind,
            phase: Phase::InFlight,
        });
        request
    }

    /// The controller applied `request` (or found nothing to change); `state` is the
    /// partition as it answered. Ignored unless `request` is the one outstanding, `state` is
    /// of this tenure and not older than what this leader holds
    /// (`Partition.handleAlterPartitionUpdate`). The ISR in `state` is then committed.
    pub fn on_isr_change_accepted(
        &mut self,
        now: Instant,
        request: &IsrChangeRequest,
        state: &PartitionState,
    ) -> Transition {
        self.see(now);
        if self.pending.as_ref().is_none_or(|p| p.request != *request) {
            return Transition::Stale;
        }
        if state.leader != self.node || state.leader_epoch != self.leader_epoch {
            return Transition::Rebuild;
        }
        if state.partition_epoch < self.partition_epoch {
            return Transition::Stale;
        }
        self.pending = None;
        self.adopt(now, state);
        self.update_high_watermark(now);
        Transition::Updated
    }

    /// The controller refused `request` (ignored unless it is the one outstanding).
    pub fn on_isr_change_refused(
        &mut self,
        now: Instant,
        request: &IsrChangeRequest,
        refusal: IsrRefusal,
    ) {
        self.see(now);
        let Some(pending) = self.pending.as_mut().filter(|p| p.request == *request) else {
            return;
        };
        match refusal {
            IsrRefusal::Ineligible => self.pending = None,
            IsrRefusal::AwaitMetadata => pending.phase = Phase::AwaitingMetadata,
            IsrRefusal::Retry => {
                pending.phase = Phase::RetryAt(now + self.config.isr_change_retry_backoff);
            }
        }
        self.update_high_watermark(now);
    }

    /// The outstanding ISR change, if any.
    pub fn pending_isr_change(&self) -> Option<&IsrChangeRequest> {
        self.pending.as_ref().map(|p| &p.request)
    }

    pub(super) fn pending_expansion(&self) -> Option<NodeId> {
        match self.pending.as_ref()?.kind {
            Kind::Expand(node) => Some(node),
            Kind::Shrink => None,
        }
    }

    /// When [`LeaderReplica::poll_isr_change`] should run next: a retry falls due, an ISR
    /// member's caught-up time runs out (it will be shrunk), or a caught-up follower outside
    /// the ISR stops holding the HW back. `None` when nothing is timed.
    pub fn next_deadline(&self) -> Option<Instant> {
        let lag_max = self.config.replica_lag_time_max;
        let log_end = self.local.log_end;
        let mut deadlines = Vec::new();
        match self.pending.as_ref().map(|p| p.phase) {
            Some(Phase::RetryAt(at)) => deadlines.push(at),
            Some(_) => {}
            None => {
                for member in self.isr.iter().filter(|&&m| m != self.node) {
                    match self.followers.get(member) {
                        Some(p) if p.last_caught_up_at.is_some() => {
                            deadlines.extend(p.lag_deadline(log_end, lag_max));
                        }
                        // Never caught up: due now.
                        _ => deadlines.push(self.now),
                    }
                }
            }
        }
        for (replica, progress) in &self.followers {
            if self.in_maximal_isr(*replica) || !progress.eligible {
                continue;
            }
            deadlines.extend(
                progress
                    .lag_deadline(log_end, lag_max)
                    .filter(|&at| at > self.now),
            );
        }
        deadlines.into_iter().min()
    }
}
