//! Random schedules, VOPR style: one seed draws a cluster shape, network fault rates and
//! a list of operations (produces, steps, message drops, delays, duplicates and
//! reorderings, partitions, power losses with lost or torn tails (of one node, of the
//! leader, of every node at once), failed fdatasyncs, restarts, metadata delays,
//! reassignments, preferred-leader elections, controller failovers, time passing). After the
//! operations every fault heals, and the replicas must converge with every committed
//! record, within a step bound.
//!
//! [`run_seed`] runs one seed and returns what it did, or the [`Failure`] that stopped it.
//! Everything is drawn from the seed, so `run_seed(s)` is the same run every time.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use spate_cluster::NodeId;

use super::report::panic_text;
use super::{Failure, Invariant, Payload, Rng, Sim, SimConfig, name};

/// Random operations per schedule.
pub const OPS_PER_SCHEDULE: u64 = 300;
/// Steps the healed cluster may take to converge.
pub const CONVERGE_STEPS_MAX: u64 = 50_000;

/// What one seed did (for counters, and for checking that a replay is exact).
#[derive(Debug, Clone)]
pub struct Outcome {
    pub steps: u64,
    pub commits: u64,
    pub ambiguous: u64,
    pub stats: BTreeMap<&'static str, u64>,
    /// The schedule, as [`Sim::event`] wrote it.
    pub events: Vec<String>,
    /// A hash of the schedule, the final logs and the step count: equal for equal runs.
    pub fingerprint: u64,
}

/// The cluster shape and fault rates of `seed` (drawn apart from the operations).
pub fn config_of(seed: u64) -> (SimConfig, u64, u64) {
    let mut rng = Rng::new(seed ^ 0x00c0_ffee_5eed_0001);
    let nodes = match rng.below(100) {
        0..60 => 3,
        60..85 => 4,
        _ => 5,
    };
    let min_insync = match rng.below(100) {
        0..20 => 1,
        20..80 => 2,
        _ => 3,
    };
    let config = SimConfig {
        nodes,
        min_insync,
        jitter: Duration::from_millis(1 + rng.below(8)),
        sync_jitter: Duration::from_millis(rng.below(30)),
        ..SimConfig::default()
    };
    let lossy = rng.chance(50);
    let drop_percent = if lossy { rng.below(4) } else { 0 };
    let duplicate_percent = if lossy { rng.below(4) } else { 0 };
    (config, drop_percent, duplicate_percent)
}

/// How to run a seed.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions<'a> {
    /// A broken invariant does not print its report (the caller prints what it wants from
    /// the [`Failure`]).
    pub quiet: bool,
    /// The bugs injected on this thread (a `SPATE_INJECT_BUG` list), named in the replay
    /// command; `None`: those of the environment.
    pub bugs: Option<&'a str>,
    /// Invariants not checked.
    pub disabled: &'a [Invariant],
}

/// Runs `seed`'s schedule, heals, and checks convergence, quietly.
pub fn run_seed(seed: u64) -> Result<Outcome, Failure> {
    run_seed_with(
        seed,
        RunOptions {
            quiet: true,
            ..RunOptions::default()
        },
    )
}

/// [`run_seed`] with `options`.
pub fn run_seed_with(seed: u64, options: RunOptions<'_>) -> Result<Outcome, Failure> {
    let mut slot: Option<Sim> = None;
    let ran = catch_unwind(AssertUnwindSafe(|| {
        let (config, drop_percent, duplicate_percent) = config_of(seed);
        let sim = slot.insert(Sim::new(seed, config));
        sim.quiet = options.quiet;
        sim.disabled = options.disabled.to_vec();
        if let Some(bugs) = options.bugs {
            sim.injected_bugs = bugs.to_owned();
        }
        sim.links.drop_percent = drop_percent;
        sim.links.duplicate_percent = duplicate_percent;
        if drop_percent + duplicate_percent > 0 {
            sim.event(format!(
                "network: every message dropped with {drop_percent}% and duplicated with {duplicate_percent}% chance"
            ));
        }
        random_operations(sim, OPS_PER_SCHEDULE);
        heal_and_converge(sim);
    }));
    match (ran, slot) {
        (Ok(()), Some(sim)) => Ok(outcome(&sim)),
        (Ok(()), None) => unreachable!("the schedule ran"),
        (Err(payload), sim) => Err(match payload.downcast::<Failure>() {
            Ok(failure) => *failure,
            Err(payload) => {
                let text = panic_text(&*payload);
                match sim {
                    Some(sim) => sim.failure(Invariant::Panic, text),
                    None => Failure {
                        seed,
                        step: 0,
                        elapsed: Duration::ZERO,
                        invariant: Invariant::Panic,
                        report: format!("seed {seed}: panicked while building: {text}"),
                        detail: text,
                    },
                }
            }
        }),
    }
}

