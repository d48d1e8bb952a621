//! Durability of follower appends under `kill -9`: every replica append the engine
//! acknowledged under `flush=always` survives a SIGKILL at any moment byte for byte, at the
//! leader's offsets, and the leader-epoch cache recovered with it names exactly the epochs
//! its batch headers carry (an epoch is persisted before its first batch is staged).
//!
//! Like `crash_kill9.rs`, the test re-executes its own binary as a child
//! (`crash_child_follower`, ignored when run directly). The child plays a follower: it builds
//! batches as a leader would have stored them (its base offsets, a new leader epoch per run
//! and every few appends) and appends them with `Engine::append_replica`, printing
//! `ACK <base> <last> <crc32c of the batch>` for each acknowledged batch. The parent kills it
//! at random moments, reopens the log and checks it. `SPATE_CRASH_SEED` replays a run.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may unwrap

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::BytesMut;
use spate_engine::log::fixture::TestBatch;
use spate_engine::log::{EpochEntry, PartitionLog};
use spate_engine::{Engine, EngineConfig, EngineError, FlushPolicy, LogConfig, TopicPartition};
use spate_protocol::records::Batches;

const CHILD_DIR_ENV: &str = "SPATE_CRASH_REPLICA_CHILD_DIR";
const CHILD_SEED_ENV: &str = "SPATE_CRASH_REPLICA_CHILD_SEED";
const KILL_COUNT: usize = 12;
const APPENDS_PER_EPOCH: u64 = 25;

fn topic_partition() -> TopicPartition {
    TopicPartition::new("follower", 0)
}

fn log_config() -> LogConfig {
    LogConfig {
        segment_bytes: 128 << 10,
        flush: FlushPolicy::Always,
        ..LogConfig::default()
    }
}

/// xorshift64*.
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

/// One to three batches as a leader stored them from `base_offset`, stamped with `epoch`.
fn leader_batches(rng: &mut Rng, base_offset: i64, epoch: i32) -> Vec<BytesMut> {
    let mut next = base_offset;
    (0..1 + rng.below(3))
        .map(|_| {
            let record_count = 1 + rng.below(10) as usize;
            let mut batch = TestBatch::new(record_count, 1 + rng.below(1_500) as usize, 1);
            for value in &mut batch.values {
                value.iter_mut().for_each(|byte| *byte = rng.next() as u8);
            }
            let mut bytes = batch.encode();
            bytes[0..8].copy_from_slice(&next.to_be_bytes());
            bytes[12..16].copy_from_slice(&epoch.to_be_bytes());
            next += record_count as i64;
            bytes
        })
        .collect()
}

#[test]
#[ignore = "the child process of the replica crash test; it runs it"]
fn crash_child_follower() {
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
    runtime.block_on(async move {
        let mut config = EngineConfig::new(&dir);
        config.shard_count = 1;
        config.pin_threads = false;
        config.default_log_config = log_config();
        let engine = Engine::start(config).unwrap();
        let tp = topic_partition();
        match engine.create_partition(tp.clone(), log_config()).await {
            Ok(_) | Err(EngineError::PartitionExists(_)) => {}
            Err(error) => panic!("create: {error}"),
        }
        let offsets = engine.offsets(&tp).await.unwrap();
        let mut next = offsets.log_end_offset;
        let mut epoch = offsets.latest_epoch.map_or(0, |e| e + 1);
        let mut rng = Rng(seed | 1);
        println!("READY");
        for append_index in 1u64.. {
            let batches = leader_batches(&mut rng, next, epoch);
            let mut records = BytesMut::new();
            batches.iter().for_each(|b| records.extend_from_slice(b));
            let outcome = engine.append_replica(&tp, records.freeze()).await.unwrap();
            assert_eq!(outcome.base_offset, next);
            let mut stdout = std::io::stdout().lock();
            for batch in &batches {
                let base = i64::from_be_bytes(batch[0..8].try_into().unwrap());
                let count = i64::from(i32::from_be_bytes(batch[57..61].try_into().unwrap()));
                let line = format!(
                    "ACK {base} {} {}\n",
                    base + count - 1,
                    crc32c::crc32c(batch)
                );
                stdout.write_all(line.as_bytes()).unwrap();
            }
            stdout.flush().unwrap();
            next = outcome.last_offset + 1;
            if append_index % APPENDS_PER_EPOCH == 0 {
                epoch += 1;
            }
        }
    });
}

