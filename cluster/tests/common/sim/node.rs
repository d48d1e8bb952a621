//! One simulated broker: its log, its metadata image, and its replica of the partition,
//! with the glue the server will have (build roles from the image, carry out actions).

use std::sync::Arc;
use std::time::Instant;

use spate_cluster::replication::{
    FollowerAction, FollowerReplica, LeaderReplica, LeaderStart, ReplicationConfig, Role,
    Transition,
};
use spate_cluster::{ClusterImage, NodeId, PartitionState};

use super::log::{AppendRefused, Batch, MemLog};

/// Why the glue could not carry out a follower's action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionFailure {
    /// The answer's batches do not start at the log end (the engine refuses the append).
    AppendRefused(AppendRefused),
    /// A truncation point inside a batch: the state machine promises batch boundaries.
    SplitsBatch { to: i64 },
}

/// This node's replica of the partition.
#[derive(Debug, Clone)]
pub enum Replica {
    Idle,
    Leader(Box<LeaderReplica>),
    Follower(Box<FollowerReplica>),
}

#[derive(Debug, Clone)]
pub struct Node {
    pub id: NodeId,
    pub log: MemLog,
    pub alive: bool,
    /// Bumps on every restart; the registration names it.
    pub incarnation: u32,
    /// Its broker epoch once its image holds its current registration.
    pub broker_epoch: Option<i64>,
    pub image: Arc<ClusterImage>,
    pub replica: Replica,
    /// Truncations below the HW, over every replica this node has had.
    pub truncations_below_hw: u64,
    pub sync_at: Option<Instant>,
    /// Replication messages to and from it are lost (the controller still hears it).
    pub isolated: bool,
    /// Metadata for it is held back until then (a broker behind on the metadata log).
    pub metadata_held_until: Option<Instant>,
    /// Its next fdatasync fails (the log dir goes offline and the broker halts).
    pub fail_next_sync: bool,
}

impl Node {
    pub fn new(id: NodeId, log: MemLog) -> Self {
        Node {
            id,
            log,
            alive: true,
            incarnation: 0,
            broker_epoch: None,
            image: Arc::new(ClusterImage::default()),
            replica: Replica::Idle,
            truncations_below_hw: 0,
            sync_at: None,
            isolated: false,
            metadata_held_until: None,
            fail_next_sync: false,
        }
    }

    pub fn incarnation_id(&self) -> String {
        format!("inc-{}", self.incarnation)
    }

    pub fn leader(&self) -> Option<&LeaderReplica> {
        match &self.replica {
            Replica::Leader(l) => Some(l),
            _ => None,
        }
    }

    pub fn follower(&self) -> Option<&FollowerReplica> {
        match &self.replica {
            Replica::Follower(f) => Some(f),
            _ => None,
        }
    }

    /// One line for failure reports.
    pub fn summary(&self) -> String {
        let role = match &self.replica {
            Replica::Idle => "idle".to_owned(),
            Replica::Leader(l) => format!(
                "leader e{} hw {} isr {:?} maximal {:?} pending {:?} followers {:?}",
                l.leader_epoch(),
                l.high_watermark(),
                l.isr(),
                l.maximal_isr(),
                l.pending_isr_change(),
                l.followers().collect::<Vec<_>>()
            ),
            Replica::Follower(f) => format!(
                "follower of {} e{} hw {} fetching {} awaiting metadata {}",
                f.leader(),
                f.leader_epoch(),
                f.high_watermark(),
                f.is_fetching(),
                f.is_awaiting_metadata()
            ),
        };
        format!(
            "node {} alive {} inc {} epoch {:?} image@{} end {} flushed {} hw {} torn {:?} epochs {:?} {role}\n  log {:?}",
            self.id,
            self.alive,
            self.incarnation,
            self.broker_epoch,
            self.image.offset(),
            self.log.log_end,
            self.log.flushed,
            self.log.high_watermark,
            self.log.torn,
            self.log.epochs.entries(),
            self.log.content()
        )
    }

    /// The partition as this node's image has it.
    pub fn partition(&self) -> Option<&PartitionState> {
        self.image
            .topics()
            .next()
            .and_then(|t| t.partitions.first())
    }

    /// The HW this node exposes to consumers.
    pub fn high_watermark(&self) -> i64 {
        match &self.replica {
            Replica::Leader(l) => l.high_watermark(),
            Replica::Follower(f) => f.high_watermark(),
            Replica::Idle => self.log.high_watermark,
        }
    }

