//! The engine facade end to end: partitions are created, appended to, read back, synced per
//! policy, recovered after a restart, and refused after shutdown.

#![allow(clippy::unwrap_used)] // tests may unwrap

use std::os::unix::fs::FileExt;
use std::time::Duration;

use bytes::Bytes;
use spate_engine::log::fixture::TestBatch;
use spate_engine::{
    AppendError, Engine, EngineConfig, EngineError, FlushPolicy, LocalBoxFuture, LogConfig,
    ShardContext, ShardId, TopicPartition,
};

fn engine_in(dir: &std::path::Path, shard_count: usize) -> Engine {
    let mut config = EngineConfig::new(dir);
    config.shard_count = shard_count;
    Engine::start(config).unwrap()
}

fn batch(record_count: usize, value_size_bytes: usize) -> Bytes {
    TestBatch::new(record_count, value_size_bytes, 1_700_000_000_000)
        .encode()
        .freeze()
}

fn log_config(flush: FlushPolicy) -> LogConfig {
    LogConfig {
        flush,
        ..LogConfig::default()
    }
}

/// The bytes the engine serves for `[offset, hw)`, read from the slices.
async fn read_all(engine: &Engine, tp: &TopicPartition, offset: i64) -> Vec<u8> {
    let outcome = engine.read(tp, offset, 64 << 20).await.unwrap();
    let mut bytes = Vec::new();
    for slice in &outcome.slices {
        let mut buffer = vec![0u8; slice.len as usize];
        slice
            .segment
            .file()
            .read_exact_at(&mut buffer, slice.position)
            .unwrap();
        bytes.extend_from_slice(&buffer);
    }
    bytes
}

/// A batch as stored: the producer's bytes with baseOffset rewritten.
fn stored(batch: &Bytes, base_offset: i64) -> Vec<u8> {
    let mut bytes = batch.to_vec();
    bytes[..8].copy_from_slice(&base_offset.to_be_bytes());
    bytes
}

#[test]
fn engine_futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_in(dir.path(), 1);
    let tp = TopicPartition::new("t", 0);
    assert_send(&engine.append(&tp, Bytes::new()));
    assert_send(&engine.read(&tp, 0, 1));
    assert_send(&engine.create_partition(tp.clone(), LogConfig::default()));
    fn assert_sync<T: Send + Sync + Clone>(_: &T) {}
    assert_sync(&engine);
}

#[tokio::test]
async fn appended_batches_read_back_byte_identical_with_assigned_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_in(dir.path(), 2);
    let tp = TopicPartition::new("orders", 0);
    engine
        .create_partition(tp.clone(), LogConfig::default())
        .await
        .unwrap();
    let batches: Vec<Bytes> = (1..=3).map(|n| batch(n, 100)).collect();
    let mut expected = Vec::new();
    let mut next_offset = 0;
    for b in &batches {
        let outcome = engine.append(&tp, b.clone()).await.unwrap();
        assert_eq!(outcome.base_offset, next_offset);
        assert!(!outcome.duplicate);
        expected.extend(stored(b, next_offset));
        next_offset = outcome.last_offset + 1;
    }
    assert_eq!(next_offset, 6);
    let offsets = engine.offsets(&tp).await.unwrap();
    assert_eq!(
        (
            offsets.log_start_offset,
            offsets.high_watermark,
            offsets.log_end_offset
        ),
        (0, 6, 6)
    );
    assert_eq!(read_all(&engine, &tp, 0).await, expected);
    engine.shutdown().await;
}

type Stats = (
    spate_engine::shard::GroupCommitStats,
    spate_engine::uring::IoStats,
);

