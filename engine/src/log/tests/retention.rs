//! Retention and DeleteRecords: moving the log start offset.

use super::*;

#[test]
fn retention_by_bytes_deletes_oldest_segments_but_never_the_active_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config());
    let batch = batch_bytes(1, 300, NOW_MS);
    for _ in 0..9 {
        append(&mut log, batch.clone());
    }
    let segments_before = log.segment_count();
    log.set_config(LogConfig {
        retention_bytes: 0,
        ..small_config()
    });
    let outcome = log.apply_retention(NOW_MS).unwrap();
    assert_eq!(outcome.deleted_segment_count, segments_before - 1);
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.log_start_offset(), log.active().base_offset());
    assert!(!dir.path().join(format!("{:020}.log", 0)).exists());
    assert!(matches!(
        log.read(0, 100),
        Err(ReadError::OffsetOutOfRange { .. })
    ));
    let start = log.log_start_offset();
    assert_eq!(
        batch_offsets(&read_bytes(&log, start, u32::MAX))[0].0,
        start
    );
}

#[test]
fn retention_by_time_deletes_segments_whose_newest_record_expired() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config());
    for i in 0..6 {
        append(&mut log, batch_bytes(1, 300, NOW_MS + i * 1_000));
    }
    assert_eq!(log.segment_count(), 3, "two batches per segment");
    log.set_config(LogConfig {
        retention_ms: 10_000,
        ..small_config()
    });
    assert_eq!(
        log.apply_retention(NOW_MS + 10_000)
            .unwrap()
            .deleted_segment_count,
        0
    );
    let outcome = log.apply_retention(NOW_MS + 12_001).unwrap();
    assert_eq!(outcome.deleted_segment_count, 1);
    assert_eq!(log.log_start_offset(), 2);
}

#[test]
fn delete_records_moves_log_start_persists_it_and_drops_whole_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config());
    for _ in 0..9 {
        append(&mut log, batch_bytes(2, 200, NOW_MS));
    }
    let bases = log.segment_base_offsets();
    assert!(bases.len() >= 3);
    let inside_second = bases[1] + 1;
    assert_eq!(
        log.delete_records_before(inside_second).unwrap(),
        inside_second
    );
    assert_eq!(
        log.segment_base_offsets()[0],
        bases[1],
        "first segment deleted"
    );
    assert!(matches!(
        log.read(bases[1], 100),
        Err(ReadError::OffsetOutOfRange { .. })
    ));
    let from_start = read_bytes(&log, inside_second, u32::MAX);
    assert_eq!(
        batch_offsets(&from_start)[0].0,
        bases[1],
        "batch containing the start"
    );
    assert!(matches!(
        log.delete_records_before(log.high_watermark() + 1),
        Err(LogError::BeyondHighWatermark { .. })
    ));
    log.close().unwrap();
    let log = open(dir.path(), small_config());
    assert_eq!(log.log_start_offset(), inside_second);
}
