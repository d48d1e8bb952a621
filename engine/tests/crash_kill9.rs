//! Durability under `kill -9`: every append the engine acknowledged under `flush=always`
//! survives a SIGKILL at any moment, byte for byte, and recovery serves nothing torn.
//!
//! The test re-executes its own binary as a child (`crash_child_appender`, ignored when run
//! directly) that appends from several concurrent producers through the `Engine` and prints
//! `ACK <base> <last> <crc32c of the stored batch>` after each append resolves. The parent
//! SIGKILLs it at a random moment, reopens the partition log, and checks that:
//! - offsets are dense and monotonic from 0 and every served batch passes its CRC;
//! - every batch ever acknowledged is there, at its offsets, byte-identical;
//! - the log ends at or after the last acknowledged offset, and nothing past it is torn.
//!
//! `SPATE_CRASH_KILLS` sets the kill count (30 here); `scripts/soak-crash.sh` runs thousands
//! through the ignored `crash_kill9_soak`. `SPATE_CRASH_SEED` replays a run.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may unwrap

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use spate_engine::log::PartitionLog;
use spate_engine::log::fixture::TestBatch;
use spate_engine::{Engine, EngineConfig, EngineError, FlushPolicy, LogConfig, TopicPartition};
use spate_protocol::records::Batches;

const CHILD_DIR_ENV: &str = "SPATE_CRASH_CHILD_DIR";
const CHILD_SEED_ENV: &str = "SPATE_CRASH_CHILD_SEED";
const PRODUCER_COUNT: u64 = 4;
const KILLS_DEFAULT: usize = 30;
const SOAK_KILLS_DEFAULT: usize = 2_000;

fn topic_partition() -> TopicPartition {
    TopicPartition::new("crash", 0)
}

/// Small segments so that kills also land around rolls.
fn log_config() -> LogConfig {
    LogConfig {
        segment_bytes: 256 << 10,
        flush: FlushPolicy::Always,
        ..LogConfig::default()
    }
}

/// xorshift64*: deterministic from a seed, enough for picking sizes and sleep times.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound.max(1)
    }
}

/// The batch as the log stores it: the producer's bytes with baseOffset rewritten.
fn stored_checksum(batch: &Bytes, base_offset: i64) -> u32 {
    let mut bytes = batch.to_vec();
    bytes[..8].copy_from_slice(&base_offset.to_be_bytes());
    crc32c::crc32c(&bytes)
}

#[test]
#[ignore = "the child process of the crash tests; they run it"]
fn crash_child_appender() {
    let Some(dir) = std::env::var_os(CHILD_DIR_ENV) else {
        return;
    };
    let seed: u64 = std::env::var(CHILD_SEED_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        let mut config = EngineConfig::new(&dir);
        config.shard_count = 1;
        config.pin_threads = false;
        config.default_log_config = log_config();
        let engine = Engine::start(config).unwrap();
        match engine
            .create_partition(topic_partition(), log_config())
            .await
        {
            Ok(_) | Err(EngineError::PartitionExists(_)) => {}
            Err(error) => panic!("create: {error}"),
        }
        println!("READY");
        let mut producers = Vec::new();
        for producer in 0..PRODUCER_COUNT {
            let engine = engine.clone();
            producers.push(tokio::task::spawn_local(async move {
                let mut rng = Rng(seed.wrapping_mul(31).wrapping_add(producer) | 1);
                let tp = topic_partition();
                loop {
                    let record_count = 1 + rng.below(20) as usize;
                    let value_size_bytes = 1 + rng.below(2_000) as usize;
                    let mut batch =
                        TestBatch::new(record_count, value_size_bytes, 1_700_000_000_000);
                    for value in &mut batch.values {
                        for byte in value.iter_mut() {
                            *byte = rng.next() as u8;
                        }
                    }
                    let bytes = batch.encode().freeze();
                    let outcome = engine.append(&tp, bytes.clone()).await.unwrap();
                    let line = format!(
                        "ACK {} {} {}\n",
                        outcome.base_offset,
                        outcome.last_offset,
                        stored_checksum(&bytes, outcome.base_offset)
                    );
                    let mut stdout = std::io::stdout().lock();
                    stdout.write_all(line.as_bytes()).unwrap();
                    stdout.flush().unwrap();
                }
            }));
        }
        for producer in producers {
            let _ = producer.await;
        }
    });
}

/// One acknowledged batch: last offset and checksum of its stored bytes.
type Acked = BTreeMap<i64, (i64, u32)>;

