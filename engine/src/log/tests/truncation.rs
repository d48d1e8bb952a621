//! Truncation, aborted appends and the leader-epoch cache.

use super::*;

#[test]
fn truncate_drops_the_straddling_batch_and_appends_continue_from_there() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config());
    for _ in 0..8 {
        append(&mut log, batch_bytes(3, 100, NOW_MS));
    }
    log.truncate_to(10).unwrap();
    assert_eq!(log.log_end_offset(), 9);
    assert_eq!(log.high_watermark(), 9);
    assert_eq!(
        batch_offsets(&read_bytes(&log, 0, u32::MAX)).last(),
        Some(&(6, 8))
    );
    assert_eq!(append(&mut log, batch_bytes(1, 10, NOW_MS)).base_offset, 9);
    log.close().unwrap();
    let log = open(dir.path(), small_config());
    assert_eq!(log.log_end_offset(), 10);
    assert_eq!(
        batch_offsets(&read_bytes(&log, 0, u32::MAX)).last(),
        Some(&(9, 9))
    );
}

#[test]
fn truncate_below_log_start_restarts_the_log_there() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config());
    append(&mut log, batch_bytes(3, 10, NOW_MS));
    log.truncate_to(0).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 0));
    append(&mut log, batch_bytes(1, 10, NOW_MS));
    assert_eq!(log.high_watermark(), 1);
}

#[test]
fn abort_staged_rolls_back_offsets_file_length_and_the_rolled_segment() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config());
    append(&mut log, batch_bytes(1, 600, NOW_MS));
    let first = log
        .stage_append(batch_bytes(1, 600, NOW_MS), NOW_MS)
        .unwrap();
    let second = log
        .stage_append(batch_bytes(1, 10, NOW_MS), NOW_MS)
        .unwrap();
    assert_eq!(log.segment_count(), 2, "first staged append rolled");
    for write in first.writes.iter().chain(&second.writes) {
        write
            .segment
            .file()
            .write_all_at(&write.bytes, write.position)
            .unwrap();
    }
    log.abort_staged(first.base_offset).unwrap();
    assert_eq!(log.log_end_offset(), 1);
    assert_eq!(log.segment_count(), 1);
    assert!(!first.writes[0].segment.path().exists());
    let again = append(&mut log, batch_bytes(1, 10, NOW_MS));
    assert_eq!(again.base_offset, 1);
    log.close().unwrap();
    let log = open(dir.path(), small_config());
    assert_eq!(
        batch_offsets(&read_bytes(&log, 0, u32::MAX)),
        [(0, 0), (1, 1)]
    );
}

#[test]
fn abort_after_an_empty_roll_removes_the_empty_segment() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config());
    append(&mut log, batch_bytes(1, 10, NOW_MS));
    let staged = log
        .stage_append(batch_bytes(1, 10, NOW_MS), NOW_MS)
        .unwrap();
    log.roll(NOW_MS).unwrap();
    let mut bad = batch_bytes(1, 900, NOW_MS);
    bad[30] ^= 1;
    assert!(log.stage_append(bad, NOW_MS).is_err());
    assert_eq!(log.segment_count(), 2);
    log.abort_staged(staged.base_offset).unwrap();
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.log_end_offset(), 1);
    append(&mut log, batch_bytes(1, 10, NOW_MS));
    assert_eq!(
        batch_offsets(&read_bytes(&log, 0, u32::MAX)),
        [(0, 0), (1, 1)]
    );
}

#[test]
fn truncation_below_a_deleted_records_start_lowers_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default());
    append(&mut log, batch_bytes(4, 10, NOW_MS));
    log.delete_records_before(2).unwrap();
    log.truncate_to(3).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 0));
    drop(log);
    let log = open(dir.path(), LogConfig::default());
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 0));
}

#[test]
fn epoch_cache_is_persisted_stamped_on_batches_and_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default());
    log.assign_epoch(3, 0).unwrap();
    append(&mut log, batch_bytes(2, 10, NOW_MS));
    log.assign_epoch(5, 2).unwrap();
    append(&mut log, batch_bytes(2, 10, NOW_MS));
    let bytes = read_bytes(&log, 2, u32::MAX);
    let (header, _) = RecordBatchHeader::ref_from_prefix(&bytes[..]).unwrap();
    assert_eq!(header.partition_leader_epoch.get(), 5);
    log.close().unwrap();
    let mut log = open(dir.path(), LogConfig::default());
    assert_eq!(log.leader_epochs().entries().len(), 2);
    log.truncate_to(2).unwrap();
    assert_eq!(log.leader_epochs().latest_epoch(), Some(3));
    drop(log);
    let log = open(dir.path(), LogConfig::default());
    assert_eq!(log.leader_epochs().latest_epoch(), Some(3));
}

#[test]
fn aborting_the_append_that_rolled_reopens_a_sealed_segment_for_appends() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config());
    for _ in 0..3 {
        append(&mut log, batch_bytes(1, 250, NOW_MS));
    }
    let rolling = log
        .stage_append(batch_bytes(1, 250, NOW_MS), NOW_MS)
        .unwrap();
    assert_eq!(log.segment_count(), 2);
    log.checkpoint().unwrap();
    assert!(
        log.segments[0].sealed.is_some(),
        "below the high watermark and not active"
    );
    log.abort_staged(rolling.base_offset).unwrap();
    assert_eq!(log.segment_count(), 1);
    assert!(log.active().sealed.is_none());
    append(&mut log, batch_bytes(1, 10, NOW_MS));
    assert_eq!(batch_offsets(&read_bytes(&log, 0, u32::MAX)).len(), 4);
    log.close().unwrap();
    let log = open(dir.path(), small_config());
    assert_eq!(log.log_end_offset(), 4);
}
