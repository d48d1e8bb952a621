//! A follower's log against its leader, under random replication, divergence, truncation,
//! high watermark moves and restarts.
//!
//! Oracles, checked after every step:
//! - the follower holds a byte-identical prefix of the leader's log (up to where it diverged);
//! - `log_start <= high_watermark <= stable_end <= written_end <= log_end`;
//! - its idempotent-producer state equals what recovery rebuilds from the same files (a
//!   fresh open of a copy of the folder): truncation must rebuild it exactly, not
//!   approximately, or retries across a failover are answered wrongly;
//! - its leader-epoch cache names exactly the epochs its batch headers carry (plus, at most,
//!   an epoch started at the log end with no batch yet).

#![allow(clippy::unwrap_used)] // tests may unwrap

use std::os::unix::fs::FileExt;
use std::path::Path;

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use spate_engine::log::fixture::TestBatch;
use spate_engine::log::{EpochEntry, PartitionLog, ReadBound, apply_writes_blocking};
use spate_engine::{HighWatermarkMode, LogConfig, TopicPartition};
use spate_protocol::records::Batches;

const NOW_MS: i64 = 1_700_000_000_000;
const PRODUCER_COUNT: i64 = 3;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        index_interval_bytes: 128,
        ..LogConfig::default()
    }
}

fn open(dir: &Path) -> PartitionLog {
    PartitionLog::open(dir, TopicPartition::new("f", 0), config(), NOW_MS).unwrap()
}

#[derive(Debug, Clone)]
enum Op {
    /// The leader appends a batch (idempotent from producer `producer`, or plain).
    LeaderAppend {
        producer: Option<i64>,
        record_count: usize,
    },
    /// The leader starts a new epoch.
    LeaderEpoch,
    /// The follower copies up to `batch_count` batches from its log end, if it is a prefix.
    CatchUp {
        batch_count: usize,
    },
    /// The follower, briefly a leader in an epoch the leader never saw, appends its own batch.
    Diverge {
        producer: Option<i64>,
    },
    /// The follower truncates to a point in its log (or to where it diverged).
    Truncate {
        pick: f64,
        to_divergence: bool,
    },
    SetHighWatermark {
        pick: f64,
    },
    Reopen,
    CrashReopen,
}

fn op() -> impl Strategy<Value = Op> {
    let producer = prop::option::weighted(0.7, 0..PRODUCER_COUNT);
    prop_oneof![
        5 => (producer.clone(), 1usize..4)
            .prop_map(|(producer, record_count)| Op::LeaderAppend { producer, record_count }),
        1 => Just(Op::LeaderEpoch),
        4 => (1usize..6).prop_map(|batch_count| Op::CatchUp { batch_count }),
        2 => producer.prop_map(|producer| Op::Diverge { producer }),
        2 => (0.0..1.0f64, any::<bool>())
            .prop_map(|(pick, to_divergence)| Op::Truncate { pick, to_divergence }),
        2 => (0.0..1.2f64).prop_map(|pick| Op::SetHighWatermark { pick }),
        1 => Just(Op::Reopen),
        1 => Just(Op::CrashReopen),
    ]
}

struct World {
    _leader_dir: tempfile::TempDir,
    leader: PartitionLog,
    leader_epoch: i32,
    /// Next sequence per producer, as the producers see it (they only learn from the leader).
    sequences: Vec<i32>,
    follower_dir: tempfile::TempDir,
    /// `None` only while it is being reopened.
    follower_log: Option<PartitionLog>,
    /// The follower's log is the leader's up to here; past it, its own batches.
    diverged_at: Option<i64>,
}

