//! The invariants of replication-notes §7, checked after every step of the simulator.

use super::Sim;
use super::node::Replica;

impl Sim {
    /// Panics (with the seed) if any invariant is broken.
    pub fn check(&mut self) {
        if let Err(what) = self.invariants() {
            self.fail(&what);
        }
    }

    fn invariants(&mut self) -> Result<(), String> {
        // Equal (offset, epoch) means equal bytes: checked as batches are written
        // (`Sim::record_written`), over every batch ever written, which implies it for the
        // logs as they are now.
        for node in &self.nodes {
            // Epoch caches strictly increasing; batches contiguous, epochs non-decreasing.
            let entries = node.log.epochs.entries();
            if entries
                .windows(2)
                .any(|w| w[0].0 >= w[1].0 || w[0].1 >= w[1].1)
            {
                return Err(format!(
                    "node {}: epoch cache {entries:?} not increasing",
                    node.id
                ));
            }
            let mut at = node.log.log_start;
            let mut epoch = i32::MIN;
            for batch in &node.log.batches {
                if batch.base != at || batch.epoch < epoch {
                    return Err(format!(
                        "node {}: log {:?} is not contiguous",
                        node.id, node.log.batches
                    ));
                }
                at = batch.end();
                epoch = batch.epoch;
            }
            if at != node.log.log_end && !node.log.batches.is_empty() {
                return Err(format!(
                    "node {}: log end {} is not its last batch's",
                    node.id, node.log.log_end
                ));
            }
            // Nothing above a replica's synced offset is exposed.
            let hw = node.high_watermark();
            if hw > node.log.flushed || node.log.high_watermark > node.log.flushed {
                return Err(format!(
                    "node {}: HW {hw} above its synced offset {}",
                    node.id, node.log.flushed
                ));
            }
        }
        // One leader per epoch; each tenure's HW only moves up.
        for node in self.nodes.iter().filter(|n| n.alive) {
            let Replica::Leader(leader) = &node.replica else {
                continue;
            };
            let epoch = leader.leader_epoch();
            let first = *self.leaders_by_epoch.entry(epoch).or_insert(node.id);
            if first != node.id {
                return Err(format!("epoch {epoch} led by {first} and by {}", node.id));
            }
            let hw = leader.high_watermark();
            let last = self
                .tenure_hw
                .entry((node.id, node.incarnation, epoch))
                .or_insert(hw);
            if hw < *last {
                return Err(format!(
                    "leader {} HW went down from {last} to {hw}",
                    node.id
                ));
            }
            *last = hw;
        }
        if self.faults.unclean_elections > 0 {
            return Ok(());
        }
        // No committed record lost: a live leader of epoch E holds every batch committed in
        // an epoch up to E. (A deposed leader that has not heard yet may lack what its
        // successors committed; it cannot commit anything they lack, as the ISR members
        // it needs fetch from the new leader.)
        for node in self.nodes.iter().filter(|n| n.alive) {
            let Some(leader) = node.leader() else {
                continue;
            };
            let epoch = leader.leader_epoch();
            let owed = self
                .committed
                .iter()
                .zip(&self.committed_in)
                .filter(|&(_, &committed_in)| committed_in <= epoch);
            for (batch, committed_in) in owed {
                if node.log.batch_at(batch.base) != Some(batch) {
                    return Err(format!(
                        "batch {batch:?} committed in epoch {committed_in} is missing from leader {} of epoch {epoch}",
                        node.id
                    ));
                }
            }
        }
        // No truncation below a HW.
        for node in &self.nodes {
            if node.truncations_below_hw > 0 {
                return Err(format!("node {} truncated below its HW", node.id));
            }
        }
        Ok(())
    }
}
