//! A deterministic simulator for one replicated partition, in the manner of quinn's `Pair`
//! and TigerBeetle's VOPR: brokers are [`node::Node`]s over in-memory logs ([`log::MemLog`],
//! the disk: unsynced tails lost or torn on a power loss, failed fdatasyncs), messages go
//! through a queue that drops, delays, duplicates and reorders them and that partitions
//! cut, symmetric or one-way, the controller's links included ([`network`]), the clock is
//! fake, and a minimal controller applies the real controller decisions (sessions,
//! AlterPartition, elections, reassignments) to a real `ClusterImage` ([`controller`]).
//!
//! Every run is a function of its seed. [`Sim::step`] jumps the clock to the next event (a
//! message, a sync, a replica timer, the controller's tick) and handles it; after every
//! step [`check`] verifies the invariants, and a broken one stops the run with a
//! [`report::Failure`] that names the seed and prints the schedule ([`Sim::event`]), so it
//! can be read and replayed (`SPATE_SIM_SEED=<seed>`). [`schedule`] draws random schedules.
//! [`Sim::drive_until`] steps until a condition holds, and fails past its step bound: in a
//! healthy run, liveness has a limit.

mod brokers;
pub mod check;
mod controller;
mod faults;
pub mod log;
pub mod network;
pub mod node;
pub mod report;
pub mod rng;
pub mod schedule;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use spate_cluster::controller::sessions::BrokerSessions;
use spate_cluster::controller::topics::{self, CreateTopic, TopicDefaults};
use spate_cluster::replication::{
    FollowerFetch, IsrChangeRequest, IsrRefusal, LeaderAnswer, ReplicationConfig,
};
use spate_cluster::{ClusterImage, NodeId, PartitionState, RecordBody, TopicId};

use super::{Cluster, any_configs, topic_id};
use check::Checks;
use log::{Batch, MemLog};
use network::Links;
use node::{Node, Replica};
pub use report::{Failure, Invariant};
pub use rng::Rng;

/// The controller's node id in messages.
pub const CONTROLLER: NodeId = -100;
pub const TOPIC: &str = "orders";
/// Batches one fetch answer carries at most (a stand-in for `replica.fetch.max.bytes`).
pub(crate) const ANSWER_BATCHES_MAX: usize = 3;

/// Timing and shape of a simulated cluster.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub nodes: usize,
    pub min_insync: usize,
    pub replication: ReplicationConfig,
    pub session_timeout: Duration,
    pub heartbeat_interval: Duration,
    /// How long a leader parks a fetch it has nothing for (`replica.fetch.wait.max.ms`).
    pub fetch_wait: Duration,
    /// One-way latency, and a random extra of up to `jitter`.
    pub latency: Duration,
    pub jitter: Duration,
    /// How long after an append a node's sync completes (`flush=always`)...
    pub sync_delay: Duration,
    /// ...plus a random extra of up to this (a slow disk).
    pub sync_jitter: Duration,
    /// When a lost AlterPartition (or its answer) is given up as a timeout.
    pub rpc_timeout: Duration,
}

impl SimConfig {
    pub fn with_nodes(self, nodes: usize) -> Self {
        SimConfig { nodes, ..self }
    }

    /// The shape and timing, for a failure report.
    pub fn describe(&self) -> String {
        format!(
            "{} nodes, min.insync.replicas {}, latency {:?} + up to {:?}, sync after {:?} + up to {:?}",
            self.nodes,
            self.min_insync,
            self.latency,
            self.jitter,
            self.sync_delay,
            self.sync_jitter
        )
    }
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            nodes: 3,
            min_insync: 2,
            replication: ReplicationConfig {
                replica_lag_time_max: Duration::from_secs(10),
                fetch_backoff: Duration::from_millis(200),
                fetch_timeout: Duration::from_secs(3),
                isr_change_retry_backoff: Duration::from_millis(100),
            },
            session_timeout: Duration::from_secs(3),
            heartbeat_interval: Duration::from_millis(500),
            fetch_wait: Duration::from_millis(200),
            latency: Duration::from_millis(2),
            jitter: Duration::ZERO,
            sync_delay: Duration::from_millis(5),
            sync_jitter: Duration::ZERO,
            rpc_timeout: Duration::from_millis(500),
        }
    }
}

