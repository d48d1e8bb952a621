//! The events of a history, one JSON object a line; the module doc of [`super`] describes each
//! field. These types are the whole contract between the workload that writes a history and the
//! checker that reads it, so both sides use them rather than hand-written JSON.
//!
//! Unknown fields are ignored, so a workload may add its own (a key, the node it talked to)
//! without breaking older checkers.

use serde::{Deserialize, Serialize};

/// One line of a history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A produce and its outcome.
    Send(SendEvent),
    /// One record a consumer polled.
    Read(ReadEvent),
    /// A consumer's position was set (seek, subscription, assignment): a new session starts.
    Seek(SeekEvent),
    /// A consumer committed a group offset.
    Commit(CommitEvent),
    /// A group's committed offset as someone observed it (OffsetFetch, or a consumer's start).
    Committed(CommittedEvent),
    /// After healing, a partition was read in full from its start to `log_end`.
    FinalRead(FinalReadEvent),
}

/// Which kind of producer sent a record. Only idempotent producers promise no duplicates, so
/// the checker judges duplicates by this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Producer {
    /// `enable.idempotence=true`: the broker must drop retried batches.
    Idempotent,
    /// No idempotence: a retry after a lost ack may write the record twice, which is allowed.
    Plain,
}

/// How an operation ended, as the client knew it. The three values are Jepsen's, because an
/// operation that timed out may or may not have happened and must be judged as both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Acknowledged: it happened.
    Ok,
    /// Definitely did not happen (a non-retriable error before anything was written).
    Fail,
    /// Indeterminate (a timeout, a lost connection): it may have happened.
    Info,
}

/// A produce. `offset` is meaningful only with [`Outcome::Ok`], and may be null even then,
/// because librdkafka can acknowledge without an offset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SendEvent {
    /// When the outcome was known, in ms since any fixed origin shared by the whole history.
    pub time_ms: f64,
    /// When the send was started, on the same clock. Without it the send is never treated as
    /// the later of two sends in an order check, since its start is unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoked_ms: Option<f64>,
    /// Who sent it, e.g. `p1`.
    pub process: String,
    /// Whether the producer was idempotent.
    pub producer: Producer,
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
    /// The record's value. Every send in a history carries a different value.
    pub value: String,
    /// How the send ended.
    pub result: Outcome,
    /// The offset the broker acknowledged, if it said.
    pub offset: Option<i64>,
}

/// One record a consumer polled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReadEvent {
    /// When the poll returned it.
    pub time_ms: f64,
    /// The consumer, e.g. `c1`.
    pub process: String,
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
    /// The record's offset.
    pub offset: i64,
    /// The record's value.
    pub value: String,
}

/// A consumer's position in one partition was set: the next read starts a new session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeekEvent {
    /// When the position was set.
    pub time_ms: f64,
    /// The consumer.
    pub process: String,
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
    /// The new position, or null when the consumer does not know it (e.g. an assignment that
    /// resumes from a committed offset it has not fetched). With a position, the session's
    /// first read must be at or after it.
    pub offset: Option<i64>,
}

/// A consumer committed `offset` (the next offset to read) for a group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommitEvent {
    /// When the commit's outcome was known.
    pub time_ms: f64,
    /// When the commit was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoked_ms: Option<f64>,
    /// The consumer.
    pub process: String,
    /// Consumer group id.
    pub group: String,
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
    /// The committed offset.
    pub offset: i64,
    /// How the commit ended.
    pub result: Outcome,
}

/// A group's committed offset as observed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommittedEvent {
    /// When the observation returned.
    pub time_ms: f64,
    /// When the observation was asked for. Commits acknowledged before this must be visible;
    /// without it `time_ms` is used, which can flag a commit that raced the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoked_ms: Option<f64>,
    /// Who observed it.
    pub process: String,
    /// Consumer group id.
    pub group: String,
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
    /// The committed offset, or null when the group had none for the partition.
    pub offset: Option<i64>,
}

/// A full read of one partition after the faults were healed and every send had ended: every
/// record from `log_start` to `log_end` was read (and logged as `read` events).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinalReadEvent {
    /// When the final read ended, if recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_ms: Option<f64>,
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
    /// Where the read started: 0 unless retention deleted a prefix, and records acknowledged
    /// below it are not judged by this read.
    #[serde(default)]
    pub log_start: i64,
    /// The partition's log end offset (the next offset to be written) when the read ended.
    pub log_end: i64,
}
