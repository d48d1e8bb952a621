//! [`PartitionLog`]: the state of one partition's log, its offsets and its durability marks.
//!
//! The log is sans-IO on the hot path: `stage_append` decides where bytes go and returns the
//! writes; the shard runtime performs them (io_uring, group-committed) and reports back with
//! `mark_written` / `mark_synced`. Opening, rolling, retention, truncation and checkpoints use
//! plain blocking file I/O: they are rare and not on the produce path.

use std::collections::VecDeque;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use super::checkpoint::{RECOVERY_POINT_FILE, encode_offset_checkpoint, write_atomically};
use super::error::LogError;
use super::leader_epoch::LeaderEpochCache;
use super::marks::HighWatermarkMode;
use super::producer_snapshots::ProducerSnapshot;
use super::producer_state::{ProducerEntry, ProducerStateTable};
use super::segment::{Segment, SegmentCursor};
use super::segment_file::{SegmentFile, segment_file_name};
use crate::{LogConfig, TopicPartition};

/// An append that was staged and whose effects may still be undone by `abort_staged`.
#[derive(Debug)]
pub(crate) struct StagedRecord {
    pub base_offset: i64,
    /// Offset after the append.
    pub end_offset: i64,
    pub segment_base_offset: i64,
    /// Position after the append in its segment.
    pub end_position: u64,
    /// The segment's counters before the append.
    pub segment_before: SegmentCursor,
    /// The append created its segment (by rolling), so undoing it removes the segment.
    pub rolled: bool,
    /// Producer entries the append replaced, in the order it replaced them.
    pub producers_before: Vec<(i64, Option<ProducerEntry>)>,
    /// The leader-epoch cache before a replica append changed it (epochs read from its batch
    /// headers), so undoing the append puts it back. `None` for every other append.
    pub epochs_before: Option<LeaderEpochCache>,
}

/// Batch boundaries remembered per partition: enough for consumers a few appends behind.
pub(crate) const RECENT_BOUNDARIES: usize = 16;

/// A place in the log between two batches (or at its end): `offset` is the base offset of the
/// batch that starts at byte `position` of the segment whose base offset is
/// `segment_base_offset`, or the offset the next batch there will get.
///
/// The log's marks (written end, stable end, high watermark) are kept this way, so a reader
/// bounded by one knows at once how many bytes of each segment it may return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchBoundary {
    pub offset: i64,
    pub segment_base_offset: i64,
    pub position: u64,
}

/// The log of one partition. Lives on, and is only touched by, the shard that owns the
/// partition.
///
/// Its marks always satisfy `log_start_offset <= high_watermark <= stable_end <= written_end
/// <= log_end_offset` (`next_offset`); see `marks.rs` for who moves each one.
#[derive(Debug)]
pub struct PartitionLog {
    pub(crate) dir: PathBuf,
    pub(crate) name: TopicPartition,
    pub(crate) config: LogConfig,
    /// Oldest first; never empty; the last one is active.
    pub(crate) segments: Vec<Segment>,
    pub(crate) log_start_offset: i64,
    /// The offset the next staged batch gets (log end offset, staged appends included).
    pub(crate) next_offset: i64,
    /// Every offset below this has been written (reported by the runtime), with the end of
    /// the last written append.
    pub(crate) written_end: BatchBoundary,
    /// Every offset below this has been written and fsynced: the recovery point.
    pub(crate) synced_offset: i64,
    pub(crate) checkpointed_recovery_point: i64,
    /// Every offset below this is durable per the flush policy: fsynced under
    /// `flush=always`, written otherwise. Only moves over whole staged appends.
    pub(crate) stable_end: BatchBoundary,
    /// Readers (consumers) see offsets below this. Equal to `stable_end` in
    /// [`HighWatermarkMode::Local`]; set by replication in [`HighWatermarkMode::Replicated`].
    pub(crate) high_watermark: BatchBoundary,
    pub(crate) high_watermark_mode: HighWatermarkMode,
    /// The value in `replication-offset-checkpoint`, as read at open or last written; `None`
    /// when there is no (readable) file.
    pub(crate) checkpointed_high_watermark: Option<i64>,
    /// Appends not yet under the stable end, oldest first. Bounded by the runtime's
    /// in-flight appends.
    pub(crate) staged: VecDeque<StagedRecord>,
    /// Where the last few committed appends ended (offset, segment, byte position): the
    /// offsets tail consumers fetch from next. A fetch at one of them starts there without
    /// walking batch headers from the sparse index (a `pread` per batch). Empty until the
    /// first append, so idle partitions pay nothing.
    pub(crate) recent_boundaries: VecDeque<BatchBoundary>,
    pub(crate) producers: ProducerStateTable,
    /// Producer state at the start of the last few segments, so truncation can rebuild the
    /// state at any offset in them by replaying one segment.
    pub(crate) producer_snapshots: VecDeque<ProducerSnapshot>,
    pub(crate) epochs: LeaderEpochCache,
}

impl PartitionLog {
    pub(crate) fn io(&self, base_offset: i64, source: io::Error) -> LogError {
        LogError::Io {
            partition: self.name.clone(),
            path: self.dir.join(segment_file_name(base_offset, "log")),
            source,
        }
    }