fn outcome(sim: &Sim) -> Outcome {
    // FNV-1a over everything a replay must reproduce.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |text: &str| {
        for byte in text.bytes() {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    };
    for event in &sim.events {
        feed(event);
    }
    for node in &sim.nodes {
        feed(&format!("{:?}", node.log.content()));
    }
    feed(&sim.steps.to_string());
    Outcome {
        steps: sim.steps,
        commits: sim.committed.len() as u64,
        ambiguous: sim.ambiguous.len() as u64,
        stats: sim.stats.clone(),
        events: sim.events.clone(),
        fingerprint: hash,
    }
}

/// `ops` random operations.
pub fn random_operations(sim: &mut Sim, ops: u64) {
    let lag = sim.config.replication.replica_lag_time_max;
    for _ in 0..ops {
        let nodes = sim.nodes.len();
        let pick = sim.rng.index(nodes) as NodeId;
        match sim.rng.below(1000) {
            0..220 => {
                let count = 1 + sim.rng.below(3) as i64;
                sim.produce(count);
            }
            // A client with stale metadata asks whichever node it last knew as leader.
            220..240 => {
                sim.produce_to(pick, 1);
            }
            540..570 if has_messages(sim) => {
                let index = pick_message(sim);
                note_message(sim, index, "drop");
                sim.drop_message(index);
            }
            570..600 if has_messages(sim) => {
                let index = pick_message(sim);
                let by = sim.rng.duration(Duration::from_millis(300));
                note_message(sim, index, &format!("delay by {by:?}"));
                sim.delay_message(index, by);
            }
            600..620 if has_messages(sim) => {
                let index = pick_message(sim);
                let after = sim.rng.duration(Duration::from_millis(50));
                note_message(sim, index, &format!("duplicate ({after:?} later)"));
                sim.duplicate_message(index, after);
            }
            620..640 if has_messages(sim) => {
                let index = pick_message(sim);
                let label = describe(sim, index);
                if sim.reorder(index) {
                    sim.event(format!("reorder {label} with the next on its link"));
                }
            }
            640..655 => {
                let loss = sim.random_tail_loss(pick as usize);
                sim.crash_with(pick, loss);
            }
            655..665 => {
                let leader = sim.partition().leader;
                if leader >= 0 {
                    let loss = sim.random_tail_loss(leader as usize);
                    sim.crash_with(leader, loss);
                }
            }
            // Every node at once (a data centre's power): only synced records survive.
            665..668 => {
                sim.event("power loss of every node".to_owned());
                for id in sim.ids() {
                    let loss = sim.random_tail_loss(id as usize);
                    sim.crash_with(id, loss);
                }
            }
            668..678 => sim.fail_next_sync(pick),
            678..738 => sim.restart(pick),
            738..758 => {
                let isolated = !sim.node(pick).isolated;
                sim.isolate(pick, isolated);
            }
            758..778 => partition(sim),
            778..798 if !sim.links.cuts.is_empty() => {
                sim.heal();
                sim.event("heal every partition".to_owned());
            }
            798..848 => sim.sync_now(pick),
            848..858 => {
                let held = sim.rng.duration(Duration::from_secs(2));
                sim.hold_metadata(pick, held);
            }
            858..868 => {
                // Reassign to a random order of two or more nodes, or cancel.
                let mut target: Vec<NodeId> = sim.ids().into_iter().collect();
                for i in (1..target.len()).rev() {
                    let j = sim.rng.index(i + 1);
                    target.swap(i, j);
                }
                target.truncate(2 + sim.rng.index(nodes - 1));
                let cancel = sim.rng.chance(30);
                sim.reassign((!cancel).then_some(target));
            }
            868..878 => sim.fail_over_controller(),
            // An operator's preferred-leader election (ElectLeaders, KIP-460).
            918..928 => {
                sim.elect(spate_cluster::controller::ElectionKind::Preferred);
            }
            878..918 => {
                let d = sim.rng.duration(lag / 2);
                sim.event(format!("let {d:?} pass"));
                sim.run_for(d);
            }
            _ => sim.step(),
        }
    }
}

