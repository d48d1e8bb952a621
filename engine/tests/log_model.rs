//! Model test of the partition log: random sequences of append, read, truncate, roll,
//! retention, DeleteRecords, checkpoints (which seal segments), aborted appends, close/reopen
//! and crash/reopen, checked after every step against a plain `Vec` of
//! batches. Small segments and a small index interval make rolls and index lookups frequent.

// Test helpers outside #[test] functions: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::FileExt;
use std::path::Path;

use proptest::prelude::*;
use spate_engine::log::fixture::TestBatch;
use spate_engine::log::{PartitionLog, ReadError, StagedAppend, apply_writes_blocking};
use spate_engine::{FlushPolicy, LogConfig, TopicPartition};

const NOW_MS: i64 = 1_700_000_000_000;

#[derive(Debug, Clone)]
enum Op {
    /// One append of several batches: (record count, value size) each.
    Append(Vec<(usize, usize)>),
    /// Read at a point picked in [log start, log end + 2) by the fraction, with a byte budget.
    Read {
        pick: f64,
        max_bytes: u32,
    },
    Truncate {
        pick: f64,
    },
    Roll,
    Retention {
        retention_bytes: i64,
    },
    Reopen,
    Checkpoint,
    /// Drop without `close`: no checkpoint, no index files written.
    CrashReopen,
    TimestampLookup {
        pick: f64,
    },
    DeleteRecords {
        pick: f64,
    },
    /// Stage two appends; complete the first, tear the second's write and abort it.
    AbortSecondOfTwo(Vec<(usize, usize)>, Vec<(usize, usize)>),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => shapes().prop_map(Op::Append),
        3 => (0.0..1.0f64, 0u32..1500).prop_map(|(pick, max_bytes)| Op::Read { pick, max_bytes }),
        1 => (0.0..1.0f64).prop_map(|pick| Op::Truncate { pick }),
        1 => Just(Op::Roll),
        1 => (0i64..2000).prop_map(|retention_bytes| Op::Retention { retention_bytes }),
        1 => Just(Op::Reopen),
        1 => Just(Op::Checkpoint),
        1 => Just(Op::CrashReopen),
        1 => (0.0..1.0f64).prop_map(|pick| Op::TimestampLookup { pick }),
        1 => (0.0..1.0f64).prop_map(|pick| Op::DeleteRecords { pick }),
        1 => (shapes(), shapes()).prop_map(|(first, second)| Op::AbortSecondOfTwo(first, second)),
    ]
}

fn shapes() -> impl Strategy<Value = Vec<(usize, usize)>> {
    prop::collection::vec((1usize..4, 0usize..150), 1..3)
}

#[derive(Debug, Clone)]
struct ModelBatch {
    base_offset: i64,
    last_offset: i64,
    max_timestamp_ms: i64,
    bytes: Vec<u8>,
}

#[derive(Debug, Default)]
struct Model {
    batches: Vec<ModelBatch>,
    log_start_offset: i64,
    log_end_offset: i64,
}

fn config(flush: FlushPolicy) -> LogConfig {
    LogConfig {
        segment_bytes: 700,
        index_interval_bytes: 150,
        flush,
        ..LogConfig::default()
    }
}

fn open(dir: &Path, flush: FlushPolicy) -> PartitionLog {
    PartitionLog::open(dir, TopicPartition::new("model", 0), config(flush), NOW_MS).unwrap()
}

fn read_all(log: &PartitionLog, offset: i64, max_bytes: u32) -> Result<Vec<u8>, ReadError> {
    let result = log.read(offset, max_bytes)?;
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
    Ok(bytes)
}

fn pick_offset(model: &Model, pick: f64, past_end: i64) -> i64 {
    let span = model.log_end_offset + past_end - model.log_start_offset;
    model.log_start_offset + ((span as f64) * pick) as i64
}

/// Forgets the batches of segments the log deleted (the model does not know segment bounds).
fn drop_deleted_segments(log: &PartitionLog, model: &mut Model) {
    let first_base = log.segment_base_offsets()[0];
    assert!(
        first_base <= model.log_start_offset,
        "no readable batch is deleted"
    );
    model.batches.retain(|b| b.base_offset >= first_base);
}