/// Runs the child once and kills it after `kill_after`; returns the acks it printed.
fn run_child_and_kill(dir: &Path, seed: u64, kill_after: Duration) -> Vec<(i64, i64, u32)> {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args([
            "crash_child_appender",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR_ENV, dir)
        .env(CHILD_SEED_ENV, seed.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut acks = Vec::new();
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            // A line cut by the kill has no newline and was never fully reported.
            if line.last() != Some(&b'\n') {
                break;
            }
            let text = String::from_utf8_lossy(&line);
            let fields: Vec<&str> = text.split_whitespace().collect();
            if let ["ACK", base, last, checksum] = fields.as_slice() {
                acks.push((
                    base.parse().unwrap(),
                    last.parse().unwrap(),
                    checksum.parse().unwrap(),
                ));
            }
        }
        acks
    });
    std::thread::sleep(kill_after);
    let still_running = child.try_wait().unwrap().is_none();
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(still_running, "the child exited before it was killed");
    reader.join().unwrap()
}

/// Reopens the log as the next start would, and checks it against everything acknowledged.
fn verify(dir: &Path, acked: &Acked, seed: u64, kill_index: usize) {
    let context = format!("seed {seed}, after kill {kill_index}");
    let partition_dir = dir.join(topic_partition().dir_name());
    if !partition_dir.exists() {
        assert!(
            acked.is_empty(),
            "{context}: acknowledged data but no partition folder"
        );
        return;
    }
    let log = PartitionLog::open(
        &partition_dir,
        topic_partition(),
        log_config(),
        1_700_000_000_000,
    )
    .unwrap_or_else(|error| panic!("{context}: reopen failed: {error}"));
    let log_end = log.log_end_offset();
    assert_eq!(
        log.high_watermark(),
        log_end,
        "{context}: recovered log is all visible"
    );
    let read = log.read(0, u32::MAX).unwrap();
    let mut served: BTreeMap<i64, (i64, u32)> = BTreeMap::new();
    let mut next_offset = 0i64;
    for slice in &read.slices {
        let mut bytes = vec![0u8; slice.len as usize];
        slice
            .segment
            .file()
            .read_exact_at(&mut bytes, slice.position)
            .unwrap();
        for batch in Batches::new(&bytes) {
            let (start, summary) =
                batch.unwrap_or_else(|error| panic!("{context}: torn batch served: {error}"));
            assert_eq!(
                summary.base_offset, next_offset,
                "{context}: offsets not dense"
            );
            let last = summary.base_offset + i64::from(summary.last_offset_delta);
            let checksum = crc32c::crc32c(&bytes[start..start + summary.size_bytes]);
            served.insert(summary.base_offset, (last, checksum));
            next_offset = last + 1;
        }
    }
    assert_eq!(
        next_offset, log_end,
        "{context}: served batches end at the log end"
    );
    for (base, (last, checksum)) in acked {
        match served.get(base) {
            Some(found) => assert_eq!(
                found,
                &(*last, *checksum),
                "{context}: batch at {base} changed"
            ),
            None => panic!(
                "{context}: acknowledged batch at {base}..={last} is gone (log end {log_end})"
            ),
        }
    }
    drop(log);
}

fn crash_many_times(kill_count: usize) {
    let seed: u64 = std::env::var("SPATE_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("crash test seed {seed} (SPATE_CRASH_SEED replays it), {kill_count} kills");
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(seed);
    let mut acked: Acked = BTreeMap::new();
    let started = Instant::now();
    for kill_index in 0..kill_count {
        // Mostly mid-append; one kill in five lands during start and recovery.
        let kill_after = if rng.below(5) == 0 {
            Duration::from_millis(rng.below(40))
        } else {
            Duration::from_millis(40 + rng.below(120))
        };
        let acks = run_child_and_kill(dir.path(), rng.next(), kill_after);
        for (base, last, checksum) in acks {
            if let Some(previous) = acked.insert(base, (last, checksum)) {
                panic!("seed {seed}: offset {base} acknowledged twice ({previous:?})");
            }
        }
        verify(dir.path(), &acked, seed, kill_index);
    }
    let acked_batch_count = acked.len();
    eprintln!(
        "{kill_count} kills, {acked_batch_count} acknowledged batches verified in {:?}",
        started.elapsed()
    );
    assert!(
        acked_batch_count > 0,
        "the child never acknowledged anything"
    );
}

#[test]
fn acknowledged_appends_survive_sigkill_at_random_moments() {
    let kill_count = std::env::var("SPATE_CRASH_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(KILLS_DEFAULT);
    crash_many_times(kill_count);
}

#[test]
#[ignore = "soak: thousands of kills; run by scripts/soak-crash.sh"]
fn crash_kill9_soak() {
    let kill_count = std::env::var("SPATE_CRASH_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(SOAK_KILLS_DEFAULT);
    crash_many_times(kill_count);
}
