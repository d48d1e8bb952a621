//! The log's replication surface: high watermark modes, bounded reads, follower appends,
//! truncation with producer and epoch state, and the epoch cache's recovery.

mod epochs;
mod high_watermark;
mod replica_appends;
mod truncation;

use bytes::Bytes;

use super::*;

/// A leader's log in its own folder: it stores batches the way a follower must copy them.
pub(super) struct Leader {
    _dir: tempfile::TempDir,
    pub log: PartitionLog,
}

impl Leader {
    pub fn new(config: LogConfig) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), config);
        Self { _dir: dir, log }
    }

    /// Appends as a leader does (offsets and the latest epoch stamped), written and synced.
    pub fn append(&mut self, records: BytesMut) -> StagedAppend {
        append(&mut self.log, records)
    }

    /// Every stored byte from the batch holding `offset` to the written end: what a
    /// follower fetching at `offset` receives.
    pub fn fetch(&self, offset: i64) -> Bytes {
        Bytes::from(read_bound_bytes(&self.log, offset, ReadBound::WrittenEnd))
    }
}

/// Stages a replica append and writes it with blocking I/O.
pub(super) fn replicate(log: &mut PartitionLog, records: Bytes) -> StagedAppend {
    let staged = log.stage_replica_append(records, NOW_MS).unwrap();
    apply_writes_blocking(log, &staged).unwrap();
    staged
}

pub(super) fn open_replicated(dir: &Path, config: LogConfig) -> PartitionLog {
    let mut log = open(dir, config);
    log.set_high_watermark_mode(HighWatermarkMode::Replicated)
        .unwrap();
    log
}

/// The bytes a read up to `bound` serves from `offset`.
pub(super) fn read_bound_bytes(log: &PartitionLog, offset: i64, bound: ReadBound) -> Vec<u8> {
    let result = log.read_bounded(offset, u32::MAX, bound).unwrap();
    let mut bytes = Vec::new();
    for slice in &result.slices {
        let mut chunk = vec![0u8; slice.len as usize];
        slice
            .segment
            .file()
            .read_exact_at(&mut chunk, slice.position)
            .unwrap();
        bytes.extend_from_slice(&chunk);
    }
    bytes
}

/// `partitionLeaderEpoch` of every batch in `bytes`.
pub(super) fn batch_epochs(bytes: &[u8]) -> Vec<i32> {
    spate_protocol::records::Batches::new(bytes)
        .map(|batch| {
            let (start, _) = batch.unwrap();
            let (header, _) = RecordBatchHeader::ref_from_prefix(&bytes[start..]).unwrap();
            header.partition_leader_epoch.get()
        })
        .collect()
}

/// An idempotent producer's batch of `record_count` records.
pub(super) fn idempotent(
    record_count: usize,
    producer_id: i64,
    epoch: i16,
    sequence: i32,
) -> BytesMut {
    TestBatch::new(record_count, 10, NOW_MS)
        .idempotent(producer_id, epoch, sequence)
        .encode()
}