fn check_invariants(log: &PartitionLog, model: &Model) {
    assert_eq!(log.log_start_offset(), model.log_start_offset);
    assert_eq!(log.log_end_offset(), model.log_end_offset);
    assert_eq!(log.high_watermark(), model.log_end_offset);
    let stored: usize = model.batches.iter().map(|b| b.bytes.len()).sum();
    assert_eq!(log.size_bytes(), stored as u64);
    let expected: Vec<u8> = model
        .batches
        .iter()
        .filter(|b| b.last_offset >= model.log_start_offset)
        .flat_map(|b| b.bytes.clone())
        .collect();
    let actual = read_all(log, model.log_start_offset, u32::MAX).unwrap();
    assert_eq!(actual, expected, "whole log reads back byte-identical");
}

/// (record count, bytes, max timestamp) of each batch of a staged append.
type Pieces = Vec<(i64, usize, i64)>;

fn stage(
    log: &mut PartitionLog,
    shapes: &[(usize, usize)],
    timestamp_ms: &mut i64,
) -> (StagedAppend, Pieces) {
    let mut records = bytes::BytesMut::new();
    let mut pieces = Vec::new();
    for &(count, size) in shapes {
        *timestamp_ms += 10;
        let batch = TestBatch::new(count, size, *timestamp_ms).encode();
        pieces.push((count as i64, batch.len(), *timestamp_ms + count as i64 - 1));
        records.extend_from_slice(&batch);
    }
    (log.stage_append(records, NOW_MS).unwrap(), pieces)
}

fn record(model: &mut Model, staged: &StagedAppend, pieces: Pieces) {
    assert_eq!(staged.base_offset, model.log_end_offset);
    let written = &staged.writes[0].bytes;
    let mut position = 0;
    for (count, len, max_timestamp_ms) in pieces {
        let base_offset = model.log_end_offset;
        let bytes = written[position..position + len].to_vec();
        assert_eq!(&bytes[..8], &base_offset.to_be_bytes());
        model.batches.push(ModelBatch {
            base_offset,
            last_offset: base_offset + count - 1,
            max_timestamp_ms,
            bytes,
        });
        model.log_end_offset += count;
        position += len;
    }
    assert_eq!(staged.last_offset, model.log_end_offset - 1);
}

