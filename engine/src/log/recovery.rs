//! Opening a partition log: verifying every batch, cutting a torn tail, reporting damage to
//! acknowledged data, and rebuilding indexes and producer state.
//!
//! See `docs/segment-format.md` ("Recovery procedure") for the rules this implements.

use std::collections::VecDeque;
use std::fs;
use std::io;
use std::path::Path;
use std::sync::Arc;

use super::checkpoint::{
    LOG_START_OFFSET_FILE, RECOVERY_POINT_FILE, REPLICATION_OFFSET_FILE, read_offset_checkpoint,
    sync_dir,
};
use super::error::{Damage, LogError};
use super::leader_epoch::{EpochEntry, LEADER_EPOCH_ENTRIES_MAX, LeaderEpochCache};
use super::marks::HighWatermarkMode;
use super::partition_log::{BatchBoundary, PartitionLog};
use super::producer_snapshots::{PRODUCER_SNAPSHOTS_MAX, batch_metadata};
use super::producer_state::ProducerStateTable;
use super::scan::{ScanRequest, scan_segment};
use super::segment::{BatchPlacement, Segment};
use super::segment_file::{SegmentFile, parse_segment_file_name};
use crate::{LogConfig, TopicPartition};

impl PartitionLog {
    /// Opens the log in `dir` (creating it if needed) and recovers it.
    ///
    /// Every batch of every segment is verified. Damage above the checkpointed recovery point
    /// is a torn tail: the file is cut there and later segments are deleted, with a warning.
    /// Damage below it is acknowledged data gone bad: `open` fails with
    /// [`LogError::Corrupt`] naming the partition, file and position, and nothing is served.
    /// Index files that are missing or disagree with the log are rewritten.
    pub fn open(
        dir: &Path,
        name: TopicPartition,
        config: LogConfig,
        now_ms: i64,
    ) -> Result<Self, LogError> {
        let (log, dir_unsynced) = Self::open_leaving_dir_sync(dir, name, config, now_ms)?;
        if dir_unsynced {
            sync_dir(dir).map_err(|source| LogError::Io {
                partition: log.name.clone(),
                path: dir.to_path_buf(),
                source,
            })?;
        }
        Ok(log)
    }