#[derive(Debug, Clone)]
pub enum Payload {
    Fetch {
        fetch: FollowerFetch,
        report: bool,
    },
    Answer {
        sent: FollowerFetch,
        answer: LeaderAnswer,
        batches: Vec<Batch>,
    },
    AlterPartition {
        request: IsrChangeRequest,
        broker_epoch: i64,
    },
    AlterPartitionAnswer {
        request: IsrChangeRequest,
        outcome: Result<PartitionState, IsrRefusal>,
    },
    Metadata(Arc<ClusterImage>),
}

#[derive(Debug, Clone)]
pub struct Message {
    pub at: Instant,
    pub seq: u64,
    pub from: NodeId,
    pub to: NodeId,
    pub payload: Payload,
}

/// A produce the leader appended and has not answered yet.
#[derive(Debug, Clone, Copy)]
pub struct PendingAck {
    pub node: NodeId,
    pub leader_epoch: i32,
    pub batch: Batch,
}

/// Faults injected so far, which license some invariant breaks.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    pub unclean_elections: u32,
}

pub struct Sim {
    pub seed: u64,
    pub rng: Rng,
    pub config: SimConfig,
    pub start: Instant,
    pub now: Instant,
    pub cluster: Cluster,
    pub sessions: BrokerSessions,
    pub topic_id: TopicId,
    pub nodes: Vec<Node>,
    pub net: Vec<Message>,
    /// Cuts and per-message faults of the network.
    pub links: Links,
    next_seq: u64,
    next_tick: Instant,
    next_batch_id: u64,
    /// Stop the controller's heartbeats and expiry (tests that script the metadata).
    pub controller_paused: bool,
    pub pending_acks: Vec<PendingAck>,
    /// Committed: `acks=all` answered OK (or NOT_ENOUGH_REPLICAS_AFTER_APPEND, which is
    /// committed too). None of these may be lost without an injected fault.
    pub committed: Vec<Batch>,
    /// The leader epoch each committed batch was committed in (parallel to `committed`).
    pub committed_in: Vec<i32>,
    pub acked: Vec<Batch>,
    pub after_append: Vec<Batch>,
    pub ambiguous: Vec<Batch>,
    pub faults: Faults,
    pub steps: u64,
    /// What the invariant checks remember between steps.
    pub checks: Checks,
    /// The last messages and decisions, for a failure report.
    pub trace: VecDeque<String>,
    /// Every client request and injected fault, in order: the schedule a failure prints.
    pub events: Vec<String>,
    /// Every batch ever written, by (base offset, epoch): one content each.
    pub written: HashMap<(i64, i32), (u64, i64, NodeId)>,
    /// What happened, counted: answers by kind, truncations, ISR changes, faults.
    pub stats: BTreeMap<&'static str, u64>,
    /// A broken invariant unwinds without printing its report (the runner prints).
    pub quiet: bool,
    /// The bugs injected in this run (a `SPATE_INJECT_BUG` list), for the replay command.
    pub injected_bugs: String,
    /// Invariants not checked in this run (to see what else a bug breaks).
    pub disabled: Vec<Invariant>,
}

impl Sim {
    /// `config.nodes` empty brokers, all registered and live, and topic `orders` with one
    /// partition on all of them (replicas in id order, node 0 leading).
    pub fn new(seed: u64, config: SimConfig) -> Self {
        let logs = vec![MemLog::default(); config.nodes];
        Sim::with_logs(seed, config, logs, None)
    }

