//! A partition's log: segments, indexes, append, read, recovery and retention.
//!
//! A [`PartitionLog`] is a folder of segments in Kafka's layout (see `docs/segment-format.md`).
//! It lives on the shard that owns the partition. On the produce path it does no I/O of its
//! own: [`PartitionLog::stage_append`] (a leader) or [`PartitionLog::stage_replica_append`] (a
//! follower) validates and places the batches and returns [`PendingWrite`]s, which the runtime
//! performs through io_uring (group-committed) before it reports them with `mark_written` /
//! `mark_synced`. Consumers only ever see data below the high watermark, which is the stable
//! end (under `flush=always`, fdatasynced data) on a single node and what replication sets in
//! [`HighWatermarkMode::Replicated`]. Opening (recovery), rolling, retention, truncation and
//! checkpoints use blocking file I/O; they are rare.
//!
//! This module does not know about shards, io_uring, sockets or Kafka error codes.

mod append;
mod blocking_writer;
mod checkpoint;
mod error;
pub mod fixture;
pub mod leader_epoch;
mod marks;
mod offset_index;
mod partition_log;
mod producer_snapshots;
pub mod producer_state;
mod read;
mod recovery;
mod replica_append;
mod retention;
mod scan;
mod sealed_index;
mod segment;
mod segment_file;
mod time_index;
mod truncation;

pub use append::StagedAppend;
pub use blocking_writer::apply_writes_blocking;
pub use checkpoint::{LOG_START_OFFSET_FILE, RECOVERY_POINT_FILE, REPLICATION_OFFSET_FILE};
pub use error::{AppendError, Damage, LogError, ReadError};
pub use leader_epoch::{EpochEntry, LEADER_EPOCH_FILE, LeaderEpochCache};
pub use marks::HighWatermarkMode;
pub use partition_log::PartitionLog;
pub use producer_state::ProducerError;
pub use read::{ReadBound, ReadResult};
pub use retention::RetentionOutcome;
pub use segment::{SEGMENT_OFFSET_SPAN_MAX, SEGMENT_SIZE_BYTES_MAX};
pub use segment_file::{FileSlice, PendingWrite, SegmentFile};

#[cfg(test)]
mod tests;