    /// Brings the replica in line with the image: the KRaft broker rule, no role before
    /// the image holds this incarnation's registration (else a restarted broker could lead
    /// an epoch it led before its crash, with another log).
    pub fn sync_role(&mut self, now: Instant, config: &ReplicationConfig, min_insync: usize) {
        if !self.alive {
            return;
        }
        let registered = self
            .image
            .broker(self.id)
            .filter(|b| b.incarnation_id == self.incarnation_id())
            .map(|b| b.broker_epoch);
        self.broker_epoch = registered;
        let (Some(broker_epoch), Some(state)) = (registered, self.partition().cloned()) else {
            self.replica = Replica::Idle;
            return;
        };
        let image = self.image.clone();
        match Role::of(self.id, &state) {
            Role::NotReplica => self.replica = Replica::Idle,
            Role::Leader => {
                let keep = match &mut self.replica {
                    Replica::Leader(l) => {
                        l.on_partition_state(now, &state, &*image) != Transition::Rebuild
                    }
                    _ => false,
                };
                if !keep {
                    self.become_leader(now, &state, config, min_insync);
                }
            }
            Role::Follower { .. } => {
                let keep = match &mut self.replica {
                    Replica::Follower(f) => f.on_partition_state(&state) != Transition::Rebuild,
                    _ => false,
                };
                if !keep {
                    self.replica = Replica::Follower(Box::new(
                        FollowerReplica::new(
                            self.id,
                            broker_epoch,
                            &state,
                            self.log.local(),
                            self.log.high_watermark,
                            config,
                        )
                        .expect("a follower role builds"),
                    ));
                }
            }
        }
    }

    /// KAFKA-7415: the new leader records its epoch at its log end before anything else.
    fn become_leader(
        &mut self,
        now: Instant,
        state: &PartitionState,
        config: &ReplicationConfig,
        min_insync: usize,
    ) {
        self.log.epochs.assign(state.leader_epoch, self.log.log_end);
        let start = LeaderStart {
            local: self.log.local(),
            high_watermark: self.log.high_watermark,
            epoch_start_offset: self.log.log_end,
            min_insync_replicas: min_insync,
        };
        let leader = LeaderReplica::new(now, self.id, state, start, config, &self.log.view())
            .expect("a leader role builds");
        self.replica = Replica::Leader(Box::new(leader));
    }

    /// Carries out a follower's actions, in order, with the answer's batches. Stops at the
    /// first one the log refuses (the glue then reports the failure to the follower).
    pub fn apply_actions(
        &mut self,
        actions: &[FollowerAction],
        batches: &[Batch],
    ) -> Result<(), ActionFailure> {
        for action in actions {
            match *action {
                FollowerAction::Truncate {
                    to,
                    below_high_watermark,
                } => {
                    if !self.log.is_boundary(to) {
                        return Err(ActionFailure::SplitsBatch { to });
                    }
                    if below_high_watermark {
                        self.truncations_below_hw += 1;
                    }
                    self.log.truncate_to(to);
                }
                FollowerAction::StartAt { offset } => self.log.start_at(offset),
                FollowerAction::Append { from, to } => {
                    let covers = batches.first().is_some_and(|b| b.base == from)
                        && batches.last().is_some_and(|b| b.end() == to);
                    if !covers {
                        return Err(ActionFailure::AppendRefused(AppendRefused {
                            log_end: self.log.log_end,
                            batch_base: batches.first().map_or(from, |b| b.base),
                        }));
                    }
                    self.log
                        .append_replicated(batches)
                        .map_err(ActionFailure::AppendRefused)?;
                }
                FollowerAction::AdvanceLogStart { offset } => self.log.advance_log_start(offset),
                FollowerAction::SetHighWatermark { offset } => self.log.high_watermark = offset,
            }
        }
        Ok(())
    }

    /// After any local change: a follower recomputes its HW, a leader its own.
    pub fn local_changed(&mut self, now: Instant) {
        let local = self.log.local();
        match &mut self.replica {
            Replica::Leader(l) => {
                l.on_local(now, local);
                self.log.high_watermark = l.high_watermark();
            }
            Replica::Follower(f) => {
                if let Some(hw) = f.on_local(local) {
                    self.log.high_watermark = hw;
                }
            }
            Replica::Idle => {}
        }
    }
}