fn read_all(log: &PartitionLog, offset: i64) -> Vec<u8> {
    let mut bytes = Vec::new();
    for slice in &log
        .read_bounded(offset, u32::MAX, ReadBound::WrittenEnd)
        .unwrap()
        .slices
    {
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

fn append_as_leader(log: &mut PartitionLog, records: BytesMut) {
    let staged = log.stage_append(records, NOW_MS).unwrap();
    apply_writes_blocking(log, &staged).unwrap();
}

fn batch(producer: Option<i64>, record_count: usize, sequences: &mut [i32]) -> BytesMut {
    let batch = TestBatch::new(record_count, 60, NOW_MS);
    match producer {
        Some(id) => {
            let sequence = &mut sequences[id as usize];
            let first = *sequence;
            *sequence += record_count as i32;
            batch.idempotent(100 + id, 0, first).encode()
        }
        None => batch.encode(),
    }
}

impl World {
    fn new() -> Self {
        let leader_dir = tempfile::tempdir().unwrap();
        let mut leader = open(leader_dir.path());
        leader.assign_epoch(0, 0).unwrap();
        let mut world = Self {
            _leader_dir: leader_dir,
            leader,
            leader_epoch: 0,
            sequences: vec![0; PRODUCER_COUNT as usize],
            follower_dir: tempfile::tempdir().unwrap(),
            follower_log: None,
            diverged_at: None,
        };
        world.reopen_follower(true);
        world
    }

    fn follower(&self) -> &PartitionLog {
        self.follower_log.as_ref().unwrap()
    }

    fn follower_mut(&mut self) -> &mut PartitionLog {
        self.follower_log.as_mut().unwrap()
    }

    fn reopen_follower(&mut self, crash: bool) {
        if let Some(old) = self.follower_log.take() {
            if crash {
                drop(old);
            } else {
                old.close().unwrap();
            }
        }
        let mut log = open(self.follower_dir.path());
        log.set_high_watermark_mode(HighWatermarkMode::Replicated)
            .unwrap();
        self.follower_log = Some(log);
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::LeaderAppend {
                producer,
                record_count,
            } => {
                let records = batch(producer, record_count, &mut self.sequences);
                append_as_leader(&mut self.leader, records);
            }
            Op::LeaderEpoch => {
                // Leave room for the epoch a diverging follower uses.
                self.leader_epoch += 2;
                let end = self.leader.log_end_offset();
                self.leader.assign_epoch(self.leader_epoch, end).unwrap();
            }
            Op::CatchUp { batch_count } => {
                let end = self.follower().log_end_offset();
                if self.diverged_at.is_some() || end >= self.leader.log_end_offset() {
                    return;
                }
                let fetched = Bytes::from(read_all(&self.leader, end));
                let len: usize = Batches::new(&fetched)
                    .take(batch_count)
                    .map(|b| b.unwrap().1.size_bytes)
                    .sum();
                let follower = self.follower_mut();
                let staged = follower
                    .stage_replica_append(fetched.slice(..len), NOW_MS)
                    .unwrap();
                apply_writes_blocking(follower, &staged).unwrap();
            }
            Op::Diverge { producer } => {
                let epoch = self.leader_epoch + 1;
                let follower = self.follower_mut();
                let end = follower.log_end_offset();
                follower.assign_epoch(epoch, end).unwrap();
                // Producers writing to it while it believed it led: their next sequences by
                // its own state, never seen by the leader.
                let mut sequences: Vec<i32> = (0..PRODUCER_COUNT)
                    .map(|id| {
                        follower
                            .producer_state()
                            .get(100 + id)
                            .and_then(|entry| entry.batches.back())
                            .map_or(0, |b| b.last_sequence + 1)
                    })
                    .collect();
                append_as_leader(follower, batch(producer, 2, &mut sequences));
                self.diverged_at.get_or_insert(end);
            }
            Op::Truncate {
                pick,
                to_divergence,
            } => {
                let diverged_at = self.diverged_at;
                let follower = self.follower_mut();
                let end = follower.log_end_offset();
                let offset = match (to_divergence, diverged_at) {
                    (true, Some(at)) => at,
                    _ => (end as f64 * pick) as i64,
                };
                follower.truncate_to(offset).unwrap();
                let end = follower.log_end_offset();
                if diverged_at.is_some_and(|at| end <= at) {
                    self.diverged_at = None;
                }
            }
            Op::SetHighWatermark { pick } => {
                let follower = self.follower_mut();
                let target = (follower.log_end_offset() as f64 * pick) as i64;
                let applied = follower.set_high_watermark(target).unwrap();
                assert!(applied <= target.max(follower.log_start_offset()));
                assert!(applied <= follower.stable_end());
            }
            Op::Reopen => self.reopen_follower(false),
            Op::CrashReopen => self.reopen_follower(true),
        }
    }

    fn check(&self) {
        let log = self.follower();
        let marks = [
            log.log_start_offset(),
            log.high_watermark(),
            log.stable_end(),
            log.written_end(),
            log.log_end_offset(),
        ];
        assert!(marks.windows(2).all(|w| w[0] <= w[1]), "marks {marks:?}");
        let bytes = read_all(log, log.log_start_offset());
        let shared = self.diverged_at.unwrap_or(log.log_end_offset());
        let leader_bytes = read_all(&self.leader, 0);
        let mut header_epochs: Vec<EpochEntry> = Vec::new();
        let mut position = 0;
        for batch in Batches::new(&bytes) {
            let (start, summary) = batch.unwrap();
            let stored = &bytes[start..start + summary.size_bytes];
            if summary.base_offset < shared {
                assert_eq!(
                    &leader_bytes[start..start + summary.size_bytes],
                    stored,
                    "batch at {} differs from the leader's",
                    summary.base_offset
                );
            }
            let epoch = i32::from_be_bytes(stored[12..16].try_into().unwrap());
            if header_epochs.last().is_none_or(|e| epoch > e.epoch) {
                header_epochs.push(EpochEntry {
                    epoch,
                    start_offset: summary.base_offset,
                });
            }
            position = start + summary.size_bytes;
        }
        assert_eq!(position, bytes.len());
        let mut cached = log.leader_epochs().entries().to_vec();
        if cached
            .last()
            .is_some_and(|e| e.start_offset == log.log_end_offset())
        {
            cached.pop(); // an epoch started at the end, with no batch yet
        }
        assert_eq!(cached, header_epochs, "epoch cache vs batch headers");
        let copy = tempfile::tempdir().unwrap();
        for entry in std::fs::read_dir(self.follower_dir.path()).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), copy.path().join(entry.file_name())).unwrap();
        }
        let recovered = open(copy.path());
        assert_eq!(
            log.producer_state(),
            recovered.producer_state(),
            "producer state vs what recovery rebuilds"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(48),
        ..ProptestConfig::default()
    })]

    #[test]
    fn follower_log_matches_its_leader_and_its_own_recovery(ops in prop::collection::vec(op(), 1..60)) {
        let mut world = World::new();
        for op in ops {
            world.apply(op);
            world.check();
        }
    }
}
