//! Follower appends: batches exactly as the leader stored them, at the offsets it gave them.
//!
//! A follower's log must be byte-identical to its leader's (replication-notes §7: equal
//! offset and epoch means equal bytes), so nothing in a replica batch is rewritten: not
//! `baseOffset`, not `partitionLeaderEpoch`, not the CRC. The batches come from another node
//! and are checked like client bytes (framing, magic, CRC-32C, counts, codec), plus
//! contiguity: the first must start at the log end and each where the previous one ended.
//! The leader already decided everything else: there is no `max.message.bytes` check, no
//! sequence check (idempotent-producer state is replayed, never enforced), and control
//! batches are welcome.
//!
//! Leader epochs are read from the headers. A batch whose epoch differs from the cache's
//! latest starts that epoch at its base offset (Kafka's `UnifiedLog.append` →
//! `LeaderEpochFileCache.assign`, which also drops entries the new one contradicts), and the
//! cache is persisted before the append is staged, so it is durable before any of its bytes
//! can be reported durable (replication-notes §5).

use std::collections::HashSet;

use bytes::Bytes;
use spate_protocol::records::check_batch;

use super::append::StagedAppend;
use super::error::AppendError;
use super::leader_epoch::LeaderEpochCache;
use super::partition_log::{PartitionLog, StagedRecord};
use super::producer_snapshots::batch_metadata;
use super::producer_state::ProducerEntry;
use super::segment::{
    BatchPlacement, SEGMENT_OFFSET_SPAN_MAX, SEGMENT_SIZE_BYTES_MAX, SegmentCursor,
};
use super::segment_file::PendingWrite;

/// Where `partitionLeaderEpoch` sits in a batch header (bytes 12..16, big-endian).
const PARTITION_LEADER_EPOCH_RANGE: std::ops::Range<usize> = 12..16;

/// What a replica batch's header says, after `check_batch` passed it.
#[derive(Debug, Clone, Copy)]
struct ReplicaBatch {
    size_bytes: usize,
    base_offset: i64,
    last_offset: i64,
    max_timestamp_ms: i64,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    leader_epoch: i32,
}

/// The part of a replica append that goes into one segment.
struct Run {
    base_offset: i64,
    bytes: usize,
    segment_before: SegmentCursor,
    rolled: bool,
    producers_before: Vec<(i64, Option<ProducerEntry>)>,
    producers_seen: HashSet<i64>,
    epochs_before: Option<LeaderEpochCache>,
}

impl PartitionLog {
    /// Stages `records` (one or more RecordBatch v2 batches as the leader stored them, the
    /// first starting at this log's end) without changing a byte, and returns the writes to
    /// perform, exactly like [`PartitionLog::stage_append`] does for a leader: nothing is
    /// visible until `mark_written` / `mark_synced`, and a failed write is undone with
    /// `abort_staged`. On error nothing is staged (a roll may have happened; an empty new
    /// segment is valid state).
    pub fn stage_replica_append(
        &mut self,
        mut records: Bytes,
        now_ms: i64,
    ) -> Result<StagedAppend, AppendError> {
        let total_bytes = records.len() as u64;
        if total_bytes == 0 {
            return Err(AppendError::Empty);
        }
        if total_bytes > SEGMENT_SIZE_BYTES_MAX {
            return Err(AppendError::TooLarge {
                size_bytes: total_bytes,
                limit_bytes: SEGMENT_SIZE_BYTES_MAX,
            });
        }
        let batches = self.check_replica_batches(&records)?;
        let segment_limit_bytes = self.config.segment_bytes.min(SEGMENT_SIZE_BYTES_MAX);
        let rolled = self.should_roll(total_bytes, segment_limit_bytes, now_ms);
        if rolled {
            self.roll(now_ms)?;
        }
        let base_offset = self.next_offset;
        let epochs_before = self.assign_replica_epochs(&batches)?;
        let mut writes = Vec::new();
        let mut run = Run::start(self, base_offset, rolled, epochs_before);
        for batch in &batches {
            let active = self.active();
            if !active.is_empty()
                && batch.last_offset - active.base_offset() > SEGMENT_OFFSET_SPAN_MAX
            {
                // The leader's segments rolled elsewhere; this one cannot address the batch.
                writes.push(self.finish_run(run, &mut records));
                if let Err(error) = self.roll(now_ms) {
                    self.abort_staged(base_offset)?;
                    return Err(error.into());
                }
                run = Run::start(self, batch.base_offset, true, None);
            }
            self.place_replica_batch(batch, &mut run);
        }
        writes.push(self.finish_run(run, &mut records));
        Ok(StagedAppend {
            base_offset,
            last_offset: self.next_offset - 1,
            log_append_time_ms: None,
            duplicate: false,
            writes,
        })
    }

