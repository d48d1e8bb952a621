//! The simulated network: a queue of messages with delivery times.
//!
//! Fault model:
//! - **latency** with random jitter, so messages on one link can pass each other;
//! - **drop**, **duplicate** and **reorder**: of one chosen message ([`Sim::drop_message`],
//!   [`Sim::duplicate_message`], [`Sim::reorder`], [`Sim::delay_message`]), or of every
//!   message at a seeded rate ([`Links::drop_percent`], [`Links::duplicate_percent`]);
//! - **partitions**: directed link cuts ([`Sim::cut`]), symmetric or one-way, between
//!   brokers or between a broker and the controller (then its heartbeats, AlterPartitions
//!   or metadata are lost); and [`Sim::isolate`], which cuts a broker's replication traffic
//!   only.
//!
//! A lost AlterPartition, or its lost answer, comes back to the leader as a timeout after
//! `rpc_timeout`: a local timer (a message to itself), which no cut can lose. A message
//! is lost if a cut separates its ends when it is sent or when it arrives.
use std::collections::BTreeSet;
use std::time::Duration;

use spate_cluster::NodeId;
use spate_cluster::replication::IsrRefusal;

use super::{CONTROLLER, Message, Payload, Sim, name};

/// The network's faults.
#[derive(Debug, Clone, Default)]
pub struct Links {
    /// Directed cuts: a message from `.0` to `.1` is lost ([`CONTROLLER`] is an end too).
    pub cuts: BTreeSet<(NodeId, NodeId)>,
    /// Every message is lost with this chance.
    pub drop_percent: u64,
    /// Every message that is not lost arrives twice with this chance.
    pub duplicate_percent: u64,
}

impl Sim {
    /// Whether a cut loses this message.
    pub(super) fn is_cut(&self, from: NodeId, to: NodeId, payload: &Payload) -> bool {
        if from == to {
            return false;
        }
        let isolated = |id: NodeId| self.index(id).is_some_and(|i| self.nodes[i].isolated);
        let replication =
            !matches!(payload, Payload::Metadata(_)) && from != CONTROLLER && to != CONTROLLER;
        (replication && (isolated(from) || isolated(to))) || self.links.cuts.contains(&(from, to))
    }

    /// Whether `from`'s messages to `to` are cut (the controller's heartbeats ask).
    pub fn link_cut(&self, from: NodeId, to: NodeId) -> bool {
        self.links.cuts.contains(&(from, to))
    }

    pub fn send(&mut self, from: NodeId, to: NodeId, payload: Payload, extra: Duration) {
        let jitter = self.config.jitter;
        let delay = self.config.latency + self.rng.duration(jitter) + extra;
        let message = Message {
            at: self.now + delay,
            seq: self.next_seq,
            from,
            to,
            payload,
        };
        self.next_seq += 1;
        let dropped =
            from != to && self.links.drop_percent > 0 && self.rng.chance(self.links.drop_percent);
        if dropped || self.is_cut(from, to, &message.payload) {
            self.count("messages lost");
            self.lose(message);
            return;
        }
        if from != to
            && self.links.duplicate_percent > 0
            && self.rng.chance(self.links.duplicate_percent)
        {
            let again = self.config.latency + self.rng.duration(jitter + self.config.latency);
            self.count("messages duplicated");
            self.net.push(Message {
                at: self.now + again,
                seq: self.next_seq,
                ..message.clone()
            });
            self.next_seq += 1;
        }
        self.net.push(message);
    }

    /// A message that will not arrive: a lost AlterPartition (or answer) times out at the
    /// leader.
    pub(super) fn lose(&mut self, message: Message) {
        let request = match message.payload {
            Payload::AlterPartition { request, .. } => Some((message.from, request)),
            Payload::AlterPartitionAnswer { request, .. } if message.from != message.to => {
                Some((message.to, request))
            }
            _ => None,
        };
        if let Some((leader, request)) = request {
            let timeout = self.config.rpc_timeout;
            self.send(
                leader,
                leader,
                Payload::AlterPartitionAnswer {
                    request,
                    outcome: Err(IsrRefusal::Retry),
                },
                timeout,
            );
        }
    }

    /// Drops the message at `index` of [`Sim::net`].
    pub fn drop_message(&mut self, index: usize) {
        let message = self.net.remove(index);
        self.log(format!(
            "drop {}→{} {}",
            message.from,
            message.to,
            name(&message.payload)
        ));
        self.lose(message);
    }

    /// Delays the message at `index` by `by` (it may then pass later ones).
    pub fn delay_message(&mut self, index: usize, by: Duration) {
        self.net[index].at += by;
    }

    /// Delivers the message at `index` twice, the copy `after` later.
    pub fn duplicate_message(&mut self, index: usize, after: Duration) {
        let mut copy = self.net[index].clone();
        copy.at += after;
        copy.seq = self.next_seq;
        self.next_seq += 1;
        self.net.push(copy);
    }

    /// Swaps the delivery times of the message at `index` and the next one on its link, if
    /// any: the later one arrives first. Returns whether it found a pair.
    pub fn reorder(&mut self, index: usize) -> bool {
        let (from, to, at) = {
            let m = &self.net[index];
            (m.from, m.to, m.at)
        };
        let next = (0..self.net.len())
            .filter(|&i| i != index)
            .filter(|&i| {
                let m = &self.net[i];
                m.from == from && m.to == to && (m.at, m.seq) > (at, self.net[index].seq)
            })
            .min_by_key(|&i| (self.net[i].at, self.net[i].seq));
        let Some(next) = next else {
            return false;
        };
        let later = self.net[next].at;
        self.net[next].at = at;
        self.net[index].at = later;
        true
    }

    /// Cuts every link from a node of `side` to a node outside it ([`CONTROLLER`] counts as
    /// a node), and the way back too unless `one_way`.
    pub fn cut(&mut self, side: &[NodeId], one_way: bool) {
        let mut all: Vec<NodeId> = self.ids().into_iter().collect();
        all.push(CONTROLLER);
        for &inside in side {
            for &outside in all.iter().filter(|id| !side.contains(id)) {
                self.links.cuts.insert((inside, outside));
                if !one_way {
                    self.links.cuts.insert((outside, inside));
                }
            }
        }
    }

    /// Heals every cut (not [`Sim::isolate`]'s).
    pub fn heal(&mut self) {
        self.links.cuts.clear();
    }
}