#[tokio::test]
async fn appends_arriving_in_one_turn_share_one_submission_and_one_fdatasync() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_in(dir.path(), 1);
    let tp = TopicPartition::new("hot", 0);
    let shard = engine
        .create_partition(tp.clone(), LogConfig::default())
        .await
        .unwrap();
    let append_count = 64;
    let task_engine = engine.clone();
    let task_tp = tp.clone();
    let (before, after, outcomes) = engine
        .invoke_on(shard, move |context: &ShardContext| {
            let context = context.clone();
            Box::pin(async move {
                let before = (context.group_commit_stats(), context.io().stats());
                let tasks: Vec<_> = (0..append_count)
                    .map(|_| {
                        let engine = task_engine.clone();
                        let tp = task_tp.clone();
                        tokio::task::spawn_local(
                            async move { engine.append(&tp, batch(2, 50)).await },
                        )
                    })
                    .collect();
                let mut outcomes = Vec::new();
                for task in tasks {
                    outcomes.push(task.await.unwrap().unwrap());
                }
                let after = (context.group_commit_stats(), context.io().stats());
                (before, after, outcomes)
            })
                as LocalBoxFuture<'static, (Stats, Stats, Vec<spate_engine::AppendOutcome>)>
        })
        .await
        .unwrap();
    let rounds = after.0.rounds - before.0.rounds;
    let submit_calls = after.1.submit_calls - before.1.submit_calls;
    let fdatasyncs = after.1.fdatasyncs - before.1.fdatasyncs;
    assert_eq!(
        rounds, 1,
        "all {append_count} appends in one group commit round"
    );
    assert_eq!(submit_calls, 1, "one io_uring_enter for the whole round");
    assert_eq!(fdatasyncs, 1, "one fdatasync for the one dirty segment");
    let mut firsts: Vec<i64> = outcomes.iter().map(|o| o.base_offset).collect();
    firsts.sort();
    assert_eq!(
        firsts,
        (0..append_count).map(|i| i * 2).collect::<Vec<i64>>()
    );
    assert_eq!(
        engine.offsets(&tp).await.unwrap().high_watermark,
        append_count * 2
    );
    engine.shutdown().await;
}

async fn shard_stats(engine: &Engine, shard: ShardId) -> spate_engine::uring::IoStats {
    engine
        .invoke_on(shard, |context: &ShardContext| {
            let stats = context.io().stats();
            Box::pin(async move { stats }) as LocalBoxFuture<'static, _>
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn flush_never_writes_without_fdatasync_and_interval_syncs_on_its_timer() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_in(dir.path(), 1);
    let never = TopicPartition::new("never", 0);
    let shard = engine
        .create_partition(never.clone(), log_config(FlushPolicy::Never))
        .await
        .unwrap();
    let before = shard_stats(&engine, shard).await;
    for _ in 0..5 {
        engine.append(&never, batch(1, 10)).await.unwrap();
    }
    let after = shard_stats(&engine, shard).await;
    assert_eq!(after.fdatasyncs, before.fdatasyncs);
    assert!(after.writes >= before.writes + 5);
    assert_eq!(engine.offsets(&never).await.unwrap().high_watermark, 5);

    let interval = TopicPartition::new("interval", 0);
    engine
        .create_partition(interval.clone(), log_config(FlushPolicy::IntervalMs(20)))
        .await
        .unwrap();
    let before = shard_stats(&engine, shard).await;
    engine.append(&interval, batch(1, 10)).await.unwrap();
    assert_eq!(
        engine.offsets(&interval).await.unwrap().high_watermark,
        1,
        "visible once written"
    );
    // Poll rather than sleep a fixed time: a loaded CI host may run the timer late.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while shard_stats(&engine, shard).await.fdatasyncs == before.fdatasyncs {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the interval timer never synced"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    engine.shutdown().await;
}

#[tokio::test]
async fn a_restart_recovers_every_partition_on_the_same_shard() {
    let dir = tempfile::tempdir().unwrap();
    let mut placed = Vec::new();
    let mut expected = Vec::new();
    {
        let engine = engine_in(dir.path(), 2);
        for p in 0..4 {
            let tp = TopicPartition::new("logs", p);
            let shard = engine
                .create_partition(tp.clone(), LogConfig::default())
                .await
                .unwrap();
            placed.push((tp.clone(), shard));
            let b = batch(3, 64);
            engine.append(&tp, b.clone()).await.unwrap();
            expected.push(stored(&b, 0));
        }
        engine.shutdown().await;
    }
    let engine = engine_in(dir.path(), 2);
    assert_eq!(engine.partitions(), placed);
    for (index, (tp, _)) in placed.iter().enumerate() {
        assert_eq!(read_all(&engine, tp, 0).await, expected[index]);
        let outcome = engine.append(tp, batch(1, 8)).await.unwrap();
        assert_eq!(outcome.base_offset, 3, "offsets continue after recovery");
    }
    assert!(engine.offline_partitions().is_empty());
    engine.shutdown().await;
}

#[tokio::test]
async fn the_high_watermark_watch_fires_when_an_append_commits() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_in(dir.path(), 1);
    let tp = TopicPartition::new("watched", 0);
    engine
        .create_partition(tp.clone(), LogConfig::default())
        .await
        .unwrap();
    let mut watch = engine.watch_high_watermark(&tp).await.unwrap();
    assert_eq!(*watch.borrow_and_update(), 0);
    engine.append(&tp, batch(4, 10)).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), watch.changed())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(*watch.borrow(), 4);
    engine.shutdown().await;
}

