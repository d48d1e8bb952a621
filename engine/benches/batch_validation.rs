//! Batch validation on the append path: `check_batch` (header checks plus CRC-32C of the
//! whole batch), which every append pays before a byte reaches the log, against its floor,
//! a bare CRC-32C over the same bytes.
//!
//! The gap between the two is what validation adds beyond the checksum; the checksum itself
//! is what DESIGN.md requires. 1 KiB records in 16 KiB, 64 KiB and 1 MiB batches, the
//! sizes of `append.rs`, so the two benches can be read together.
//!
//! Run: `cargo bench -p spate-engine --bench batch_validation`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench may unwrap

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use spate_engine::log::fixture::batch_bytes;
use spate_protocol::records::check_batch;

const RECORD_SIZE_BYTES: usize = 1024;
const BATCH_SIZES_BYTES: [usize; 3] = [16 << 10, 64 << 10, 1 << 20];

/// Where the CRC-covered part of a v2 batch starts (after base offset, length, leader
/// epoch, magic and the CRC itself).
const CRC_START_BYTES: usize = 21;

fn validation(c: &mut Criterion) {
    let mut group = c.benchmark_group("batch_validation");
    for batch_size_bytes in BATCH_SIZES_BYTES {
        let batch =
            batch_bytes(batch_size_bytes / RECORD_SIZE_BYTES, RECORD_SIZE_BYTES, 0).freeze();
        let summary = check_batch(&batch).expect("the fixture writes valid batches");
        assert_eq!(summary.size_bytes, batch.len());
        group.throughput(Throughput::Bytes(batch.len() as u64));
        let label = format!("{} KiB", batch_size_bytes >> 10);
        group.bench_function(format!("check_batch {label}"), |b| {
            b.iter(|| check_batch(black_box(&batch)).unwrap())
        });
        group.bench_function(format!("floor: crc32c {label}"), |b| {
            b.iter(|| crc32c::crc32c(black_box(&batch[CRC_START_BYTES..])))
        });
    }
    group.finish();
}

criterion_group!(benches, validation);
criterion_main!(benches);
