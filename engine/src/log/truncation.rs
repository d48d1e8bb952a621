//! Removing data from the back: aborted appends, and truncation for replication.
//!
//! All of it is blocking file I/O (ftruncate, unlink, and for truncation a re-scan of the
//! segment being cut), none of it on the produce path. Every durable file that could point
//! past the new end (recovery point, high watermark checkpoint) is lowered *before* any data
//! file is cut, so a crash in between leaves a log that recovery accepts; the epoch cache
//! and producer state are brought in line afterwards (recovery trims or rebuilds both).

use std::sync::Arc;

use super::checkpoint::sync_dir;
use super::error::LogError;
use super::leader_epoch::LeaderEpochCache;
use super::marks::HighWatermarkMode;
use super::partition_log::PartitionLog;
use super::producer_snapshots::batch_metadata;
use super::producer_state::ProducerStateTable;
use super::recovery::remove_segment_files;
use super::scan::{ScanEnd, ScanRequest, scan_segment};
use super::segment::{BatchPlacement, Segment};
use super::segment_file::SegmentFile;

impl PartitionLog {
    /// Undoes staged appends from the one starting at `from_offset` on, after a write or
    /// fdatasync of them failed. The runtime must not have writes to them still in flight.
    /// If `from_offset` is already under the stable end (only possible when the flush policy
    /// let it pass unsynced data) this falls back to [`PartitionLog::truncate_to`].
    pub fn abort_staged(&mut self, from_offset: i64) -> Result<(), LogError> {
        if from_offset >= self.next_offset {
            return Ok(());
        }
        let mut touched_base = None;
        let mut epochs_before = None;
        while let Some(record) = self.staged.pop_back() {
            if record.base_offset < from_offset {
                self.staged.push_back(record);
                break;
            }
            for (id, previous) in record.producers_before.into_iter().rev() {
                self.producers.restore(id, previous);
            }
            if record.epochs_before.is_some() {
                // Undone newest first: the oldest append's copy is the one that stays.
                epochs_before = record.epochs_before;
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
        self.clamp_marks_to(self.next_offset);
        self.synced_offset = self.synced_offset.min(self.next_offset);
        self.forget_removed_snapshots();
        if touched_base.is_some() {
            let active = self.active();
            let base = active.base_offset();
            active
                .file
                .file()
                .set_len(active.cursor.size_bytes)
                .map_err(|source| self.io(base, source))?;
        }
        self.restore_epochs_after_abort(epochs_before)?;
        if from_offset < self.next_offset {
            return self.truncate_to(from_offset);
        }
        Ok(())
    }

    /// Puts back the epoch cache a replica append changed, and moves a leader's epoch start
    /// that an abort left past the log end down to it (the epoch starts with the next
    /// append).
    fn restore_epochs_after_abort(
        &mut self,
        before: Option<LeaderEpochCache>,
    ) -> Result<(), LogError> {
        let mut changed = false;
        if let Some(before) = before
            && before != self.epochs
        {
            self.epochs = before;
            changed = true;
        }
        if let Some(latest) = self.epochs.entries().last().copied()
            && latest.start_offset > self.next_offset
        {
            self.epochs
                .truncate_from_end(self.next_offset.saturating_add(1));
            self.epochs.assign(latest.epoch, self.next_offset);
            changed = true;
        }
        if changed {
            self.persist_epochs()?;
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
        let (segment, _) = self.rescan_segment(last, i64::MAX, None)?;
        *self.active_mut() = segment;
        Ok(())
    }

    /// Removes every batch whose last offset is at or after `offset` (a batch straddling it
    /// goes entirely, as in Kafka), so the log end offset becomes at most `offset`, and the log
    /// start offset at most the new end. Below the first segment, the log is emptied and
    /// restarts at `offset`. Every staged append must be written first. Re-scans the segment
    /// being cut.
    ///
    /// Everything else follows the log: the recovery point and the high watermark checkpoint
    /// are lowered before any file is cut; the stable end, written end and high watermark are
    /// clamped; remembered boundaries past the end are forgotten; epoch-cache entries starting
    /// at or after the end are dropped (and persisted); producer state is rebuilt exactly as
    /// of the new end (see `producer_snapshots.rs`).
    ///
    /// With `offset` at or past the log end nothing is cut, but epoch entries starting at or
    /// after the log end still go, as in Kafka's `UnifiedLog.truncateTo`: a former leader's
    /// epoch start, from a tenure with no append, would contradict the new leader's data.
    pub fn truncate_to(&mut self, offset: i64) -> Result<(), LogError> {
        if offset >= self.next_offset {
            if self.epochs.truncate_from_end(self.next_offset) {
                self.persist_epochs()?;
            }
            return Ok(());
        }
        if self.written_end.offset < self.next_offset {
            return Err(LogError::WritesInFlight {
                partition: self.name.clone(),
                in_flight_count: self.staged.len(),
            });
        }
        if offset < 0 {
            return Err(LogError::InvalidOffset {
                partition: self.name.clone(),
                offset,
            });
        }
        if offset < self.segments[0].base_offset() {
            return self.start_fresh_segment_at(offset);
        }
        let keep = self.segment_index_for(offset);
        let mut producers = self.producers_at_segment_start(keep)?;
        let (segment, end) = self.rescan_segment(keep, offset, Some(&mut producers))?;
        let file = segment.file.clone();
        let base = file.base_offset();
        // Lower the checkpointed recovery point and high watermark before cutting, so that a
        // crash in between never leaves a log that ends below its own recovery point, or a
        // high watermark checkpoint above its end.
        self.lower_recovery_point(end.next_offset)?;
        self.lower_high_watermark_checkpoint(self.high_watermark.offset.min(end.next_offset))?;
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
        self.producers = producers;
        self.after_truncation(end.next_offset)
    }

    /// Kafka's `truncateFullyAndStartAt`: deletes every batch and starts the log empty at
    /// `offset`, with the log start there. For a follower whose whole log is behind the
    /// leader's log start (`offset` above the log end), or any offset at all. Every staged
    /// append must be written first.
    ///
    /// A crash part way leaves either the old log, or the new empty one: the new segment is
    /// created before the old ones go, and the log start checkpoint names it, so recovery
    /// drops old segments left in front of it (`docs/segment-format.md`).
    pub fn truncate_fully_and_start_at(&mut self, offset: i64) -> Result<(), LogError> {
        if offset < 0 {
            return Err(LogError::InvalidOffset {
                partition: self.name.clone(),
                offset,
            });
        }
        if self.written_end.offset < self.next_offset {
            return Err(LogError::WritesInFlight {
                partition: self.name.clone(),
                in_flight_count: self.staged.len(),
            });
        }
        if offset < self.segments[0].base_offset() {
            return self.start_fresh_segment_at(offset);
        }
        if offset < self.next_offset {
            self.truncate_to(offset)?;
        }
        if self.active().is_empty() && self.active().base_offset() == offset {
            self.drop_segments_before_active(offset)
        } else {
            // Every segment starts below `offset` now, so the name is free.
            self.start_fresh_segment_at(offset)
        }
    }

    /// Rebuilds the in-memory state of segment `index` from its file, stopping before the
    /// first batch that reaches `stop_at_offset`, replaying producer state into `producers`
    /// if given. Damage is reported, not cut: the bytes are below the log end and were
    /// verified before.
    fn rescan_segment(
        &self,
        index: usize,
        stop_at_offset: i64,
        mut producers: Option<&mut ProducerStateTable>,
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
                );
                if let Some(producers) = producers.as_deref_mut() {
                    producers.replay(
                        batch.producer_id,
                        batch.producer_epoch,
                        batch_metadata(batch.base_sequence, batch.base_offset, batch.last_offset),
                    );
                }
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

    /// Deletes every segment and starts empty at `offset` in a new segment of that name,
    /// which must not exist. The new segment is created first: a crash before the old ones
    /// are gone leaves it empty in front of them (dropped at open: the old log) or behind
    /// them (cut at open as an unacknowledged tail, or, once the log start checkpoint names
    /// it, the old ones are dropped: the new log).
    fn start_fresh_segment_at(&mut self, offset: i64) -> Result<(), LogError> {
        let created_ms = self.active().created_ms;
        let file =
            SegmentFile::create(&self.dir, offset).map_err(|source| self.io(offset, source))?;
        sync_dir(&self.dir).map_err(|source| self.io(offset, source))?;
        self.lower_recovery_point(offset)?;
        self.lower_high_watermark_checkpoint(offset)?;
        self.write_log_start_offset(offset)?;
        while let Some(removed) = self.segments.first() {
            let removed_base = removed.base_offset();
            remove_segment_files(&removed.file).map_err(|source| self.io(removed_base, source))?;
            self.segments.remove(0);
        }
        self.segments.push(Segment::new(Arc::new(file), created_ms));
        self.reset_to_empty_at(offset)
    }

    /// The active segment is empty and starts at `offset`: deletes every segment before it
    /// (oldest first, after the log start checkpoint names `offset`).
    fn drop_segments_before_active(&mut self, offset: i64) -> Result<(), LogError> {
        self.lower_high_watermark_checkpoint(offset)?;
        self.write_log_start_offset(offset)?;
        while self.segments.len() > 1 {
            let removed_base = self.segments[0].base_offset();
            remove_segment_files(&self.segments[0].file)
                .map_err(|source| self.io(removed_base, source))?;
            self.segments.remove(0);
        }
        self.reset_to_empty_at(offset)
    }

    /// State of an empty log whose only segment starts at `offset`: no producers, no epochs
    /// (as Kafka's `clearAndFlush`; a follower learns them again from the batches it
    /// appends), every mark at `offset`.
    fn reset_to_empty_at(&mut self, offset: i64) -> Result<(), LogError> {
        self.log_start_offset = offset;
        self.next_offset = offset;
        // Vacuously true of an empty log; the file follows at the next checkpoint.
        self.synced_offset = offset;
        self.producers = ProducerStateTable::default();
        self.producer_snapshots.clear();
        self.staged.clear();
        self.recent_boundaries.clear();
        let end = self.end_boundary();
        self.written_end = end;
        self.stable_end = end;
        self.high_watermark = end;
        if !self.epochs.entries().is_empty() {
            self.epochs = LeaderEpochCache::default();
            self.persist_epochs()?;
        }
        self.after_truncation(offset)
    }

    fn lower_recovery_point(&mut self, end_offset: i64) -> Result<(), LogError> {
        self.synced_offset = self.synced_offset.min(end_offset);
        if self.checkpointed_recovery_point > self.synced_offset {
            self.write_recovery_point(self.synced_offset)?;
        }
        Ok(())
    }

    /// Lowers every mark at or above `end_offset` to the log end (which must be
    /// `end_offset`). Marks below it keep their place: the bytes below did not change.
    fn clamp_marks_to(&mut self, end_offset: i64) {
        let end = self.end_boundary();
        for mark in [
            &mut self.written_end,
            &mut self.stable_end,
            &mut self.high_watermark,
        ] {
            if mark.offset >= end_offset {
                *mark = end;
            }
        }
        if self.high_watermark_mode == HighWatermarkMode::Local {
            self.high_watermark = self.stable_end;
        }
    }

    /// Brings offsets, marks, staged appends, remembered boundaries, snapshots and epochs in
    /// line with a log that now ends at `end_offset`, every byte of it written.
    fn after_truncation(&mut self, end_offset: i64) -> Result<(), LogError> {
        if self.log_start_offset > end_offset {
            self.write_log_start_offset(end_offset)?;
            self.log_start_offset = end_offset;
        }
        self.next_offset = end_offset;
        self.synced_offset = self.synced_offset.min(end_offset);
        self.staged.retain(|record| record.end_offset <= end_offset);
        self.clamp_marks_to(end_offset);
        self.written_end = self.end_boundary();
        let stable_end = self.stable_end.offset;
        self.staged.retain(|record| record.end_offset > stable_end);
        let segments = &self.segments;
        self.recent_boundaries.retain(|boundary| {
            boundary.offset < end_offset
                && segments
                    .iter()
                    .any(|s| s.base_offset() == boundary.segment_base_offset)
        });
        self.forget_removed_snapshots();
        if self.epochs.truncate_from_end(end_offset) {
            self.persist_epochs()?;
        }
        sync_dir(&self.dir).map_err(|source| self.io(end_offset, source))
    }

    pub(crate) fn persist_epochs(&self) -> Result<(), LogError> {
        self.epochs
            .persist(&self.dir)
            .map_err(|source| LogError::Io {
                partition: self.name.clone(),
                path: LeaderEpochCache::path(&self.dir),
                source,
            })
    }
}