    /// [`PartitionLog::open`], except that when it creates the first segment it leaves the
    /// fsync of `dir` to the caller and returns `true`. Creating many partitions at once, the
    /// caller creates them all, then syncs the folders, so shared metadata is written once
    /// rather than per partition. The log must not be served before that sync, or its first
    /// segment could vanish in a crash.
    pub(crate) fn open_leaving_dir_sync(
        dir: &Path,
        name: TopicPartition,
        config: LogConfig,
        now_ms: i64,
    ) -> Result<(Self, bool), LogError> {
        let io_error = |path: &Path| {
            let name = name.clone();
            let path = path.to_path_buf();
            move |source| LogError::Io {
                partition: name,
                path,
                source,
            }
        };
        fs::create_dir_all(dir).map_err(io_error(dir))?;
        let recovery_point =
            read_offset_checkpoint(dir, RECOVERY_POINT_FILE).map_err(io_error(dir))?;
        let deleted_before =
            read_offset_checkpoint(dir, LOG_START_OFFSET_FILE).map_err(io_error(dir))?;
        let checkpointed_high_watermark =
            read_offset_checkpoint(dir, REPLICATION_OFFSET_FILE).map_err(io_error(dir))?;
        let epoch_file_present = LeaderEpochCache::path(dir).exists();
        let epochs = LeaderEpochCache::load(dir).map_err(io_error(dir))?;
        let bases = list_segments(dir).map_err(io_error(dir))?;
        let start = BatchBoundary {
            offset: 0,
            segment_base_offset: 0,
            position: 0,
        };
        let mut log = Self {
            dir: dir.to_path_buf(),
            name: name.clone(),
            config,
            segments: Vec::new(),
            log_start_offset: 0,
            next_offset: 0,
            written_end: start,
            synced_offset: 0,
            checkpointed_recovery_point: recovery_point.unwrap_or(0),
            stable_end: start,
            high_watermark: start,
            high_watermark_mode: HighWatermarkMode::Local,
            checkpointed_high_watermark,
            staged: VecDeque::new(),
            recent_boundaries: VecDeque::new(),
            producers: ProducerStateTable::default(),
            producer_snapshots: VecDeque::new(),
            epochs,
        };
        let (header_epochs, restarted) =
            log.recover_segments(&bases, recovery_point.unwrap_or(0), deleted_before, now_ms)?;
        let mut dir_unsynced = false;
        if log.segments.is_empty() {
            let base = bases.first().copied().unwrap_or(0);
            let file = SegmentFile::create(dir, base).map_err(io_error(dir))?;
            dir_unsynced = true;
            log.segments.push(Segment::new(Arc::new(file), now_ms));
            log.next_offset = base;
        }
        let end = log.next_offset;
        if let Some(point) = recovery_point
            && end < point
        {
            let last = log.active();
            return Err(LogError::Corrupt {
                partition: name,
                file: last.file.path().to_path_buf(),
                position: last.cursor.size_bytes,
                damage: Damage::MissingData {
                    log_end_offset: end,
                    recovery_point: point,
                },
            });
        }
        log.log_start_offset = log.segments[0]
            .base_offset()
            .max(deleted_before.unwrap_or(0).min(end));
        // Bytes above the old recovery point may still sit only in the page cache (a process
        // crash under `flush=never`); sync them so the new recovery point is true.
        let old_point = recovery_point.unwrap_or(0);
        for segment in log
            .segments
            .iter()
            .filter(|s| s.cursor.next_offset > old_point)
        {
            if !segment.is_empty() {
                segment
                    .file
                    .file()
                    .sync_data()
                    .map_err(io_error(segment.file.path()))?;
            }
        }
        log.synced_offset = end;
        let end_boundary = log.end_boundary();
        log.written_end = end_boundary;
        log.stable_end = end_boundary;
        log.high_watermark = end_boundary;
        log.forget_removed_snapshots();
        let trimmed = log.epochs.truncate_from_end(end) | restarted;
        let rebuilt = log.merge_header_epochs(&header_epochs, epoch_file_present);
        let trimmed = log.epochs.truncate_from_start(log.log_start_offset) | trimmed;
        // A cache found only in the batch headers is not written: the headers hold it, and
        // writing one file per partition at the first start after an upgrade is not free.
        if epoch_file_present && (trimmed || rebuilt) {
            log.epochs.persist(dir).map_err(io_error(dir))?;
        }
        for segment in &mut log.segments {
            let path = segment.file.index_path();
            if !segment.index_files_match().map_err(io_error(&path))? {
                // An empty segment (a partition just created) has no index files yet: normal.
                if segment.cursor.size_bytes == 0 {
                    tracing::debug!(partition = %name, file = %path.display(), "writing index files of an empty segment");
                } else {
                    tracing::info!(partition = %name, file = %path.display(), "rebuilding index files");
                }
                segment.write_indexes().map_err(io_error(&path))?;
            } else {
                segment.indexes_dirty = false;
            }
        }
        let sealable = log.segments.len() - 1;
        for segment in &mut log.segments[..sealable] {
            segment.seal();
        }
        Ok((log, dir_unsynced))
    }

