//! Unit tests of the partition log, driven with blocking writes.

mod appends;
mod producers;
mod reads;
mod replication;
mod retention;
mod segments;
mod truncation;

use std::os::unix::fs::FileExt;
use std::path::Path;

use bytes::BytesMut;
use spate_protocol::records::{RecordBatchHeader, TimestampType, check_batch};
use zerocopy::FromBytes;

use super::fixture::{TestBatch, batch_bytes};
use super::*;
use crate::{FlushPolicy, LogConfig, TopicPartition};

pub(super) const NOW_MS: i64 = 1_700_000_000_000;

pub(super) fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        index_interval_bytes: 128,
        ..LogConfig::default()
    }
}

pub(super) fn open(dir: &Path, config: LogConfig) -> PartitionLog {
    PartitionLog::open(dir, TopicPartition::new("t", 0), config, NOW_MS).unwrap()
}

pub(super) fn append(log: &mut PartitionLog, records: BytesMut) -> StagedAppend {
    let staged = log.stage_append(records, NOW_MS).unwrap();
    apply_writes_blocking(log, &staged).unwrap();
    staged
}

pub(super) fn read_bytes(log: &PartitionLog, offset: i64, max_bytes: u32) -> Vec<u8> {
    let result = log.read(offset, max_bytes).unwrap();
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

/// (base offset, last offset) of every batch in `bytes`.
pub(super) fn batch_offsets(bytes: &[u8]) -> Vec<(i64, i64)> {
    spate_protocol::records::Batches::new(bytes)
        .map(|batch| {
            let (_, summary) = batch.unwrap();
            (
                summary.base_offset,
                summary.base_offset + i64::from(summary.last_offset_delta),
            )
        })
        .collect()
}
