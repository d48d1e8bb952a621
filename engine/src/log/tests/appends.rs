//! Staging appends: offsets, visibility, header rewrites and refusals.

use super::*;

#[test]
fn appends_get_dense_offsets_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default());
    assert_eq!(append(&mut log, batch_bytes(3, 10, NOW_MS)).base_offset, 0);
    let second = append(&mut log, batch_bytes(2, 10, NOW_MS));
    assert_eq!((second.base_offset, second.last_offset), (3, 4));
    assert_eq!(log.log_end_offset(), 5);
    assert_eq!(log.high_watermark(), 5);
    assert_eq!(
        batch_offsets(&read_bytes(&log, 0, u32::MAX)),
        [(0, 2), (3, 4)]
    );
    assert_eq!(batch_offsets(&read_bytes(&log, 4, u32::MAX)), [(3, 4)]);
}

#[test]
fn staged_append_is_invisible_until_synced_under_flush_always() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default());
    let staged = log
        .stage_append(batch_bytes(1, 10, NOW_MS), NOW_MS)
        .unwrap();
    assert_eq!(log.log_end_offset(), 1);
    assert!(log.read(0, u32::MAX).unwrap().slices.is_empty());
    let write = &staged.writes[0];
    write
        .segment
        .file()
        .write_all_at(&write.bytes, write.position)
        .unwrap();
    log.mark_written(staged.last_offset);
    assert_eq!(
        log.high_watermark(),
        0,
        "written is not enough under flush=always"
    );
    assert_eq!(log.dirty_segments().len(), 1);
    log.mark_synced(staged.last_offset);
    assert_eq!(log.high_watermark(), 1);
    assert!(log.dirty_segments().is_empty());
    assert_eq!(batch_offsets(&read_bytes(&log, 0, u32::MAX)), [(0, 0)]);
}

#[test]
fn written_append_is_visible_under_flush_never() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        flush: FlushPolicy::Never,
        ..LogConfig::default()
    };
    let mut log = open(dir.path(), config);
    append(&mut log, batch_bytes(1, 10, NOW_MS));
    assert_eq!(log.high_watermark(), 1);
    assert_eq!(log.recovery_point(), 0, "nothing was fsynced");
}

#[test]
fn log_append_time_rewrites_timestamp_and_crc() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        message_timestamp_type: TimestampType::LogAppendTime,
        ..LogConfig::default()
    };
    let mut log = open(dir.path(), config);
    let staged = append(&mut log, batch_bytes(2, 10, 5));
    assert_eq!(staged.log_append_time_ms, Some(NOW_MS));
    let bytes = read_bytes(&log, 0, u32::MAX);
    check_batch(&bytes).unwrap();
    let (header, _) = RecordBatchHeader::ref_from_prefix(&bytes[..]).unwrap();
    assert_eq!(header.timestamp_type(), TimestampType::LogAppendTime);
    assert_eq!(header.max_timestamp.get(), NOW_MS);
    assert_eq!(log.offset_for_timestamp(NOW_MS).unwrap(), Some((0, NOW_MS)));
}

#[test]
fn create_time_append_keeps_the_producer_crc() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default());
    let batch = batch_bytes(2, 10, 5);
    append(&mut log, batch.clone());
    append(&mut log, batch.clone());
    let bytes = read_bytes(&log, 2, u32::MAX);
    assert_eq!(bytes[8..], batch[8..], "only baseOffset differs");
}

#[test]
fn invalid_batches_are_refused_with_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        max_message_bytes: 200,
        ..LogConfig::default()
    };
    let mut log = open(dir.path(), config);
    assert!(matches!(
        log.stage_append(BytesMut::new(), NOW_MS),
        Err(AppendError::Empty)
    ));
    assert!(matches!(
        log.stage_append(batch_bytes(1, 300, NOW_MS), NOW_MS),
        Err(AppendError::TooLarge {
            limit_bytes: 200,
            ..
        })
    ));
    let mut bad_crc = batch_bytes(1, 10, NOW_MS);
    let last = bad_crc.len() - 1;
    bad_crc[last] ^= 1;
    assert!(matches!(
        log.stage_append(bad_crc, NOW_MS),
        Err(AppendError::Corrupt { batch_index: 0, .. })
    ));
    let mut v1 = batch_bytes(1, 10, NOW_MS);
    v1[16] = 1;
    assert!(matches!(
        log.stage_append(v1, NOW_MS),
        Err(AppendError::Corrupt { .. })
    ));
    let mut control = batch_bytes(1, 10, NOW_MS);
    control[22] |= 0x20;
    let crc = spate_protocol::records::compute_batch_crc(&control).unwrap();
    control[17..21].copy_from_slice(&crc.to_be_bytes());
    assert!(matches!(
        log.stage_append(control, NOW_MS),
        Err(AppendError::ControlBatchFromClient { .. })
    ));
    let mut good_then_torn = batch_bytes(1, 10, NOW_MS);
    good_then_torn.extend_from_slice(&batch_bytes(1, 10, NOW_MS)[..30]);
    assert!(matches!(
        log.stage_append(good_then_torn, NOW_MS),
        Err(AppendError::Corrupt { batch_index: 1, .. })
    ));
    assert_eq!(log.log_end_offset(), 0);
    assert_eq!(log.active().cursor.size_bytes, 0, "nothing staged on error");
}

#[test]
fn several_batches_in_one_append_get_consecutive_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config());
    let mut records = batch_bytes(2, 10, NOW_MS);
    records.extend_from_slice(&batch_bytes(3, 10, NOW_MS));
    let staged = append(&mut log, records);
    assert_eq!((staged.base_offset, staged.last_offset), (0, 4));
    assert_eq!(
        batch_offsets(&read_bytes(&log, 0, u32::MAX)),
        [(0, 1), (2, 4)]
    );
}
