//! Damaged files on open: what is cut, what is rebuilt, and what is reported.
//!
//! The rule under test: damage above the recovery point is a torn tail and is cut; damage
//! below it is acknowledged data gone bad, reported as `LogError::Corrupt` with the partition,
//! the file and the byte position, and never served. Index files are only hints and are
//! rebuilt whenever they are missing or disagree with the log. Nothing here may panic.

// Test helpers outside #[test] functions: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use spate_engine::log::fixture::batch_bytes;
use spate_engine::log::{Damage, LogError, PartitionLog, apply_writes_blocking};
use spate_engine::{LogConfig, TopicPartition};
use spate_protocol::records::{BatchError, Batches};

const NOW_MS: i64 = 1_700_000_000_000;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        index_interval_bytes: 200,
        ..LogConfig::default()
    }
}

fn open(dir: &Path) -> Result<PartitionLog, LogError> {
    PartitionLog::open(dir, TopicPartition::new("t", 0), config(), NOW_MS)
}

/// Appends `count` batches of 2 records and returns each batch's (position, size) in the
/// first segment.
fn append_batches(log: &mut PartitionLog, count: usize) -> Vec<(u64, u64)> {
    let mut placed = Vec::new();
    for i in 0..count {
        let staged = log
            .stage_append(batch_bytes(2, 100, NOW_MS + i as i64), NOW_MS)
            .unwrap();
        apply_writes_blocking(log, &staged).unwrap();
        let write = &staged.writes[0];
        placed.push((write.position, write.bytes.len() as u64));
    }
    placed
}

fn read_everything(log: &PartitionLog) -> Vec<u8> {
    let result = log.read(log.log_start_offset(), u32::MAX).unwrap();
    let mut bytes = Vec::new();
    for slice in &result.slices {
        let mut chunk = vec![0u8; slice.len as usize];
        slice
            .segment
            .file()
            .read_exact_at(&mut chunk, slice.position)
            .unwrap();
        bytes.extend_from_slice(&chunk);
    }
    bytes
}

fn segment_path(dir: &Path, base_offset: i64, extension: &str) -> PathBuf {
    dir.join(format!("{base_offset:020}.{extension}"))
}

fn flip_byte(path: &Path, position: u64) {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut byte = [0u8; 1];
    file.read_exact_at(&mut byte, position).unwrap();
    byte[0] ^= 0x5a;
    file.write_all_at(&byte, position).unwrap();
}

/// A log of 3 checkpointed batches followed by 3 more that were written and synced but not
/// checkpointed (the process died before its next checkpoint).
fn log_with_unchecked_tail(dir: &Path) -> Vec<(u64, u64)> {
    let mut log = open(dir).unwrap();
    let mut placed = append_batches(&mut log, 3);
    log.close().unwrap();
    let mut log = open(dir).unwrap();
    placed.extend(append_batches(&mut log, 3));
    drop(log);
    placed
}

#[test]
fn flipped_byte_in_the_tail_is_cut_and_earlier_data_survives() {
    let dir = tempfile::tempdir().unwrap();
    let placed = log_with_unchecked_tail(dir.path());
    let (last_position, last_size) = placed[5];
    let path = segment_path(dir.path(), 0, "log");
    let before = fs::read(&path).unwrap();
    flip_byte(&path, last_position + last_size - 3);
    let log = open(dir.path()).unwrap();
    assert_eq!(
        log.log_end_offset(),
        10,
        "the damaged last batch (10..=11) is cut"
    );
    assert_eq!(fs::metadata(&path).unwrap().len(), last_position);
    assert_eq!(read_everything(&log), before[..last_position as usize]);
}

#[test]
fn flipped_byte_mid_segment_above_recovery_point_cuts_from_there() {
    let dir = tempfile::tempdir().unwrap();
    let placed = log_with_unchecked_tail(dir.path());
    let (position, _) = placed[4];
    flip_byte(&segment_path(dir.path(), 0, "log"), position + 40);
    let log = open(dir.path()).unwrap();
    assert_eq!(log.log_end_offset(), 8);
}

