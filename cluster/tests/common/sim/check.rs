//! The invariants of replication-notes §7, checked after every step of the simulator.
//!
//! **What Kafka promises a consumer about the high watermark**, and what is checked (with
//! `flush=always` and no unclean election; an injected unclean election turns the data
//! checks off):
//!
//! 1. Within one leader's tenure (one node, one incarnation, one leader epoch) the HW it
//!    serves in fetch answers and ListOffsets never goes down: `Partition.maybeIncrementLeaderHW`
//!    only moves it up ([`Invariant::LeaderHwMonotonic`]).
//! 2. Across tenures the HW *can* go down: a new leader starts from its follower HW, which
//!    lagged, and it stays frozen until its ISR has fetched in the new epoch (KIP-101). So a
//!    fetch may report a lower HW after a leader change, and that is allowed. What a consumer
//!    is promised is ListOffsets(latest): a new leader answers `OFFSET_NOT_AVAILABLE` until
//!    its HW reaches the start of its epoch (KIP-207, KAFKA-2334), so the latest offset it is
//!    told never goes down, provided it names the leader epoch it knows, which fences a
//!    deposed leader still answering in an older epoch (KIP-320). Checked as: the latest
//!    offset a leader of epoch E answers is at least every latest offset answered in any
//!    epoch ≤ E ([`Invariant::LatestOffsetMonotonic`]).
//! 3. Every record below an HW that any leader served could have been read, and stays: at
//!    the same offset, with the same bytes, in the log of every leader of that epoch or a
//!    later one ([`Invariant::ExposedNeverLost`]; [`Invariant::AckedNeverLost`] for
//!    `acks=all` records answered OK, the producer's side of the same promise).
//!
//! Besides: one leader per epoch; every replica's log below its own HW is the committed
//! history, batch for batch (byte identity of committed prefixes); equal (offset, epoch)
//! means equal bytes; everything below the HW is synced on min-ISR replicas (notes §5);
//! nothing above a replica's sync mark is exposed; no truncation below an HW; well-formed
//! logs and epoch caches.
//!
//! The checks run after every step, so each is cheap: per-node results are cached against
//! the log's [`MemLog::version`](super::log::MemLog::version), and the committed history
//! (every batch any leader's HW passed) only grows.

use std::collections::BTreeMap;

use spate_cluster::NodeId;

use super::log::{Batch, MemLog};
use super::node::{Node, Replica};
use super::{Invariant, Sim};

type Broken = (Invariant, String);

/// What the checks remember between steps.
#[derive(Debug, Clone, Default)]
pub struct Checks {
    /// Who led each leader epoch.
    leaders_by_epoch: BTreeMap<i32, NodeId>,
    /// The last HW of each tenure: (node, incarnation, leader epoch).
    tenure_hw: BTreeMap<(NodeId, u32, i32), i64>,
    /// The highest ListOffsets(latest) answer per leader epoch.
    latest_by_epoch: BTreeMap<i32, i64>,
    /// The committed history: every batch a leader's HW passed (by base offset), with the
    /// first leader epoch that exposed it.
    exposed: BTreeMap<i64, (Batch, i32)>,
    /// Per replica count k, the end of the highest exposed batch that had to be synced on
    /// k replicas when it was exposed (min(min.insync.replicas, RF) at that moment).
    synced_on: BTreeMap<usize, i64>,
    /// Per node, the (log version, HW, exposed count) its below-HW prefix agreed at.
    agreed_at: Vec<Option<(u64, i64, usize)>>,
    /// Per node, the (log version, exposed count) its synced prefix was measured at, and
    /// where that prefix stops matching the history.
    durable_at: Vec<Option<(u64, usize, i64)>>,
    /// Per node, the (log version, exposed and acked count, leader epoch) it held every
    /// batch its epoch owes at.
    holds_at: Vec<Option<(u64, usize, i32)>>,
}

impl Checks {
    pub fn new(nodes: usize) -> Self {
        Checks {
            agreed_at: vec![None; nodes],
            durable_at: vec![None; nodes],
            holds_at: vec![None; nodes],
            ..Checks::default()
        }
    }

    /// A scripted start: what each node's HW covers was committed before the run.
    pub fn seed_exposures(&mut self, nodes: &[Node]) {
        for node in nodes {
            for batch in below(&node.log, node.log.high_watermark) {
                self.exposed
                    .entry(batch.base)
                    .or_insert((*batch, batch.epoch));
            }
        }
    }

    /// Every batch any leader's HW passed, in offset order.
    pub fn exposed(&self) -> impl Iterator<Item = &Batch> {
        self.exposed.values().map(|(batch, _)| batch)
    }
}

/// The batches of `log` that a HW of `high_watermark` exposes (any of their records).
fn below(log: &MemLog, high_watermark: i64) -> &[Batch] {
    let end = log.batches.partition_point(|b| b.base < high_watermark);
    &log.batches[..end]
}

impl Sim {
    /// Stops the run if any invariant is broken.
    pub fn check(&mut self) {
        if let Err((invariant, what)) = self.invariants() {
            self.violate(invariant, what);
        }
    }

