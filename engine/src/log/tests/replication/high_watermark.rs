//! High watermark modes: who moves it, where it may land, what reads see, and its checkpoint.

use super::*;
use crate::log::checkpoint::{encode_offset_checkpoint, read_offset_checkpoint};

fn hw_checkpoint(dir: &Path) -> Option<i64> {
    read_offset_checkpoint(dir, REPLICATION_OFFSET_FILE).unwrap()
}

#[test]
fn replicated_high_watermark_stays_where_set_while_appends_commit() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open_replicated(dir.path(), LogConfig::default());
    assert_eq!(log.high_watermark(), 0);
    for _ in 0..3 {
        append(&mut log, batch_bytes(3, 10, NOW_MS));
    }
    assert_eq!((log.stable_end(), log.written_end()), (9, 9));
    assert_eq!(log.high_watermark(), 0, "commits do not move it");
    assert!(log.read(0, u32::MAX).unwrap().slices.is_empty());
    assert_eq!(log.set_high_watermark(3).unwrap(), 3);
    assert_eq!(batch_offsets(&read_bytes(&log, 0, u32::MAX)), [(0, 2)]);
    assert!(
        log.read(3, u32::MAX).unwrap().slices.is_empty(),
        "(HW, LEO] is empty"
    );
    assert_eq!(log.read(3, u32::MAX).unwrap().high_watermark, 3);
    append(&mut log, batch_bytes(1, 10, NOW_MS));
    assert_eq!(log.high_watermark(), 3);
    assert_eq!(
        batch_offsets(&read_bound_bytes(&log, 0, ReadBound::WrittenEnd)),
        [(0, 2), (3, 5), (6, 8), (9, 9)],
        "a follower sees everything committed"
    );
}

#[test]
fn written_end_reads_serve_written_but_unsynced_bytes_under_flush_always() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open_replicated(dir.path(), LogConfig::default());
    append(&mut log, batch_bytes(2, 10, NOW_MS));
    log.set_high_watermark(2).unwrap();
    let staged = log
        .stage_append(batch_bytes(3, 10, NOW_MS), NOW_MS)
        .unwrap();
    assert!(
        log.read_bounded(2, u32::MAX, ReadBound::WrittenEnd)
            .unwrap()
            .slices
            .is_empty(),
        "staged but unwritten bytes are never served"
    );
    let write = &staged.writes[0];
    write
        .segment
        .file()
        .write_all_at(&write.bytes, write.position)
        .unwrap();
    log.mark_written(staged.last_offset);
    assert_eq!((log.written_end(), log.stable_end()), (5, 2));
    assert_eq!(
        batch_offsets(&read_bound_bytes(&log, 2, ReadBound::WrittenEnd)),
        [(2, 4)]
    );
    assert!(log.read(2, u32::MAX).unwrap().slices.is_empty());
    assert_eq!(
        log.set_high_watermark(5).unwrap(),
        2,
        "clamped to the stable end: unsynced bytes are never committed"
    );
    assert!(
        log.read_bounded(5, u32::MAX, ReadBound::WrittenEnd)
            .unwrap()
            .slices
            .is_empty()
    );
    assert!(matches!(
        log.read_bounded(6, u32::MAX, ReadBound::WrittenEnd),
        Err(ReadError::OffsetOutOfRange { log_end: 5, .. })
    ));
    log.mark_synced(staged.last_offset);
    assert_eq!(log.stable_end(), 5);
    assert_eq!(log.high_watermark(), 2);
}

#[test]
fn high_watermark_inside_a_batch_rounds_down_to_its_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open_replicated(dir.path(), small_config());
    for _ in 0..12 {
        append(&mut log, batch_bytes(3, 100, NOW_MS));
    }
    assert!(log.segment_count() > 2);
    assert_eq!(log.set_high_watermark(4).unwrap(), 3);
    assert_eq!(batch_offsets(&read_bytes(&log, 0, u32::MAX)), [(0, 2)]);
    // Far from the remembered tail boundaries: the sparse index and a header walk find it.
    assert_eq!(log.set_high_watermark(20).unwrap(), 18);
    assert_eq!(
        batch_offsets(&read_bytes(&log, 0, u32::MAX)).last(),
        Some(&(15, 17))
    );
    assert_eq!(log.set_high_watermark(34).unwrap(), 33);
    assert_eq!(log.set_high_watermark(1).unwrap(), 0, "it may go down");
    assert!(read_bytes(&log, 0, u32::MAX).is_empty());
}

#[test]
fn high_watermark_is_clamped_to_the_stable_end_and_the_log_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open_replicated(dir.path(), LogConfig::default());
    append(&mut log, batch_bytes(3, 10, NOW_MS));
    append(&mut log, batch_bytes(3, 10, NOW_MS));
    assert_eq!(log.set_high_watermark(100).unwrap(), 6);
    assert_eq!(log.set_high_watermark(-7).unwrap(), 0);
    log.set_high_watermark(6).unwrap();
    log.delete_records_before(4).unwrap();
    assert_eq!(
        log.set_high_watermark(0).unwrap(),
        4,
        "never below the log start"
    );
    assert!(
        log.read(4, u32::MAX).unwrap().slices.is_empty(),
        "the batch holding the log start is not committed whole"
    );
    assert_eq!(log.set_high_watermark(5).unwrap(), 4);
    assert_eq!(log.set_high_watermark(6).unwrap(), 6);
    assert_eq!(batch_offsets(&read_bytes(&log, 4, u32::MAX)), [(3, 5)]);
}

