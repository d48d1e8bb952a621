//! Removing data: retention from the front, truncation and aborted appends from the back.
//!
//! All of it is blocking file I/O (unlink, ftruncate, and for truncation a re-scan of the
//! segment being cut), none of it on the produce path.

use std::sync::Arc;

use super::checkpoint::{
    LOG_START_OFFSET_FILE, encode_offset_checkpoint, sync_dir, write_atomically,
};
use super::error::LogError;
use super::partition_log::PartitionLog;
use super::recovery::remove_segment_files;
use super::scan::{ScanEnd, ScanRequest, scan_segment};
use super::segment::{BatchPlacement, Segment};
use super::segment_file::SegmentFile;

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
            if segment.cursor.next_offset > self.high_watermark {
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
        if offset > self.high_watermark {
            return Err(LogError::BeyondHighWatermark {
                partition: self.name.clone(),
                offset,
                high_watermark: self.high_watermark,
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
        self.producers.remove_before(self.log_start_offset);
        if self.epochs.truncate_from_start(self.log_start_offset) {
            self.epochs
                .persist(&self.dir)
                .map_err(|source| self.io(self.log_start_offset, source))?;
        }
        sync_dir(&self.dir).map_err(|source| self.io(self.log_start_offset, source))
    }

    fn write_log_start_offset(&self, offset: i64) -> Result<(), LogError> {
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

    /// Undoes staged appends from the one starting at `from_offset` on, after a write or
    /// fdatasync of them failed. The runtime must not have writes to them still in flight.
    /// If `from_offset` is already under the high watermark (only possible when the flush
    /// policy let it pass unsynced data) this falls back to [`PartitionLog::truncate_to`].
    pub fn abort_staged(&mut self, from_offset: i64) -> Result<(), LogError> {
        if from_offset >= self.next_offset {
            return Ok(());
        }
        let mut touched_base = None;
        while let Some(record) = self.staged.pop_back() {
            if record.base_offset < from_offset {
                self.staged.push_back(record);
                break;
            }
            for (id, previous) in record.producers_before.into_iter().rev() {
                self.producers.restore(id, previous);
            }
            // Segments after the record's own can only come from rolls whose appends were
            // undone already or failed validation: they are empty.
            while self.active().base_offset() != record.segment_base_offset
                && self.active().is_empty()
                && self.segments.len() > 1
                && let Some(removed) = self.segments.pop()
            {
                remove_segment_files(&removed.file)
                    .map_err(|source| self.io(removed.base_offset(), source))?;
            }
            let segment = self.active_mut();
            assert_eq!(
                segment.base_offset(),
                record.segment_base_offset,
                "staged appends are undone newest first"
            );
            segment.restore(record.segment_before);
            self.next_offset = record.base_offset;
            if record.rolled
                && self.segments.len() > 1
                && self.active().is_empty()
                && let Some(removed) = self.segments.pop()
            {
                remove_segment_files(&removed.file)
                    .map_err(|source| self.io(removed.base_offset(), source))?;
                self.unseal_active()?;
            }
            touched_base = Some(self.active().base_offset());
        }
        self.written_offset = self.written_offset.min(self.next_offset);
        self.synced_offset = self.synced_offset.min(self.next_offset);
        if touched_base.is_some() {
            let active = self.active();
            let base = active.base_offset();
            active
                .file
                .file()
                .set_len(active.cursor.size_bytes)
                .map_err(|source| self.io(base, source))?;
        }
        if from_offset < self.next_offset {
            return self.truncate_to(from_offset);
        }
        Ok(())
    }

    /// Makes a sealed segment that became active again (its successor was undone) appendable,
    /// by rebuilding its indexes from the file.
    fn unseal_active(&mut self) -> Result<(), LogError> {
        if self.active().sealed.is_none() {
            return Ok(());
        }
        let last = self.segments.len() - 1;
        let (segment, _) = self.rescan_segment(last, i64::MAX)?;
        *self.active_mut() = segment;
        Ok(())
    }

    /// Removes every batch whose last offset is at or after `offset` (a batch straddling it
    /// goes entirely, as in Kafka), so the log end offset becomes at most `offset`, and the log
    /// start offset at most the new end. Below the first segment, the log is emptied and
    /// restarts at `offset`. Every staged append must be
    /// written first. Re-scans the segment being cut.
    pub fn truncate_to(&mut self, offset: i64) -> Result<(), LogError> {
        if offset >= self.next_offset {
            return Ok(());
        }
        if self.written_offset < self.next_offset {
            return Err(LogError::WritesInFlight {
                partition: self.name.clone(),
                in_flight_count: self.staged.len(),
            });
        }
        if offset < self.segments[0].base_offset() {
            return self.truncate_fully_and_start_at(offset);
        }
        let keep = self.segment_index_for(offset);
        let (segment, end) = self.rescan_segment(keep, offset)?;
        let file = segment.file.clone();
        let base = file.base_offset();
        // Lower the checkpointed recovery point before cutting, so that a crash in between
        // never leaves a log that ends below its own recovery point.
        self.lower_recovery_point(end.next_offset)?;
        while self.segments.len() > keep + 1 {
            let removed_base = self.active().base_offset();
            remove_segment_files(&self.active().file)
                .map_err(|source| self.io(removed_base, source))?;
            self.segments.pop();
        }
        file.file()
            .set_len(end.position)
            .and_then(|()| file.file().sync_all())
            .map_err(|source| self.io(base, source))?;
        *self.active_mut() = segment;
        self.after_truncation(end.next_offset)
    }

    /// Rebuilds the in-memory state of segment `index` from its file, stopping before the
    /// first batch that reaches `stop_at_offset`. Damage is reported, not cut: the bytes are
    /// below the log end and were verified before.
    fn rescan_segment(
        &self,
        index: usize,
        stop_at_offset: i64,
    ) -> Result<(Segment, ScanEnd), LogError> {
        let old = &self.segments[index];
        let file = old.file.clone();
        let base = file.base_offset();
        let mut segment = Segment::new(file.clone(), old.created_ms);
        let interval = self.config.index_interval_bytes;
        let end = scan_segment(
            file.file(),
            ScanRequest {
                segment_base_offset: base,
                file_len: old.cursor.size_bytes,
                stop_at_offset,
            },
            |batch| {
                segment.note_batch(
                    &BatchPlacement {
                        position: batch.position,
                        size_bytes: batch.size_bytes,
                        base_offset: batch.base_offset,
                        last_offset: batch.last_offset,
                        max_timestamp_ms: batch.max_timestamp_ms,
                    },
                    interval,
                )
            },
        )
        .map_err(|source| self.io(base, source))?;
        if let Some(damage) = end.damage {
            return Err(LogError::Corrupt {
                partition: self.name.clone(),
                file: file.path().to_path_buf(),
                position: end.position,
                damage,
            });
        }
        Ok((segment, end))
    }

    /// Kafka's `truncateFullyAndStartAt`: deletes every segment and starts empty at `offset`.
    /// The new segment is created first: a crash before the old ones are gone leaves it empty
    /// in front of them, and recovery drops it, so the log is either fully old or fully new.
    fn truncate_fully_and_start_at(&mut self, offset: i64) -> Result<(), LogError> {
        let created_ms = self.active().created_ms;
        let file =
            SegmentFile::create(&self.dir, offset).map_err(|source| self.io(offset, source))?;
        sync_dir(&self.dir).map_err(|source| self.io(offset, source))?;
        self.lower_recovery_point(offset)?;
        self.write_log_start_offset(offset)?;
        while let Some(removed) = self.segments.first() {
            let removed_base = removed.base_offset();
            remove_segment_files(&removed.file).map_err(|source| self.io(removed_base, source))?;
            self.segments.remove(0);
        }
        self.segments.push(Segment::new(Arc::new(file), created_ms));
        self.log_start_offset = offset;
        self.producers = Default::default();
        self.after_truncation(offset)
    }

    fn lower_recovery_point(&mut self, end_offset: i64) -> Result<(), LogError> {
        self.synced_offset = self.synced_offset.min(end_offset);
        if self.checkpointed_recovery_point > self.synced_offset {
            self.write_recovery_point(self.synced_offset)?;
        }
        Ok(())
    }

    /// Brings offsets, the high watermark, producer state, epochs and the recovery point
    /// checkpoint in line with a log that now ends at `end_offset`.
    fn after_truncation(&mut self, end_offset: i64) -> Result<(), LogError> {
        if self.log_start_offset > end_offset {
            self.write_log_start_offset(end_offset)?;
            self.log_start_offset = end_offset;
        }
        self.next_offset = end_offset;
        self.written_offset = end_offset;
        self.synced_offset = self.synced_offset.min(end_offset);
        self.staged.retain(|record| record.end_offset <= end_offset);
        self.recent_boundaries.clear();
        let high_watermark_gone = self.high_watermark >= end_offset
            || self
                .segments
                .iter()
                .all(|s| s.base_offset() != self.high_watermark_segment);
        if high_watermark_gone {
            self.high_watermark = self.high_watermark.min(end_offset);
            if self.high_watermark == end_offset {
                self.high_watermark_segment = self.active().base_offset();
                self.high_watermark_position = self.active().cursor.size_bytes;
            }
        }
        if self
            .staged
            .iter()
            .any(|r| r.end_offset <= self.high_watermark)
        {
            self.staged.retain(|r| r.end_offset > self.high_watermark);
        }
        self.producers.truncate_from_end(end_offset);
        if self.epochs.truncate_from_end(end_offset) {
            self.epochs
                .persist(&self.dir)
                .map_err(|source| self.io(end_offset, source))?;
        }
        sync_dir(&self.dir).map_err(|source| self.io(end_offset, source))
    }
}
