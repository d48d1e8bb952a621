//! The checker's verdict: counts, and for each kind of anomaly found, how many and the first few
//! examples, each with the history lines that prove it so a person can find them.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use super::event::Outcome;

/// How many examples a report keeps per kind. A broken run can have a million anomalies of one
/// kind; the first few are what a person reads, and the count says how bad it is.
pub const EXAMPLES_PER_KIND_MAX: usize = 5;

/// The kinds of anomaly, named after the properties of Jepsen's Kafka workload. The serialized
/// name (`lost_write`, …) is what the report prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyKind {
    /// An acknowledged send that no read saw, although reads went past its offset (or a final
    /// read covered it).
    LostWrite,
    /// Two different values at one topic, partition and offset (from reads or an ack).
    Divergence,
    /// A value from an idempotent producer at two different offsets.
    Duplicate,
    /// One producer's sends, each started after the previous was acknowledged, landed in the
    /// log in the other order.
    OrderViolation,
    /// Within one consumer session, a read at or below the previous read's offset.
    NonmonotonicPoll,
    /// A read of a value that no send carried.
    PhantomRead,
    /// A read of a value whose send definitely failed (Jepsen's aborted read).
    FailedWriteRead,
    /// An observed committed offset below one committed or observed earlier.
    CommittedOffsetBackwards,
}

impl AnomalyKind {
    /// Every kind, in report order.
    pub const ALL: [AnomalyKind; 8] = [
        AnomalyKind::LostWrite,
        AnomalyKind::Divergence,
        AnomalyKind::Duplicate,
        AnomalyKind::OrderViolation,
        AnomalyKind::NonmonotonicPoll,
        AnomalyKind::PhantomRead,
        AnomalyKind::FailedWriteRead,
        AnomalyKind::CommittedOffsetBackwards,
    ];

    /// The name the report prints, the same as the serialized one.
    pub fn name(self) -> &'static str {
        match self {
            AnomalyKind::LostWrite => "lost_write",
            AnomalyKind::Divergence => "divergence",
            AnomalyKind::Duplicate => "duplicate",
            AnomalyKind::OrderViolation => "order_violation",
            AnomalyKind::NonmonotonicPoll => "nonmonotonic_poll",
            AnomalyKind::PhantomRead => "phantom_read",
            AnomalyKind::FailedWriteRead => "failed_write_read",
            AnomalyKind::CommittedOffsetBackwards => "committed_offset_backwards",
        }
    }
}

impl fmt::Display for AnomalyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which kind of history event a witness is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WitnessEvent {
    /// A `send` line.
    Send,
    /// A `read` line.
    Read,
    /// A `seek` line.
    Seek,
    /// A `commit` line.
    Commit,
    /// A `committed` line.
    Committed,
    /// A `final_read` line.
    FinalRead,
}

/// One history event that takes part in an anomaly, with what a person needs to find it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Witness {
    /// The event's kind.
    pub event: WitnessEvent,
    /// Its 1-based line in the history file.
    pub line: u64,
    /// The process that did it, if any.
    pub process: Option<String>,
    /// When it was started, if recorded.
    pub invoked_ms: Option<f64>,
    /// When it ended.
    pub time_ms: Option<f64>,
    /// The offset it names, if any.
    pub offset: Option<i64>,
    /// The value it carries, if any.
    pub value: Option<String>,
    /// Its outcome, for sends and commits.
    pub result: Option<Outcome>,
}

/// One anomaly, located.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Example {
    /// The consumer group, for committed offsets.
    pub group: Option<String>,
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
    /// The offset in question, if one.
    pub offset: Option<i64>,
    /// The value in question, if one.
    pub value: Option<String>,
    /// What is wrong, in a sentence.
    pub note: String,
    /// The events that show it.
    pub witnesses: Vec<Witness>,
}

/// All anomalies of one kind.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnomalySummary {
    /// How many were found (distinct values, offsets or pairs, as each check says).
    pub count: u64,
    /// The first [`EXAMPLES_PER_KIND_MAX`], in history order.
    pub examples: Vec<Example>,
}

/// The tally of what the history holds, so a clean verdict can be told from an empty history.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Events (non-blank lines) read.
    pub events: u64,
    /// Sends acknowledged.
    pub sends_ok: u64,
    /// Sends that definitely failed.
    pub sends_fail: u64,
    /// Sends whose outcome was unknown.
    pub sends_info: u64,
    /// Of those, sends that a read saw: acknowledged after all.
    pub info_sends_read: u64,
    /// `read` events.
    pub records_read: u64,
    /// Distinct values read.
    pub values_read: u64,
    /// Values from plain producers read at more than one offset: allowed, counted for scale.
    pub plain_duplicates: u64,
    /// `seek` events.
    pub seeks: u64,
    /// `commit` events, of any outcome.
    pub commits: u64,
    /// `committed` events.
    pub committed_observations: u64,
    /// Partitions with a `final_read`.
    pub final_reads: u64,
}

