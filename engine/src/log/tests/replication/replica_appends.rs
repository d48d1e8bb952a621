//! Follower appends: byte-identical copies, refusals that stage nothing, epochs from headers,
//! producer state, control batches, and appends that need a roll part way.

use super::*;
use spate_protocol::records::compute_batch_crc;

/// A leader log holding idempotent and plain batches over two leader epochs.
fn leader_with_two_epochs() -> Leader {
    let mut leader = Leader::new(small_config());
    leader.log.assign_epoch(3, 0).unwrap();
    leader.append(batch_bytes(3, 100, NOW_MS));
    leader.append(idempotent(2, 42, 0, 0));
    let end = leader.log.log_end_offset();
    leader.log.assign_epoch(5, end).unwrap();
    let mut two = batch_bytes(1, 100, NOW_MS);
    two.extend_from_slice(&idempotent(2, 42, 0, 2));
    leader.append(two);
    for _ in 0..4 {
        leader.append(batch_bytes(2, 150, NOW_MS));
    }
    leader
}

/// Sets `baseOffset` and `partitionLeaderEpoch` (outside the CRC).
fn placed(mut batch: BytesMut, base_offset: i64, epoch: i32) -> BytesMut {
    batch[0..8].copy_from_slice(&base_offset.to_be_bytes());
    batch[12..16].copy_from_slice(&epoch.to_be_bytes());
    batch
}

