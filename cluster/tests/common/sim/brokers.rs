//! The brokers' side: message handling with the glue the server will have, the
//! per-event poll, clients and faults.
use std::collections::BTreeSet;
use std::time::Duration;

use spate_cluster::NodeId;
use spate_cluster::replication::{
    FetchDecision, FollowerAction, FollowerFetch, LeaderAnswer, ReplicaError,
};

use super::log::Batch;
use super::node::{ActionFailure, Node, Replica};
use super::{ANSWER_BATCHES_MAX, CONTROLLER, Invariant, Message, Payload, PendingAck, Sim};

impl Sim {
    pub(super) fn deliver(&mut self, message: Message) {
        if self.is_cut(message.from, message.to, &message.payload) {
            self.count("messages lost");
            self.lose(message);
            return;
        }
        if message.to == CONTROLLER {
            if let Payload::AlterPartition {
                request,
                broker_epoch,
            } = message.payload
            {
                self.on_alter_partition(message.from, request, broker_epoch);
            }
            return;
        }
        let Some(index) = self.index(message.to) else {
            return;
        };
        if !self.nodes[index].alive {
            return;
        }
        let now = self.now;
        let from = message.from;
        if let (Payload::Metadata(_), Some(until)) =
            (&message.payload, self.nodes[index].metadata_held_until)
            && until > now
        {
            self.net.push(Message {
                at: until,
                ..message
            });
            return;
        }
        match message.payload {
            Payload::Metadata(image) => {
                let node = &mut self.nodes[index];
                if image.offset() > node.image.offset() {
                    node.image = image;
                    node.sync_role(now, &self.config.replication, self.config.min_insync);
                }
            }
            Payload::Fetch { fetch, report } => self.on_fetch(index, from, fetch, report),
            Payload::Answer {
                sent,
                answer,
                batches,
            } => self.on_answer(index, sent, answer, batches),
            Payload::AlterPartitionAnswer { request, outcome } => {
                if let Replica::Leader(l) = &mut self.nodes[index].replica {
                    match outcome {
                        Ok(state) => {
                            l.on_isr_change_accepted(now, &request, &state);
                        }
                        Err(refusal) => l.on_isr_change_refused(now, &request, refusal),
                    }
                }
            }
            Payload::AlterPartition { .. } => {}
        }
    }

    pub(super) fn on_fetch(
        &mut self,
        index: usize,
        from: NodeId,
        fetch: FollowerFetch,
        report: bool,
    ) {
        let now = self.now;
        let node = &mut self.nodes[index];
        let id = node.id;
        let Replica::Leader(leader) = &mut node.replica else {
            if !report {
                let answer = LeaderAnswer::Error(ReplicaError::NotLeaderOrFollower);
                self.send(
                    id,
                    from,
                    answer_payload(fetch, answer, Vec::new()),
                    Duration::ZERO,
                );
            }
            return;
        };
        let decision = leader.on_fetch(now, from, &fetch, &node.log.view(), &*node.image);
        if report {
            return;
        }
        let (answer, batches, wait) = match decision {
            FetchDecision::Read {
                from: offset,
                high_watermark,
                log_start,
            } => {
                let batches = node.log.read(offset, ANSWER_BATCHES_MAX);
                let records_end = batches.last().map_or(offset, Batch::end);
                let wait = if batches.is_empty() {
                    self.config.fetch_wait
                } else {
                    Duration::ZERO
                };
                let answer = LeaderAnswer::Records {
                    high_watermark,
                    log_start,
                    records_end,
                };
                (answer, batches, wait)
            }
            FetchDecision::Diverging {
                epoch, end_offset, ..
            } => (
                LeaderAnswer::Diverging { epoch, end_offset },
                Vec::new(),
                Duration::ZERO,
            ),
            FetchDecision::OffsetOutOfRange { log_start, log_end } => (
                LeaderAnswer::OffsetOutOfRange { log_start, log_end },
                Vec::new(),
                Duration::ZERO,
            ),
            FetchDecision::Error(error) => (LeaderAnswer::Error(error), Vec::new(), Duration::ZERO),
        };
        self.send(id, from, answer_payload(fetch, answer, batches), wait);
    }