/// Whether a message is on the network (not a node's own timer).
fn has_messages(sim: &Sim) -> bool {
    sim.net.iter().any(|m| m.from != m.to)
}

/// A random message on the network: a node's own timer (a message to itself) is not one.
fn pick_message(sim: &mut Sim) -> usize {
    let on_network: Vec<usize> = (0..sim.net.len())
        .filter(|&i| sim.net[i].from != sim.net[i].to)
        .collect();
    on_network[sim.rng.index(on_network.len())]
}

/// A symmetric or one-way partition: a random side (the controller may be on it) is cut
/// from everything else.
fn partition(sim: &mut Sim) {
    let mut ends: Vec<NodeId> = sim.ids().into_iter().collect();
    ends.push(super::CONTROLLER);
    let side: Vec<NodeId> = ends
        .iter()
        .copied()
        .filter(|_| sim.rng.chance(40))
        .collect();
    if side.is_empty() || side.len() == ends.len() {
        return;
    }
    let one_way = sim.rng.chance(40);
    sim.cut(&side, one_way);
    let label = |ids: &[NodeId]| {
        ids.iter()
            .map(|&id| {
                if id == super::CONTROLLER {
                    "controller".to_owned()
                } else {
                    id.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join(",")
    };
    let others: Vec<NodeId> = ends.into_iter().filter(|e| !side.contains(e)).collect();
    let arrow = if one_way { "→ (one way)" } else { "↔" };
    sim.event(format!(
        "partition {{{}}} {arrow} {{{}}}",
        label(&side),
        label(&others)
    ));
}

fn describe(sim: &Sim, index: usize) -> String {
    let m = &sim.net[index];
    let end = |id: NodeId| {
        if id == super::CONTROLLER {
            "controller".to_owned()
        } else {
            id.to_string()
        }
    };
    let what = match &m.payload {
        Payload::Fetch { fetch, .. } => format!(
            "{} (e{} at {}, durable {})",
            name(&m.payload),
            fetch.current_leader_epoch,
            fetch.fetch_offset,
            fetch.durable_offset
        ),
        _ => name(&m.payload).to_owned(),
    };
    format!("{what} {}→{}", end(m.from), end(m.to))
}

fn note_message(sim: &mut Sim, index: usize, what: &str) {
    let label = describe(sim, index);
    sim.event(format!("{what}: {label}"));
}

/// Heals every fault, brings every node back and every node into the partition, and
/// steps until the replicas converge; then checks that the leader holds every committed
/// and exposed batch.
pub fn heal_and_converge(sim: &mut Sim) {
    sim.event("heal: network, disks and nodes; reassign to every node".to_owned());
    sim.links = super::network::Links::default();
    for id in sim.ids() {
        sim.isolate(id, false);
        sim.restart(id);
        sim.node_mut(id).fail_next_sync = false;
    }
    let all: Vec<NodeId> = sim.ids().into_iter().collect();
    if sim.partition().replicas.len() < all.len() || sim.partition().is_reassigning() {
        sim.reassign(Some(all));
    }
    sim.drive_until(
        "the healed cluster converges",
        CONVERGE_STEPS_MAX,
        Sim::converged,
    );
    let Some(leader) = sim.leader_node() else {
        sim.violate(Invariant::Liveness, "no leader after converging".to_owned())
    };
    let missing_acked = sim
        .committed
        .iter()
        .find(|b| leader.log.batch_at(b.base) != Some(*b))
        .copied();
    if let Some(batch) = missing_acked {
        sim.violate(
            Invariant::AckedNeverLost,
            format!("after healing, the converged log lacks acked batch {batch:?}"),
        );
    }
    let missing_exposed = sim
        .checks
        .exposed()
        .find(|b| leader.log.batch_at(b.base) != Some(*b))
        .copied();
    if let Some(batch) = missing_exposed
        && sim.faults.unclean_elections == 0
    {
        sim.violate(
            Invariant::ExposedNeverLost,
            format!("after healing, the converged log lacks exposed batch {batch:?}"),
        );
    }
}
