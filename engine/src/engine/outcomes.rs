//! What the facade's calls answer: an append's offsets, a read's slices, a partition's
//! marks. Plain values, `Send`, built on the owning shard.

use crate::log::FileSlice;

/// What an append did. Offsets are inclusive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendOutcome {
    pub base_offset: i64,
    pub last_offset: i64,
    /// Broker time stamped into the batches, for `LogAppendTime` topics.
    pub log_append_time_ms: Option<i64>,
    pub log_start_offset: i64,
    /// The batch was an idempotent producer's retry; the offsets are the original ones.
    pub duplicate: bool,
}

/// Slices of whole batches to send with `sendfile`, and the offsets a Fetch reports.
#[derive(Debug, Clone)]
pub struct ReadOutcome {
    pub slices: Vec<FileSlice>,
    pub high_watermark: i64,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
}

/// A partition's marks, read at one moment on its shard. Always
/// `log_start_offset <= high_watermark <= stable_end <= written_end <= log_end_offset`, and
/// `synced_end <= written_end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionOffsets {
    /// The first offset still held.
    pub log_start_offset: i64,
    /// Consumers read below it: the stable end in `Local` mode, what replication set in
    /// `Replicated` mode.
    pub high_watermark: i64,
    /// The offset the next append gets (appends not yet written included).
    pub log_end_offset: i64,
    /// Every offset below it is in the files (maybe not fsynced): followers fetch up to it.
    pub written_end: i64,
    /// Every offset below it is durable per the flush policy (fsynced under `flush=always`,
    /// written otherwise): a replica's durable offset, the leader's term in the HW.
    pub stable_end: i64,
    /// Every offset below it is fsynced (the recovery point).
    pub synced_end: i64,
    /// The latest epoch in the leader-epoch cache: of the last batch appended, or of a leader
    /// tenure begun with no append yet.
    pub latest_epoch: Option<i32>,
}
