//! Staging appends: validate batches in place, assign offsets, roll, and say what to write.

use std::sync::Arc;

use bytes::BytesMut;
use spate_protocol::records::header::attributes;
use spate_protocol::records::{RecordBatchHeader, TimestampType, check_batch, compute_batch_crc};
use zerocopy::FromBytes;

use super::checkpoint::sync_dir;
use super::error::{AppendError, LogError};
use super::partition_log::{PartitionLog, StagedRecord};
use super::producer_state::{
    BatchMetadata, ProducerEntry, ProducerStateTable, SequenceCheck, last_sequence,
};
use super::segment::{BatchPlacement, SEGMENT_OFFSET_SPAN_MAX, SEGMENT_SIZE_BYTES_MAX, Segment};
use super::segment_file::{PendingWrite, SegmentFile};

/// What `stage_append` decided. Nothing is visible to readers until the writes are performed
/// and reported with `mark_written` / `mark_synced`.
#[derive(Debug, Clone)]
pub struct StagedAppend {
    pub base_offset: i64,
    pub last_offset: i64,
    /// The broker time written into the batches, for topics with `LogAppendTime`.
    pub log_append_time_ms: Option<i64>,
    /// The batch was a producer retry of one already in the log: the offsets are the
    /// original ones and `writes` is empty.
    pub duplicate: bool,
    pub writes: Vec<PendingWrite>,
}

/// How one append went, before it is committed to the log's state.
enum Placement {
    Placed {
        end_offset: i64,
        producers: Vec<(i64, ProducerEntry)>,
    },
    Duplicate(BatchMetadata),
}

impl PartitionLog {
    /// Validates `records` (one or more RecordBatch v2 batches as the producer sent them),
    /// assigns offsets by rewriting each `baseOffset` in place, and returns the write to
    /// perform. On error nothing is staged (a roll may have happened; an empty new segment is
    /// valid state).
    pub fn stage_append(
        &mut self,
        mut records: BytesMut,
        now_ms: i64,
    ) -> Result<StagedAppend, AppendError> {
        let total_bytes = records.len() as u64;
        if total_bytes == 0 {
            return Err(AppendError::Empty);
        }
        let segment_limit_bytes = self.config.segment_bytes.min(SEGMENT_SIZE_BYTES_MAX);
        if total_bytes > SEGMENT_SIZE_BYTES_MAX {
            return Err(AppendError::TooLarge {
                size_bytes: total_bytes,
                limit_bytes: SEGMENT_SIZE_BYTES_MAX,
            });
        }
        let rolled = self.should_roll(total_bytes, segment_limit_bytes, now_ms);
        if rolled {
            self.roll(now_ms)?;
        }
        let base_offset = self.next_offset;
        let segment_before = self.active().cursor;
        let log_append_time_ms =
            (self.config.message_timestamp_type == TimestampType::LogAppendTime).then_some(now_ms);
        let placement = match self.place_batches(&mut records, log_append_time_ms) {
            Ok(placement) => placement,
            Err(error) => {
                self.active_mut().restore(segment_before);
                return Err(error);
            }
        };
        let (end_offset, producers) = match placement {
            Placement::Placed {
                end_offset,
                producers,
            } => (end_offset, producers),
            Placement::Duplicate(original) => {
                self.active_mut().restore(segment_before);
                return Ok(StagedAppend {
                    base_offset: original.base_offset,
                    last_offset: original.last_offset,
                    log_append_time_ms: None,
                    duplicate: true,
                    writes: Vec::new(),
                });
            }
        };
        let producers_before = producers
            .into_iter()
            .map(|(id, entry)| (id, self.producers.insert(id, entry)))
            .collect();
        self.next_offset = end_offset;
        let segment = self.active();
        let write = PendingWrite {
            segment: segment.file.clone(),
            position: segment_before.size_bytes,
            bytes: records.freeze(),
        };
        self.staged.push_back(StagedRecord {
            base_offset,
            end_offset,
            segment_base_offset: segment.base_offset(),
            end_position: segment.cursor.size_bytes,
            segment_before,
            rolled,
            producers_before,
            epochs_before: None,
        });
        Ok(StagedAppend {
            base_offset,
            last_offset: end_offset - 1,
            log_append_time_ms,
            duplicate: false,
            writes: vec![write],
        })
    }