    /// Brokers with the given logs; the partition starts as `state` (or node 0 leading all)
    /// at leader epoch `state.leader_epoch`.
    pub fn with_logs(
        seed: u64,
        config: SimConfig,
        logs: Vec<MemLog>,
        state: Option<PartitionState>,
    ) -> Self {
        let now = Instant::now();
        let mut cluster = Cluster::new();
        let mut sessions = BrokerSessions::new(config.session_timeout);
        sessions.reset(&cluster.image, now);
        let nodes: Vec<Node> = (0..)
            .zip(logs)
            .map(|(id, log)| Node::new(id, log))
            .collect();
        for node in &nodes {
            cluster.join(&mut sessions, now, node.id, &node.incarnation_id(), None);
        }
        let topic_id = topic_id(1);
        let ids: Vec<NodeId> = nodes.iter().map(|n| n.id).collect();
        let mut records = topics::create_topic(
            &cluster.image,
            &CreateTopic {
                name: TOPIC.into(),
                partition_count: -1,
                replication_factor: -1,
                assignments: Some(vec![ids]),
                configs: Default::default(),
            },
            &TopicDefaults {
                partition_count: 1,
                replication_factor: None,
            },
            topic_id,
            &any_configs,
        )
        .expect("the topic is valid");
        if let (Some(state), Some(RecordBody::Partition { .. })) = (&state, records.get(1)) {
            records[1] = RecordBody::Partition {
                topic_id,
                partition: 0,
                replicas: state.replicas.clone(),
                isr: state.isr.clone(),
                leader: state.leader,
                leader_epoch: state.leader_epoch,
                partition_epoch: state.partition_epoch,
                adding_replicas: state.adding_replicas.clone(),
                removing_replicas: state.removing_replicas.clone(),
                leader_recovery_state: state.leader_recovery_state,
            };
        }
        cluster.apply(records).expect("the topic applies");
        let mut sim = Sim {
            seed,
            rng: Rng::new(seed),
            start: now,
            now,
            next_tick: now,
            sessions,
            topic_id,
            nodes,
            net: Vec::new(),
            next_seq: 0,
            next_batch_id: 1,
            controller_paused: false,
            pending_acks: Vec::new(),
            committed: Vec::new(),
            committed_in: Vec::new(),
            acked: Vec::new(),
            after_append: Vec::new(),
            ambiguous: Vec::new(),
            faults: Faults::default(),
            steps: 0,
            checks: Checks::new(config.nodes),
            trace: VecDeque::new(),
            events: Vec::new(),
            written: HashMap::new(),
            stats: BTreeMap::new(),
            links: Links::default(),
            quiet: false,
            injected_bugs: std::env::var("SPATE_INJECT_BUG").unwrap_or_default(),
            disabled: Vec::new(),
            cluster,
            config,
        };
        let image = Arc::new(sim.cluster.image.clone());
        for index in 0..sim.nodes.len() {
            let (id, batches) = (sim.nodes[index].id, sim.nodes[index].log.batches.clone());
            for batch in &batches {
                sim.record_written(id, batch);
            }
            sim.next_batch_id = sim
                .next_batch_id
                .max(batches.iter().map(|b| b.id + 1).max().unwrap_or(1));
        }
        sim.checks.seed_exposures(&sim.nodes);
        let now = sim.now;
        for node in &mut sim.nodes {
            node.image = image.clone();
            node.sync_role(now, &sim.config.replication, sim.config.min_insync);
        }
        sim.poll();
        sim
    }

    /// The partition as the controller has it.
    pub fn partition(&self) -> PartitionState {
        self.cluster.partition(TOPIC, 0)
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[usize::try_from(id).expect("a node id")]
    }

    pub fn node_mut(&mut self, id: NodeId) -> &mut Node {
        &mut self.nodes[usize::try_from(id).expect("a node id")]
    }

    /// Node `id`'s leader replica (panics if it does not lead).
    pub fn leader(&self, id: NodeId) -> &spate_cluster::replication::LeaderReplica {
        self.node(id)
            .leader()
            .unwrap_or_else(|| self.fail(&format!("node {id} does not lead")))
    }

    fn index(&self, id: NodeId) -> Option<usize> {
        usize::try_from(id).ok().filter(|&i| i < self.nodes.len())
    }

    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    pub fn log(&mut self, line: String) {
        const TRACE_LINES_MAX: usize = 400;
        if self.trace.len() >= TRACE_LINES_MAX {
            self.trace.pop_front();
        }
        let at = self.elapsed().as_secs_f64();
        self.trace.push_back(format!("{at:>8.3}s {line}"));
    }