    /// Scans each segment in order, stopping at the first damage (cutting it if it is a torn
    /// tail, failing if it lies below `recovery_point`). Returns where each leader epoch
    /// starts by the batch headers (the first batch of each epoch above every earlier one),
    /// and whether the log restarted at a fresh segment (see [`Self::restart_at`]).
    fn recover_segments(
        &mut self,
        bases: &[i64],
        recovery_point: i64,
        log_start_checkpoint: Option<i64>,
        now_ms: i64,
    ) -> Result<(Vec<EpochEntry>, bool), LogError> {
        let mut header_epochs: Vec<EpochEntry> = Vec::new();
        let mut restarted = false;
        let mut expected_offset: Option<i64> = None;
        for (index, &base) in bases.iter().enumerate() {
            let file =
                SegmentFile::open(&self.dir, base).map_err(|source| self.io(base, source))?;
            let file_len = file
                .file()
                .metadata()
                .map_err(|source| self.io(base, source))?
                .len();
            let is_last = index + 1 == bases.len();
            if file_len == 0 && !is_last && expected_offset.is_none_or(|e| e == base) {
                tracing::warn!(partition = %self.name, file = %file.path().display(), "removing empty segment that is not the last");
                remove_segment_files(&file).map_err(|source| self.io(base, source))?;
                continue;
            }
            if let Some(expected) = expected_offset
                && expected != base
            {
                if base > expected && log_start_checkpoint == Some(base) {
                    self.restart_at(base)?;
                    header_epochs.clear();
                    restarted = true;
                } else {
                    let damage = Damage::OffsetMismatch {
                        expected,
                        found: base,
                    };
                    self.cut_or_fail(&file, 0, expected, recovery_point, damage, &bases[index..])?;
                    return Ok((header_epochs, restarted));
                }
            }
            if index + PRODUCER_SNAPSHOTS_MAX >= bases.len() {
                self.snapshot_producers(base);
            }
            let mut segment = Segment::new(Arc::new(file), now_ms);
            let interval = self.config.index_interval_bytes;
            let producers = &mut self.producers;
            let epochs_seen = &mut header_epochs;
            let mut first_timestamp_ms = None;
            let end = scan_segment(
                segment.file.clone().file(),
                ScanRequest {
                    segment_base_offset: base,
                    file_len,
                    stop_at_offset: i64::MAX,
                },
                |batch| {
                    first_timestamp_ms.get_or_insert(batch.max_timestamp_ms);
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
                    producers.replay(
                        batch.producer_id,
                        batch.producer_epoch,
                        batch_metadata(batch.base_sequence, batch.base_offset, batch.last_offset),
                    );
                    note_header_epoch(epochs_seen, batch.partition_leader_epoch, batch.base_offset);
                },
            )
            .map_err(|source| self.io(base, source))?;
            if let Some(first) = first_timestamp_ms {
                segment.created_ms = first.min(now_ms);
            }
            self.next_offset = end.next_offset;
            expected_offset = Some(end.next_offset);
            if let Some(damage) = end.damage {
                let file = segment.file.clone();
                self.cut_or_fail(
                    &file,
                    end.position,
                    end.next_offset,
                    recovery_point,
                    damage,
                    &bases[index + 1..],
                )?;
                if end.position > 0 || self.segments.is_empty() {
                    self.segments.push(segment);
                }
                return Ok((header_epochs, restarted));
            }
            self.segments.push(segment);
        }
        Ok((header_epochs, restarted))
    }

    /// The segment at `base` starts past the end of the ones before it, and the log start
    /// checkpoint names it: `truncate_fully_and_start_at` created it and wrote the checkpoint,
    /// then crashed while deleting the old segments. Finishes that: the old segments go, with
    /// the producer state and epochs they held, and the log starts at `base`.
    fn restart_at(&mut self, base: i64) -> Result<(), LogError> {
        for segment in self.segments.drain(..) {
            tracing::warn!(partition = %self.name, file = %segment.file.path().display(), log_start = base, "removing a segment left below a log that restarted");
            remove_segment_files(&segment.file).map_err(|source| LogError::Io {
                partition: self.name.clone(),
                path: segment.file.path().to_path_buf(),
                source,
            })?;
        }
        self.producers = ProducerStateTable::default();
        self.producer_snapshots.clear();
        self.epochs = LeaderEpochCache::default();
        sync_dir(&self.dir).map_err(|source| self.io(base, source))
    }

    /// Kafka's segment recovery (`LogSegment.recover`): a batch whose leader epoch is above
    /// the cache's latest starts that epoch. This rebuilds a missing or garbled cache, and
    /// catches up one that is behind the log (an epoch write lost in a crash, KAFKA-16541).
    /// Only batches from the cache's latest start on are compared: below it the cache is the
    /// record (a batch there may carry whatever epoch a client sent before epochs were
    /// stamped). Returns whether the cache changed.
    fn merge_header_epochs(
        &mut self,
        header_epochs: &[EpochEntry],
        epoch_file_present: bool,
    ) -> bool {
        let mut changed = false;
        for entry in header_epochs {
            let newer = match self.epochs.entries().last() {
                Some(latest) => {
                    entry.start_offset >= latest.start_offset && entry.epoch > latest.epoch
                }
                None => true,
            };
            if newer {
                changed |= self.epochs.assign(entry.epoch, entry.start_offset);
            }
        }
        if changed && epoch_file_present {
            tracing::warn!(
                partition = %self.name,
                "the leader epoch cache was behind the log or unreadable; rebuilt it from batch headers"
            );
        }
        changed
    }