    /// Checks and rewrites each batch and notes it in the active segment. The caller undoes
    /// the segment changes if this fails.
    fn place_batches(
        &mut self,
        records: &mut [u8],
        log_append_time_ms: Option<i64>,
    ) -> Result<Placement, AppendError> {
        let max_message_bytes = u64::from(self.config.max_message_bytes);
        let interval = self.config.index_interval_bytes;
        let leader_epoch = self.epochs.latest_epoch();
        let segment_base = self.active().base_offset();
        let mut producers: Vec<(i64, ProducerEntry)> = Vec::new();
        let mut offset = self.next_offset;
        let mut position = 0usize;
        let mut batch_index = 0usize;
        while position < records.len() {
            let summary =
                check_batch(&records[position..]).map_err(|source| AppendError::Corrupt {
                    batch_index,
                    source,
                })?;
            let size_bytes = summary.size_bytes as u64;
            if size_bytes > max_message_bytes {
                return Err(AppendError::TooLarge {
                    size_bytes,
                    limit_bytes: max_message_bytes,
                });
            }
            if summary.is_control {
                return Err(AppendError::ControlBatchFromClient { batch_index });
            }
            let last_offset = offset
                .checked_add(i64::from(summary.last_offset_delta))
                .filter(|last| last - segment_base <= SEGMENT_OFFSET_SPAN_MAX)
                .ok_or(AppendError::OffsetOverflow)?;
            if summary.producer_id >= 0 {
                let batch = BatchMetadata {
                    first_sequence: summary.base_sequence,
                    last_sequence: last_sequence(summary.base_sequence, summary.last_offset_delta),
                    base_offset: offset,
                    last_offset,
                };
                let pending = producers
                    .iter()
                    .position(|(id, _)| *id == summary.producer_id);
                let current = match pending {
                    Some(i) => Some(&producers[i].1),
                    None => self.producers.get(summary.producer_id),
                };
                match ProducerStateTable::check(
                    summary.producer_id,
                    current,
                    summary.producer_epoch,
                    batch,
                )? {
                    SequenceCheck::Duplicate(original) => {
                        return Ok(Placement::Duplicate(original));
                    }
                    SequenceCheck::Accept(entry) => match pending {
                        Some(i) => producers[i].1 = entry,
                        None => producers.push((summary.producer_id, entry)),
                    },
                }
            }
            let batch = &mut records[position..position + summary.size_bytes];
            let max_timestamp_ms = rewrite_header(batch, offset, leader_epoch, log_append_time_ms)
                .unwrap_or(summary.max_timestamp);
            let segment = self.active_mut();
            let segment_position = segment.cursor.size_bytes;
            segment.note_batch(
                &BatchPlacement {
                    position: segment_position,
                    size_bytes,
                    base_offset: offset,
                    last_offset,
                    max_timestamp_ms,
                },
                interval,
            );
            offset = last_offset
                .checked_add(1)
                .ok_or(AppendError::OffsetOverflow)?;
            position += summary.size_bytes;
            batch_index += 1;
        }
        Ok(Placement::Placed {
            end_offset: offset,
            producers,
        })
    }

    /// Kafka's roll rules: the active segment is not empty and the append would pass
    /// `segment.bytes`, or the segment is older than `segment.ms`, or half its relative
    /// offset space is used.
    pub(crate) fn should_roll(
        &self,
        append_bytes: u64,
        segment_limit_bytes: u64,
        now_ms: i64,
    ) -> bool {
        let active = self.active();
        if active.is_empty() {
            return false;
        }
        active.cursor.size_bytes + append_bytes > segment_limit_bytes
            || now_ms.saturating_sub(active.created_ms) >= self.config.segment_ms
            || self.next_offset - active.base_offset() > SEGMENT_OFFSET_SPAN_MAX / 2
    }

    /// Starts a new active segment at the log end offset, writing the old one's index files,
    /// and remembers the producer state at its start (for truncation). Blocking file I/O: a
    /// roll happens once per `segment.bytes`.
    pub fn roll(&mut self, now_ms: i64) -> Result<(), LogError> {
        if self.active().is_empty() {
            return Ok(());
        }
        let base = self.next_offset;
        let old_base = self.active().base_offset();
        self.active_mut()
            .write_indexes()
            .map_err(|source| self.io(old_base, source))?;
        let file = SegmentFile::create(&self.dir, base).map_err(|source| self.io(base, source))?;
        sync_dir(&self.dir).map_err(|source| self.io(base, source))?;
        self.segments.push(Segment::new(Arc::new(file), now_ms));
        self.snapshot_producers(base);
        Ok(())
    }
}

/// Sets `baseOffset` and `partitionLeaderEpoch` (outside the CRC), and for `LogAppendTime`
/// the timestamp type and `maxTimestamp`, recomputing the CRC only then. Returns the new max
/// timestamp if it changed.
fn rewrite_header(
    batch: &mut [u8],
    base_offset: i64,
    leader_epoch: Option<i32>,
    log_append_time_ms: Option<i64>,
) -> Option<i64> {
    let Ok((header, _)) = RecordBatchHeader::mut_from_prefix(batch) else {
        unreachable!("check_batch accepted a whole header");
    };
    header.base_offset.set(base_offset);
    if let Some(epoch) = leader_epoch {
        header.partition_leader_epoch.set(epoch);
    }
    let now_ms = log_append_time_ms?;
    header
        .attributes
        .set(header.attributes.get() | attributes::TIMESTAMP_TYPE_MASK);
    header.max_timestamp.set(now_ms);
    let crc = compute_batch_crc(batch)?;
    if let Ok((header, _)) = RecordBatchHeader::mut_from_prefix(batch) {
        header.crc.set(crc);
    }
    Some(now_ms)
}