fn recompute_crc(batch: &mut BytesMut) {
    let crc = compute_batch_crc(batch).unwrap();
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

#[test]
fn replica_append_keeps_the_leaders_bytes_offsets_and_epochs() {
    let leader = leader_with_two_epochs();
    let dir = tempfile::tempdir().unwrap();
    let mut follower = open_replicated(dir.path(), small_config());
    let everything = leader.fetch(0);
    // Two fetches: the first ends at a batch boundary inside the leader's log.
    let split = batch_offsets(&everything)[3].0;
    let first: Vec<u8> = read_bound_bytes(&leader.log, 0, ReadBound::WrittenEnd);
    let first_len: usize = spate_protocol::records::Batches::new(&first)
        .take(3)
        .map(|b| b.unwrap().1.size_bytes)
        .sum();
    let staged = replicate(&mut follower, everything.slice(..first_len));
    assert_eq!((staged.base_offset, staged.last_offset), (0, split - 1));
    replicate(&mut follower, leader.fetch(split));
    assert_eq!(follower.log_end_offset(), leader.log.log_end_offset());
    assert_eq!(follower.stable_end(), follower.log_end_offset());
    assert_eq!(
        read_bound_bytes(&follower, 0, ReadBound::WrittenEnd),
        everything.to_vec(),
        "byte-identical, offsets and epochs included"
    );
    assert_eq!(batch_epochs(&everything), [3, 3, 5, 5, 5, 5, 5, 5]);
    assert_eq!(follower.leader_epochs(), leader.log.leader_epochs());
    assert!(
        follower.segment_count() > 1,
        "the follower rolled as it went"
    );
}

#[test]
fn replica_append_refuses_a_gap_or_an_overlap_and_stages_nothing() {
    let leader = leader_with_two_epochs();
    let dir = tempfile::tempdir().unwrap();
    let mut follower = open_replicated(dir.path(), small_config());
    let bytes = leader.fetch(0);
    let offsets = batch_offsets(&bytes);
    replicate(
        &mut follower,
        leader.fetch(0).slice(..first_batch_len(&bytes)),
    );
    let size_before = follower.size_bytes();
    let gap = follower.stage_replica_append(leader.fetch(offsets[2].0), NOW_MS);
    assert!(matches!(
        gap,
        Err(AppendError::NotContiguous {
            batch_index: 0,
            expected: 3,
            found: 5
        })
    ));
    let overlap = follower.stage_replica_append(bytes.clone(), NOW_MS);
    assert!(matches!(
        overlap,
        Err(AppendError::NotContiguous {
            expected: 3,
            found: 0,
            ..
        })
    ));
    let mut hole = BytesMut::from(&leader.fetch(3)[..]);
    let second_len = first_batch_len(&hole);
    hole.truncate(second_len);
    hole.extend_from_slice(&leader.fetch(offsets[3].0));
    assert!(matches!(
        follower.stage_replica_append(hole.freeze(), NOW_MS),
        Err(AppendError::NotContiguous {
            batch_index: 1,
            expected: 5,
            ..
        })
    ));
    assert_eq!(follower.log_end_offset(), 3);
    assert_eq!(follower.size_bytes(), size_before);
    assert_eq!(follower.leader_epochs().latest_epoch(), Some(3));
}

fn first_batch_len(bytes: &[u8]) -> usize {
    spate_protocol::records::check_batch(bytes)
        .unwrap()
        .size_bytes
}

#[test]
fn replica_append_refuses_a_corrupt_batch_and_stages_nothing() {
    let leader = leader_with_two_epochs();
    let dir = tempfile::tempdir().unwrap();
    let mut follower = open_replicated(dir.path(), small_config());
    let bytes = leader.fetch(0);
    let mut damaged = BytesMut::from(&bytes[..]);
    // A record byte of the third batch, the first of epoch 5.
    let third = batch_offsets(&bytes)[2].0;
    let position = bytes.len() - read_bound_bytes(&leader.log, third, ReadBound::WrittenEnd).len();
    damaged[position + 70] ^= 0x40;
    let refused = follower.stage_replica_append(damaged.freeze(), NOW_MS);
    assert!(matches!(
        refused,
        Err(AppendError::Corrupt { batch_index: 2, .. })
    ));
    assert_eq!(follower.log_end_offset(), 0);
    assert_eq!(follower.size_bytes(), 0);
    assert!(
        follower.leader_epochs().entries().is_empty(),
        "no epoch taken"
    );
    assert!(follower.producer_state().is_empty());
    assert!(matches!(
        follower.stage_replica_append(Bytes::new(), NOW_MS),
        Err(AppendError::Empty)
    ));
    replicate(&mut follower, bytes);
}

#[test]
fn epochs_taken_from_replica_headers_survive_reopen() {
    let leader = leader_with_two_epochs();
    let dir = tempfile::tempdir().unwrap();
    let mut follower = open_replicated(dir.path(), small_config());
    replicate(&mut follower, leader.fetch(0));
    let epochs = follower.leader_epochs().clone();
    assert_eq!(epochs.latest_epoch(), Some(5));
    drop(follower); // no close: the epochs were persisted before the bytes were staged
    assert_eq!(LeaderEpochCache::load(dir.path()).unwrap(), epochs);
    let follower = open(dir.path(), small_config());
    assert_eq!(follower.leader_epochs(), &epochs);
    assert_eq!(
        follower
            .leader_epochs()
            .end_offset_for_epoch(3, follower.log_end_offset()),
        Some((3, 5))
    );
}

#[test]
fn a_follower_that_becomes_leader_deduplicates_a_retry_of_a_replicated_batch() {
    let mut leader = Leader::new(LogConfig::default());
    leader.log.assign_epoch(1, 0).unwrap();
    leader.append(batch_bytes(1, 10, NOW_MS));
    let original = leader.append(idempotent(3, 42, 0, 0));
    leader.append(idempotent(2, 42, 0, 3));
    let dir = tempfile::tempdir().unwrap();
    let mut follower = open_replicated(dir.path(), LogConfig::default());
    replicate(&mut follower, leader.fetch(0));
    // Elected: the new leader starts its epoch and a producer retries across the failover.
    follower.assign_epoch(2, follower.log_end_offset()).unwrap();
    let retry = follower
        .stage_append(idempotent(3, 42, 0, 0), NOW_MS)
        .unwrap();
    assert!(retry.duplicate);
    assert_eq!(
        (retry.base_offset, retry.last_offset),
        (original.base_offset, original.last_offset)
    );
    assert!(matches!(
        follower.stage_append(idempotent(1, 42, 0, 7), NOW_MS),
        Err(AppendError::Producer(
            ProducerError::OutOfOrderSequence { .. }
        ))
    ));
    let next = append(&mut follower, idempotent(1, 42, 0, 5));
    assert_eq!(next.base_offset, 6);
    let bytes = read_bound_bytes(&follower, 6, ReadBound::WrittenEnd);
    assert_eq!(batch_epochs(&bytes), [2], "the new leader stamps its epoch");
}

#[test]
fn replica_append_accepts_control_batches_and_no_message_size_limit() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        max_message_bytes: 100,
        ..LogConfig::default()
    };
    let mut follower = open_replicated(dir.path(), config);
    let mut control = placed(batch_bytes(1, 10, NOW_MS), 0, 7);
    control[22] |= 0x20;
    recompute_crc(&mut control);
    let large = placed(batch_bytes(2, 500, NOW_MS), 1, 7);
    let mut records = control.clone();
    records.extend_from_slice(&large);
    replicate(&mut follower, records.clone().freeze());
    assert_eq!(follower.log_end_offset(), 3);
    assert_eq!(
        read_bound_bytes(&follower, 0, ReadBound::WrittenEnd),
        records.to_vec()
    );
    assert_eq!(follower.leader_epochs().latest_epoch(), Some(7));
}

