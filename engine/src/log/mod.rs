//! A partition's log: segments, indexes, append, read, recovery and retention.
//!
//! A [`PartitionLog`] is a folder of segments in Kafka's layout (see `docs/segment-format.md`).
//! It lives on the shard that owns the partition. On the produce path it does no I/O of its
//! own: [`PartitionLog::stage_append`] validates and places the batches and returns
//! [`PendingWrite`]s, which the runtime performs through io_uring (group-committed) before it
//! reports them with `mark_written` / `mark_synced`. Readers only ever see data below the high
//! watermark, which under `flush=always` means fdatasynced data. Opening (recovery), rolling,
//! retention, truncation and checkpoints use blocking file I/O; they are rare.
//!
//! This module does not know about shards, io_uring, sockets or Kafka error codes.

mod append;
mod blocking_writer;
mod checkpoint;
mod error;
pub mod fixture;
pub mod leader_epoch;
mod offset_index;
mod partition_log;
pub mod producer_state;
mod read;
mod recovery;
mod scan;
mod sealed_index;
mod segment;
mod segment_file;
mod time_index;
mod truncation;

pub use append::StagedAppend;
pub use blocking_writer::apply_writes_blocking;
pub use checkpoint::{LOG_START_OFFSET_FILE, RECOVERY_POINT_FILE};
pub use error::{AppendError, Damage, LogError, ReadError};
pub use leader_epoch::{EpochEntry, LEADER_EPOCH_FILE, LeaderEpochCache};
pub use partition_log::PartitionLog;
pub use producer_state::ProducerError;
pub use read::ReadResult;
pub use segment::{SEGMENT_OFFSET_SPAN_MAX, SEGMENT_SIZE_BYTES_MAX};
pub use segment_file::{FileSlice, PendingWrite, SegmentFile};
pub use truncation::RetentionOutcome;

#[cfg(test)]
mod tests;
