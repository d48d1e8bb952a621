//! The log's error types: one per operation family, so callers can map each to a Kafka code.
//!
//! `LogError` is for whole-log operations (open, roll, retention, truncation, checkpoint),
//! `AppendError` for `stage_append`, `ReadError` for reads. Each carries the partition and, where
//! bytes are involved, the file and byte position, so an operator can find the damage.

use std::path::PathBuf;

use spate_protocol::records::BatchError;

use super::producer_state::ProducerError;
use crate::TopicPartition;

/// What is wrong with bytes found on disk.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Damage {
    /// The batch framing, magic, CRC or counts are wrong.
    #[error(transparent)]
    Batch(#[from] BatchError),
    /// Offsets are not dense: a batch (or a segment name) does not continue where the previous
    /// batch ended.
    #[error("offset {found} where {expected} was expected")]
    OffsetMismatch { expected: i64, found: i64 },
    /// The log ends before the checkpointed recovery point: acknowledged data is gone.
    #[error("log ends at offset {log_end_offset}, below the recovery point {recovery_point}")]
    MissingData {
        log_end_offset: i64,
        recovery_point: i64,
    },
    /// A segment grew past what the u32 positions of the index can address.
    #[error("segment is larger than {limit_bytes} bytes")]
    SegmentTooLarge { limit_bytes: u64 },
}

/// Errors of whole-log operations.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// Data below the recovery point (acknowledged, synced) is damaged. The log refuses to
    /// open rather than serve or silently drop it; see `docs/segment-format.md`.
    #[error("partition {partition}: {}: damaged at byte {position}: {damage}", file.display())]
    Corrupt {
        partition: TopicPartition,
        file: PathBuf,
        position: u64,
        damage: Damage,
    },
    #[error("partition {partition}: I/O on {}: {source}", path.display())]
    Io {
        partition: TopicPartition,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `delete_records_before` was asked to pass the high watermark (Kafka:
    /// OFFSET_OUT_OF_RANGE).
    #[error(
        "partition {partition}: cannot delete records before {offset}, past the high watermark {high_watermark}"
    )]
    BeyondHighWatermark {
        partition: TopicPartition,
        offset: i64,
        high_watermark: i64,
    },
    /// The operation needs every staged append to be written first (truncation, close).
    #[error("partition {partition}: {in_flight_count} staged appends are not written yet")]
    WritesInFlight {
        partition: TopicPartition,
        in_flight_count: usize,
    },
    /// `set_high_watermark` on a partition whose high watermark follows its stable end.
    #[error(
        "partition {partition}: the high watermark is local (it follows the stable end); switch the partition to HighWatermarkMode::Replicated before setting it"
    )]
    HighWatermarkIsLocal { partition: TopicPartition },
    /// Leader epochs are non-negative (Kafka's `-1` means "no epoch" and is never stored).
    #[error(
        "partition {partition}: leader epoch {epoch} is negative; pass the leader epoch from the partition's metadata"
    )]
    InvalidLeaderEpoch {
        partition: TopicPartition,
        epoch: i32,
    },
    /// Offsets are non-negative.
    #[error("partition {partition}: offset {offset} is negative")]
    InvalidOffset {
        partition: TopicPartition,
        offset: i64,
    },
}

/// Why `stage_append` or `stage_replica_append` refused the records. Nothing was staged when
/// this is returned.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// A batch failed the structural checks (Kafka: CORRUPT_MESSAGE).
    #[error("batch {batch_index} is invalid: {source}")]
    Corrupt {
        batch_index: usize,
        #[source]
        source: BatchError,
    },
    /// A batch is larger than `max.message.bytes` (Kafka: MESSAGE_TOO_LARGE), or the whole
    /// append is larger than one segment can address.
    #[error("batch of {size_bytes} B exceeds {limit_bytes} B")]
    TooLarge { size_bytes: u64, limit_bytes: u64 },
    /// The records field held no batch at all.
    #[error("no record batch to append")]
    Empty,
    /// Control batches (transaction markers) are written by the broker, never by clients
    /// (Kafka: INVALID_RECORD).
    #[error("batch {batch_index} is a control batch, which clients may not append")]
    ControlBatchFromClient { batch_index: usize },
    /// Idempotent-producer checks failed (Kafka: OUT_OF_ORDER_SEQUENCE_NUMBER or
    /// INVALID_PRODUCER_EPOCH).
    #[error(transparent)]
    Producer(#[from] ProducerError),
    /// Assigning offsets would pass `i64::MAX`.
    #[error("offset space exhausted")]
    OffsetOverflow,
    /// A replica append does not continue the log: its first batch must start at the log end
    /// and each batch where the previous one ended. Nothing was staged; fetch again from
    /// `expected` (the follower's log end).
    #[error(
        "replica batch {batch_index} starts at offset {found} where {expected} was expected; fetch again from offset {expected}"
    )]
    NotContiguous {
        batch_index: usize,
        expected: i64,
        found: i64,
    },
    /// Rolling to a new segment failed.
    #[error(transparent)]
    Log(#[from] LogError),
}

/// Why a read returned nothing.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Kafka: OFFSET_OUT_OF_RANGE. `log_end` is the log end offset (exclusive).
    #[error("offset {offset} is outside [{log_start}, {log_end}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start: i64,
        log_end: i64,
    },
    /// Bytes on disk changed under the log after they were verified.
    #[error("partition {partition}: {}: damaged at byte {position}: {damage}", file.display())]
    Corrupt {
        partition: TopicPartition,
        file: PathBuf,
        position: u64,
        damage: Damage,
    },
    #[error("partition {partition}: I/O on {}: {source}", path.display())]
    Io {
        partition: TopicPartition,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}
