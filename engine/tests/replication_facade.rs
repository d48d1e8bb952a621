//! The engine's replication surface end to end, through the shards and the group commit:
//! follower appends, the replicated high watermark and what it gates, the marks watch, leader
//! epochs, truncation that waits for in-flight appends, and the mode partitions reopen in.

#![allow(clippy::unwrap_used)] // tests may unwrap

use std::os::unix::fs::FileExt;
use std::time::Duration;

use bytes::Bytes;
use spate_engine::log::AppendError as LogAppendError;
use spate_engine::log::EpochEntry;
use spate_engine::log::fixture::TestBatch;
use spate_engine::{
    AppendError, Engine, EngineConfig, EngineError, HighWatermarkMode, LogConfig, ReadBound,
    TopicPartition,
};

const NOW_MS: i64 = 1_700_000_000_000;

fn engine_in(dir: &std::path::Path, mode: HighWatermarkMode) -> Engine {
    let mut config = EngineConfig::new(dir);
    config.shard_count = 1;
    config.pin_threads = false;
    config.default_high_watermark_mode = mode;
    Engine::start(config).unwrap()
}

fn batch(record_count: usize) -> Bytes {
    TestBatch::new(record_count, 40, NOW_MS).encode().freeze()
}

fn idempotent(sequence: i32) -> Bytes {
    TestBatch::new(2, 40, NOW_MS)
        .idempotent(42, 0, sequence)
        .encode()
        .freeze()
}

/// The bytes a read up to `bound` serves from `offset`.
async fn read(engine: &Engine, tp: &TopicPartition, offset: i64, bound: ReadBound) -> Vec<u8> {
    let outcome = engine
        .read_bounded(tp, offset, 64 << 20, bound)
        .await
        .unwrap();
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

/// A leader partition and a follower partition on one engine; the leader holds `count`
/// batches of 3 records stamped with epoch 4.
async fn leader_and_follower(engine: &Engine, count: usize) -> (TopicPartition, TopicPartition) {
    let leader = TopicPartition::new("leader", 0);
    let follower = TopicPartition::new("follower", 0);
    for tp in [&leader, &follower] {
        engine
            .create_partition(tp.clone(), LogConfig::default())
            .await
            .unwrap();
    }
    assert_eq!(engine.assign_leader_epoch(&leader, 4).await.unwrap(), 0);
    for _ in 0..count {
        engine.append(&leader, batch(3)).await.unwrap();
    }
    engine
        .set_high_watermark_mode(&follower, HighWatermarkMode::Replicated)
        .await
        .unwrap();
    (leader, follower)
}

#[test]
fn replication_futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_in(dir.path(), HighWatermarkMode::Local);
    let tp = TopicPartition::new("t", 0);
    assert_send(&engine.append_replica(&tp, Bytes::new()));
    assert_send(&engine.read_bounded(&tp, 0, 1, ReadBound::WrittenEnd));
    assert_send(&engine.set_high_watermark(&tp, 0));
    assert_send(&engine.set_high_watermark_mode(&tp, HighWatermarkMode::Replicated));
    assert_send(&engine.assign_leader_epoch(&tp, 0));
    assert_send(&engine.end_offset_for_epoch(&tp, 0));
    assert_send(&engine.truncate_to(&tp, 0));
    assert_send(&engine.truncate_fully_and_start_at(&tp, 0));
    assert_send(&engine.watch_offsets(&tp));
}

#[tokio::test]
async fn replica_appends_commit_through_the_group_commit_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_in(dir.path(), HighWatermarkMode::Local);
    let (leader, follower) = leader_and_follower(&engine, 5).await;
    let fetched = read(&engine, &leader, 0, ReadBound::WrittenEnd).await;
    let outcome = engine
        .append_replica(&follower, Bytes::from(fetched.clone()))
        .await
        .unwrap();
    assert_eq!((outcome.base_offset, outcome.last_offset), (0, 14));
    let offsets = engine.offsets(&follower).await.unwrap();
    assert_eq!(
        (
            offsets.log_end_offset,
            offsets.written_end,
            offsets.stable_end,
            offsets.synced_end
        ),
        (15, 15, 15, 15),
        "durable when the append resolves (flush=always)"
    );
    assert_eq!(
        offsets.high_watermark, 0,
        "replicated: nothing committed yet"
    );
    assert_eq!(offsets.latest_epoch, Some(4));
    assert_eq!(
        read(&engine, &follower, 0, ReadBound::WrittenEnd).await,
        fetched
    );
    assert_eq!(
        engine.end_offset_for_epoch(&follower, 4).await.unwrap(),
        Some((4, 15))
    );
    let gap = engine.append_replica(&follower, Bytes::from(fetched)).await;
    assert!(matches!(
        gap,
        Err(AppendError::Rejected(LogAppendError::NotContiguous {
            expected: 15,
            found: 0,
            ..
        }))
    ));
    engine.shutdown().await;
}