    /// Each group of checks in turn; a broken invariant in [`Sim::disabled`] does not stop
    /// the run (the rest of its group is skipped for this step).
    fn invariants(&mut self) -> Result<(), Broken> {
        // Equal (offset, epoch) means equal bytes: checked as batches are written
        // (`Sim::record_written`), over every batch ever written.
        let formed = self.nodes.iter().try_for_each(well_formed);
        self.unless_disabled(formed)?;
        let led = self.leadership();
        self.unless_disabled(led)?;
        if self.faults.unclean_elections > 0 {
            return Ok(());
        }
        let exposed = self.exposures();
        self.unless_disabled(exposed)?;
        let held = self.leaders_hold_history();
        self.unless_disabled(held)?;
        let agreed = self.replicas_agree_below_hw();
        self.unless_disabled(agreed)?;
        let durable = self.history_is_durable();
        self.unless_disabled(durable)?;
        let truncated = self.nodes.iter().find(|n| n.truncations_below_hw > 0);
        if let Some(node) = truncated {
            let broken = (
                Invariant::NoTruncationBelowHw,
                format!("node {} truncated below its HW", node.id),
            );
            self.unless_disabled(Err(broken))?;
        }
        Ok(())
    }

    fn unless_disabled(&self, result: Result<(), Broken>) -> Result<(), Broken> {
        match result {
            Err((invariant, _)) if self.disabled.contains(&invariant) => Ok(()),
            other => other,
        }
    }

    /// One leader per epoch; each tenure's HW only moves up.
    fn leadership(&mut self) -> Result<(), Broken> {
        for node in self.nodes.iter().filter(|n| n.alive) {
            let Replica::Leader(leader) = &node.replica else {
                continue;
            };
            let epoch = leader.leader_epoch();
            let first = *self.checks.leaders_by_epoch.entry(epoch).or_insert(node.id);
            if first != node.id {
                return Err((
                    Invariant::OneLeaderPerEpoch,
                    format!("epoch {epoch} led by {first} and by {}", node.id),
                ));
            }
            let hw = leader.high_watermark();
            let last = self
                .checks
                .tenure_hw
                .entry((node.id, node.incarnation, epoch))
                .or_insert(hw);
            if hw < *last {
                return Err((
                    Invariant::LeaderHwMonotonic,
                    format!(
                        "leader {} of epoch {epoch}: HW went down from {last} to {hw}",
                        node.id
                    ),
                ));
            }
            *last = hw;
        }
        Ok(())
    }

    /// Records what each live leader's HW exposes, and checks ListOffsets(latest).
    fn exposures(&mut self) -> Result<(), Broken> {
        let checks = &mut self.checks;
        for node in self.nodes.iter().filter(|n| n.alive) {
            let Replica::Leader(leader) = &node.replica else {
                continue;
            };
            let epoch = leader.leader_epoch();
            if let Ok(latest) = leader.latest_offset() {
                let highest = checks
                    .latest_by_epoch
                    .range(..=epoch)
                    .map(|(_, &v)| v)
                    .max();
                if let Some(highest) = highest.filter(|&h| latest < h) {
                    return Err((
                        Invariant::LatestOffsetMonotonic,
                        format!(
                            "leader {} of epoch {epoch} answers latest offset {latest}; {highest} was answered in an epoch up to {epoch}",
                            node.id
                        ),
                    ));
                }
                let entry = checks.latest_by_epoch.entry(epoch).or_insert(latest);
                *entry = (*entry).max(latest);
            }
            let needed = self.config.min_insync.min(leader.replicas().len()).max(1);
            for batch in below(&node.log, leader.high_watermark()) {
                match checks.exposed.get(&batch.base) {
                    Some((seen, _)) if seen == batch => {}
                    Some((seen, seen_in)) => {
                        return Err((
                            Invariant::LogsAgreeBelowHw,
                            format!(
                                "leader {} of epoch {epoch} exposes {batch:?} where {seen:?} was exposed in epoch {seen_in}",
                                node.id
                            ),
                        ));
                    }
                    None => {
                        checks.exposed.insert(batch.base, (*batch, epoch));
                        let end = checks.synced_on.entry(needed).or_insert(0);
                        *end = (*end).max(batch.end());
                    }
                }
            }
        }
        Ok(())
    }

    /// A live leader of epoch E holds every batch exposed (or acked) in an epoch up to E. (A
    /// deposed leader that has not heard yet may lack what its successors exposed; it
    /// cannot expose anything they lack, as the ISR members it needs fetch from the new
    /// leader.)
    fn leaders_hold_history(&mut self) -> Result<(), Broken> {
        let history = self.checks.exposed.len() + self.committed.len();
        for (index, node) in self.nodes.iter().enumerate().filter(|(_, n)| n.alive) {
            let Some(leader) = node.leader() else {
                continue;
            };
            let epoch = leader.leader_epoch();
            let key = (node.log.version, history, epoch);
            if self.checks.holds_at[index] == Some(key) {
                continue;
            }
            let owed = self.checks.exposed.values().filter(|&&(_, e)| e <= epoch);
            let acked = self
                .committed
                .iter()
                .zip(&self.committed_in)
                .filter(|&(_, &e)| e <= epoch)
                .map(|(b, &e)| (b, e));
            for (batch, exposed_in) in acked.chain(owed.map(|(b, e)| (b, *e))) {
                if node.log.batch_at(batch.base) != Some(batch) {
                    let (invariant, what) = if self.committed.contains(batch) {
                        (Invariant::AckedNeverLost, "acked")
                    } else {
                        (Invariant::ExposedNeverLost, "exposed")
                    };
                    return Err((
                        invariant,
                        format!(
                            "batch {batch:?} {what} in epoch {exposed_in} is missing from leader {} of epoch {epoch} (it holds {:?})",
                            node.id,
                            node.log.batch_at(batch.base)
                        ),
                    ));
                }
            }
            self.checks.holds_at[index] = Some(key);
        }
        Ok(())
    }

