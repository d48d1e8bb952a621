//! Creating many partitions in one call (a topic with thousands of partitions): every one is
//! placed, routed, served and durable, survives a restart on the same shard, and one bad
//! entry fails only itself.

#![allow(clippy::unwrap_used)] // tests may unwrap

use std::collections::BTreeMap;

use bytes::Bytes;
use spate_engine::log::fixture::TestBatch;
use spate_engine::{Engine, EngineConfig, EngineError, LogConfig, ShardId, TopicPartition};

fn engine_in(dir: &std::path::Path, shard_count: usize) -> Engine {
    let mut config = EngineConfig::new(dir);
    config.shard_count = shard_count;
    Engine::start(config).unwrap()
}

fn batch(record_count: usize) -> Bytes {
    TestBatch::new(record_count, 64, 1_700_000_000_000)
        .encode()
        .freeze()
}

#[tokio::test]
async fn two_thousand_partitions_created_at_once_are_routed_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let partition_count = 2_000;
    let tps: Vec<TopicPartition> = (0..partition_count)
        .map(|p| TopicPartition::new("wide", p))
        .collect();
    let engine = engine_in(dir.path(), 2);
    let shards: Vec<ShardId> = engine
        .create_partitions(tps.clone(), LogConfig::default())
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(shards.len(), tps.len());
    let mut per_shard = BTreeMap::new();
    for (tp, shard) in tps.iter().zip(&shards) {
        assert_eq!(engine.shard_for(tp), Some(*shard), "route of {tp}");
        *per_shard.entry(shard.0).or_insert(0) += 1;
    }
    assert_eq!(per_shard, BTreeMap::from([(0, 1_000), (1, 1_000)]));
    let placed: Vec<(TopicPartition, ShardId)> = tps.iter().cloned().zip(shards).collect();
    assert_eq!(engine.partitions(), sorted(placed.clone()));
    for tp in &tps {
        assert!(dir.path().join(tp.dir_name()).is_dir(), "folder of {tp}");
    }
    // Every partition is served by its shard, not only routed.
    let written = [&tps[0], &tps[999], &tps[1_999]];
    for (record_count, tp) in (1..).zip(written) {
        let outcome = engine.append(tp, batch(record_count)).await.unwrap();
        assert_eq!(outcome.base_offset, 0);
    }
    engine.shutdown().await;

    let engine = engine_in(dir.path(), 2);
    assert!(engine.offline_partitions().is_empty());
    assert_eq!(engine.partitions(), sorted(placed));
    for tp in &tps {
        let offsets = engine.offsets(tp).await.unwrap();
        let expected = written
            .iter()
            .position(|w| *w == tp)
            .map_or(0, |i| i as i64 + 1);
        assert_eq!(offsets.log_end_offset, expected, "end offset of {tp}");
    }
    engine.shutdown().await;
}

#[tokio::test]
async fn a_bad_entry_fails_alone_and_leaves_no_placement_behind() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_in(dir.path(), 2);
    let existing = TopicPartition::new("t", 0);
    engine
        .create_partition(existing.clone(), LogConfig::default())
        .await
        .unwrap();
    // A file where the partition folder should go: its log cannot open.
    let blocked = TopicPartition::new("t", 3);
    std::fs::write(dir.path().join(blocked.dir_name()), b"not a folder").unwrap();
    let request = vec![
        TopicPartition::new("t", 1),
        existing.clone(),
        TopicPartition::new("bad/name", 0),
        blocked.clone(),
        TopicPartition::new("t", 2),
        TopicPartition::new("t", 1),
    ];
    let outcomes = engine
        .create_partitions(request, LogConfig::default())
        .await
        .unwrap();
    assert_eq!(outcomes.len(), 6);
    assert!(outcomes[0].is_ok());
    assert!(matches!(&outcomes[1], Err(EngineError::PartitionExists(tp)) if *tp == existing));
    assert!(matches!(
        &outcomes[2],
        Err(EngineError::InvalidPartition { .. })
    ));
    assert!(
        matches!(&outcomes[3], Err(EngineError::Log(_))),
        "{:?}",
        outcomes[3]
    );
    assert!(outcomes[4].is_ok());
    assert!(matches!(&outcomes[5], Err(EngineError::PartitionExists(_))));
    assert_eq!(engine.shard_for(&blocked), None);
    let names = |engine: &Engine| -> Vec<i32> {
        engine
            .partitions()
            .into_iter()
            .map(|(tp, _)| tp.partition)
            .collect()
    };
    assert_eq!(names(&engine), vec![0, 1, 2]);
    engine
        .append(&TopicPartition::new("t", 2), batch(1))
        .await
        .unwrap();
    engine.shutdown().await;

    let engine = engine_in(dir.path(), 2);
    assert_eq!(names(&engine), vec![0, 1, 2]);
    assert!(engine.offline_partitions().is_empty());
    engine.shutdown().await;
}

fn sorted(mut placed: Vec<(TopicPartition, ShardId)>) -> Vec<(TopicPartition, ShardId)> {
    placed.sort();
    placed
}
