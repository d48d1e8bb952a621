//! Segments: rolling by size and age, and reopening.

use super::*;

#[test]
fn segment_rolls_when_full_and_files_are_named_by_base_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config());
    let batch = batch_bytes(1, 300, NOW_MS);
    for _ in 0..5 {
        append(&mut log, batch.clone());
    }
    let per_segment = 1024 / batch.len() as i64;
    assert_eq!(
        log.segment_count() as i64,
        (5 + per_segment - 1) / per_segment
    );
    assert!(dir.path().join(format!("{:020}.log", per_segment)).exists());
    assert!(
        dir.path().join(format!("{:020}.index", 0)).exists(),
        "index written at roll"
    );
}

#[test]
fn segment_rolls_when_older_than_segment_ms() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_ms: 1_000,
        ..LogConfig::default()
    };
    let mut log = open(dir.path(), config);
    let first = log
        .stage_append(batch_bytes(1, 10, NOW_MS), NOW_MS)
        .unwrap();
    apply_writes_blocking(&mut log, &first).unwrap();
    let second = log
        .stage_append(batch_bytes(1, 10, NOW_MS), NOW_MS + 999)
        .unwrap();
    apply_writes_blocking(&mut log, &second).unwrap();
    assert_eq!(log.segment_count(), 1);
    let third = log
        .stage_append(batch_bytes(1, 10, NOW_MS), NOW_MS + 1_000)
        .unwrap();
    apply_writes_blocking(&mut log, &third).unwrap();
    assert_eq!(log.segment_count(), 2);
    assert_eq!(third.writes[0].segment.base_offset(), 2);
}

#[test]
fn reopen_restores_offsets_contents_and_index_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config());
    for i in 0..12 {
        append(&mut log, batch_bytes(1 + i % 3, 80, NOW_MS + i as i64));
    }
    let before = read_bytes(&log, 0, u32::MAX);
    let (end, segments) = (log.log_end_offset(), log.segment_count());
    log.close().unwrap();
    let index_files = |dir: &Path| -> Vec<Vec<u8>> {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.extension()
                    .is_some_and(|x| x == "index" || x == "timeindex")
            })
            .collect();
        names.sort();
        names.iter().map(|p| std::fs::read(p).unwrap()).collect()
    };
    let files_before = index_files(dir.path());
    let log = open(dir.path(), small_config());
    assert_eq!(log.log_end_offset(), end);
    assert_eq!(log.high_watermark(), end);
    assert_eq!(log.recovery_point(), end);
    assert_eq!(log.segment_count(), segments);
    assert_eq!(read_bytes(&log, 0, u32::MAX), before);
    assert_eq!(
        index_files(dir.path()),
        files_before,
        "index files were already right"
    );
    let (active, sealed) = log.segments.split_last().unwrap();
    assert!(
        sealed
            .iter()
            .all(|s| s.sealed.is_some() && s.index.len() == 0)
    );
    assert!(active.sealed.is_none());
    assert!(active.index_files_match().unwrap());
}

#[test]
fn sealed_segments_answer_lookups_from_their_index_files() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 64 * 1024,
        index_interval_bytes: 64,
        ..LogConfig::default()
    };
    let mut log = open(dir.path(), config.clone());
    for i in 0..400 {
        append(&mut log, batch_bytes(2, 60, NOW_MS + i * 10));
    }
    let expected: Vec<_> = (0..800)
        .step_by(37)
        .map(|offset| {
            (
                read_bytes(&log, offset, 500),
                log.offset_for_timestamp(NOW_MS + offset * 5).unwrap(),
            )
        })
        .collect();
    log.close().unwrap();
    let log = open(dir.path(), config);
    assert!(log.segments[0].sealed.is_some());
    assert!(log.segments[0].cursor.index_len > super::super::sealed_index::SEALED_INDEX_STRIDE);
    let actual: Vec<_> = (0..800)
        .step_by(37)
        .map(|offset| {
            (
                read_bytes(&log, offset, 500),
                log.offset_for_timestamp(NOW_MS + offset * 5).unwrap(),
            )
        })
        .collect();
    assert_eq!(actual, expected);
}