/// A producer's retry can reach the broker while the first copy is still being written
/// (say the client's connection dropped and it resent). The retry is a duplicate, but its
/// answer must wait for the first copy's commit: acknowledging earlier would acknowledge
/// bytes a crash could still lose.
#[tokio::test]
async fn a_retry_of_a_batch_still_committing_is_answered_after_the_commit() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_in(dir.path(), 1);
    let tp = TopicPartition::new("retried", 0);
    engine
        .create_partition(tp.clone(), log_config(FlushPolicy::Always))
        .await
        .unwrap();
    let mut idempotent = TestBatch::new(3, 100, 1_700_000_000_000);
    idempotent.producer_id = 42;
    idempotent.producer_epoch = 0;
    idempotent.base_sequence = 0;
    let bytes = idempotent.encode().freeze();
    let watch = engine.watch_high_watermark(&tp).await.unwrap();
    let first = engine.append(&tp, bytes.clone());
    let retry = async {
        let outcome = engine.append(&tp, bytes.clone()).await.unwrap();
        // Read at the moment of the answer, before anything else can run.
        let high_watermark_when_answered = *watch.borrow();
        (outcome, high_watermark_when_answered)
    };
    let (first, (retry, high_watermark_when_answered)) = tokio::join!(first, retry);
    let first = first.unwrap();
    assert!(retry.duplicate);
    assert_eq!(
        (retry.base_offset, retry.last_offset),
        (first.base_offset, first.last_offset)
    );
    assert!(
        high_watermark_when_answered > retry.last_offset,
        "the retry was answered at high watermark {high_watermark_when_answered}, before its \
         first copy (offsets {}..={}) was synced",
        retry.base_offset,
        retry.last_offset
    );
    engine.shutdown().await;
}

#[tokio::test]
async fn deleted_partitions_are_gone_from_disk_and_from_routing() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_in(dir.path(), 2);
    let tp = TopicPartition::new("doomed", 3);
    engine
        .create_partition(tp.clone(), LogConfig::default())
        .await
        .unwrap();
    engine.append(&tp, batch(1, 10)).await.unwrap();
    engine.delete_partition(&tp).await.unwrap();
    assert!(!dir.path().join("doomed-3").exists());
    assert!(engine.shard_for(&tp).is_none());
    assert!(matches!(
        engine.append(&tp, batch(1, 10)).await,
        Err(AppendError::Engine(EngineError::UnknownPartition(_)))
    ));
    // The name can be reused.
    engine
        .create_partition(tp.clone(), LogConfig::default())
        .await
        .unwrap();
    assert_eq!(
        engine.append(&tp, batch(1, 10)).await.unwrap().base_offset,
        0
    );
    engine.shutdown().await;
}

#[tokio::test]
async fn bad_names_and_duplicates_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_in(dir.path(), 1);
    for topic in ["", "..", "a/b", "sp ace", &"x".repeat(250)] {
        let result = engine
            .create_partition(TopicPartition::new(topic, 0), LogConfig::default())
            .await;
        assert!(
            matches!(result, Err(EngineError::InvalidPartition { .. })),
            "{topic:?}"
        );
    }
    let tp = TopicPartition::new("ok", 0);
    engine
        .create_partition(tp.clone(), LogConfig::default())
        .await
        .unwrap();
    assert!(matches!(
        engine
            .create_partition(tp.clone(), LogConfig::default())
            .await,
        Err(EngineError::PartitionExists(_))
    ));
    assert!(matches!(
        engine.append(&tp, Bytes::from_static(b"not a batch")).await,
        Err(AppendError::Rejected(_))
    ));
    engine.shutdown().await;
}

