//! Idempotent producers through the log: duplicates, gaps, fencing, recovery.

use super::*;

#[test]
fn producer_retry_is_a_duplicate_with_original_offsets_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default());
    append(&mut log, batch_bytes(2, 10, NOW_MS));
    let batch = TestBatch::new(3, 10, NOW_MS).idempotent(42, 0, 0).encode();
    let original = append(&mut log, batch.clone());
    let retry = log.stage_append(batch, NOW_MS).unwrap();
    assert!(retry.duplicate);
    assert!(retry.writes.is_empty());
    assert_eq!(
        (retry.base_offset, retry.last_offset),
        (original.base_offset, original.last_offset)
    );
    assert_eq!(log.log_end_offset(), 5);
}

#[test]
fn producer_gap_and_stale_epoch_are_refused_and_leave_the_log_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default());
    append(
        &mut log,
        TestBatch::new(2, 10, NOW_MS).idempotent(42, 1, 0).encode(),
    );
    let gap = TestBatch::new(1, 10, NOW_MS).idempotent(42, 1, 3).encode();
    assert!(matches!(
        log.stage_append(gap, NOW_MS),
        Err(AppendError::Producer(
            ProducerError::OutOfOrderSequence { .. }
        ))
    ));
    let stale = TestBatch::new(1, 10, NOW_MS).idempotent(42, 0, 2).encode();
    assert!(matches!(
        log.stage_append(stale, NOW_MS),
        Err(AppendError::Producer(
            ProducerError::InvalidProducerEpoch { .. }
        ))
    ));
    let bumped_late = TestBatch::new(1, 10, NOW_MS).idempotent(42, 2, 2).encode();
    assert!(
        log.stage_append(bumped_late, NOW_MS).is_err(),
        "new epoch starts at 0"
    );
    assert_eq!(log.log_end_offset(), 2);
    let next = append(
        &mut log,
        TestBatch::new(1, 10, NOW_MS).idempotent(42, 1, 2).encode(),
    );
    assert_eq!(next.base_offset, 2);
}

#[test]
fn producer_state_is_rebuilt_from_the_log_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let batch = TestBatch::new(2, 10, NOW_MS).idempotent(42, 0, 0).encode();
    let mut log = open(dir.path(), LogConfig::default());
    append(&mut log, batch_bytes(1, 10, NOW_MS));
    append(&mut log, batch.clone());
    drop(log);
    let mut log = open(dir.path(), LogConfig::default());
    let retry = log.stage_append(batch, NOW_MS).unwrap();
    assert!(retry.duplicate);
    assert_eq!(retry.base_offset, 1);
    let gap = TestBatch::new(1, 10, NOW_MS).idempotent(42, 0, 5).encode();
    assert!(log.stage_append(gap, NOW_MS).is_err());
}

#[test]
fn aborted_append_restores_producer_state() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default());
    let batch = TestBatch::new(1, 10, NOW_MS).idempotent(42, 0, 0).encode();
    let staged = log.stage_append(batch.clone(), NOW_MS).unwrap();
    log.abort_staged(staged.base_offset).unwrap();
    assert!(log.producer_state().get(42).is_none());
    let again = log.stage_append(batch, NOW_MS).unwrap();
    assert!(!again.duplicate);
}
