//! Removing data from the front: retention and DeleteRecords.
//!
//! Both stop at the high watermark: nothing a consumer has not been allowed to see is ever
//! deleted, and in `Replicated` mode nothing uncommitted. Blocking file I/O (unlink), never
//! on the produce path.

use super::checkpoint::{
    LOG_START_OFFSET_FILE, encode_offset_checkpoint, sync_dir, write_atomically,
};
use super::error::LogError;
use super::partition_log::PartitionLog;
use super::recovery::remove_segment_files;

/// What a retention pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionOutcome {
    pub deleted_segment_count: usize,
    pub deleted_bytes: u64,
}

impl PartitionLog {
    /// Deletes the oldest whole segments that `retention.ms` or `retention.bytes` no longer
    /// keep, and advances the log start offset. Never deletes the active segment or anything
    /// at or above the high watermark. Readers holding a slice keep the deleted file open.
    pub fn apply_retention(&mut self, now_ms: i64) -> Result<RetentionOutcome, LogError> {
        let retention_ms = self.config.retention_ms;
        let retention_bytes = self.config.retention_bytes;
        let mut remaining_bytes = self.size_bytes();
        let mut outcome = RetentionOutcome::default();
        for segment in &self.segments[..self.segments.len() - 1] {
            if segment.cursor.next_offset > self.high_watermark.offset {
                break;
            }
            let newest_ms = if segment.cursor.max_timestamp_ms >= 0 {
                segment.cursor.max_timestamp_ms
            } else {
                segment.created_ms
            };
            let expired = retention_ms >= 0 && now_ms.saturating_sub(newest_ms) > retention_ms;
            let oversized = retention_bytes >= 0
                && remaining_bytes - segment.cursor.size_bytes >= retention_bytes as u64;
            if !(expired || oversized) {
                break;
            }
            remaining_bytes -= segment.cursor.size_bytes;
            outcome.deleted_segment_count += 1;
            outcome.deleted_bytes += segment.cursor.size_bytes;
        }
        self.delete_oldest_segments(outcome.deleted_segment_count)?;
        Ok(outcome)
    }

    /// Kafka's DeleteRecords: moves the log start offset up to `offset` (at most the high
    /// watermark), persists it, and deletes the segments wholly below it. Reads below the new
    /// start fail with `OffsetOutOfRange`. Returns the log start offset.
    pub fn delete_records_before(&mut self, offset: i64) -> Result<i64, LogError> {
        if offset > self.high_watermark.offset {
            return Err(LogError::BeyondHighWatermark {
                partition: self.name.clone(),
                offset,
                high_watermark: self.high_watermark.offset,
            });
        }
        if offset <= self.log_start_offset {
            return Ok(self.log_start_offset);
        }
        self.write_log_start_offset(offset)?;
        self.log_start_offset = offset;
        let deletable = self.segments[..self.segments.len() - 1]
            .iter()
            .take_while(|s| s.cursor.next_offset <= offset)
            .count();
        self.delete_oldest_segments(deletable)?;
        Ok(self.log_start_offset)
    }

    /// Deletes the `count` oldest segments and moves the log start offset, producer state and
    /// epoch cache along.
    fn delete_oldest_segments(&mut self, count: usize) -> Result<(), LogError> {
        assert!(
            count < self.segments.len(),
            "the active segment is never deleted"
        );
        for _ in 0..count {
            let oldest = &self.segments[0];
            let base = oldest.base_offset();
            remove_segment_files(&oldest.file).map_err(|source| self.io(base, source))?;
            self.segments.remove(0);
        }
        self.log_start_offset = self.log_start_offset.max(self.segments[0].base_offset());
        self.forget_removed_snapshots();
        self.producers.remove_before(self.log_start_offset);
        if self.epochs.truncate_from_start(self.log_start_offset) {
            self.epochs
                .persist(&self.dir)
                .map_err(|source| self.io(self.log_start_offset, source))?;
        }
        sync_dir(&self.dir).map_err(|source| self.io(self.log_start_offset, source))
    }

    pub(crate) fn write_log_start_offset(&self, offset: i64) -> Result<(), LogError> {
        write_atomically(
            &self.dir,
            LOG_START_OFFSET_FILE,
            &encode_offset_checkpoint(offset),
        )
        .map_err(|source| LogError::Io {
            partition: self.name.clone(),
            path: self.dir.join(LOG_START_OFFSET_FILE),
            source,
        })
    }
}
