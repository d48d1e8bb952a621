//! What a failing run reports: the invariant it broke, the seed, and the schedule as a
//! readable event list, so anyone can read what happened and replay it exactly.
//!
//! A broken invariant unwinds with a [`Failure`] as the payload ([`Sim::violate`]), without
//! the panic hook: a runner catches it and decides what to print (a campaign prints one
//! line per seed, a bug test the invariant); a scripted test that does not catch it gets the
//! full report on stderr first.

use std::fmt::Write as _;
use std::panic::resume_unwind;
use std::time::Duration;

use super::Sim;
use super::node::Node;

/// Lines of the message trace a report shows (the schedule is shown whole).
const REPORT_TRACE_LINES_MAX: usize = 80;

/// The properties the simulator checks, after every step unless said otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Invariant {
    /// At most one node ever leads a given leader epoch.
    OneLeaderPerEpoch,
    /// Within one tenure (node, incarnation, leader epoch) the HW served never goes down.
    LeaderHwMonotonic,
    /// ListOffsets(latest) never goes down for a consumer that names the leader epoch it
    /// knows (KIP-207 with KIP-320 fencing).
    LatestOffsetMonotonic,
    /// An `acks=all` produce answered OK stays in every later leader's log.
    AckedNeverLost,
    /// A record below any HW a leader served (readable by a consumer) stays in every later
    /// leader's log, at the same offset, with the same bytes.
    ExposedNeverLost,
    /// Every replica's log below its own HW is the committed history, batch for batch.
    LogsAgreeBelowHw,
    /// Equal (offset, leader epoch) means equal bytes, over every batch ever written.
    SameOffsetSameBytes,
    /// Every record below the highest HW served is synced on at least min-ISR replicas
    /// (notes §5: a power loss of the whole ISR takes back nothing a consumer saw).
    DurableBelowHw,
    /// No replica exposes (HW) a record it has not synced.
    NothingExposedAboveSync,
    /// No replica truncates records below its HW (only an unclean election may).
    NoTruncationBelowHw,
    /// Logs are contiguous, epochs in them never go down, the epoch cache strictly
    /// increases, truncations fall on batch boundaries, and recovery cut every torn write.
    WellFormedLog,
    /// Once every fault heals, the replicas converge within a bounded number of steps.
    Liveness,
    /// The controller's image accepts every decision the controller makes.
    ControllerAccepts,
    /// A scripted test's own expectation.
    Scripted,
    /// The code under test (or the simulator) panicked.
    Panic,
}

impl Invariant {
    pub fn name(self) -> &'static str {
        match self {
            Invariant::OneLeaderPerEpoch => "one-leader-per-epoch",
            Invariant::LeaderHwMonotonic => "leader-hw-monotonic",
            Invariant::LatestOffsetMonotonic => "latest-offset-monotonic",
            Invariant::AckedNeverLost => "acked-never-lost",
            Invariant::ExposedNeverLost => "exposed-never-lost",
            Invariant::LogsAgreeBelowHw => "logs-agree-below-hw",
            Invariant::SameOffsetSameBytes => "same-offset-same-bytes",
            Invariant::DurableBelowHw => "durable-below-hw",
            Invariant::NothingExposedAboveSync => "nothing-exposed-above-sync",
            Invariant::NoTruncationBelowHw => "no-truncation-below-hw",
            Invariant::WellFormedLog => "well-formed-log",
            Invariant::Liveness => "liveness",
            Invariant::ControllerAccepts => "controller-accepts",
            Invariant::Scripted => "scripted",
            Invariant::Panic => "panic",
        }
    }

    /// Whether breaking it means replicated data is wrong (as opposed to a run that stalls,
    /// or the simulator tripping over itself).
    pub fn is_safety(self) -> bool {
        !matches!(
            self,
            Invariant::Liveness | Invariant::Scripted | Invariant::Panic
        )
    }
}

/// A broken invariant, with everything needed to understand and replay it.
#[derive(Debug, Clone)]
pub struct Failure {
    pub seed: u64,
    pub step: u64,
    pub elapsed: Duration,
    pub invariant: Invariant,
    pub detail: String,
    /// The seed, the replay command, the schedule, the recent trace and every node.
    pub report: String,
}

impl Failure {
    /// One line: seed, invariant, detail.
    pub fn summary(&self) -> String {
        format!(
            "seed {} broke `{}` at step {} ({:.3}s): {}",
            self.seed,
            self.invariant.name(),
            self.step,
            self.elapsed.as_secs_f64(),
            self.detail
        )
    }
}

impl Sim {
    /// Records a schedule event (a client request or an injected fault), with its time
    /// and step: the readable list a failure prints.
    pub fn event(&mut self, line: String) {
        let at = self.elapsed().as_secs_f64();
        let entry = format!(
            "#{:<3} {at:>8.3}s step {:<5} {line}",
            self.events.len(),
            self.steps
        );
        self.log(format!("EVENT {line}"));
        self.events.push(entry);
    }

    /// Stops the run: `invariant` is broken. Unwinds with a [`Failure`]; prints the report
    /// first unless [`Sim::quiet`] (a runner that prints its own).
    pub fn violate(&self, invariant: Invariant, detail: String) -> ! {
        let failure = self.failure(invariant, detail);
        if !self.quiet {
            eprintln!("{}", failure.report);
        }
        resume_unwind(Box::new(failure))
    }

    /// The failure `invariant` would report now.
    pub fn failure(&self, invariant: Invariant, detail: String) -> Failure {
        let mut failure = Failure {
            seed: self.seed,
            step: self.steps,
            elapsed: self.elapsed(),
            invariant,
            detail,
            report: String::new(),
        };
        failure.report = self.report(&failure);
        failure
    }

    fn report(&self, failure: &Failure) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "replication simulation: {}", failure.summary());
        let _ = writeln!(
            out,
            "replay: {}",
            replay_command(self.seed, &self.injected_bugs)
        );
        let _ = writeln!(
            out,
            "schedule of seed {} ({} events; config {}):",
            self.seed,
            self.events.len(),
            self.config.describe()
        );
        for event in &self.events {
            let _ = writeln!(out, "  {event}");
        }
        let skip = self.trace.len().saturating_sub(REPORT_TRACE_LINES_MAX);
        let _ = writeln!(
            out,
            "last {} trace lines:",
            self.trace.len().min(REPORT_TRACE_LINES_MAX)
        );
        for line in self.trace.iter().skip(skip) {
            let _ = writeln!(out, "  {line}");
        }
        let _ = writeln!(out, "partition (controller): {:?}", self.partition());
        for node in &self.nodes {
            let _ = writeln!(out, "{}", Node::summary(node));
        }
        out
    }
}

/// The command that replays `seed` with its trace, with `bugs` (a `SPATE_INJECT_BUG` list,
/// empty for none) injected.
pub fn replay_command(seed: u64, bugs: &str) -> String {
    let (env, features) = if bugs.is_empty() {
        (String::new(), "")
    } else {
        (
            format!("SPATE_INJECT_BUG={bugs} "),
            " --features bug-injection",
        )
    };
    format!(
        "{env}SPATE_SIM_SEED={seed} cargo test -p spate-cluster{features} --test replication_simulation replay -- --ignored --nocapture"
    )
}

/// What a panic that is not a [`Failure`] carried, as text.
pub fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}