#[test]
fn damage_at_the_start_of_an_unchecked_segment_removes_it_and_later_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path()).unwrap();
    append_batches(&mut log, 2);
    log.close().unwrap();
    let mut log = open(dir.path()).unwrap();
    append_batches(&mut log, 60);
    let bases = log.segment_base_offsets();
    assert!(bases.len() >= 4, "the test needs several segments");
    drop(log);
    let damaged = bases[bases.len() - 3];
    let path = segment_path(dir.path(), damaged, "log");
    flip_byte(&path, 100);
    let log = open(dir.path()).unwrap();
    assert_eq!(
        log.log_end_offset(),
        damaged,
        "the first batch of the segment was damaged"
    );
    assert_eq!(log.segment_base_offsets(), bases[..bases.len() - 3]);
    for later in &bases[bases.len() - 3..] {
        assert!(!segment_path(dir.path(), *later, "log").exists());
    }
}

#[test]
fn flipped_byte_mid_segment_below_recovery_point_is_reported_not_served() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path()).unwrap();
    let placed = append_batches(&mut log, 6);
    log.close().unwrap();
    let (position, size) = placed[2];
    let path = segment_path(dir.path(), 0, "log");
    flip_byte(&path, position + size / 2);
    match open(dir.path()) {
        Err(LogError::Corrupt {
            partition,
            file,
            position: reported,
            damage: Damage::Batch(BatchError::CrcMismatch { .. }),
        }) => {
            assert_eq!(partition, TopicPartition::new("t", 0));
            assert_eq!(file, path);
            assert_eq!(reported, position);
            let message = open(dir.path()).unwrap_err().to_string();
            assert!(message.contains("t-0") && message.contains(&format!("byte {position}")));
        }
        other => panic!("expected a corruption report, got {other:?}"),
    }
    assert_eq!(
        fs::metadata(&path).unwrap().len(),
        placed[5].0 + placed[5].1,
        "acknowledged data is not cut"
    );
}

#[test]
fn damaged_length_field_below_recovery_point_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path()).unwrap();
    let placed = append_batches(&mut log, 4);
    log.close().unwrap();
    let (position, _) = placed[1];
    flip_byte(&segment_path(dir.path(), 0, "log"), position + 8);
    let error = open(dir.path()).unwrap_err();
    assert!(
        matches!(error, LogError::Corrupt { position: p, .. } if p == position),
        "{error}"
    );
}

#[test]
fn torn_half_written_batch_at_the_end_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path()).unwrap();
    append_batches(&mut log, 3);
    log.close().unwrap();
    let path = segment_path(dir.path(), 0, "log");
    let clean_len = fs::metadata(&path).unwrap().len();
    let half = batch_bytes(2, 100, NOW_MS);
    let file = OpenOptions::new().append(true).open(&path).unwrap();
    file.write_all_at(&half[..half.len() / 2], clean_len)
        .unwrap();
    let log = open(dir.path()).unwrap();
    assert_eq!(log.log_end_offset(), 6);
    assert_eq!(fs::metadata(&path).unwrap().len(), clean_len);
}

#[test]
fn zero_filled_tail_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path()).unwrap();
    append_batches(&mut log, 2);
    log.close().unwrap();
    let path = segment_path(dir.path(), 0, "log");
    let clean_len = fs::metadata(&path).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(clean_len + 4096)
        .unwrap();
    let mut log = open(dir.path()).unwrap();
    assert_eq!(log.log_end_offset(), 4);
    assert_eq!(fs::metadata(&path).unwrap().len(), clean_len);
    append_batches(&mut log, 1);
    assert_eq!(log.log_end_offset(), 6);
}

#[test]
fn truncated_index_is_rebuilt_and_reads_stay_correct() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path()).unwrap();
    append_batches(&mut log, 12);
    let expected = read_everything(&log);
    log.close().unwrap();
    let index = segment_path(dir.path(), 0, "index");
    let full = fs::read(&index).unwrap();
    assert!(full.len() >= 16, "the test needs a few index entries");
    OpenOptions::new()
        .write(true)
        .open(&index)
        .unwrap()
        .set_len(full.len() as u64 / 2 - 3)
        .unwrap();
    let log = open(dir.path()).unwrap();
    assert_eq!(fs::read(&index).unwrap(), full, "rebuilt");
    assert_eq!(read_everything(&log), expected);
    let from_middle = log.read(13, 250).unwrap();
    assert_eq!(from_middle.slices[0].position, {
        let mut position = 0;
        for (start, batch) in Batches::new(&expected).map(Result::unwrap) {
            if batch.base_offset == 12 {
                position = start as u64;
            }
        }
        position
    });
}

