//! Truncation for replication: every mark clamped, epochs and producer state cut exactly,
//! the log restarted past its end, and crashes during and right after it.

use super::*;
use crate::log::checkpoint::{encode_offset_checkpoint, read_offset_checkpoint, write_atomically};

/// A replicated log of `count` batches of 3 records in small segments, all committed.
fn committed_log(dir: &Path, count: usize) -> PartitionLog {
    let mut log = open_replicated(dir, small_config());
    for _ in 0..count {
        append(&mut log, batch_bytes(3, 100, NOW_MS));
    }
    let end = log.stable_end();
    log.set_high_watermark(end).unwrap();
    log
}

#[test]
fn truncating_inside_a_segment_clamps_every_mark_and_appends_continue() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = committed_log(dir.path(), 6);
    log.checkpoint().unwrap();
    let segments_before = log.segment_count();
    log.truncate_to(16).unwrap();
    assert_eq!(log.log_end_offset(), 15, "the straddling batch goes whole");
    assert_eq!(
        (log.written_end(), log.stable_end(), log.high_watermark()),
        (15, 15, 15)
    );
    assert!(log.recovery_point() <= 15);
    assert!(log.segment_count() <= segments_before);
    assert!(log.recent_boundaries.iter().all(|b| b.offset < 15));
    assert_eq!(
        read_offset_checkpoint(dir.path(), REPLICATION_OFFSET_FILE).unwrap(),
        Some(15),
        "lowered before the cut"
    );
    assert_eq!(
        batch_offsets(&read_bytes(&log, 9, u32::MAX)),
        [(9, 11), (12, 14)]
    );
    assert_eq!(append(&mut log, batch_bytes(1, 10, NOW_MS)).base_offset, 15);
    assert_eq!(
        log.high_watermark(),
        15,
        "replicated: appends do not move it"
    );
    log.close().unwrap();
    let log = open_replicated(dir.path(), small_config());
    assert_eq!((log.log_end_offset(), log.high_watermark()), (16, 15));
}

#[test]
fn truncating_across_segments_drops_them_with_their_epochs() {
    let mut leader = Leader::new(small_config());
    for epoch in 0..4 {
        let end = leader.log.log_end_offset();
        leader.log.assign_epoch(epoch, end).unwrap();
        for _ in 0..3 {
            leader.append(batch_bytes(3, 100, NOW_MS));
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let mut follower = open_replicated(dir.path(), small_config());
    // One batch per fetch, so the follower rolls where the leader did.
    while follower.log_end_offset() < leader.log.log_end_offset() {
        let bytes = leader.fetch(follower.log_end_offset());
        let len = spate_protocol::records::check_batch(&bytes)
            .unwrap()
            .size_bytes;
        replicate(&mut follower, bytes.slice(..len));
    }
    assert_eq!(follower.leader_epochs().latest_epoch(), Some(3));
    assert_eq!(
        follower.segment_base_offsets(),
        leader.log.segment_base_offsets()
    );
    let segments_before = follower.segment_count();
    follower.set_high_watermark(30).unwrap();
    follower.truncate_to(10).unwrap();
    assert_eq!(follower.log_end_offset(), 9);
    assert!(follower.segment_count() < segments_before);
    assert_eq!(
        follower.leader_epochs().entries(),
        &[EpochEntry {
            epoch: 0,
            start_offset: 0
        }],
        "epoch 1 started at 9: gone"
    );
    assert_eq!(follower.high_watermark(), 9);
    assert_eq!(
        LeaderEpochCache::load(dir.path()).unwrap().latest_epoch(),
        Some(0)
    );
    // The follower fetches again from its new end and converges on the leader's bytes.
    replicate(&mut follower, leader.fetch(9));
    assert_eq!(
        read_bound_bytes(&follower, 0, ReadBound::WrittenEnd),
        leader.fetch(0).to_vec()
    );
    assert_eq!(follower.leader_epochs(), leader.log.leader_epochs());
}

#[test]
fn truncating_below_the_first_segment_restarts_the_log_there() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = committed_log(dir.path(), 8);
    let bases = log.segment_base_offsets();
    log.delete_records_before(bases[2]).unwrap();
    assert_eq!(log.segment_base_offsets()[0], bases[2]);
    log.truncate_to(bases[1]).unwrap();
    assert_eq!(log.segment_base_offsets(), [bases[1]]);
    assert_eq!(
        (
            log.log_start_offset(),
            log.high_watermark(),
            log.stable_end(),
            log.written_end(),
            log.log_end_offset()
        ),
        (bases[1], bases[1], bases[1], bases[1], bases[1])
    );
    drop(log);
    let log = open_replicated(dir.path(), small_config());
    assert_eq!(
        (log.log_start_offset(), log.log_end_offset()),
        (bases[1], bases[1])
    );
}

#[test]
fn truncate_fully_past_the_log_end_starts_an_empty_log_at_the_leaders_start() {
    let leader = {
        let mut leader = Leader::new(small_config());
        leader.log.assign_epoch(4, 0).unwrap();
        for _ in 0..6 {
            leader.append(batch_bytes(3, 100, NOW_MS));
        }
        leader
    };
    let dir = tempfile::tempdir().unwrap();
    let mut log = committed_log(dir.path(), 3);
    log.assign_epoch(2, 0).unwrap();
    log.truncate_fully_and_start_at(12).unwrap();
    assert_eq!(log.segment_base_offsets(), [12]);
    assert_eq!(
        (
            log.log_start_offset(),
            log.high_watermark(),
            log.stable_end(),
            log.log_end_offset()
        ),
        (12, 12, 12, 12)
    );
    assert!(log.leader_epochs().entries().is_empty());
    assert!(log.producer_state().is_empty());
    replicate(&mut log, leader.fetch(12));
    assert_eq!(log.log_end_offset(), 18);
    assert_eq!(log.leader_epochs().entries()[0].start_offset, 12);
    log.close().unwrap();
    let log = open_replicated(dir.path(), small_config());
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (12, 18));
    assert_eq!(
        read_bound_bytes(&log, 12, ReadBound::WrittenEnd),
        leader.fetch(12).to_vec()
    );
}

