//! Node and disk faults: power losses (with lost, surviving or torn unsynced batches),
//! failed fdatasyncs, restarts with recovery, early syncs and isolation.
use std::time::Duration;

use spate_cluster::NodeId;

use super::node::Replica;
use super::{Invariant, Sim};

/// How much of a node's unsynced tail a power loss leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TailLoss {
    /// Unsynced batches that reached the disk whole.
    pub surviving: usize,
    /// The next one reached it in part.
    pub torn: bool,
}

impl TailLoss {
    /// Every unsynced batch is gone, none torn.
    pub const ALL: TailLoss = TailLoss {
        surviving: 0,
        torn: false,
    };
}

impl Sim {
    /// The delay of a sync started now: `sync_delay` plus up to `sync_jitter`.
    pub(super) fn sync_delay(&mut self) -> Duration {
        let jitter = self.config.sync_jitter;
        self.config.sync_delay + self.rng.duration(jitter)
    }

    /// A sync of node `index` completes now, or fails if it was told to.
    pub(super) fn complete_sync(&mut self, index: usize) {
        let now = self.now;
        let node = &mut self.nodes[index];
        if node.fail_next_sync {
            node.fail_next_sync = false;
            let id = node.id;
            let loss = self.random_tail_loss(index);
            self.count("failed syncs");
            self.halt(id, loss, "fdatasync failed: log dir offline, broker halts");
            return;
        }
        node.log.sync();
        node.local_changed(now);
        self.report_durable(index);
    }

    /// A power loss on `id`: its whole unsynced tail is gone, and so is every message to it.
    pub fn crash(&mut self, id: NodeId) {
        self.crash_with(id, TailLoss::ALL);
    }

    /// A power loss on `id` that leaves `loss` of its unsynced tail.
    pub fn crash_with(&mut self, id: NodeId, loss: TailLoss) {
        self.halt(id, loss, "power loss");
    }

    /// A random share of node `index`'s unsynced tail survives, maybe torn.
    pub fn random_tail_loss(&mut self, index: usize) -> TailLoss {
        let unsynced = self.nodes[index].log.unsynced_batches();
        TailLoss {
            surviving: self.rng.index(unsynced + 1),
            torn: self.rng.chance(50),
        }
    }

    fn halt(&mut self, id: NodeId, loss: TailLoss, why: &str) {
        let Some(index) = self.index(id) else { return };
        if !self.nodes[index].alive {
            return;
        }
        self.net.retain(|m| m.to != id);
        let node = &mut self.nodes[index];
        node.alive = false;
        node.replica = Replica::Idle;
        node.sync_at = None;
        node.isolated = false;
        let (end, flushed) = (node.log.log_end, node.log.flushed);
        let lost = node.log.power_loss(loss.surviving, loss.torn);
        let torn = node.log.torn;
        let left = node.log.log_end;
        self.count("power losses");
        if lost > 0 {
            self.count("power losses with an unsynced tail");
        }
        if torn.is_some() {
            self.count("torn writes");
        }
        self.event(format!(
            "crash node {id} ({why}): synced to {flushed} of {end}, {lost} unsynced batches lost, \
             log ends at {left}{}",
            torn.map_or(String::new(), |b| format!(
                ", batch #{} at {} torn",
                b.id, b.base
            ))
        ));
        self.poll();
    }

    /// The next fdatasync on `id` fails.
    pub fn fail_next_sync(&mut self, id: NodeId) {
        if let Some(index) = self.index(id).filter(|&i| self.nodes[i].alive) {
            self.nodes[index].fail_next_sync = true;
            self.event(format!("the next fdatasync on node {id} will fail"));
        }
    }

    /// Restarts `id` as a new incarnation: recovery cuts a torn batch and syncs the rest;
    /// it registers again and takes a role once its image holds that registration.
    pub fn restart(&mut self, id: NodeId) {
        let Some(index) = self.index(id) else { return };
        let node = &mut self.nodes[index];
        if node.alive {
            return;
        }
        node.alive = true;
        node.incarnation += 1;
        node.broker_epoch = None;
        node.fail_next_sync = false;
        let cut = node.log.recover();
        if let Some(torn) = cut {
            self.count("torn batches cut by recovery");
            self.log(format!("node {id} recovery cut torn batch {torn:?}"));
        }
        let node = &self.nodes[index];
        if node.log.torn.is_some() || !node.log.is_boundary(node.log.log_end) {
            self.violate(
                Invariant::WellFormedLog,
                format!("node {id} recovered with a torn batch: {:?}", node.log.torn),
            );
        }
        let end = node.log.log_end;
        self.event(format!("restart node {id}: recovered log ends at {end}"));
        self.poll();
    }

    /// Syncs `id`'s log now (its sync completes early, or fails if told to).
    pub fn sync_now(&mut self, id: NodeId) {
        let Some(index) = self.index(id).filter(|&i| self.nodes[i].alive) else {
            return;
        };
        self.complete_sync(index);
        self.poll();
    }

    /// Cuts (or heals) the replication traffic of `id`; its controller traffic goes on.
    pub fn isolate(&mut self, id: NodeId, isolated: bool) {
        if let Some(index) = self.index(id)
            && self.nodes[index].isolated != isolated
        {
            self.nodes[index].isolated = isolated;
            self.event(format!(
                "{} node {id}'s replication traffic",
                if isolated { "cut" } else { "restore" }
            ));
        }
    }
}