    /// Stops the run: a scripted expectation failed (see [`Sim::violate`]).
    pub fn fail(&self, what: &str) -> ! {
        self.violate(Invariant::Scripted, what.to_owned())
    }

    // ----- time -----

    /// The next time anything is due.
    pub fn next_event(&self) -> Instant {
        let mut next = self.next_tick;
        for message in &self.net {
            next = next.min(message.at);
        }
        for node in self.nodes.iter().filter(|n| n.alive) {
            next = next.min(node.sync_at.unwrap_or(next));
            let deadline = match &node.replica {
                Replica::Leader(l) => l.next_deadline(),
                Replica::Follower(f) => f.next_deadline(),
                Replica::Idle => None,
            };
            next = next.min(deadline.unwrap_or(next));
        }
        next.max(self.now)
    }

    /// Jumps to the next event and handles everything due then.
    pub fn step(&mut self) {
        self.steps += 1;
        self.now = self.next_event();
        if self.now >= self.next_tick {
            self.next_tick = self.now + self.config.heartbeat_interval;
            if !self.controller_paused {
                self.controller_tick();
            }
        }
        for index in 0..self.nodes.len() {
            let node = &mut self.nodes[index];
            if node.alive && node.sync_at.is_some_and(|at| at <= self.now) {
                node.sync_at = None;
                self.complete_sync(index);
            }
        }
        let mut due: Vec<Message> = Vec::new();
        let now = self.now;
        self.net.retain(|m| {
            if m.at <= now {
                due.push(m.clone());
                false
            } else {
                true
            }
        });
        due.sort_by_key(|m| (m.at, m.seq));
        for message in due {
            self.deliver(message);
        }
        self.poll();
    }

    /// Steps until `done` holds; panics with the seed after `steps_max` steps.
    pub fn drive_until(&mut self, what: &str, steps_max: u64, done: impl Fn(&Sim) -> bool) {
        for _ in 0..steps_max {
            if done(self) {
                return;
            }
            self.step();
        }
        if !done(self) {
            self.violate(
                Invariant::Liveness,
                format!("not reached in {steps_max} steps: {what}"),
            );
        }
    }

    /// Steps until the clock has moved `duration` on.
    pub fn run_for(&mut self, duration: Duration) {
        const RUN_STEPS_MAX: u64 = 1_000_000;
        let until = self.now + duration;
        for _ in 0..RUN_STEPS_MAX {
            if self.next_event() > until {
                self.now = until;
                return;
            }
            self.step();
        }
        self.violate(Invariant::Liveness, "run_for did not finish".to_owned());
    }
}

pub fn name(payload: &Payload) -> &'static str {
    match payload {
        Payload::Fetch { report: false, .. } => "fetch",
        Payload::Fetch { report: true, .. } => "durable report",
        Payload::Answer { .. } => "answer",
        Payload::AlterPartition { .. } => "alter partition",
        Payload::AlterPartitionAnswer { .. } => "alter partition answer",
        Payload::Metadata(_) => "metadata",
    }
}

/// The default cluster with `min.insync.replicas = min_insync`.
pub fn config(min_insync: usize) -> SimConfig {
    SimConfig {
        min_insync,
        ..SimConfig::default()
    }
}

/// A partition state with no reassignment, at partition epoch 0.
pub fn state(
    replicas: &[NodeId],
    isr: &[NodeId],
    leader: NodeId,
    leader_epoch: i32,
) -> PartitionState {
    PartitionState::new(replicas.to_vec(), isr.to_vec(), leader, leader_epoch, 0)
}

/// A log of `(epoch, record count, batch id)` batches from offset 0, synced, whose HW is
/// `high_watermark`.
pub fn log(batches: &[(i32, i64, u64)], high_watermark: i64) -> MemLog {
    let mut log = MemLog::with_batches(batches);
    log.high_watermark = high_watermark;
    log
}