#[test]
fn replica_batches_claiming_more_offsets_than_a_segment_spans_roll_mid_append() {
    // A batch may claim up to 2^31 offsets in a few bytes (clients set the count; records are
    // never decoded). Three of them overflow one segment's u32 offset span.
    let span_claim = i64::from(i32::MAX) - 1;
    let mut records = BytesMut::new();
    for i in 0..3 {
        let mut batch = placed(batch_bytes(1, 10, NOW_MS), i * span_claim, 2);
        let delta = i32::try_from(span_claim - 1).unwrap();
        batch[23..27].copy_from_slice(&delta.to_be_bytes());
        batch[57..61].copy_from_slice(&(delta + 1).to_be_bytes());
        recompute_crc(&mut batch);
        records.extend_from_slice(&batch);
    }
    let dir = tempfile::tempdir().unwrap();
    let mut follower = open_replicated(dir.path(), LogConfig::default());
    let staged = follower
        .stage_replica_append(records.clone().freeze(), NOW_MS)
        .unwrap();
    assert_eq!(staged.writes.len(), 2, "one write per segment");
    assert_eq!(follower.segment_base_offsets(), [0, 2 * span_claim]);
    follower.abort_staged(staged.base_offset).unwrap();
    assert_eq!(follower.segment_base_offsets(), [0]);
    assert_eq!(follower.log_end_offset(), 0);
    assert!(
        follower.leader_epochs().entries().is_empty(),
        "epochs put back"
    );
    replicate(&mut follower, records.clone().freeze());
    assert_eq!(follower.log_end_offset(), 3 * span_claim);
    follower.close().unwrap();
    let follower = open(dir.path(), LogConfig::default());
    assert_eq!(follower.log_end_offset(), 3 * span_claim);
    assert_eq!(
        read_bound_bytes(&follower, 0, ReadBound::WrittenEnd),
        records.to_vec()
    );
}

#[test]
fn aborting_a_replica_append_restores_epochs_and_producer_state() {
    let leader = leader_with_two_epochs();
    let bytes = leader.fetch(0);
    let dir = tempfile::tempdir().unwrap();
    let mut follower = open_replicated(dir.path(), small_config());
    replicate(&mut follower, bytes.slice(..first_batch_len(&bytes)));
    let producers = follower.producer_state().clone();
    let staged = follower
        .stage_replica_append(leader.fetch(3), NOW_MS)
        .unwrap();
    assert_eq!(follower.leader_epochs().latest_epoch(), Some(5));
    assert!(follower.producer_state().get(42).is_some());
    follower.abort_staged(staged.base_offset).unwrap();
    assert_eq!(follower.log_end_offset(), 3);
    assert_eq!(follower.leader_epochs().latest_epoch(), Some(3));
    assert_eq!(follower.producer_state(), &producers);
    drop(follower);
    assert_eq!(
        LeaderEpochCache::load(dir.path()).unwrap().latest_epoch(),
        Some(3),
        "the file was put back too"
    );
}
