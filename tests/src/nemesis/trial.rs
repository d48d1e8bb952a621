//! One trial: a fresh 3-node cluster in namespaces, a replicated topic (RF 3,
//! `min.insync.replicas=2`), the workload, a schedule of faults each held for a while and then
//! healed, a final read once the cluster is whole again, and the checker over the history.
//!
//! A trial's result is what the matrix table reports: acknowledged records, the checker's
//! anomalies, and per fault the time to recover, from the heal until every partition has
//! acknowledged a record that was sent after the heal (so acks queued before the heal do not
//! count as recovery).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::faults::{Nemesis, inject};
use super::nodes::{NemesisCluster, NemesisClusterOptions, SetupError};
use super::verdict::{Verdict, check_history};
use super::workload::{Workload, WorkloadOptions};
use crate::replication::{create_topic_with_configs, panics, topic_fully_in_sync};
use crate::{ClusterOptions, HarnessError};

/// The tmpfs size of the full-disk node: room for the workload's data and the metadata log,
/// small enough to fill in a moment.
const SMALL_DISK_MB: u32 = 64;
const TOPIC: &str = "nemesis";
const PARTITION_COUNT: i32 = 3;
/// From the last heal to a whole, agreeing cluster (a restarted node catches up, is unfenced
/// and rejoins every ISR).
const WHOLE_TIMEOUT: Duration = Duration::from_secs(90);

/// What to run.
#[derive(Debug, Clone)]
pub struct TrialOptions {
    /// The faults, one after the other.
    pub schedule: Vec<Nemesis>,
    /// Seeds the choice of targets.
    pub seed: u64,
    /// Traffic before the first fault.
    pub warmup: Duration,
    /// How long each fault is held.
    pub fault: Duration,
    /// Traffic after each heal, before the next fault or the end.
    pub settle: Duration,
    /// Where to keep the history (`history.jsonl`) and the trial's log; a temp dir if unset.
    pub out_dir: Option<PathBuf>,
}

impl TrialOptions {
    /// A schedule of one fault, with the CI's short timings.
    pub fn short(nemesis: Nemesis, seed: u64) -> TrialOptions {
        TrialOptions {
            schedule: vec![nemesis],
            seed,
            warmup: Duration::from_secs(3),
            fault: Duration::from_secs(6),
            settle: Duration::from_secs(6),
            out_dir: None,
        }
    }
}

/// One fault as it happened.
#[derive(Debug, Clone)]
pub struct FaultRecord {
    pub nemesis: Nemesis,
    pub what: String,
    pub injected_ms: f64,
    pub healed_ms: f64,
    /// None when no partition acknowledged a post-heal record in the trial.
    pub recovery_ms: Option<f64>,
}

/// What a trial showed.
#[derive(Debug)]
pub struct TrialOutcome {
    pub faults: Vec<FaultRecord>,
    pub verdict: Verdict,
    /// Problems outside the checker: a panic in a node, a cluster that did not become whole,
    /// a client that crashed.
    pub failures: Vec<String>,
    pub history: PathBuf,
    pub elapsed: Duration,
}

impl TrialOutcome {
    /// Whether the trial shows no anomaly and no failure.
    pub fn passed(&self) -> bool {
        self.verdict.valid && self.failures.is_empty()
    }

    /// A human summary: faults, counts, anomalies with examples, failures.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for fault in &self.faults {
            out.push_str(&format!(
                "  {}: {} at {:.0} ms, healed at {:.0} ms, recovered in {}\n",
                fault.nemesis,
                fault.what,
                fault.injected_ms,
                fault.healed_ms,
                fault
                    .recovery_ms
                    .map_or("never".into(), |ms| format!("{ms:.0} ms"))
            ));
        }
        out.push_str(&self.verdict.summary);
        for failure in &self.failures {
            out.push_str(&format!("\n  failure: {failure}"));
        }
        out.push_str(&format!("\n  history: {}", self.history.display()));
        out
    }
}

/// Why a trial did not produce an outcome.
#[derive(Debug)]
pub enum TrialError {
    /// Namespaces cannot be made here: skip.
    Unsupported(String),
    /// The harness failed (a node never started, a client could not be run).
    Failed(String),
}

impl std::fmt::Display for TrialError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TrialError::Unsupported(reason) => write!(f, "namespaces unavailable: {reason}"),
            TrialError::Failed(reason) => f.write_str(reason),
        }
    }
}

