//! A write failure while the next commit round is already in flight (several producers,
//! `flush=always`, so rounds overlap): only appends that failed are refused, every
//! acknowledged append is in the log at dense offsets, and nothing unacknowledged is
//! visible below the high watermark.
//!
//! Alone in its file because the file-size limit that makes writes fail (RLIMIT_FSIZE) is
//! per process.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod support;

use std::os::unix::fs::FileExt;

use spate_engine::{AppendError, Engine, EngineConfig, FlushPolicy, LogConfig, TopicPartition};
use spate_protocol::records::Batches;
use support::{batch, limit_file_size};

const FILE_SIZE_LIMIT_BYTES: u64 = 4 << 20;
const APPENDS: usize = 100;
/// Alone at least `OVERLAP_MIN_BYTES`: one queued append starts a second round.
const BATCH_VALUE_BYTES: usize = 64 << 10;

#[tokio::test]
async fn a_failure_under_overlapping_rounds_refuses_only_what_was_not_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = EngineConfig::new(dir.path());
    config.shard_count = 1;
    let engine = Engine::start(config).unwrap();
    let tp = TopicPartition::new("limited", 0);
    let log_config = LogConfig {
        flush: FlushPolicy::Always,
        ..LogConfig::default()
    };
    engine
        .create_partition(tp.clone(), log_config)
        .await
        .unwrap();
    limit_file_size(FILE_SIZE_LIMIT_BYTES);

    // Appends stream in one after another without waiting for answers, so more arrive
    // while a round is in flight and start the next one; the file-size limit cuts them off.
    let mut appends = tokio::task::JoinSet::new();
    for _ in 0..APPENDS {
        let (engine, tp) = (engine.clone(), tp.clone());
        appends.spawn(async move { vec![engine.append(&tp, batch(BATCH_VALUE_BYTES)).await] });
        // About one timer tick apart: about a round's write and sync, so appends keep
        // arriving while one is in flight.
        tokio::time::sleep(std::time::Duration::from_micros(500)).await;
    }
    let mut producers = appends;
    let mut acknowledged: Vec<(i64, i64)> = Vec::new();
    let mut refused = 0;
    while let Some(joined) = producers.join_next().await {
        for outcome in joined.unwrap() {
            match outcome {
                Ok(appended) => acknowledged.push((appended.base_offset, appended.last_offset)),
                Err(AppendError::Io { partition, .. }) => {
                    assert_eq!(partition, tp);
                    refused += 1;
                }
                Err(other) => panic!("expected an Io error naming the partition, got {other:?}"),
            }
        }
    }
    assert!(refused > 0, "the file-size limit was reached");
    acknowledged.sort_unstable();
    for (index, (base, last)) in acknowledged.iter().enumerate() {
        assert_eq!(
            *base, index as i64,
            "acknowledged appends sit at dense offsets: {acknowledged:?}"
        );
        assert_eq!(base, last);
    }

    // What readers see below the high watermark is exactly the acknowledged batches.
    let offsets = engine.offsets(&tp).await.unwrap();
    assert_eq!(offsets.high_watermark, acknowledged.len() as i64);
    assert_eq!(offsets.log_end_offset, offsets.high_watermark);
    let read = engine.read(&tp, 0, u32::MAX).await.unwrap();
    let mut bytes = Vec::new();
    for slice in &read.slices {
        let mut chunk = vec![0u8; slice.len as usize];
        slice
            .segment
            .file()
            .read_exact_at(&mut chunk, slice.position)
            .unwrap();
        bytes.extend_from_slice(&chunk);
    }
    let stored: Vec<i64> = Batches::new(&bytes)
        .map(|batch| batch.unwrap().1.base_offset)
        .collect();
    let expected: Vec<i64> = acknowledged.iter().map(|(base, _)| *base).collect();
    assert_eq!(stored, expected);
    engine.shutdown().await;
}
