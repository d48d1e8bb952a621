//! The log's marks, who moves each one, and the high watermark checkpoint.
//!
//! - **Written end**: every offset below it is in the file. The runtime reports writes with
//!   [`PartitionLog::mark_written`]. Followers fetch up to it (`ReadBound::WrittenEnd`).
//! - **Stable end**: every offset below it is durable per the flush policy: fdatasynced under
//!   `flush=always` ([`PartitionLog::mark_synced`]), written under `interval_ms`/`never`. It
//!   only moves over whole staged appends. This is what a single node shows its consumers,
//!   and a replica's *durable offset*.
//! - **High watermark**: consumers read below it. In [`HighWatermarkMode::Local`] it is the
//!   stable end. In [`HighWatermarkMode::Replicated`] only [`PartitionLog::set_high_watermark`]
//!   moves it (the leader's ISR math, or a follower applying the leader's), and truncation
//!   clamps it.
//!
//! Always `log_start <= high_watermark <= stable_end <= written_end <= log_end`, and each mark
//! is kept with the byte position where it falls, so a bounded read knows at once how much of
//! each segment it may return. The one exception to "marks lie on batch boundaries": a high
//! watermark clamped up to a log start that DeleteRecords put inside a batch keeps that
//! offset but the position of the batch's start, so nothing of that batch is readable.
//!
//! This module does no I/O except writing `replication-offset-checkpoint` and the header
//! reads that find a batch boundary.

use super::checkpoint::{REPLICATION_OFFSET_FILE, encode_offset_checkpoint, write_atomically};
use super::error::{LogError, ReadError};
use super::partition_log::{BatchBoundary, PartitionLog, RECENT_BOUNDARIES};
use crate::FlushPolicy;

/// Who moves a partition's high watermark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HighWatermarkMode {
    /// A single node: the high watermark is the stable end (everything durable per the flush
    /// policy is visible). The default, and the engine's behaviour before replication.
    #[default]
    Local,
    /// Replication decides: only `set_high_watermark` moves it (truncation clamps it). It is
    /// checkpointed to `replication-offset-checkpoint`.
    Replicated,
}

impl PartitionLog {
    /// Every offset below this is in the log's files (written, maybe not synced).
    pub fn written_end(&self) -> i64 {
        self.written_end.offset
    }

    /// Every offset below this is durable per the flush policy: fdatasynced under
    /// `flush=always`, written under `interval_ms`/`never`.
    pub fn stable_end(&self) -> i64 {
        self.stable_end.offset
    }

    /// Who moves the high watermark.
    pub fn high_watermark_mode(&self) -> HighWatermarkMode {
        self.high_watermark_mode
    }

    /// The runtime wrote every staged append up to and including `through_offset` (the
    /// `last_offset` of a `StagedAppend`). Calls must not go backwards past earlier ones;
    /// under `flush=never`/`interval_ms` this advances the stable end.
    pub fn mark_written(&mut self, through_offset: i64) {
        let end = through_offset.saturating_add(1).min(self.next_offset);
        self.advance_written_end(end);
        self.advance_stable_end();
    }

    /// The runtime wrote and fdatasynced every staged append up to and including
    /// `through_offset`. Advances the recovery point and, under `flush=always`, the stable
    /// end.
    pub fn mark_synced(&mut self, through_offset: i64) {
        let end = through_offset.saturating_add(1).min(self.next_offset);
        self.synced_offset = self.synced_offset.max(end);
        self.advance_written_end(self.synced_offset);
        self.advance_stable_end();
    }

    /// Moves the written end to the end of the last staged append that ends at or below
    /// `end` (appends are reported whole).
    fn advance_written_end(&mut self, end: i64) {
        if end <= self.written_end.offset {
            return;
        }
        let written_count = self
            .staged
            .partition_point(|record| record.end_offset <= end);
        if let Some(record) = written_count
            .checked_sub(1)
            .and_then(|i| self.staged.get(i))
            && record.end_offset > self.written_end.offset
        {
            self.written_end = BatchBoundary {
                offset: record.end_offset,
                segment_base_offset: record.segment_base_offset,
                position: record.end_position,
            };
        }
    }

    /// Moves the stable end (and, in `Local` mode, the high watermark) over every staged
    /// append that is durable enough for the flush policy. It only ever lands on append
    /// boundaries.
    fn advance_stable_end(&mut self) {
        let durable_end = match self.config.flush {
            FlushPolicy::Always => self.synced_offset,
            FlushPolicy::IntervalMs(_) | FlushPolicy::Never => self.written_end.offset,
        };
        while let Some(front) = self.staged.front() {
            if front.end_offset > durable_end {
                break;
            }
            let boundary = BatchBoundary {
                offset: front.end_offset,
                segment_base_offset: front.segment_base_offset,
                position: front.end_position,
            };
            self.stable_end = boundary;
            if self.high_watermark_mode == HighWatermarkMode::Local {
                self.high_watermark = boundary;
            }
            if self.recent_boundaries.len() == RECENT_BOUNDARIES {
                self.recent_boundaries.pop_front();
            }
            self.recent_boundaries.push_back(boundary);
            self.staged.pop_front();
        }
    }