#[tokio::test]
async fn calls_after_shutdown_fail_with_shard_gone() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_in(dir.path(), 2);
    let tp = TopicPartition::new("t", 0);
    engine
        .create_partition(tp.clone(), LogConfig::default())
        .await
        .unwrap();
    let other_handle = engine.clone();
    engine.shutdown().await;
    assert!(matches!(
        other_handle.append(&tp, batch(1, 1)).await,
        Err(AppendError::Engine(EngineError::ShardGone(_)))
    ));
}

#[tokio::test]
async fn retention_runs_on_its_configured_timer() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = EngineConfig::new(dir.path());
    config.shard_count = 1;
    config.retention_check_interval_ms = 50;
    let engine = Engine::start(config).unwrap();
    let tp = TopicPartition::new("short", 0);
    let log_config = LogConfig {
        segment_bytes: 1024,
        retention_bytes: 2048,
        ..LogConfig::default()
    };
    engine
        .create_partition(tp.clone(), log_config)
        .await
        .unwrap();
    for _ in 0..20 {
        engine.append(&tp, batch(1, 400)).await.unwrap();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let offsets = loop {
        let offsets = engine.offsets(&tp).await.unwrap();
        if offsets.log_start_offset > 0 {
            break offsets;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "retention never ran: {offsets:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(offsets.log_end_offset, 20);
    engine.shutdown().await;
}

#[tokio::test]
async fn one_round_over_several_partitions_syncs_each_dirty_segment_once() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_in(dir.path(), 1);
    let names: Vec<TopicPartition> = (0..4).map(|p| TopicPartition::new("multi", p)).collect();
    for tp in &names {
        engine
            .create_partition(tp.clone(), LogConfig::default())
            .await
            .unwrap();
    }
    let task_engine = engine.clone();
    let task_names = names.clone();
    let (before, after) = engine
        .invoke_on(ShardId(0), move |context: &ShardContext| {
            let context = context.clone();
            Box::pin(async move {
                let before = (context.group_commit_stats(), context.io().stats());
                let mut tasks = Vec::new();
                for round_robin in 0..32 {
                    let engine = task_engine.clone();
                    let tp = task_names[round_robin % task_names.len()].clone();
                    tasks.push(tokio::task::spawn_local(async move {
                        engine.append(&tp, batch(1, 100)).await
                    }));
                }
                for task in tasks {
                    task.await.unwrap().unwrap();
                }
                (before, (context.group_commit_stats(), context.io().stats()))
            }) as LocalBoxFuture<'static, (Stats, Stats)>
        })
        .await
        .unwrap();
    assert_eq!(after.0.rounds - before.0.rounds, 1);
    assert_eq!(after.1.submit_calls - before.1.submit_calls, 1);
    assert_eq!(
        after.1.fdatasyncs - before.1.fdatasyncs,
        4,
        "one per partition's segment"
    );
    assert_eq!(
        after.1.writes - before.1.writes,
        4,
        "each segment's 8 batches in one writev"
    );
    for tp in &names {
        assert_eq!(engine.offsets(tp).await.unwrap().high_watermark, 8);
    }
    engine.shutdown().await;
}

#[test]
fn dropping_the_last_engine_handle_without_shutdown_stops_the_shards() {
    let dir = tempfile::tempdir().unwrap();
    let tp = TopicPartition::new("dropped", 0);
    {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let engine = engine_in(dir.path(), 2);
        runtime.block_on(async {
            engine
                .create_partition(tp.clone(), LogConfig::default())
                .await
                .unwrap();
            engine.append(&tp, batch(2, 10)).await.unwrap();
        });
        drop(engine); // joins the shard threads, after their logs are synced and checkpointed
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let engine = engine_in(dir.path(), 2);
    runtime.block_on(async {
        assert_eq!(engine.offsets(&tp).await.unwrap().log_end_offset, 2);
        engine.shutdown().await;
    });
}