    /// Checks every batch and that they continue the log; reads what the log needs from each
    /// header. No state changes.
    fn check_replica_batches(&self, records: &[u8]) -> Result<Vec<ReplicaBatch>, AppendError> {
        let mut batches = Vec::new();
        let mut expected = self.next_offset;
        let mut position = 0usize;
        while position < records.len() {
            let batch_index = batches.len();
            let bytes = &records[position..];
            let summary = check_batch(bytes).map_err(|source| AppendError::Corrupt {
                batch_index,
                source,
            })?;
            if summary.base_offset != expected {
                return Err(AppendError::NotContiguous {
                    batch_index,
                    expected,
                    found: summary.base_offset,
                });
            }
            let last_offset = summary
                .base_offset
                .checked_add(i64::from(summary.last_offset_delta))
                .ok_or(AppendError::OffsetOverflow)?;
            let mut epoch_bytes = [0u8; 4];
            epoch_bytes.copy_from_slice(&bytes[PARTITION_LEADER_EPOCH_RANGE]);
            batches.push(ReplicaBatch {
                size_bytes: summary.size_bytes,
                base_offset: summary.base_offset,
                last_offset,
                max_timestamp_ms: summary.max_timestamp,
                producer_id: summary.producer_id,
                producer_epoch: summary.producer_epoch,
                base_sequence: summary.base_sequence,
                leader_epoch: i32::from_be_bytes(epoch_bytes),
            });
            expected = last_offset
                .checked_add(1)
                .ok_or(AppendError::OffsetOverflow)?;
            position += summary.size_bytes;
        }
        Ok(batches)
    }

    /// Starts in the epoch cache every epoch the batches bring, and persists it. Returns the
    /// cache as it was, if it changed, so that undoing the append can put it back.
    fn assign_replica_epochs(
        &mut self,
        batches: &[ReplicaBatch],
    ) -> Result<Option<LeaderEpochCache>, AppendError> {
        let mut before = None;
        for batch in batches {
            if batch.leader_epoch < 0 || self.epochs.latest_epoch() == Some(batch.leader_epoch) {
                continue;
            }
            if before.is_none() {
                before = Some(self.epochs.clone());
            }
            self.epochs.assign(batch.leader_epoch, batch.base_offset);
        }
        if let Some(previous) = &before
            && let Err(error) = self.persist_epochs()
        {
            self.epochs = previous.clone();
            return Err(AppendError::Log(error));
        }
        Ok(before)
    }

    /// Notes one checked batch in the active segment and replays it into producer state.
    fn place_replica_batch(&mut self, batch: &ReplicaBatch, run: &mut Run) {
        let interval = self.config.index_interval_bytes;
        let segment = self.active_mut();
        let position = segment.cursor.size_bytes;
        segment.note_batch(
            &BatchPlacement {
                position,
                size_bytes: batch.size_bytes as u64,
                base_offset: batch.base_offset,
                last_offset: batch.last_offset,
                max_timestamp_ms: batch.max_timestamp_ms,
            },
            interval,
        );
        if batch.producer_id >= 0 && batch.base_sequence >= 0 {
            if run.producers_seen.insert(batch.producer_id) {
                let previous = self.producers.get(batch.producer_id).cloned();
                run.producers_before.push((batch.producer_id, previous));
            }
            self.producers.replay(
                batch.producer_id,
                batch.producer_epoch,
                batch_metadata(batch.base_sequence, batch.base_offset, batch.last_offset),
            );
        }
        self.next_offset = batch.last_offset + 1;
        run.bytes += batch.size_bytes;
    }

    /// Stages what `run` placed in the active segment and returns its write (the first
    /// `run.bytes` of `records`).
    fn finish_run(&mut self, run: Run, records: &mut Bytes) -> PendingWrite {
        let segment = self.active();
        let write = PendingWrite {
            segment: segment.file.clone(),
            position: run.segment_before.size_bytes,
            bytes: records.split_to(run.bytes),
        };
        self.staged.push_back(StagedRecord {
            base_offset: run.base_offset,
            end_offset: self.next_offset,
            segment_base_offset: segment.base_offset(),
            end_position: segment.cursor.size_bytes,
            segment_before: run.segment_before,
            rolled: run.rolled,
            producers_before: run.producers_before,
            epochs_before: run.epochs_before,
        });
        write
    }
}

impl Run {
    fn start(
        log: &PartitionLog,
        base_offset: i64,
        rolled: bool,
        epochs_before: Option<LeaderEpochCache>,
    ) -> Self {
        Self {
            base_offset,
            bytes: 0,
            segment_before: log.active().cursor,
            rolled,
            producers_before: Vec::new(),
            producers_seen: HashSet::new(),
            epochs_before,
        }
    }
}