#[test]
fn truncate_fully_inside_the_log_and_at_a_segment_base() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = committed_log(dir.path(), 8);
    let bases = log.segment_base_offsets();
    log.truncate_fully_and_start_at(bases[2]).unwrap();
    assert_eq!(log.segment_base_offsets(), [bases[2]]);
    assert_eq!(
        (log.log_start_offset(), log.log_end_offset()),
        (bases[2], bases[2])
    );
    log.truncate_fully_and_start_at(bases[2] + 1).unwrap();
    assert_eq!(log.segment_base_offsets(), [bases[2] + 1]);
    log.truncate_fully_and_start_at(0).unwrap();
    assert_eq!(log.segment_base_offsets(), [0]);
    assert!(matches!(
        log.truncate_fully_and_start_at(-1),
        Err(LogError::InvalidOffset { .. })
    ));
    drop(log);
    let log = open(dir.path(), small_config());
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 0));
}

/// Producer 42 writes seq 0..=6 (one record each), producer 43 writes epoch 0 seq 0..=2 and
/// then epoch 1 seq 0, interleaved, with rolls in between.
fn producer_history(dir: &Path) -> (PartitionLog, Vec<StagedAppend>) {
    let mut log = open_replicated(dir, small_config());
    let mut by_42 = Vec::new();
    for sequence in 0..7 {
        by_42.push(append(&mut log, idempotent(1, 42, 0, sequence)));
        if sequence < 3 {
            append(&mut log, idempotent(1, 43, 0, sequence));
        }
        append(&mut log, batch_bytes(1, 300, NOW_MS));
    }
    append(&mut log, idempotent(1, 43, 1, 0));
    (log, by_42)
}

fn assert_exact_producer_state_after_cutting_seq_5(log: &mut PartitionLog, by_42: &[StagedAppend]) {
    let retry_1 = log.stage_append(idempotent(1, 42, 0, 1), NOW_MS).unwrap();
    assert!(retry_1.duplicate, "seq 1 is back in the five-batch window");
    assert_eq!(retry_1.base_offset, by_42[1].base_offset);
    let retry_4 = log.stage_append(idempotent(1, 42, 0, 4), NOW_MS).unwrap();
    assert!(retry_4.duplicate);
    let retry_43 = log.stage_append(idempotent(1, 43, 0, 2), NOW_MS).unwrap();
    assert!(
        retry_43.duplicate,
        "producer 43's epoch 1 batch was cut: its epoch 0 window is back"
    );
    let fresh = append(log, idempotent(1, 42, 0, 5));
    assert!(!fresh.duplicate, "a cut batch is appended fresh");
    assert_eq!(fresh.base_offset, by_42[5].base_offset);
}