#[test]
fn missing_and_garbage_indexes_are_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path()).unwrap();
    append_batches(&mut log, 12);
    let expected_lookup = log.offset_for_timestamp(NOW_MS + 7).unwrap();
    log.close().unwrap();
    let index = segment_path(dir.path(), 0, "index");
    let time_index = segment_path(dir.path(), 0, "timeindex");
    let full = fs::read(&index).unwrap();
    fs::remove_file(&index).unwrap();
    fs::write(&time_index, vec![0xff; 36]).unwrap();
    let log = open(dir.path()).unwrap();
    assert_eq!(fs::read(&index).unwrap(), full);
    assert_eq!(fs::metadata(&time_index).unwrap().len() % 12, 0);
    assert_eq!(
        log.offset_for_timestamp(NOW_MS + 7).unwrap(),
        expected_lookup
    );
    assert_eq!(
        expected_lookup,
        Some((12, NOW_MS + 7)),
        "batch 6 holds NOW+6 and NOW+7"
    );
}

#[test]
fn garbled_recovery_point_checkpoint_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path()).unwrap();
    append_batches(&mut log, 2);
    log.close().unwrap();
    fs::write(
        dir.path().join("recovery-point-offset-checkpoint"),
        b"\xff\xfe garbage",
    )
    .unwrap();
    let log = open(dir.path()).unwrap();
    assert_eq!(log.log_end_offset(), 4);
}

#[test]
fn missing_segment_below_recovery_point_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path()).unwrap();
    append_batches(&mut log, 60);
    assert!(log.segment_count() >= 3);
    let second = log.read(0, u32::MAX).unwrap().slices[1]
        .segment
        .base_offset();
    log.close().unwrap();
    fs::remove_file(segment_path(dir.path(), second, "log")).unwrap();
    let error = open(dir.path()).unwrap_err();
    assert!(
        matches!(error, LogError::Corrupt { damage: Damage::OffsetMismatch { expected, .. }, .. } if expected == second),
        "{error}"
    );
}

#[test]
fn missing_last_segment_below_recovery_point_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path()).unwrap();
    append_batches(&mut log, 30);
    let last = log
        .read(0, u32::MAX)
        .unwrap()
        .slices
        .last()
        .unwrap()
        .segment
        .base_offset();
    assert!(last > 0);
    log.close().unwrap();
    fs::remove_file(segment_path(dir.path(), last, "log")).unwrap();
    let error = open(dir.path()).unwrap_err();
    assert!(
        matches!(
            error,
            LogError::Corrupt {
                damage: Damage::MissingData { .. },
                ..
            }
        ),
        "{error}"
    );
}

/// Case count: `PROPTEST_CASES` for long local runs, a quick default for CI.
fn cases_or(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(default)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases_or(64), ..ProptestConfig::default() })]

    /// Any single flipped byte in a checkpointed log is either reported on open, or lies in
    /// the one header field no checksum covers (partitionLeaderEpoch, bytes 12..16), in which
    /// case everything else reads back unchanged. Never a panic, never other changed bytes.
    #[test]
    fn any_flipped_byte_is_reported_or_harmless(pick in 0.0..1.0f64, mask in 1u8..=255) {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path()).unwrap();
        let placed = append_batches(&mut log, 5);
        let original = read_everything(&log);
        log.close().unwrap();
        let position = ((original.len() as f64) * pick) as u64;
        let path = segment_path(dir.path(), 0, "log");
        let file = OpenOptions::new().read(true).write(true).open(&path).unwrap();
        let mut byte = [0u8; 1];
        file.read_exact_at(&mut byte, position).unwrap();
        file.write_all_at(&[byte[0] ^ mask], position).unwrap();
        let in_epoch_field = placed
            .iter()
            .any(|(start, _)| (start + 12..start + 16).contains(&position));
        match open(dir.path()) {
            Ok(log) => {
                prop_assert!(in_epoch_field, "undetected flip at {}", position);
                let now = read_everything(&log);
                prop_assert_eq!(now.len(), original.len());
                let differing: Vec<usize> =
                    (0..now.len()).filter(|&i| now[i] != original[i]).collect();
                prop_assert_eq!(differing, vec![position as usize]);
            }
            Err(LogError::Corrupt { file, position: reported, .. }) => {
                prop_assert_eq!(file, path);
                let batch_start = placed.iter().rev().find(|(s, _)| *s <= position).unwrap().0;
                prop_assert!(reported <= position && reported >= batch_start.min(reported));
            }
            Err(other) => prop_assert!(false, "unexpected error {}", other),
        }
    }
}