#[tokio::test]
async fn the_replicated_high_watermark_gates_consumer_reads_and_fetch_long_polls() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_in(dir.path(), HighWatermarkMode::Local);
    let (_, follower) = leader_and_follower(&engine, 0).await;
    let mut high_watermark = engine.watch_high_watermark(&follower).await.unwrap();
    high_watermark.borrow_and_update();
    for _ in 0..3 {
        engine.append(&follower, batch(2)).await.unwrap();
    }
    assert!(
        !high_watermark.has_changed().unwrap(),
        "commits do not move it"
    );
    assert!(
        engine
            .read(&follower, 0, 1 << 20)
            .await
            .unwrap()
            .slices
            .is_empty()
    );
    assert_eq!(engine.set_high_watermark(&follower, 3).await.unwrap(), 2);
    assert!(high_watermark.has_changed().unwrap());
    assert_eq!(*high_watermark.borrow_and_update(), 2);
    let outcome = engine.read(&follower, 0, 1 << 20).await.unwrap();
    assert_eq!(outcome.high_watermark, 2);
    assert_eq!(outcome.slices.len(), 1);
    assert_eq!(
        read(&engine, &follower, 0, ReadBound::HighWatermark)
            .await
            .len(),
        batch(2).len()
    );
    assert_eq!(engine.set_high_watermark(&follower, 99).await.unwrap(), 6);
    engine.shutdown().await;
}

#[tokio::test]
async fn set_high_watermark_is_refused_on_a_local_partition() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_in(dir.path(), HighWatermarkMode::Local);
    let tp = TopicPartition::new("single", 0);
    engine
        .create_partition(tp.clone(), LogConfig::default())
        .await
        .unwrap();
    engine.append(&tp, batch(2)).await.unwrap();
    assert!(matches!(
        engine.set_high_watermark(&tp, 1).await,
        Err(EngineError::Log(
            spate_engine::log::LogError::HighWatermarkIsLocal { .. }
        ))
    ));
    assert_eq!(engine.offsets(&tp).await.unwrap().high_watermark, 2);
    engine.shutdown().await;
}

#[tokio::test]
async fn watch_offsets_reports_each_commit_and_truncation() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_in(dir.path(), HighWatermarkMode::Local);
    let (leader, follower) = leader_and_follower(&engine, 4).await;
    let mut offsets = engine.watch_offsets(&follower).await.unwrap();
    assert_eq!(offsets.borrow_and_update().stable_end, 0);
    let fetched = read(&engine, &leader, 0, ReadBound::WrittenEnd).await;
    let append = engine.append_replica(&follower, Bytes::from(fetched));
    let (appended, changed) = tokio::join!(append, async {
        tokio::time::timeout(Duration::from_secs(5), offsets.changed()).await
    });
    appended.unwrap();
    changed.unwrap().unwrap();
    let now = *offsets.borrow_and_update();
    assert_eq!(
        (now.stable_end, now.written_end, now.log_end_offset),
        (12, 12, 12)
    );
    let truncated = engine.truncate_to(&follower, 7).await.unwrap();
    assert_eq!(truncated.log_end_offset, 6);
    assert!(offsets.has_changed().unwrap());
    assert_eq!(offsets.borrow_and_update().stable_end, 6);
    engine.set_high_watermark(&follower, 6).await.unwrap();
    assert_eq!(offsets.borrow_and_update().high_watermark, 6);
    engine.shutdown().await;
}

#[tokio::test]
async fn truncate_to_waits_for_appends_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_in(dir.path(), HighWatermarkMode::Local);
    let (_, follower) = leader_and_follower(&engine, 0).await;
    engine.append(&follower, batch(3)).await.unwrap();
    // Polled in order: the appends reach the shard first and are in a commit round when the
    // truncation arrives; it must wait for them rather than fail with WritesInFlight.
    let (first, second, truncated) = tokio::join!(
        engine.append(&follower, batch(3)),
        engine.append(&follower, batch(3)),
        engine.truncate_to(&follower, 4),
    );
    assert_eq!(first.unwrap().base_offset, 3);
    assert_eq!(second.unwrap().base_offset, 6);
    let truncated = truncated.unwrap();
    assert_eq!((truncated.log_end_offset, truncated.stable_end), (3, 3));
    assert_eq!(
        engine
            .append(&follower, batch(1))
            .await
            .unwrap()
            .base_offset,
        3
    );
    engine.shutdown().await;
}