/// Runs one trial.
pub fn run_trial(options: &TrialOptions) -> Result<TrialOutcome, TrialError> {
    let started = Instant::now();
    let needs_proxy = options.schedule.contains(&Nemesis::Slow);
    let needs_disk = options.schedule.contains(&Nemesis::DiskFull);
    let mut nodes = NemesisCluster::start(NemesisClusterOptions {
        cluster: ClusterOptions {
            extra_args: vec!["--replica-lag-time-max-ms".into(), "3000".into()],
            ..ClusterOptions::default()
        },
        proxied: needs_proxy,
        small_disk: needs_disk.then_some((1, SMALL_DISK_MB)),
    })
    .map_err(|e| match e {
        SetupError::Unsupported(reason) => TrialError::Unsupported(reason),
        SetupError::Failed(error) => TrialError::Failed(error.to_string()),
    })?;
    let failed = |what: &str, e: HarnessError, nodes: &NemesisCluster| {
        TrialError::Failed(format!("{what}: {e}\n{}", nodes.cluster.logs()))
    };
    create_topic_with_configs(
        &nodes.cluster,
        1,
        TOPIC,
        PARTITION_COUNT,
        3,
        &[("min.insync.replicas", "2")],
    )
    .map_err(|e| failed("create the topic", e, &nodes))?;
    whole(&nodes).map_err(|e| failed("the new topic in sync", e, &nodes))?;
    let out_dir = match &options.out_dir {
        Some(dir) => dir.clone(),
        None => tempfile::Builder::new()
            .prefix("spate-nemesis-trial-")
            .tempdir()
            .map_err(|e| TrialError::Failed(format!("create the trial dir: {e}")))?
            .keep(),
    };
    let _ = std::fs::create_dir_all(&out_dir);
    let history = out_dir.join("history.jsonl");
    let mut workload = Workload::start(
        WorkloadOptions::standard(TOPIC, PARTITION_COUNT),
        &nodes.cluster.bootstrap(),
    )
    .map_err(|e| failed("start the workload", e, &nodes))?;
    let mut random = SplitMix(options.seed);
    let mut faults = Vec::new();
    let mut failures = Vec::new();
    std::thread::sleep(options.warmup);
    for nemesis in &options.schedule {
        let mut pick = |ids: &[crate::NodeId]| ids[random.below(ids.len())];
        let injected_ms = workload.now_ms();
        let (fault, what) = match inject(*nemesis, &mut nodes, TOPIC, &mut pick) {
            Ok(done) => done,
            Err(e) => {
                failures.push(format!("inject {nemesis}: {e}"));
                continue;
            }
        };
        std::thread::sleep(options.fault);
        let healed_ms = workload.now_ms();
        if let Err(e) = fault.heal(&mut nodes) {
            failures.push(format!("heal {nemesis} ({what}): {e}"));
        }
        faults.push(FaultRecord {
            nemesis: *nemesis,
            what,
            injected_ms,
            healed_ms,
            recovery_ms: None,
        });
        std::thread::sleep(options.settle);
    }
    if let Err(e) = whole(&nodes) {
        failures.push(format!(
            "the cluster did not become whole after the heal: {e}"
        ));
    }
    for crashed in workload.crashed_clients() {
        failures.push(format!("a client exited early:\n{crashed}"));
    }
    let bootstrap = nodes.cluster.bootstrap();
    if let Err(e) = workload.finish(&bootstrap, &history) {
        return Err(TrialError::Failed(format!(
            "finish the workload: {e}\n{}",
            nodes.cluster.logs()
        )));
    }
    failures.extend(panics(&nodes.cluster));
    let verdict = check_history(&history).map_err(TrialError::Failed)?;
    let recoveries = recovery_times(
        &history,
        &faults.iter().map(|f| f.healed_ms).collect::<Vec<_>>(),
    );
    for (fault, recovery) in faults.iter_mut().zip(recoveries) {
        fault.recovery_ms = recovery;
    }
    if !(verdict.valid && failures.is_empty()) {
        for id in nodes.cluster.node_ids() {
            let log = nodes.cluster.node(id).log_tail(usize::MAX);
            let _ = std::fs::write(out_dir.join(format!("node-{id}.log")), log);
        }
    }
    Ok(TrialOutcome {
        faults,
        verdict,
        failures,
        history,
        elapsed: started.elapsed(),
    })
}

/// Waits until every running node agrees on Metadata with all three brokers and every
/// partition of the topic led and in sync.
fn whole(nodes: &NemesisCluster) -> Result<(), HarnessError> {
    nodes
        .cluster
        .agreed_metadata(
            WHOLE_TIMEOUT,
            "the whole cluster, every partition in sync",
            |m| {
                m.broker_ids().len() == 3
                    && topic_fully_in_sync(m, TOPIC, PARTITION_COUNT as usize, 3)
            },
        )
        .map(|_| ())
}

/// Per heal time, the time until every partition acknowledged a record sent after it.
pub fn recovery_times(history: &Path, healed_ms: &[f64]) -> Vec<Option<f64>> {
    let text = std::fs::read_to_string(history).unwrap_or_default();
    let acks: Vec<(i64, f64, f64)> = text
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|v| v["type"] == "send" && v["result"] == "ok")
        .filter_map(|v| {
            Some((
                v["partition"].as_i64()?,
                v["invoked_ms"].as_f64()?,
                v["time_ms"].as_f64()?,
            ))
        })
        .collect();
    healed_ms
        .iter()
        .map(|heal| {
            let mut first: BTreeMap<i64, f64> = BTreeMap::new();
            for (partition, invoked, done) in &acks {
                if invoked >= heal {
                    let entry = first.entry(*partition).or_insert(*done);
                    *entry = entry.min(*done);
                }
            }
            (first.len() == PARTITION_COUNT as usize)
                .then(|| first.values().fold(0.0_f64, |a, b| a.max(*b)) - heal)
        })
        .collect()
}

/// A seeded generator for target choices (splitmix64): a trial's seed replays its choices.
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in 0..bound (bound > 0).
    pub fn below(&mut self, bound: usize) -> usize {
        (self.next_u64() % bound.max(1) as u64) as usize
    }
}

/// `count` faults drawn by `random` from the mixable nemeses ([`Nemesis::mixable`], in
/// [`Nemesis::ALL`]'s order, so a seed draws the same schedule as before): the seeded mix.
pub fn mixed_schedule(random: &mut SplitMix, count: usize) -> Vec<Nemesis> {
    let mixable: Vec<Nemesis> = Nemesis::ALL.into_iter().filter(|n| n.mixable()).collect();
    (0..count)
        .map(|_| mixable[random.below(mixable.len())])
        .collect()
}
