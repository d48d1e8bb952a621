//! Reading and writing `__consumer_offsets` records through the engine.

use std::os::unix::fs::FileExt;
use std::time::Duration;

use bytes::Bytes;
use spate_coordinator::ErrorCode;
use spate_coordinator::records::Record;

use crate::cluster::replication::{self, AppendAcks};
use crate::handlers::produce_errors::replicated_append_error_code;
use spate_engine::{Engine, TopicPartition};
use spate_protocol::records::{BatchBuilder, BatchRecords, NewRecord};

use super::partition::now_ms;

/// Kafka's `offsets.commit.timeout.ms`: how long a commit waits for the offsets partition's
/// in-sync replicas before it is answered COORDINATOR_NOT_AVAILABLE (and retried).
const OFFSET_COMMIT_TIMEOUT_MS: u64 = 5_000;

/// How much of the partition one read step brings back while replaying.
const REPLAY_READ_BYTES: u32 = 4 * 1024 * 1024;

/// A failed write of coordinator records: the code to answer with (Kafka's mapping for
/// coordinator writes) and what happened.
#[derive(Debug, Clone)]
pub struct AppendFailure {
    pub code: ErrorCode,
    pub message: String,
}

impl std::fmt::Display for AppendFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Appends `records` as one batch (atomic: all or none, as Kafka writes a commit) and waits
/// until the partition's flush policy says they are durable.
pub(super) async fn append(
    engine: &Engine,
    tp: &TopicPartition,
    records: &[Record],
) -> Result<(), AppendFailure> {
    let failed = |code, message| AppendFailure { code, message };
    if records.is_empty() {
        return Ok(());
    }
    let timestamp_ms = now_ms();
    let mut builder = BatchBuilder::new();
    for record in records {
        builder
            .push(&NewRecord {
                timestamp_ms,
                key: Some(record.encode_key()),
                value: record.encode_value(),
                headers: Vec::new(),
            })
            .map_err(|e| {
                failed(
                    ErrorCode::InvalidCommitOffsetSize,
                    format!("{tp}: cannot build the batch: {e}"),
                )
            })?;
    }
    let batch = builder.build().map_err(|e| {
        failed(
            ErrorCode::InvalidCommitOffsetSize,
            format!("{tp}: cannot build the batch: {e}"),
        )
    })?;
    // acks=all, as Kafka's coordinator writes: a commit is answered once every in-sync
    // replica of the offsets partition has it, so it survives the coordinator's failover.
    let acks = AppendAcks::All {
        timeout: Duration::from_millis(OFFSET_COMMIT_TIMEOUT_MS),
    };
    replication::append(engine, tp, batch, acks)
        .await
        .map(|_| ())
        .map_err(|e| {
            // Kafka's mapping for coordinator writes (`GroupMetadataManager`): too large is
            // the client's to fix; a lost leadership sends the client to the new coordinator;
            // anything else is retriable once the partition is back.
            let code = match replicated_append_error_code(&e) {
                c if c == ErrorCode::MessageTooLarge.code() => ErrorCode::InvalidCommitOffsetSize,
                c if c == ErrorCode::NotLeaderOrFollower.code()
                    || c == ErrorCode::KafkaStorageError.code() =>
                {
                    ErrorCode::NotCoordinator
                }
                _ => ErrorCode::CoordinatorNotAvailable,
            };
            failed(code, format!("{tp}: {e}"))
        })
}

/// Feeds every record of `tp`, oldest first, to `apply`; returns how many were read. A
/// record that does not decode is skipped with a warning naming its offset: one bad record
/// must not cost every group of the partition its offsets.
pub(super) async fn replay(
    engine: &Engine,
    tp: &TopicPartition,
    mut apply: impl FnMut(Record),
) -> Result<u64, String> {
    let offsets = engine.offsets(tp).await.map_err(|e| format!("{tp}: {e}"))?;
    let mut position = offsets.log_start_offset;
    let mut replayed = 0u64;
    while position < offsets.high_watermark {
        let read = engine
            .read(tp, position, REPLAY_READ_BYTES)
            .await
            .map_err(|e| format!("{tp} at offset {position}: {e}"))?;
        let mut progressed = false;
        for slice in &read.slices {
            let mut buffer = vec![0u8; slice.len as usize];
            slice
                .segment
                .file()
                .read_exact_at(&mut buffer, slice.position)
                .map_err(|e| format!("{tp}: reading {}: {e}", slice.segment.path().display()))?;
            let buffer = Bytes::from(buffer);
            let mut at = 0usize;
            while at < buffer.len() {
                let batch = match BatchRecords::new(buffer.slice(at..)) {
                    Ok(batch) => batch,
                    Err(e) => {
                        return Err(format!(
                            "{tp}: unreadable batch near offset {position}: {e}"
                        ));
                    }
                };
                at += batch.size_bytes();
                for record in batch {
                    let record = record.map_err(|e| {
                        format!("{tp}: unreadable record near offset {position}: {e}")
                    })?;
                    position = record.offset + 1;
                    progressed = true;
                    let Some(key) = record.key.as_deref() else {
                        tracing::warn!(partition = %tp, offset = record.offset, "skipping a record without a key");
                        continue;
                    };
                    match Record::decode(key, record.value.as_deref()) {
                        Ok(decoded) => {
                            apply(decoded);
                            replayed += 1;
                        }
                        Err(e) => {
                            tracing::warn!(partition = %tp, offset = record.offset, error = %e, "skipping a record that does not decode")
                        }
                    }
                }
            }
        }
        if !progressed {
            break;
        }
    }
    Ok(replayed)
}