    pub(super) fn on_answer(
        &mut self,
        index: usize,
        sent: FollowerFetch,
        answer: LeaderAnswer,
        batches: Vec<Batch>,
    ) {
        let now = self.now;
        let node = &mut self.nodes[index];
        let Replica::Follower(follower) = &mut node.replica else {
            return;
        };
        let late_before = follower.late_answers();
        let actions = follower.on_answer(now, &sent, answer, node.log.local(), &node.log.view());
        let late = follower.late_answers() > late_before;
        let truncated = actions.iter().any(|a| {
            matches!(
                a,
                FollowerAction::Truncate { .. } | FollowerAction::StartAt { .. }
            )
        });
        let kind = match answer {
            _ if late => "late answers dropped",
            LeaderAnswer::Records { .. } => "record answers",
            LeaderAnswer::Diverging { .. } => "diverging answers",
            LeaderAnswer::OffsetOutOfRange { .. } => "out of range answers",
            LeaderAnswer::Error(ReplicaError::FencedLeaderEpoch { .. }) => "fenced answers",
            LeaderAnswer::Error(ReplicaError::UnknownLeaderEpoch { .. }) => "unknown epoch answers",
            LeaderAnswer::Error(ReplicaError::StaleBrokerEpoch { .. }) => {
                "stale broker epoch answers"
            }
            LeaderAnswer::Error(_) => "other error answers",
        };
        self.count(kind);
        if truncated {
            self.count("truncations");
        }
        let node = &mut self.nodes[index];
        if actions.is_empty() {
            return;
        }
        let id = node.id;
        match node.apply_actions(&actions, &batches) {
            Ok(()) => {}
            Err(ActionFailure::SplitsBatch { to }) => self.violate(
                Invariant::WellFormedLog,
                format!("node {id} was told to truncate to {to}, inside a batch ({actions:?})"),
            ),
            Err(ActionFailure::AppendRefused(refused)) => {
                self.count("appends refused");
                self.log(format!(
                    "node {id} answer {answer:?}: append refused ({refused:?}); {actions:?}"
                ));
                let node = &mut self.nodes[index];
                if let Replica::Follower(f) = &mut node.replica {
                    f.on_action_failed(now);
                }
                node.local_changed(now);
                return;
            }
        }
        let node = &mut self.nodes[index];
        let appended = actions
            .iter()
            .any(|a| matches!(a, FollowerAction::Append { .. }));
        if appended && node.sync_at.is_none() {
            let delay = self.sync_delay();
            let node = &mut self.nodes[index];
            node.sync_at = Some(now + delay);
        }
        let node = &mut self.nodes[index];
        node.local_changed(now);
        if appended {
            for batch in &batches {
                self.record_written(id, batch);
            }
        }
        self.log(format!("node {id} answer {answer:?}: {actions:?}"));
    }

    /// A follower whose sync completed reports its durable offset at once.
    pub(super) fn report_durable(&mut self, index: usize) {
        let node = &mut self.nodes[index];
        let id = node.id;
        let local = node.log.local();
        if let Replica::Follower(f) = &mut node.replica
            && let Some(report) = f.durable_report(local)
        {
            let leader = f.leader();
            self.send(
                id,
                leader,
                Payload::Fetch {
                    fetch: report,
                    report: true,
                },
                Duration::ZERO,
            );
        }
    }

    /// What every live node does between events: followers fetch, leaders ask for ISR
    /// changes and mirror their HW; produces resolve; invariants are checked.
    pub fn poll(&mut self) {
        let now = self.now;
        for index in 0..self.nodes.len() {
            let node = &mut self.nodes[index];
            if !node.alive {
                continue;
            }
            let id = node.id;
            let local = node.log.local();
            let mut outgoing = None;
            match &mut node.replica {
                Replica::Follower(f) => {
                    if let Some(fetch) = f.next_fetch(now, local, &node.log.view()) {
                        outgoing = Some((
                            f.leader(),
                            Payload::Fetch {
                                fetch,
                                report: false,
                            },
                        ));
                    }
                }
                Replica::Leader(l) => {
                    if let Some(request) = l.poll_isr_change(now, &*node.image) {
                        let broker_epoch = node.broker_epoch.unwrap_or(-1);
                        outgoing = Some((
                            CONTROLLER,
                            Payload::AlterPartition {
                                request,
                                broker_epoch,
                            },
                        ));
                    }
                    node.log.high_watermark = l.high_watermark();
                }
                Replica::Idle => {}
            }
            if let Some((to, payload)) = outgoing {
                self.send(id, to, payload, Duration::ZERO);
            }
        }
        self.resolve_acks();
        self.check();
    }

    /// An `acks=all` produce of `count` records to the node the controller names leader.
    /// Returns the batch if it was appended.
    pub fn produce(&mut self, count: i64) -> Option<Batch> {
        let leader = self.partition().leader;
        self.produce_to(leader, count)
    }

    /// Steps until the controller's leader takes a produce of `count` records.
    pub fn produce_when_led(&mut self, count: i64, steps_max: u64) -> Batch {
        for _ in 0..steps_max {
            if let Some(batch) = self.produce(count) {
                return batch;
            }
            self.step();
        }
        self.fail("no leader took the produce")
    }