    /// Handles damage at `position` of `file`, where offset `offset` was expected: below the
    /// recovery point it is an error; above it the tail is cut and `later` segments deleted.
    fn cut_or_fail(
        &mut self,
        file: &SegmentFile,
        position: u64,
        offset: i64,
        recovery_point: i64,
        damage: Damage,
        later: &[i64],
    ) -> Result<(), LogError> {
        if offset < recovery_point {
            return Err(LogError::Corrupt {
                partition: self.name.clone(),
                file: file.path().to_path_buf(),
                position,
                damage,
            });
        }
        tracing::warn!(
            partition = %self.name,
            file = %file.path().display(),
            position,
            %damage,
            "cutting the log's unacknowledged tail"
        );
        let base = file.base_offset();
        if position == 0 && !self.segments.is_empty() {
            remove_segment_files(file).map_err(|source| self.io(base, source))?;
        } else {
            file.file()
                .set_len(position)
                .and_then(|()| file.file().sync_all())
                .map_err(|source| self.io(base, source))?;
        }
        for &later_base in later {
            if later_base == base {
                continue;
            }
            let later_file = SegmentFile::open(&self.dir, later_base)
                .map_err(|source| self.io(later_base, source))?;
            tracing::warn!(partition = %self.name, file = %later_file.path().display(), "deleting segment after the cut");
            remove_segment_files(&later_file).map_err(|source| self.io(later_base, source))?;
        }
        sync_dir(&self.dir).map_err(|source| self.io(base, source))
    }
}

/// Notes where a leader epoch starts by the batch headers: the first batch of each epoch
/// above every earlier one. Negative epochs (no leader stamped the batch) are skipped; at most
/// [`LEADER_EPOCH_ENTRIES_MAX`] are noted (a single-node log keeps whatever epoch its clients
/// sent, so a hostile one could have one per batch).
fn note_header_epoch(header_epochs: &mut Vec<EpochEntry>, epoch: i32, base_offset: i64) {
    if epoch < 0 || header_epochs.len() >= LEADER_EPOCH_ENTRIES_MAX {
        return;
    }
    if header_epochs.last().is_none_or(|last| epoch > last.epoch) {
        header_epochs.push(EpochEntry {
            epoch,
            start_offset: base_offset,
        });
    }
}

/// Base offsets of the segments in `dir`, ascending. Removes leftovers that belong to no
/// segment: index files of deleted segments and temp files of interrupted checkpoints.
fn list_segments(dir: &Path) -> io::Result<Vec<i64>> {
    let mut bases = Vec::new();
    let mut others = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        match parse_segment_file_name(&name) {
            Some(base) => bases.push(base),
            None => others.push(name),
        }
    }
    bases.sort_unstable();
    for name in others {
        let orphan_index = ["index", "timeindex"].iter().any(|extension| {
            name.strip_suffix(extension)
                .and_then(|stem| stem.strip_suffix('.'))
                .and_then(|stem| parse_segment_file_name(&format!("{stem}.log")))
                .is_some_and(|base| bases.binary_search(&base).is_err())
        });
        if orphan_index || name.ends_with(".tmp") {
            tracing::info!(file = name, "removing leftover file");
            fs::remove_file(dir.join(&name))?;
        }
    }
    Ok(bases)
}

/// Unlinks a segment's `.log` first, then its indexes: a crash in between leaves orphan index
/// files, which the next open removes.
pub(crate) fn remove_segment_files(file: &SegmentFile) -> io::Result<()> {
    for path in [
        file.path().to_path_buf(),
        file.index_path(),
        file.time_index_path(),
    ] {
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}