fn run_child_and_kill(dir: &Path, seed: u64, kill_after: Duration) -> Vec<(i64, i64, u32)> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "crash_child_follower",
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
        let mut acks = Vec::new();
        let mut reader = BufReader::new(stdout);
        let mut line = Vec::new();
        while matches!(reader.read_until(b'\n', &mut line), Ok(n) if n > 0) {
            if line.last() != Some(&b'\n') {
                break; // cut by the kill: never fully reported
            }
            let text = String::from_utf8_lossy(&line).to_string();
            if let ["ACK", base, last, crc] = text.split_whitespace().collect::<Vec<_>>()[..] {
                acks.push((
                    base.parse().unwrap(),
                    last.parse().unwrap(),
                    crc.parse().unwrap(),
                ));
            }
            line.clear();
        }
        acks
    });
    std::thread::sleep(kill_after);
    let still_running = child.try_wait().unwrap().is_none();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(still_running, "the child exited before it was killed");
    reader.join().unwrap()
}

/// Reopens the log and checks it against every acknowledged batch and its own headers.
fn verify(dir: &Path, acked: &BTreeMap<i64, (i64, u32)>, context: &str) {
    let partition_dir = dir.join(topic_partition().dir_name());
    if !partition_dir.exists() {
        assert!(
            acked.is_empty(),
            "{context}: acknowledged data but no folder"
        );
        return;
    }
    let log = PartitionLog::open(&partition_dir, topic_partition(), log_config(), 1)
        .unwrap_or_else(|error| panic!("{context}: reopen failed: {error}"));
    let mut served = BTreeMap::new();
    let mut header_epochs: Vec<EpochEntry> = Vec::new();
    let mut next = 0i64;
    for slice in &log.read(0, u32::MAX).unwrap().slices {
        let mut bytes = vec![0u8; slice.len as usize];
        slice
            .segment
            .file()
            .read_exact_at(&mut bytes, slice.position)
            .unwrap();
        for batch in Batches::new(&bytes) {
            let (start, summary) = batch.unwrap_or_else(|e| panic!("{context}: torn: {e}"));
            assert_eq!(summary.base_offset, next, "{context}: offsets not dense");
            let stored = &bytes[start..start + summary.size_bytes];
            let epoch = i32::from_be_bytes(stored[12..16].try_into().unwrap());
            if header_epochs.last().is_none_or(|e| epoch > e.epoch) {
                header_epochs.push(EpochEntry {
                    epoch,
                    start_offset: summary.base_offset,
                });
            }
            next = summary.base_offset + i64::from(summary.last_offset_delta) + 1;
            served.insert(summary.base_offset, (next - 1, crc32c::crc32c(stored)));
        }
    }
    assert_eq!(
        next,
        log.log_end_offset(),
        "{context}: served up to the end"
    );
    for (base, expected) in acked {
        assert_eq!(
            served.get(base),
            Some(expected),
            "{context}: acknowledged batch at {base} lost or changed"
        );
    }
    assert_eq!(
        log.leader_epochs().entries(),
        &header_epochs[..],
        "{context}: the epoch cache names exactly the epochs in the headers"
    );
}

#[test]
fn acknowledged_replica_appends_and_their_epochs_survive_sigkill() {
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
    eprintln!("replica crash test seed {seed} (SPATE_CRASH_SEED replays it)");
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(seed);
    let mut acked: BTreeMap<i64, (i64, u32)> = BTreeMap::new();
    for kill_index in 0..KILL_COUNT {
        let kill_after = Duration::from_millis(30 + rng.below(150));
        for (base, last, crc) in run_child_and_kill(dir.path(), rng.next(), kill_after) {
            if let Some(previous) = acked.insert(base, (last, crc)) {
                panic!("seed {seed}: offset {base} acknowledged twice ({previous:?})");
            }
        }
        verify(
            dir.path(),
            &acked,
            &format!("seed {seed}, kill {kill_index}"),
        );
    }
    eprintln!(
        "{KILL_COUNT} kills, {} acknowledged batches verified",
        acked.len()
    );
    assert!(!acked.is_empty(), "the child never acknowledged anything");
}