/// The verdict on one history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// True when no anomaly was found.
    pub valid: bool,
    /// What the history holds.
    pub counts: Counts,
    /// The kinds found, each with its count and examples; kinds not found are absent.
    pub anomalies: BTreeMap<AnomalyKind, AnomalySummary>,
}

impl Report {
    /// How many anomalies of `kind` were found.
    pub fn count(&self, kind: AnomalyKind) -> u64 {
        self.anomalies.get(&kind).map_or(0, |summary| summary.count)
    }

    /// The kinds found, in report order: what a test compares against the kinds it planted.
    pub fn kinds(&self) -> Vec<AnomalyKind> {
        self.anomalies.keys().copied().collect()
    }
}

/// Collects anomalies while the checks run; builds an example only while the kind has room.
#[derive(Debug, Default)]
pub(super) struct Anomalies {
    found: BTreeMap<AnomalyKind, AnomalySummary>,
}

impl Anomalies {
    /// Counts one anomaly of `kind`; `example` runs only if it will be kept, because building
    /// one resolves names and a bad run calls this a million times.
    pub(super) fn record(&mut self, kind: AnomalyKind, example: impl FnOnce() -> Example) {
        let summary = self.found.entry(kind).or_insert_with(|| AnomalySummary {
            count: 0,
            examples: Vec::new(),
        });
        summary.count += 1;
        if summary.examples.len() < EXAMPLES_PER_KIND_MAX {
            summary.examples.push(example());
        }
    }

    pub(super) fn into_report(self, counts: Counts) -> Report {
        Report {
            valid: self.found.is_empty(),
            counts,
            anomalies: self.found,
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.counts;
        writeln!(
            f,
            "history: {} events; sends ok {}, fail {}, info {} ({} read); \
             {} records read ({} values); {} plain-producer duplicates (allowed); \
             {} seeks, {} commits, {} committed observations, {} final reads",
            c.events,
            c.sends_ok,
            c.sends_fail,
            c.sends_info,
            c.info_sends_read,
            c.records_read,
            c.values_read,
            c.plain_duplicates,
            c.seeks,
            c.commits,
            c.committed_observations,
            c.final_reads,
        )?;
        if self.valid {
            return writeln!(f, "valid: no anomalies");
        }
        let kinds: Vec<String> = self
            .anomalies
            .iter()
            .map(|(kind, summary)| format!("{kind} {}", summary.count))
            .collect();
        writeln!(f, "INVALID: {}", kinds.join(", "))?;
        for (kind, summary) in &self.anomalies {
            writeln!(f, "{kind}: {}", summary.count)?;
            for example in &summary.examples {
                write!(f, "{example}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for Example {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "  ")?;
        if let Some(group) = &self.group {
            write!(f, "group {group} ")?;
        }
        write!(f, "{}/{}", self.topic, self.partition)?;
        if let Some(offset) = self.offset {
            write!(f, " offset {offset}")?;
        }
        if let Some(value) = &self.value {
            write!(f, " value {value}")?;
        }
        writeln!(f, ": {}", self.note)?;
        for witness in &self.witnesses {
            writeln!(f, "    {witness}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Witness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let event = match self.event {
            WitnessEvent::Send => "send",
            WitnessEvent::Read => "read",
            WitnessEvent::Seek => "seek",
            WitnessEvent::Commit => "commit",
            WitnessEvent::Committed => "committed",
            WitnessEvent::FinalRead => "final_read",
        };
        write!(f, "line {}: {event}", self.line)?;
        if let Some(process) = &self.process {
            write!(f, " by {process}")?;
        }
        if let Some(result) = self.result {
            let result = match result {
                Outcome::Ok => "ok",
                Outcome::Fail => "fail",
                Outcome::Info => "info",
            };
            write!(f, " {result}")?;
        }
        if let Some(value) = &self.value {
            write!(f, " value {value}")?;
        }
        match self.offset {
            Some(offset) => write!(f, " offset {offset}")?,
            None if self.event == WitnessEvent::Send => write!(f, " offset null")?,
            None => {}
        }
        if let Some(invoked_ms) = self.invoked_ms {
            write!(f, " invoked {invoked_ms} ms")?;
        }
        if let Some(time_ms) = self.time_ms {
            write!(f, " at {time_ms} ms")?;
        }
        Ok(())
    }
}