    pub(crate) fn active(&self) -> &Segment {
        let Some(last) = self.segments.last() else {
            unreachable!("a partition log always has an active segment");
        };
        last
    }

    pub(crate) fn active_mut(&mut self) -> &mut Segment {
        let Some(last) = self.segments.last_mut() else {
            unreachable!("a partition log always has an active segment");
        };
        last
    }

    /// The partition this log belongs to.
    pub fn name(&self) -> &TopicPartition {
        &self.name
    }

    /// The settings in force (they may change at runtime with `set_config`).
    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// Applies new settings; they take effect at the next append, roll or retention pass.
    pub fn set_config(&mut self, config: LogConfig) {
        self.config = config;
    }

    /// Offsets below this are visible to readers (consumers).
    pub fn high_watermark(&self) -> i64 {
        self.high_watermark.offset
    }

    /// The first offset still in the log.
    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    /// The offset the next append will get (staged appends included).
    pub fn log_end_offset(&self) -> i64 {
        self.next_offset
    }

    /// Every offset below this is on stable storage.
    pub fn recovery_point(&self) -> i64 {
        self.synced_offset
    }

    /// Number of segments, the active one included.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Base offsets of the segments, oldest first (the last is the active segment).
    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.segments.iter().map(Segment::base_offset).collect()
    }

    /// Total bytes of all segments.
    pub fn size_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.cursor.size_bytes).sum()
    }

    /// The leader-epoch cache, for replication's divergence checks.
    pub fn leader_epochs(&self) -> &LeaderEpochCache {
        &self.epochs
    }

    /// Idempotent-producer state, for diagnostics and tests.
    pub fn producer_state(&self) -> &ProducerStateTable {
        &self.producers
    }

    /// Records that leader `epoch` starts writing at `start_offset` and persists the cache.
    /// Batches appended from now on carry `epoch` as their `partitionLeaderEpoch`.
    pub fn assign_epoch(&mut self, epoch: i32, start_offset: i64) -> Result<(), LogError> {
        if epoch < 0 {
            return Err(LogError::InvalidLeaderEpoch {
                partition: self.name.clone(),
                epoch,
            });
        }
        if start_offset < 0 {
            return Err(LogError::InvalidOffset {
                partition: self.name.clone(),
                offset: start_offset,
            });
        }
        if self.epochs.assign(epoch, start_offset) {
            self.epochs
                .persist(&self.dir)
                .map_err(|source| LogError::Io {
                    partition: self.name.clone(),
                    path: LeaderEpochCache::path(&self.dir),
                    source,
                })?;
        }
        Ok(())
    }

    /// Segments holding bytes that are not fsynced yet: the runtime issues one fdatasync per
    /// segment here, then calls `mark_synced`.
    pub fn dirty_segments(&self) -> Vec<Arc<SegmentFile>> {
        let mut dirty = Vec::new();
        for segment in self.segments.iter().rev() {
            if segment.cursor.next_offset <= self.synced_offset {
                break;
            }
            if !segment.is_empty() {
                dirty.push(segment.file.clone());
            }
        }
        dirty.reverse();
        dirty
    }

    /// Writes index files that changed, the recovery point (if it moved) and, in
    /// [`HighWatermarkMode::Replicated`], the high watermark (if it moved); and seals segments
    /// that can no longer change (their indexes then live mostly on disk). Cheap enough to
    /// call every few seconds; call it before shutting down.
    pub fn checkpoint(&mut self) -> Result<(), LogError> {
        for index in 0..self.segments.len() {
            if self.segments[index].indexes_dirty {
                let base = self.segments[index].base_offset();
                self.segments[index]
                    .write_indexes()
                    .map_err(|source| self.io(base, source))?;
            }
        }
        let sealable = self.segments.len() - 1;
        for segment in &mut self.segments[..sealable] {
            if !segment.indexes_dirty && segment.cursor.next_offset <= self.stable_end.offset {
                segment.seal();
            }
        }
        self.write_recovery_point(self.synced_offset)?;
        self.checkpoint_high_watermark()
    }

    pub(crate) fn write_recovery_point(&mut self, offset: i64) -> Result<(), LogError> {
        if offset == self.checkpointed_recovery_point {
            return Ok(());
        }
        write_atomically(
            &self.dir,
            RECOVERY_POINT_FILE,
            &encode_offset_checkpoint(offset),
        )
        .map_err(|source| LogError::Io {
            partition: self.name.clone(),
            path: self.dir.join(RECOVERY_POINT_FILE),
            source,
        })?;
        self.checkpointed_recovery_point = offset;
        Ok(())
    }

    /// Fsyncs what is not yet synced, checkpoints and closes. Every staged append must have
    /// been written.
    pub fn close(mut self) -> Result<(), LogError> {
        if self.written_end.offset < self.next_offset {
            return Err(LogError::WritesInFlight {
                partition: self.name.clone(),
                in_flight_count: self.staged.len(),
            });
        }
        for file in self.dirty_segments() {
            file.file()
                .sync_data()
                .map_err(|source| self.io(file.base_offset(), source))?;
        }
        self.mark_synced(self.next_offset - 1);
        self.checkpoint()
    }
}