    /// Every replica's log below its own HW is the committed history.
    fn replicas_agree_below_hw(&mut self) -> Result<(), Broken> {
        let exposed_count = self.checks.exposed.len();
        for (index, node) in self.nodes.iter().enumerate() {
            let hw = node.high_watermark();
            let key = (node.log.version, hw, exposed_count);
            if self.checks.agreed_at[index] == Some(key) {
                continue;
            }
            for batch in below(&node.log, hw) {
                match self.checks.exposed.get(&batch.base) {
                    Some((committed, _)) if committed == batch => {}
                    other => {
                        return Err((
                            Invariant::LogsAgreeBelowHw,
                            format!(
                                "node {} exposes {batch:?} below its HW {hw}; the committed history has {:?} there",
                                node.id,
                                other.map(|(b, _)| b)
                            ),
                        ));
                    }
                }
            }
            self.checks.agreed_at[index] = Some(key);
        }
        Ok(())
    }

    /// Every exposed record is synced, as part of the committed history, on at least as
    /// many replicas as min(min.insync.replicas, replication factor) was when it was
    /// exposed (the HW only passes what the maximal ISR has synced, and a synced record is
    /// never taken back below the HW).
    fn history_is_durable(&mut self) -> Result<(), Broken> {
        let exposed_count = self.checks.exposed.len();
        let mut synced_ends = Vec::with_capacity(self.nodes.len());
        for (index, node) in self.nodes.iter().enumerate() {
            let key = (node.log.version, exposed_count);
            let synced_end = match self.checks.durable_at[index] {
                Some((version, count, end)) if (version, count) == key => end,
                _ => {
                    let end = synced_history_end(&node.log, &self.checks.exposed);
                    self.checks.durable_at[index] = Some((key.0, key.1, end));
                    end
                }
            };
            synced_ends.push((synced_end, node.id));
        }
        synced_ends.sort_unstable_by(|a, b| b.cmp(a));
        for (&copies, &end) in &self.checks.synced_on {
            let kth = synced_ends.get(copies - 1).map_or(0, |&(e, _)| e);
            if kth < end {
                return Err((
                    Invariant::DurableBelowHw,
                    format!(
                        "records up to {end} were exposed when {copies} replicas had to sync them; synced history ends per node: {synced_ends:?}"
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Where `log`'s synced batches stop matching the committed history `exposed` (from its
/// log start; what retention removed counts as held).
fn synced_history_end(log: &MemLog, exposed: &BTreeMap<i64, (Batch, i32)>) -> i64 {
    let mut end = log.log_start;
    for (&base, (batch, _)) in exposed.range(log.log_start..) {
        if base != end || batch.end() > log.flushed || log.batch_at(base) != Some(batch) {
            break;
        }
        end = batch.end();
    }
    end
}

/// Contiguous batches with non-decreasing epochs, a strictly increasing epoch cache, no
/// torn batch on a running node, and nothing exposed above the sync mark.
fn well_formed(node: &Node) -> Result<(), Broken> {
    let broken = |what: String| {
        Err((
            Invariant::WellFormedLog,
            format!("node {}: {what}", node.id),
        ))
    };
    let entries = node.log.epochs.entries();
    if entries
        .windows(2)
        .any(|w| w[0].0 >= w[1].0 || w[0].1 >= w[1].1)
    {
        return broken(format!("epoch cache {entries:?} not increasing"));
    }
    let mut at = node.log.log_start;
    let mut epoch = i32::MIN;
    for batch in &node.log.batches {
        if batch.base != at || batch.epoch < epoch {
            return broken(format!("log {:?} is not contiguous", node.log.batches));
        }
        at = batch.end();
        epoch = batch.epoch;
    }
    if at != node.log.log_end && !node.log.batches.is_empty() {
        return broken(format!(
            "log end {} is not its last batch's",
            node.log.log_end
        ));
    }
    if node.alive && node.log.torn.is_some() {
        return broken(format!("runs with a torn batch {:?}", node.log.torn));
    }
    let hw = node.high_watermark();
    if hw > node.log.flushed || node.log.high_watermark > node.log.flushed {
        return Err((
            Invariant::NothingExposedAboveSync,
            format!(
                "node {}: HW {hw} above its synced offset {}",
                node.id, node.log.flushed
            ),
        ));
    }
    Ok(())
}
