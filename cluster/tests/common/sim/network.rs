//! The simulated network: a queue of messages with delivery times, cut by isolation.
use std::time::Duration;

use spate_cluster::NodeId;
use spate_cluster::replication::IsrRefusal;

use super::{CONTROLLER, Message, Payload, Sim, name};

impl Sim {
    /// Whether a cut loses this message (replication traffic to or from an isolated node).
    pub(super) fn is_cut(&self, from: NodeId, to: NodeId, payload: &Payload) -> bool {
        let cut = |id: NodeId| self.index(id).is_some_and(|i| self.nodes[i].isolated);
        let replication = !matches!(payload, Payload::Metadata(_));
        replication && (cut(from) || cut(to)) && from != CONTROLLER && to != CONTROLLER
    }

    pub fn send(&mut self, from: NodeId, to: NodeId, payload: Payload, extra: Duration) {
        if self.is_cut(from, to, &payload) {
            return;
        }
        let jitter = self.config.jitter;
        let delay = self.config.latency + self.rng.duration(jitter) + extra;
        let seq = self.next_seq;
        self.next_seq += 1;
        self.net.push(Message {
            at: self.now + delay,
            seq,
            from,
            to,
            payload,
        });
    }

    /// Drops the message at `index` of [`Sim::net`]. A lost AlterPartition (or its
    /// answer) comes back to the leader as a timeout.
    pub fn drop_message(&mut self, index: usize) {
        let message = self.net.remove(index);
        self.log(format!(
            "drop {}→{} {}",
            message.from,
            message.to,
            name(&message.payload)
        ));
        let request = match message.payload {
            Payload::AlterPartition { request, .. } => Some((message.from, request)),
            Payload::AlterPartitionAnswer { request, .. } => Some((message.to, request)),
            _ => None,
        };
        if let Some((leader, request)) = request {
            let timeout = self.config.rpc_timeout;
            self.send(
                CONTROLLER,
                leader,
                Payload::AlterPartitionAnswer {
                    request,
                    outcome: Err(IsrRefusal::Retry),
                },
                timeout,
            );
        }
    }

    /// Delays the message at `index` by `by` (it may then pass later ones).
    pub fn delay_message(&mut self, index: usize, by: Duration) {
        self.net[index].at += by;
    }
}