fn run(ops: Vec<Op>, flush: FlushPolicy) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), flush);
    let mut model = Model::default();
    let mut timestamp_ms = NOW_MS;
    for op in ops {
        match op {
            Op::Append(shapes) => {
                let (staged, pieces) = stage(&mut log, &shapes, &mut timestamp_ms);
                apply_writes_blocking(&mut log, &staged).unwrap();
                record(&mut model, &staged, pieces);
            }
            Op::AbortSecondOfTwo(first, second) => {
                let (kept, pieces) = stage(&mut log, &first, &mut timestamp_ms);
                let (torn, _) = stage(&mut log, &second, &mut timestamp_ms);
                // Seals the full segments below the high watermark; if the torn append rolled,
                // undoing it must reopen the sealed segment for appends.
                log.checkpoint().unwrap();
                let end_before = model.log_end_offset;
                assert_eq!(
                    log.high_watermark(),
                    end_before,
                    "staged appends are invisible"
                );
                assert_eq!(log.log_end_offset(), torn.last_offset + 1);
                let write = &kept.writes[0];
                write
                    .segment
                    .file()
                    .write_all_at(&write.bytes, write.position)
                    .unwrap();
                log.mark_written(kept.last_offset);
                log.mark_synced(kept.last_offset);
                let write = &torn.writes[0];
                let half = &write.bytes[..write.bytes.len() / 2];
                write
                    .segment
                    .file()
                    .write_all_at(half, write.position)
                    .unwrap();
                log.abort_staged(torn.base_offset).unwrap();
                record(&mut model, &kept, pieces);
                // A later append must reuse the aborted offsets and positions.
                let (next, pieces) = stage(&mut log, &second, &mut timestamp_ms);
                assert_eq!(next.base_offset, torn.base_offset);
                apply_writes_blocking(&mut log, &next).unwrap();
                record(&mut model, &next, pieces);
            }
            Op::Read { pick, max_bytes } => {
                let offset = pick_offset(&model, pick, 2);
                let result = read_all(&log, offset, max_bytes);
                if offset > model.log_end_offset {
                    assert!(matches!(result, Err(ReadError::OffsetOutOfRange { .. })));
                    continue;
                }
                let mut expected = Vec::new();
                for batch in model.batches.iter().filter(|b| b.last_offset >= offset) {
                    let fits = expected.len() + batch.bytes.len() <= max_bytes as usize;
                    if !fits && !expected.is_empty() {
                        break;
                    }
                    expected.extend_from_slice(&batch.bytes);
                    if !fits {
                        break;
                    }
                }
                assert_eq!(
                    result.unwrap(),
                    expected,
                    "read at {offset} max {max_bytes}"
                );
            }
            Op::Truncate { pick } => {
                // Sometimes below the log start, and below the first segment: the log then
                // restarts empty at the offset.
                let offset = (pick_offset(&model, pick, 3) - 2).max(0);
                let first_base = log.segment_base_offsets()[0];
                log.truncate_to(offset).unwrap();
                if offset < first_base {
                    model.batches.clear();
                    model.log_start_offset = offset;
                    model.log_end_offset = offset;
                } else if offset < model.log_end_offset {
                    model.batches.retain(|b| b.last_offset < offset);
                    model.log_end_offset = model
                        .batches
                        .last()
                        .map_or(first_base, |b| b.last_offset + 1);
                    model.log_start_offset = model.log_start_offset.min(model.log_end_offset);
                }
            }
            Op::Roll => log.roll(NOW_MS).unwrap(),
            Op::Checkpoint => log.checkpoint().unwrap(),
            Op::Retention { retention_bytes } => {
                log.set_config(LogConfig {
                    retention_bytes,
                    ..config(flush)
                });
                log.apply_retention(NOW_MS).unwrap();
                log.set_config(config(flush));
                let start = log.log_start_offset();
                assert!(start >= model.log_start_offset && start <= model.log_end_offset);
                assert!(
                    start == model.log_start_offset
                        || start == model.log_end_offset
                        || model.batches.iter().any(|b| b.base_offset == start),
                    "log start moves to a segment boundary"
                );
                model.log_start_offset = start;
                drop_deleted_segments(&log, &mut model);
            }
            Op::DeleteRecords { pick } => {
                let offset = pick_offset(&model, pick, 1);
                log.delete_records_before(offset).unwrap();
                model.log_start_offset = model.log_start_offset.max(offset);
                drop_deleted_segments(&log, &mut model);
            }
            Op::Reopen => {
                log.close().unwrap();
                log = open(dir.path(), flush);
            }
            Op::CrashReopen => {
                drop(log);
                log = open(dir.path(), flush);
            }
            Op::TimestampLookup { pick } => {
                let target = NOW_MS + ((timestamp_ms - NOW_MS + 20) as f64 * pick) as i64;
                let expected = model
                    .batches
                    .iter()
                    .filter(|b| b.last_offset >= model.log_start_offset)
                    .find(|b| b.max_timestamp_ms >= target)
                    .map(|b| {
                        let offset = b.base_offset.max(model.log_start_offset);
                        (offset, b.max_timestamp_ms)
                    });
                assert_eq!(log.offset_for_timestamp(target).unwrap(), expected);
            }
        }
        check_invariants(&log, &model);
    }
    log.close().unwrap();
}

/// Case count: `PROPTEST_CASES` for long local runs, a quick default for CI.
fn cases_or(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(default)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases_or(48), ..ProptestConfig::default() })]

    #[test]
    fn log_matches_model_under_flush_never(ops in prop::collection::vec(op(), 1..40)) {
        run(ops, FlushPolicy::Never);
    }

    #[test]
    fn log_matches_model_under_flush_always(ops in prop::collection::vec(op(), 1..25)) {
        run(ops, FlushPolicy::Always);
    }
}
