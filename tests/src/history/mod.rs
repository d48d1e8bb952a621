//! The history checker for Spate's fault-injection tests (issue 15): reads what a workload saw
//! while nemeses broke the cluster, and says whether a correct Kafka could have shown it.
//!
//! A history is the workload's log of every produce and its outcome, every record polled, and
//! every offset committed or observed. Checking it after the run, rather than asserting inside
//! the workload, lets one checker judge any workload and lets a person re-check a saved
//! history. The properties are those of Jepsen's Kafka workload (`jepsen.tests.kafka`).
//!
//! # Format
//!
//! JSON lines: one event a line, blank lines ignored, unknown fields ignored. The types are in
//! [`event`]; `time_ms` is milliseconds on one clock shared by the whole history.
//!
//! ```text
//! {"type":"send","time_ms":12.5,"invoked_ms":10.0,"process":"p1","producer":"idempotent",
//!  "topic":"t","partition":0,"value":"p1-000042","result":"ok","offset":123}
//! {"type":"read","time_ms":20.0,"process":"c1","topic":"t","partition":0,"offset":123,
//!  "value":"p1-000042"}
//! {"type":"seek","time_ms":5.0,"process":"c1","topic":"t","partition":0,"offset":0}
//! {"type":"commit","time_ms":30.0,"invoked_ms":29.0,"process":"c1","group":"g","topic":"t",
//!  "partition":0,"offset":124,"result":"ok"}
//! {"type":"committed","time_ms":40.0,"invoked_ms":39.0,"process":"c2","group":"g","topic":"t",
//!  "partition":0,"offset":124}
//! {"type":"final_read","topic":"t","partition":0,"log_end":124}
//! ```
//! (each event on one line; wrapped here to fit).
//!
//! - `send`: a produce. `producer` is `idempotent` or `plain`. `result` is `ok` (acknowledged;
//!   `offset` may still be null, as librdkafka can ack without one), `fail` (definitely not
//!   written) or `info` (indeterminate, e.g. a timeout). `time_ms` is when the outcome was
//!   known, `invoked_ms` (optional) when the send started. Every send carries a value no other
//!   send carries; a workload that retries by hand must use a new value.
//! - `read`: one record a consumer polled. A consumer *session* is the run of one process's
//!   reads of one topic-partition; within it offsets must increase.
//! - `seek`: the consumer's position in a partition was set (also at subscription or
//!   assignment), which starts a new session. `offset` null means the position is not known;
//!   otherwise the session's first read must be at or after it.
//! - `commit`: a consumer committed `offset` (the next offset to read) for `group`, with a
//!   `result` like a send's and an optional `invoked_ms`.
//! - `committed`: a committed offset observed (OffsetFetch); `offset` null when there was none.
//!   `invoked_ms` (optional) is when the observation was asked for.
//! - `final_read`: after healing and after every send ended, the partition was read in full from
//!   `log_start` (optional, default 0) to `log_end`, so every record there was logged as a read.
//!
//! Offsets are never negative: write null for "unknown", not Kafka's -1.
//!
//! One process's events must appear in the order they happened; different processes may
//! interleave in any order (each writes its own lines). Sessions follow file order; checks
//! across processes follow the clock and use only real-time precedence ("b started after a
//! ended"), so concurrent operations are never judged against each other.
//!
//! # Anomalies
//!
//! Named as in the report (see [`AnomalyKind`]):
//! - `lost_write`: an `ok` send that no read saw, although a read reached a higher offset of its
//!   partition, a send started after its ack was read there (for acks without an offset), or a
//!   `final_read` covered it. Counts sends.
//! - `divergence`: two different values at one topic, partition and offset, from reads or from
//!   an `ok` send's acknowledged offset. Counts offsets.
//! - `duplicate`: a value of an idempotent producer at two offsets (read or acknowledged).
//!   Counts values. A plain producer's duplicates are allowed and only counted.
//! - `order_violation`: one process's `ok` sends to a partition, b started after a was
//!   acknowledged, yet b's offset is lower (ack offset, else where it was read). Counts b's.
//! - `nonmonotonic_poll`: a read at or below the previous read (or the seek) of its session.
//! - `phantom_read`: a value read that no send carried. Counts values.
//! - `failed_write_read`: a value read whose send `fail`ed. Counts values. An `info` send that
//!   was read is no anomaly: it counts as acknowledged after all.
//! - `committed_offset_backwards`: a `committed` offset below one acknowledged by an `ok` commit
//!   or observed earlier, for the same group and partition. Counts observations.
//!
//! # What it does not do
//!
//! It does not look for Jepsen's poll skips (a session jumping over records that exist),
//! transactional anomalies, or values read in a partition other than the one sent to; and it
//! trusts the workload's clock to be one clock.

pub mod event;
pub mod report;

mod checker;
mod commits;
mod order;
mod realtime;
mod values;

use std::io::BufRead;

pub use checker::Checker;
pub use event::Event;
pub use report::{AnomalyKind, Report};

/// Why a history could not be checked: the file is unreadable or breaks the format's rules.
/// Either way it is the workload's bug (or a truncated file), never a verdict on the broker.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// Reading the history failed.
    #[error("reading the history: {0}")]
    Io(#[from] std::io::Error),
    /// A line is not a valid event.
    #[error("line {line}: not a history event: {source}")]
    Json {
        line: u64,
        #[source]
        source: serde_json::Error,
    },
    /// Two sends carry one value, so reads of it cannot be attributed.
    #[error(
        "line {line}: value {value:?} was already sent on line {first_line}; every send must carry its own value"
    )]
    ValueSentTwice {
        value: String,
        first_line: u64,
        line: u64,
    },
    /// An offset is negative: a Kafka sentinel where the format wants null.
    #[error("line {line}: offset {offset} is negative; write null for an unknown offset")]
    NegativeOffset { line: u64, offset: i64 },
    /// A final read that starts after it ends.
    #[error("line {line}: final_read log_start {log_start} is past log_end {log_end}")]
    FinalReadBackwards {
        line: u64,
        log_start: i64,
        log_end: i64,
    },
}

/// Checks events already in memory, numbering them from line 1 (what a workload that checks
/// its own history, or a test, calls).
pub fn check_events(events: impl IntoIterator<Item = Event>) -> Result<Report, HistoryError> {
    let mut checker = Checker::new();
    for (line, event) in (1u64..).zip(events) {
        checker.observe(line, event)?;
    }
    Ok(checker.finish())
}

/// Reads a JSON-lines history and checks it, one line at a time, so a history of millions of
/// events is never held as text.
pub fn check_reader(reader: impl BufRead) -> Result<Report, HistoryError> {
    let mut checker = Checker::new();
    for (line, text) in (1u64..).zip(reader.lines()) {
        let text = text?;
        if text.trim().is_empty() {
            continue;
        }
        let event =
            serde_json::from_str(&text).map_err(|source| HistoryError::Json { line, source })?;
        checker.observe(line, event)?;
    }
    Ok(checker.finish())
}

/// Writes events as a JSON-lines history, the format [`check_reader`] reads: what the workload
/// uses to log, so both sides agree on it.
pub fn write_event(out: &mut impl std::io::Write, event: &Event) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, event)?;
    out.write_all(b"\n")
}