#[tokio::test]
async fn a_new_leader_starts_its_epoch_at_the_log_end_and_stamps_its_appends() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_in(dir.path(), HighWatermarkMode::Local);
    let (leader, follower) = leader_and_follower(&engine, 2).await;
    let fetched = read(&engine, &leader, 0, ReadBound::WrittenEnd).await;
    engine
        .append_replica(&follower, Bytes::from(fetched))
        .await
        .unwrap();
    assert_eq!(engine.assign_leader_epoch(&follower, 6).await.unwrap(), 6);
    assert_eq!(
        engine.assign_leader_epoch(&follower, 6).await.unwrap(),
        6,
        "again: the same start"
    );
    assert_eq!(engine.latest_epoch(&follower).await.unwrap(), Some(6));
    assert_eq!(
        engine.epoch_entries(&follower).await.unwrap(),
        [
            EpochEntry {
                epoch: 4,
                start_offset: 0
            },
            EpochEntry {
                epoch: 6,
                start_offset: 6
            }
        ]
    );
    assert_eq!(
        engine.end_offset_for_epoch(&follower, 4).await.unwrap(),
        Some((4, 6))
    );
    assert_eq!(
        engine.end_offset_for_epoch(&follower, 5).await.unwrap(),
        Some((4, 6))
    );
    assert_eq!(
        engine.end_offset_for_epoch(&follower, 7).await.unwrap(),
        None
    );
    engine.append(&follower, batch(1)).await.unwrap();
    let stored = read(&engine, &follower, 6, ReadBound::WrittenEnd).await;
    assert_eq!(i32::from_be_bytes(stored[12..16].try_into().unwrap()), 6);
    assert!(matches!(
        engine.assign_leader_epoch(&follower, -1).await,
        Err(EngineError::Log(
            spate_engine::log::LogError::InvalidLeaderEpoch { .. }
        ))
    ));
    engine.shutdown().await;
}

#[tokio::test]
async fn a_producer_retry_in_a_replicated_partition_is_answered_once_the_original_is_durable() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_in(dir.path(), HighWatermarkMode::Local);
    let (_, follower) = leader_and_follower(&engine, 0).await;
    let original = engine.append(&follower, idempotent(0)).await.unwrap();
    let retry = engine.append(&follower, idempotent(0)).await.unwrap();
    assert!(
        retry.duplicate,
        "locally durable: no wait for the high watermark"
    );
    assert_eq!(retry.base_offset, original.base_offset);
    engine.shutdown().await;
}

#[tokio::test]
async fn truncate_fully_starts_an_empty_log_past_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_in(dir.path(), HighWatermarkMode::Local);
    let (_, follower) = leader_and_follower(&engine, 0).await;
    engine.append(&follower, batch(3)).await.unwrap();
    let offsets = engine
        .truncate_fully_and_start_at(&follower, 100)
        .await
        .unwrap();
    assert_eq!(
        (
            offsets.log_start_offset,
            offsets.high_watermark,
            offsets.log_end_offset,
            offsets.latest_epoch
        ),
        (100, 100, 100, None)
    );
    assert_eq!(
        engine
            .append(&follower, batch(1))
            .await
            .unwrap()
            .base_offset,
        100
    );
    engine.shutdown().await;
}

#[tokio::test]
async fn partitions_reopen_in_the_configured_mode_at_the_checkpointed_high_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let tp = TopicPartition::new("follower", 0);
    {
        let engine = engine_in(dir.path(), HighWatermarkMode::Local);
        let (leader, follower) = leader_and_follower(&engine, 4).await;
        let fetched = read(&engine, &leader, 0, ReadBound::WrittenEnd).await;
        engine
            .append_replica(&follower, Bytes::from(fetched))
            .await
            .unwrap();
        engine.set_high_watermark(&follower, 6).await.unwrap();
        engine.shutdown().await; // checkpoints the high watermark
    }
    {
        let engine = engine_in(dir.path(), HighWatermarkMode::Replicated);
        let offsets = engine.offsets(&tp).await.unwrap();
        assert_eq!((offsets.high_watermark, offsets.log_end_offset), (6, 12));
        assert_eq!(offsets.latest_epoch, Some(4));
        assert_eq!(
            read(&engine, &tp, 0, ReadBound::HighWatermark).await.len(),
            2 * batch(3).len()
        );
        engine.shutdown().await;
    }
    let engine = engine_in(dir.path(), HighWatermarkMode::Local);
    assert_eq!(engine.offsets(&tp).await.unwrap().high_watermark, 12);
    engine.shutdown().await;
}