    pub fn produce_to(&mut self, id: NodeId, count: i64) -> Option<Batch> {
        let Some(index) = self.index(id) else {
            self.event(format!("produce {count}: refused, no leader"));
            return None;
        };
        let now = self.now;
        let batch_id = self.next_batch_id;
        let node = &mut self.nodes[index];
        let refusal = match &node.replica {
            _ if !node.alive => Some("down".to_owned()),
            Replica::Leader(leader) => leader.check_produce_acks_all().err().map(|e| e.to_string()),
            _ => Some("not leader".to_owned()),
        };
        if let Some(refusal) = refusal {
            self.event(format!("produce {count} to node {id}: refused, {refusal}"));
            return None;
        }
        let node = &mut self.nodes[index];
        let Replica::Leader(leader) = &mut node.replica else {
            return None;
        };
        let batch = Batch {
            base: node.log.log_end,
            count,
            epoch: leader.leader_epoch(),
            id: batch_id,
        };
        let leader_epoch = leader.leader_epoch();
        node.log.append(batch);
        node.local_changed(now);
        let delay = self.sync_delay();
        let node = &mut self.nodes[index];
        node.sync_at = node.sync_at.or(Some(now + delay));
        self.next_batch_id += 1;
        self.record_written(id, &batch);
        self.pending_acks.push(PendingAck {
            node: id,
            leader_epoch,
            batch,
        });
        self.event(format!(
            "produce {count} to node {id} (leader e{leader_epoch}): batch #{} at [{}, {})",
            batch.id,
            batch.base,
            batch.end()
        ));
        self.poll();
        Some(batch)
    }

    pub(super) fn resolve_acks(&mut self) {
        let mut still = Vec::new();
        for pending in std::mem::take(&mut self.pending_acks) {
            let leader = self
                .index(pending.node)
                .map(|i| &self.nodes[i])
                .filter(|n| n.alive)
                .and_then(Node::leader)
                .filter(|l| l.leader_epoch() == pending.leader_epoch);
            match leader.map(|l| l.acks_all_outcome(pending.batch.last_offset())) {
                Some(None) => still.push(pending),
                Some(Some(Ok(()))) => {
                    self.acked.push(pending.batch);
                    self.committed.push(pending.batch);
                    self.committed_in.push(pending.leader_epoch);
                }
                Some(Some(Err(_))) => {
                    self.after_append.push(pending.batch);
                    self.committed.push(pending.batch);
                    self.committed_in.push(pending.leader_epoch);
                }
                None => self.ambiguous.push(pending.batch),
            }
        }
        self.pending_acks = still;
    }

    /// The node that believes it leads, if exactly that is the controller's leader.
    pub fn leader_node(&self) -> Option<&Node> {
        let leader = self.partition().leader;
        self.index(leader)
            .map(|i| &self.nodes[i])
            .filter(|n| n.alive && n.leader().is_some())
    }

    /// Live replicas whose logs equal the leader's, in the ISR, with the HW at the log end.
    pub fn converged(&self) -> bool {
        let Some(leader) = self.leader_node() else {
            return false;
        };
        let state = self.partition();
        let content = leader.log.content();
        let l = leader.leader().expect("a leader");
        let end = leader.log.log_end;
        !state.is_reassigning()
            && state.isr.len() == state.replicas.len()
            && l.isr().len() == state.replicas.len()
            && l.high_watermark() == end
            && self
                .nodes
                .iter()
                .filter(|n| state.replicas.contains(&n.id))
                .all(|n| n.alive && n.log.content() == content && n.log.high_watermark == end)
    }

    pub fn ids(&self) -> BTreeSet<NodeId> {
        self.nodes.iter().map(|n| n.id).collect()
    }
    pub fn count(&mut self, what: &'static str) {
        *self.stats.entry(what).or_insert(0) += 1;
    }

    pub fn stat(&self, what: &str) -> u64 {
        self.stats.get(what).copied().unwrap_or(0)
    }

    /// Equal (offset, epoch) means equal bytes, over every batch ever written anywhere.
    pub fn record_written(&mut self, node: NodeId, batch: &Batch) {
        let first =
            *self
                .written
                .entry((batch.base, batch.epoch))
                .or_insert((batch.id, batch.count, node));
        if (first.0, first.1) != (batch.id, batch.count) {
            self.violate(Invariant::SameOffsetSameBytes, format!(
                "offset {} epoch {} holds batch {} (written on node {}) and batch {} on node {node}",
                batch.base, batch.epoch, first.0, first.2, batch.id
            ),
            );
        }
    }
}

fn answer_payload(sent: FollowerFetch, answer: LeaderAnswer, batches: Vec<Batch>) -> Payload {
    Payload::Answer {
        sent,
        answer,
        batches,
    }
}
