//! Append throughput of the engine against its floor, in one run.
//!
//! For 1 KiB records in 16 KiB, 64 KiB and 1 MiB batches, under `flush=never` and
//! `flush=always`: the engine (one shard, appends issued on the shard itself, one at a time)
//! versus the floor, the same bytes written with a plain `pwrite` loop (plus `fdatasync` per
//! batch for `always`) to a file on the same disk. Rounds alternate floor and engine so that
//! background load and page-cache state hit both alike; the median round of each is reported.
//!
//! Run (release, pinned to one core):
//!   taskset -c 0 cargo bench -p spate-engine --bench append
//! Options: `--quick` (fewer bytes per round); `SPATE_BENCH_DIR` picks the disk (default: the
//! system temp dir).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench may unwrap

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use spate_engine::log::fixture::TestBatch;
use spate_engine::{
    Engine, EngineConfig, FlushPolicy, LocalBoxFuture, LogConfig, ShardContext, ShardId,
    TopicPartition,
};

const RECORD_SIZE_BYTES: usize = 1024;
const BATCH_SIZES_BYTES: [usize; 3] = [16 << 10, 64 << 10, 1 << 20];
const ROUND_COUNT: usize = 7;

struct Case {
    batch_size_bytes: usize,
    flush: FlushPolicy,
}

impl Case {
    /// Batches per round: enough bytes to swamp per-round overhead, few enough that a round
    /// of fdatasyncs (~5-10 ms each on this kind of VM disk) stays around a second.
    fn batch_count(&self, quick: bool) -> usize {
        let count = match self.flush {
            FlushPolicy::Always => 100,
            _ => (128 << 20) / self.batch_size_bytes,
        };
        if quick { (count / 8).max(8) } else { count }
    }

    fn name(&self) -> String {
        let policy = match self.flush {
            FlushPolicy::Always => "always",
            FlushPolicy::Never => "never",
            FlushPolicy::IntervalMs(_) => "interval",
        };
        format!("{:>4} KiB flush={policy}", self.batch_size_bytes >> 10)
    }
}

fn template_batch(batch_size_bytes: usize) -> Bytes {
    let record_count = batch_size_bytes / RECORD_SIZE_BYTES;
    TestBatch::new(record_count, RECORD_SIZE_BYTES, 1_700_000_000_000)
        .encode()
        .freeze()
}

/// Uniquely owned copies, so the engine rewrites offsets in place as it does for a buffer
/// freshly read from a socket. Built outside the timed region.
fn fresh_pool(template: &Bytes, count: usize) -> Vec<Bytes> {
    (0..count)
        .map(|_| BytesMut::from(&template[..]).freeze())
        .collect()
}

/// The floor writes one cache-hot buffer `batch_count` times: the best a plain `pwrite` loop
/// can do with these bytes. (Writing cold pool buffers instead made the floor *slower* than
/// the engine, whose CRC check warms each batch just before the kernel copies it.)
fn floor_round(path: &Path, batch: &Bytes, batch_count: usize, sync: bool) -> Duration {
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(path)
        .unwrap();
    let started = Instant::now();
    let mut position = 0u64;
    for _ in 0..batch_count {
        file.write_all_at(batch, position).unwrap();
        if sync {
            file.sync_data().unwrap();
        }
        position += batch.len() as u64;
    }
    let elapsed = started.elapsed();
    drop(file);
    std::fs::remove_file(path).unwrap();
    elapsed
}

fn engine_round(engine: &Engine, tp: &TopicPartition, pool: Vec<Bytes>) -> Duration {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let task_engine = engine.clone();
    let task_tp = tp.clone();
    runtime.block_on(async move {
        engine
            .invoke_on(ShardId(0), move |_: &ShardContext| {
                Box::pin(async move {
                    let started = Instant::now();
                    for batch in pool {
                        task_engine.append(&task_tp, batch).await.unwrap();
                    }
                    started.elapsed()
                }) as LocalBoxFuture<'static, Duration>
            })
            .await
            .unwrap()
    })
}