    /// Switches who moves the high watermark; returns the high watermark afterwards.
    ///
    /// To `Local`: it becomes the stable end, as on a single node. To `Replicated`: it
    /// becomes the checkpointed high watermark (`replication-offset-checkpoint`; the log
    /// start, with a warning, if there is none), clamped to `[log start, stable end]` and
    /// rounded down to a batch start. Replication then moves it with
    /// [`PartitionLog::set_high_watermark`].
    pub fn set_high_watermark_mode(&mut self, mode: HighWatermarkMode) -> Result<i64, LogError> {
        if mode == self.high_watermark_mode {
            return Ok(self.high_watermark.offset);
        }
        match mode {
            HighWatermarkMode::Local => {
                self.high_watermark_mode = HighWatermarkMode::Local;
                self.high_watermark = self.stable_end;
            }
            HighWatermarkMode::Replicated => {
                let wanted = match self.checkpointed_high_watermark {
                    Some(offset) => offset,
                    None => {
                        if self.log_start_offset < self.stable_end.offset {
                            // Expected after a crash before the first checkpoint: the
                            // leader's fetch answers bring the HW back.
                            tracing::info!(
                                partition = %self.name,
                                log_start_offset = self.log_start_offset,
                                "no high watermark checkpoint yet: the replicated high watermark starts at the log start until the leader's arrives"
                            );
                        }
                        self.log_start_offset
                    }
                };
                let mark = self.boundary_for_high_watermark(wanted)?;
                // The checkpoint may lie above a log that recovery cut shorter.
                self.lower_high_watermark_checkpoint(mark.offset)?;
                self.high_watermark_mode = HighWatermarkMode::Replicated;
                self.high_watermark = mark;
            }
        }
        Ok(self.high_watermark.offset)
    }

    /// Sets the high watermark of a `Replicated` partition and returns the value applied:
    /// `offset` clamped to `[log start, stable end]`, rounded down to the start of the batch
    /// holding it. It may go down (a follower taking a lower leader high watermark, or the
    /// leader's own math); a value below the checkpointed one is written to the checkpoint
    /// before it takes effect. Costs nothing when `offset` is the stable end or one of the
    /// last few append boundaries; otherwise a sparse-index lookup and a few header reads.
    pub fn set_high_watermark(&mut self, offset: i64) -> Result<i64, LogError> {
        if self.high_watermark_mode != HighWatermarkMode::Replicated {
            return Err(LogError::HighWatermarkIsLocal {
                partition: self.name.clone(),
            });
        }
        let mark = self.boundary_for_high_watermark(offset)?;
        if mark.offset < self.high_watermark.offset {
            self.lower_high_watermark_checkpoint(mark.offset)?;
        }
        self.high_watermark = mark;
        Ok(mark.offset)
    }

    /// `offset` clamped to `[log start, stable end]` and rounded down to the start of the
    /// batch holding it, with its byte position.
    fn boundary_for_high_watermark(&self, offset: i64) -> Result<BatchBoundary, LogError> {
        let target = offset
            .max(self.log_start_offset)
            .min(self.stable_end.offset);
        if target == self.stable_end.offset {
            return Ok(self.stable_end);
        }
        if target == self.high_watermark.offset {
            return Ok(self.high_watermark);
        }
        let segment = &self.segments[self.segment_index_for(target)];
        let readable_end = self.readable_end(segment, &self.stable_end);
        let found = self
            .locate_batch(segment, target, readable_end)
            .map_err(|error| self.log_error_of(error))?;
        // Not found cannot happen below the stable end; the segment's start is a safe answer.
        let (position, base_offset) = found.unwrap_or((0, segment.base_offset()));
        Ok(BatchBoundary {
            offset: base_offset.max(self.log_start_offset),
            segment_base_offset: segment.base_offset(),
            position,
        })
    }

    /// Where the log ends: the next offset, at the end of the active segment.
    pub(crate) fn end_boundary(&self) -> BatchBoundary {
        let active = self.active();
        BatchBoundary {
            offset: self.next_offset,
            segment_base_offset: active.base_offset(),
            position: active.cursor.size_bytes,
        }
    }

    /// Periodic checkpoint and close: in `Replicated` mode, writes the high watermark (never
    /// above the flushed offset, replication-notes §5) if it changed.
    pub(crate) fn checkpoint_high_watermark(&mut self) -> Result<(), LogError> {
        if self.high_watermark_mode != HighWatermarkMode::Replicated {
            return Ok(());
        }
        let offset = self.high_watermark.offset.min(self.synced_offset);
        if self.checkpointed_high_watermark == Some(offset) {
            return Ok(());
        }
        self.write_high_watermark_checkpoint(offset)
    }

    /// Writes `offset` to the high watermark checkpoint if the file holds more, so that a
    /// crash never brings back a high watermark above one the log has since had (or above
    /// its end after a truncation). In any mode: a file left from a replicated past counts.
    pub(crate) fn lower_high_watermark_checkpoint(&mut self, offset: i64) -> Result<(), LogError> {
        match self.checkpointed_high_watermark {
            Some(checkpointed) if checkpointed > offset => {
                self.write_high_watermark_checkpoint(offset)
            }
            _ => Ok(()),
        }
    }

    fn write_high_watermark_checkpoint(&mut self, offset: i64) -> Result<(), LogError> {
        write_atomically(
            &self.dir,
            REPLICATION_OFFSET_FILE,
            &encode_offset_checkpoint(offset),
        )
        .map_err(|source| LogError::Io {
            partition: self.name.clone(),
            path: self.dir.join(REPLICATION_OFFSET_FILE),
            source,
        })?;
        self.checkpointed_high_watermark = Some(offset);
        Ok(())
    }

    /// A failed header read, as a whole-log error.
    pub(crate) fn log_error_of(&self, error: ReadError) -> LogError {
        match error {
            ReadError::Io {
                partition,
                path,
                source,
            } => LogError::Io {
                partition,
                path,
                source,
            },
            ReadError::Corrupt {
                partition,
                file,
                position,
                damage,
            } => LogError::Corrupt {
                partition,
                file,
                position,
                damage,
            },
            ReadError::OffsetOutOfRange { offset, .. } => LogError::InvalidOffset {
                partition: self.name.clone(),
                offset,
            },
        }
    }
}