#[test]
fn local_mode_refuses_a_set_high_watermark_and_switching_back_follows_the_stable_end() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default());
    append(&mut log, batch_bytes(3, 10, NOW_MS));
    assert!(matches!(
        log.set_high_watermark(1),
        Err(LogError::HighWatermarkIsLocal { .. })
    ));
    assert_eq!(
        log.set_high_watermark_mode(HighWatermarkMode::Replicated)
            .unwrap(),
        0,
        "no checkpoint: the log start"
    );
    append(&mut log, batch_bytes(3, 10, NOW_MS));
    assert_eq!(
        log.set_high_watermark_mode(HighWatermarkMode::Local)
            .unwrap(),
        6
    );
    append(&mut log, batch_bytes(1, 10, NOW_MS));
    assert_eq!(log.high_watermark(), 7);
}

#[test]
fn retention_and_delete_records_stop_at_the_replicated_high_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        retention_bytes: 0,
        ..small_config()
    };
    let mut log = open_replicated(dir.path(), config);
    for _ in 0..12 {
        append(&mut log, batch_bytes(3, 100, NOW_MS));
    }
    let bases = log.segment_base_offsets();
    assert!(bases.len() > 3);
    assert!(matches!(
        log.delete_records_before(1),
        Err(LogError::BeyondHighWatermark {
            high_watermark: 0,
            ..
        })
    ));
    assert_eq!(
        log.apply_retention(NOW_MS).unwrap().deleted_segment_count,
        0
    );
    log.set_high_watermark(bases[2]).unwrap();
    assert_eq!(
        log.apply_retention(NOW_MS).unwrap().deleted_segment_count,
        2
    );
    assert_eq!(log.log_start_offset(), bases[2]);
}

#[test]
fn high_watermark_checkpoint_survives_reopen_and_is_clamped_to_the_recovered_end() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open_replicated(dir.path(), LogConfig::default());
    for _ in 0..4 {
        append(&mut log, batch_bytes(2, 10, NOW_MS));
    }
    log.set_high_watermark(6).unwrap();
    log.close().unwrap();
    assert_eq!(hw_checkpoint(dir.path()), Some(6));
    let mut log = open(dir.path(), LogConfig::default());
    assert_eq!(
        log.high_watermark(),
        8,
        "Local mode at open: the stable end"
    );
    assert_eq!(
        log.set_high_watermark_mode(HighWatermarkMode::Replicated)
            .unwrap(),
        6
    );
    drop(log);
    write_atomically_for_test(dir.path(), 50);
    let mut log = open(dir.path(), LogConfig::default());
    assert_eq!(
        log.set_high_watermark_mode(HighWatermarkMode::Replicated)
            .unwrap(),
        8,
        "clamped to the recovered end"
    );
    assert_eq!(
        hw_checkpoint(dir.path()),
        Some(8),
        "and the file lowered to it"
    );
}

fn write_atomically_for_test(dir: &Path, offset: i64) {
    crate::log::checkpoint::write_atomically(
        dir,
        REPLICATION_OFFSET_FILE,
        &encode_offset_checkpoint(offset),
    )
    .unwrap();
}

#[test]
fn garbled_high_watermark_checkpoint_starts_at_the_log_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open_replicated(dir.path(), LogConfig::default());
    append(&mut log, batch_bytes(2, 10, NOW_MS));
    log.set_high_watermark(2).unwrap();
    log.close().unwrap();
    std::fs::write(dir.path().join(REPLICATION_OFFSET_FILE), "0\nbanana\n").unwrap();
    let log = open_replicated(dir.path(), LogConfig::default());
    assert_eq!(log.high_watermark(), 0);
    assert!(log.read(0, u32::MAX).unwrap().slices.is_empty());
}

#[test]
fn high_watermark_checkpoint_never_holds_more_than_the_flushed_offset() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        flush: FlushPolicy::Never,
        ..LogConfig::default()
    };
    let mut log = open_replicated(dir.path(), config);
    append(&mut log, batch_bytes(2, 10, NOW_MS));
    assert_eq!(log.set_high_watermark(2).unwrap(), 2, "written is stable");
    log.checkpoint().unwrap();
    assert_eq!(hw_checkpoint(dir.path()), Some(0), "nothing was fsynced");
    log.close().unwrap();
    assert_eq!(hw_checkpoint(dir.path()), Some(2), "close fsyncs first");
}

#[test]
fn lowering_the_high_watermark_lowers_its_checkpoint_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open_replicated(dir.path(), LogConfig::default());
    for _ in 0..3 {
        append(&mut log, batch_bytes(2, 10, NOW_MS));
    }
    log.set_high_watermark(6).unwrap();
    log.checkpoint().unwrap();
    assert_eq!(hw_checkpoint(dir.path()), Some(6));
    log.set_high_watermark(2).unwrap();
    assert_eq!(hw_checkpoint(dir.path()), Some(2));
    log.set_high_watermark(4).unwrap();
    assert_eq!(
        hw_checkpoint(dir.path()),
        Some(2),
        "raising waits for checkpoint()"
    );
}

#[test]
fn local_mode_writes_no_high_watermark_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default());
    append(&mut log, batch_bytes(2, 10, NOW_MS));
    log.checkpoint().unwrap();
    log.close().unwrap();
    assert!(!dir.path().join(REPLICATION_OFFSET_FILE).exists());
}