/// Writes back every dirty page (untimed), so that no round pays for the previous one's
/// writeback or hits the dirty-page throttle because of it.
fn settle_page_cache() {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

fn run_case(case: &Case, root: &Path, quick: bool) -> (f64, f64) {
    let template = template_batch(case.batch_size_bytes);
    let batch_count = case.batch_count(quick);
    let round_bytes = (template.len() * batch_count) as f64;
    let case_dir = root.join(format!("case-{}-{}", case.batch_size_bytes, batch_count));
    let _ = std::fs::remove_dir_all(&case_dir);
    std::fs::create_dir_all(&case_dir).unwrap();

    let mut config = EngineConfig::new(case_dir.join("engine"));
    config.shard_count = 1;
    let engine = Engine::start(config).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let floor_path = case_dir.join("floor.bin");
    let mut floor_mb_per_s = Vec::new();
    let mut engine_mb_per_s = Vec::new();
    for round in 0..ROUND_COUNT {
        // A fresh partition per round, so both sides start from an empty file.
        let tp = TopicPartition::new("bench", round as i32);
        let log_config = LogConfig {
            flush: case.flush,
            segment_bytes: 1 << 30,
            retention_ms: -1,
            // A 1 MiB batch of 1 KiB records is a little over Kafka's 1 MB default.
            max_message_bytes: 2 << 20,
            ..LogConfig::default()
        };
        runtime
            .block_on(engine.create_partition(tp.clone(), log_config))
            .unwrap();
        let sync = case.flush == FlushPolicy::Always;
        let mut run_floor = || {
            settle_page_cache();
            let elapsed = floor_round(&floor_path, &template, batch_count, sync);
            floor_mb_per_s.push(round_bytes / elapsed.as_secs_f64() / 1e6);
        };
        let mut run_engine = || {
            let pool = fresh_pool(&template, batch_count);
            settle_page_cache();
            let elapsed = engine_round(&engine, &tp, pool);
            engine_mb_per_s.push(round_bytes / elapsed.as_secs_f64() / 1e6);
        };
        if std::env::var_os("SPATE_BENCH_FLOOR_ONLY").is_some() {
            run_floor();
            run_floor();
        } else if round % 2 == 0 {
            run_floor();
            run_engine();
        } else {
            run_engine();
            run_floor();
        }
        runtime.block_on(engine.delete_partition(&tp)).unwrap();
    }
    if std::env::var_os("SPATE_BENCH_VERBOSE").is_some() {
        println!("  engine rounds MB/s {engine_mb_per_s:.1?}");
        println!("  floor  rounds MB/s {floor_mb_per_s:.1?}");
    }
    runtime.block_on(engine.clone().shutdown());
    let _ = std::fs::remove_dir_all(&case_dir);
    (median(engine_mb_per_s), median(floor_mb_per_s))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    // `cargo bench` passes `--bench`; a name filter narrows cases like "64" or "always".
    let filter = args.iter().skip(1).find(|a| !a.starts_with("--")).cloned();
    let root: PathBuf = std::env::var_os("SPATE_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join(format!("spate-append-bench-{}", std::process::id()));
    println!(
        "append bench: 1 KiB records, one shard, {ROUND_COUNT} alternating rounds, median; dir {}",
        root.display()
    );
    println!(
        "{:<22} {:>12} {:>12} {:>8}",
        "case", "engine MB/s", "floor MB/s", "ratio"
    );
    for flush in [FlushPolicy::Never, FlushPolicy::Always] {
        for batch_size_bytes in BATCH_SIZES_BYTES {
            let case = Case {
                batch_size_bytes,
                flush,
            };
            if let Some(filter) = &filter
                && !case.name().contains(filter.as_str())
            {
                continue;
            }
            let (engine, floor) = run_case(&case, &root, quick);
            println!(
                "{:<22} {:>12.1} {:>12.1} {:>8.3}",
                case.name(),
                engine,
                floor,
                engine / floor
            );
        }
    }
    let _ = std::fs::remove_dir_all(&root);
}
