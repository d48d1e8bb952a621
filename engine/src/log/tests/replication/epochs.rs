//! The leader-epoch cache at open: rebuilt from batch headers when its file is missing,
//! garbled or behind, and never overridden by epochs below its latest start.

use super::*;

fn leader_log(dir: &Path) -> PartitionLog {
    let mut log = open(dir, small_config());
    log.assign_epoch(3, 0).unwrap();
    for _ in 0..3 {
        append(&mut log, batch_bytes(3, 100, NOW_MS));
    }
    log.assign_epoch(5, 9).unwrap();
    for _ in 0..3 {
        append(&mut log, batch_bytes(3, 100, NOW_MS));
    }
    log
}

fn expected() -> Vec<EpochEntry> {
    vec![
        EpochEntry {
            epoch: 3,
            start_offset: 0,
        },
        EpochEntry {
            epoch: 5,
            start_offset: 9,
        },
    ]
}

#[test]
fn epoch_cache_is_rebuilt_from_batch_headers_when_its_file_is_deleted() {
    let dir = tempfile::tempdir().unwrap();
    leader_log(dir.path()).close().unwrap();
    std::fs::remove_file(LeaderEpochCache::path(dir.path())).unwrap();
    let log = open(dir.path(), small_config());
    assert_eq!(log.leader_epochs().entries(), &expected()[..]);
    assert_eq!(
        log.leader_epochs()
            .end_offset_for_epoch(3, log.log_end_offset()),
        Some((3, 9))
    );
}

#[test]
fn a_garbled_epoch_file_is_rebuilt_from_headers_and_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    leader_log(dir.path()).close().unwrap();
    std::fs::write(LeaderEpochCache::path(dir.path()), "0\n2\nnot epochs\n").unwrap();
    let log = open(dir.path(), small_config());
    assert_eq!(log.leader_epochs().entries(), &expected()[..]);
    assert_eq!(
        LeaderEpochCache::load(dir.path()).unwrap().entries(),
        &expected()[..]
    );
}

#[test]
fn an_epoch_file_behind_the_log_catches_up_from_headers() {
    let dir = tempfile::tempdir().unwrap();
    leader_log(dir.path()).close().unwrap();
    std::fs::write(LeaderEpochCache::path(dir.path()), "0\n1\n3 0\n").unwrap();
    let log = open(dir.path(), small_config());
    assert_eq!(log.leader_epochs().entries(), &expected()[..]);
    assert_eq!(
        LeaderEpochCache::load(dir.path()).unwrap().entries(),
        &expected()[..]
    );
}

#[test]
fn client_epochs_below_the_caches_latest_start_do_not_override_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config());
    // Before any epoch is assigned a batch keeps whatever its producer sent.
    let mut odd = batch_bytes(1, 10, NOW_MS);
    odd[12..16].copy_from_slice(&1_000_000_i32.to_be_bytes());
    append(&mut log, odd);
    log.assign_epoch(5, 1).unwrap();
    append(&mut log, batch_bytes(1, 10, NOW_MS));
    log.close().unwrap();
    let log = open(dir.path(), small_config());
    assert_eq!(
        log.leader_epochs().entries(),
        &[EpochEntry {
            epoch: 5,
            start_offset: 1
        }]
    );
}
