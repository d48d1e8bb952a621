//! Producer state at segment starts, so truncation can rebuild idempotent-producer state
//! exactly.
//!
//! The table remembers each producer's last five batches. Cutting batches off the end of the
//! log cannot be undone from that window alone: the batches that fell out of it, or a
//! producer's previous epoch, would be needed. Kafka rebuilds the state from its per-segment
//! `.snapshot` files plus a replay of the segment being cut (`UnifiedLog.rebuildProducerState`).
//! Spate keeps the same snapshots in memory for the last [`PRODUCER_SNAPSHOTS_MAX`] segments
//! (taken at each roll and at open), and the truncation's re-scan of the cut segment replays
//! it. A cut further back rebuilds from the log start by walking batch headers (one `pread`
//! per batch of every earlier segment; no record bytes are read).
//!
//! Exactness matters: after a failover, a producer's retry of a batch the new leader holds
//! must be answered as a duplicate, and a retry of one it lost must be appended fresh.

use super::error::LogError;
use super::partition_log::PartitionLog;
use super::producer_state::{BatchMetadata, ProducerStateTable, last_sequence};
use super::segment::{HeaderReadError, Segment, read_header_at};

/// Segments whose starting producer state is kept. Truncation by replication cuts a few
/// unreplicated appends off the end; two segments cover a cut just after a roll. Each
/// snapshot is a copy of the table (a few hundred bytes per active producer).
pub(crate) const PRODUCER_SNAPSHOTS_MAX: usize = 2;

/// The producer state as it was before the first batch of a segment.
#[derive(Debug, Clone)]
pub(crate) struct ProducerSnapshot {
    pub segment_base_offset: i64,
    pub producers: ProducerStateTable,
}

impl PartitionLog {
    /// Remembers the current producer state as the state at the start of the segment based
    /// at `segment_base_offset` (just created, or about to be scanned at open).
    pub(crate) fn snapshot_producers(&mut self, segment_base_offset: i64) {
        self.producer_snapshots
            .retain(|snapshot| snapshot.segment_base_offset < segment_base_offset);
        if self.producer_snapshots.len() == PRODUCER_SNAPSHOTS_MAX {
            self.producer_snapshots.pop_front();
        }
        self.producer_snapshots.push_back(ProducerSnapshot {
            segment_base_offset,
            producers: self.producers.clone(),
        });
    }

    /// Drops snapshots of segments that no longer exist.
    pub(crate) fn forget_removed_snapshots(&mut self) {
        let segments = &self.segments;
        self.producer_snapshots.retain(|snapshot| {
            segments
                .iter()
                .any(|segment| segment.base_offset() == snapshot.segment_base_offset)
        });
    }

    /// The producer state before the first batch of segment `index`: its snapshot, or a
    /// replay of the batch headers of every earlier segment.
    pub(crate) fn producers_at_segment_start(
        &self,
        index: usize,
    ) -> Result<ProducerStateTable, LogError> {
        let base = self.segments[index].base_offset();
        if let Some(snapshot) = self
            .producer_snapshots
            .iter()
            .find(|snapshot| snapshot.segment_base_offset == base)
        {
            return Ok(snapshot.producers.clone());
        }
        let mut producers = ProducerStateTable::default();
        for segment in &self.segments[..index] {
            self.replay_headers(segment, &mut producers)?;
        }
        if index > 0 {
            tracing::info!(
                partition = %self.name,
                segment_count = index,
                "rebuilt producer state from batch headers (no snapshot of the segment being cut)"
            );
        }
        Ok(producers)
    }

    /// Replays every batch header of `segment` into `producers`.
    fn replay_headers(
        &self,
        segment: &Segment,
        producers: &mut ProducerStateTable,
    ) -> Result<(), LogError> {
        let end_position = segment.cursor.size_bytes;
        let mut position = 0u64;
        while position < end_position {
            let header =
                read_header_at(segment.file.file(), position, end_position).map_err(|error| {
                    match error {
                        HeaderReadError::Io(source) => self.io(segment.base_offset(), source),
                        HeaderReadError::Damage(damage) => LogError::Corrupt {
                            partition: self.name.clone(),
                            file: segment.file.path().to_path_buf(),
                            position,
                            damage,
                        },
                    }
                })?;
            producers.replay(
                header.producer_id,
                header.producer_epoch,
                batch_metadata(header.base_sequence, header.base_offset, header.last_offset),
            );
            position += header.size_bytes;
        }
        Ok(())
    }
}

/// What the producer table records about a batch found in the log.
pub(crate) fn batch_metadata(
    base_sequence: i32,
    base_offset: i64,
    last_offset: i64,
) -> BatchMetadata {
    let delta = i32::try_from(last_offset - base_offset).unwrap_or(i32::MAX);
    BatchMetadata {
        first_sequence: base_sequence,
        last_sequence: last_sequence(base_sequence, delta),
        base_offset,
        last_offset,
    }
}
