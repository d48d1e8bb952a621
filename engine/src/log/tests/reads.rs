//! Reads: batch boundaries, byte budgets, range errors and timestamp lookup.

use super::*;

#[test]
fn read_respects_max_bytes_but_returns_an_oversized_first_batch_whole() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config());
    let batch = batch_bytes(2, 40, NOW_MS);
    let batch_size = batch.len() as u32;
    for _ in 0..10 {
        append(&mut log, batch.clone());
    }
    let two = read_bytes(&log, 0, batch_size * 2 + batch_size / 2);
    assert_eq!(batch_offsets(&two), [(0, 1), (2, 3)]);
    let one = read_bytes(&log, 5, 1);
    assert_eq!(batch_offsets(&one), [(4, 5)], "KIP-74: first batch whole");
    let all = read_bytes(&log, 0, u32::MAX);
    assert_eq!(all.len() as u32, batch_size * 10);
    assert!(log.segment_count() > 1, "reads span segments");
}

#[test]
fn read_outside_the_log_is_out_of_range_and_at_the_end_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default());
    append(&mut log, batch_bytes(2, 10, NOW_MS));
    assert!(log.read(2, 100).unwrap().slices.is_empty());
    assert!(matches!(
        log.read(3, 100),
        Err(ReadError::OffsetOutOfRange {
            offset: 3,
            log_start: 0,
            log_end: 2
        })
    ));
    assert!(matches!(
        log.read(-1, 100),
        Err(ReadError::OffsetOutOfRange { .. })
    ));
}

#[test]
fn timestamp_lookup_finds_first_batch_at_or_after_target() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config());
    for i in 0..20 {
        append(&mut log, batch_bytes(2, 50, NOW_MS + i * 100));
    }
    assert_eq!(
        log.offset_for_timestamp(NOW_MS - 5).unwrap(),
        Some((0, NOW_MS + 1))
    );
    assert_eq!(
        log.offset_for_timestamp(NOW_MS + 1).unwrap(),
        Some((0, NOW_MS + 1))
    );
    assert_eq!(
        log.offset_for_timestamp(NOW_MS + 2).unwrap(),
        Some((2, NOW_MS + 101))
    );
    assert_eq!(
        log.offset_for_timestamp(NOW_MS + 1_550).unwrap(),
        Some((32, NOW_MS + 1_601))
    );
    assert_eq!(log.offset_for_timestamp(NOW_MS + 1_902).unwrap(), None);
}

#[test]
fn tail_reads_start_at_remembered_boundaries_which_truncation_forgets() {
    let dir = tempfile::tempdir().unwrap();
    // Default index interval (4 KiB): these small batches get no index entries, so reads
    // in the middle of the log would walk headers from position 0 without the boundaries.
    let mut log = open(dir.path(), LogConfig::default());
    append(&mut log, batch_bytes(3, 10, NOW_MS));
    append(&mut log, batch_bytes(2, 10, NOW_MS));
    append(&mut log, batch_bytes(4, 10, NOW_MS));
    let remembered: Vec<i64> = log.recent_boundaries.iter().map(|b| b.offset).collect();
    assert_eq!(remembered, [3, 5, 9]);
    assert_eq!(
        batch_offsets(&read_bytes(&log, 3, u32::MAX)),
        [(3, 4), (5, 8)]
    );
    assert_eq!(batch_offsets(&read_bytes(&log, 5, u32::MAX)), [(5, 8)]);
    assert_eq!(
        batch_offsets(&read_bytes(&log, 4, u32::MAX)),
        [(3, 4), (5, 8)],
        "an offset inside a batch still finds the batch by walking"
    );

    log.truncate_to(3).unwrap();
    assert!(log.recent_boundaries.is_empty());
    append(&mut log, batch_bytes(5, 30, NOW_MS));
    assert_eq!(
        batch_offsets(&read_bytes(&log, 5, u32::MAX)),
        [(3, 7)],
        "offset 5 is now inside the new batch, not at the old boundary"
    );
}
