//! A write that fails half-way (here: the file-size limit, RLIMIT_FSIZE, cuts it short and
//! then refuses the rest with EFBIG) fails the append with an `Io` error naming the partition,
//! rolls the log back, and leaves the partition writable below the limit.
//!
//! Alone in its file because the rlimit is per process.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod support;

use spate_engine::{
    AppendError, Engine, EngineConfig, LocalBoxFuture, LogConfig, ShardContext, TopicPartition,
};
use support::{batch, limit_file_size};

const FILE_SIZE_LIMIT_BYTES: u64 = 256 << 10;

#[tokio::test]
async fn a_failed_write_fails_the_append_with_the_partition_and_rolls_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = EngineConfig::new(dir.path());
    config.shard_count = 1;
    let engine = Engine::start(config).unwrap();
    let tp = TopicPartition::new("limited", 0);
    let shard = engine
        .create_partition(tp.clone(), LogConfig::default())
        .await
        .unwrap();
    limit_file_size(FILE_SIZE_LIMIT_BYTES);

    // Fill to just under the limit with 60 KiB batches, then cross it.
    let mut acknowledged_end = 0;
    let mut failure = None;
    for _ in 0..10 {
        match engine.append(&tp, batch(60 << 10)).await {
            Ok(outcome) => acknowledged_end = outcome.last_offset + 1,
            Err(error) => {
                failure = Some(error);
                break;
            }
        }
    }
    match failure {
        Some(AppendError::Io { partition, source }) => {
            assert_eq!(partition, tp);
            assert_eq!(source.raw_os_error(), Some(libc::EFBIG), "{source}");
        }
        other => panic!("expected an Io error naming the partition, got {other:?}"),
    }
    let offsets = engine.offsets(&tp).await.unwrap();
    assert_eq!(
        offsets.log_end_offset, acknowledged_end,
        "the failed append was rolled back"
    );
    assert_eq!(offsets.high_watermark, acknowledged_end);

    let short_writes = engine
        .invoke_on(shard, |context: &ShardContext| {
            let stats = context.io().stats();
            Box::pin(async move { stats.short_writes }) as LocalBoxFuture<'static, u64>
        })
        .await
        .unwrap();
    assert!(
        short_writes >= 1,
        "the kernel's partial write was resumed before EFBIG"
    );

    // Below the limit, the partition still takes appends, at the next dense offset.
    let outcome = engine.append(&tp, batch(100)).await.unwrap();
    assert_eq!(outcome.base_offset, acknowledged_end);
    engine.shutdown().await;
}