#[test]
fn truncation_rebuilds_producer_state_exactly_from_a_segment_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, by_42) = producer_history(dir.path());
    let cut = by_42[5].base_offset;
    assert!(
        log.producer_snapshots
            .iter()
            .any(|s| s.segment_base_offset <= cut),
        "the cut lies in a segment with a snapshot"
    );
    log.truncate_to(cut).unwrap();
    assert_exact_producer_state_after_cutting_seq_5(&mut log, &by_42);
}

#[test]
fn truncation_without_a_snapshot_rebuilds_producer_state_from_headers() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, by_42) = producer_history(dir.path());
    let cut = by_42[5].base_offset;
    log.producer_snapshots.clear();
    log.truncate_to(cut).unwrap();
    assert_exact_producer_state_after_cutting_seq_5(&mut log, &by_42);
}

#[test]
fn a_crash_right_after_truncation_reopens_consistent() {
    let mut leader = Leader::new(small_config());
    leader.log.assign_epoch(1, 0).unwrap();
    let mut by_42 = Vec::new();
    for sequence in 0..4 {
        by_42.push(leader.append(idempotent(3, 42, 0, sequence * 3)));
        let end = leader.log.log_end_offset();
        leader.log.assign_epoch(2 + sequence, end).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let mut follower = open_replicated(dir.path(), small_config());
    replicate(&mut follower, leader.fetch(0));
    follower.set_high_watermark(12).unwrap();
    follower.checkpoint().unwrap();
    follower.truncate_to(7).unwrap();
    drop(follower); // the process dies: no close, no checkpoint
    let mut follower = open_replicated(dir.path(), small_config());
    assert_eq!(follower.log_end_offset(), 6);
    assert_eq!(follower.high_watermark(), 6);
    assert_eq!(
        follower.leader_epochs().latest_epoch(),
        Some(2),
        "epoch 3 started at 6"
    );
    let retry = follower
        .stage_append(idempotent(3, 42, 0, 3), NOW_MS)
        .unwrap();
    assert!(retry.duplicate);
    assert_eq!(retry.base_offset, by_42[1].base_offset);
    assert!(
        !follower
            .stage_append(idempotent(3, 42, 0, 6), NOW_MS)
            .unwrap()
            .duplicate
    );
}

#[test]
fn truncating_at_the_log_end_drops_a_former_leaders_empty_tenure_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = committed_log(dir.path(), 2);
    log.assign_epoch(3, 0).unwrap();
    log.assign_epoch(7, 6).unwrap();
    log.truncate_to(6).unwrap();
    assert_eq!(log.log_end_offset(), 6);
    assert_eq!(log.leader_epochs().latest_epoch(), Some(3));
    assert_eq!(
        LeaderEpochCache::load(dir.path()).unwrap().latest_epoch(),
        Some(3)
    );
}

#[test]
fn a_crash_while_starting_afresh_leaves_the_old_log_or_the_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let log = committed_log(dir.path(), 6);
    let old_end = log.log_end_offset();
    log.close().unwrap();
    // Crash after creating the new segment, before the log start checkpoint: the old log.
    std::fs::write(dir.path().join("00000000000000000100.log"), b"").unwrap();
    let log = open(dir.path(), small_config());
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, old_end));
    drop(log);
    // Crash after the log start checkpoint names it, with old segments left: the new log.
    std::fs::write(dir.path().join("00000000000000000100.log"), b"").unwrap();
    write_atomically(
        dir.path(),
        LOG_START_OFFSET_FILE,
        &encode_offset_checkpoint(100),
    )
    .unwrap();
    let log = open(dir.path(), small_config());
    assert_eq!(log.segment_base_offsets(), [100]);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (100, 100));
}
