//! The controller quorum's openraft storage: openraft's own storage suite, durability and
//! recovery of the log store on disk, and a one-member quorum that applies writes and
//! rebuilds its image after a restart. The state machine's own tests (apply outcomes,
//! snapshot files, refused installs) are unit tests in `cluster/raft/state_machine.rs`.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{
    Fatal, InitializeError, NetworkError, RPCError, RaftError, ReplicationClosed, StreamingError,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{
    BasicNode, EntryPayload, ErrorSubject, ErrorVerb, OptionalSend, RaftLogReader, ServerState,
};
use spate_cluster::{ClusterImage, MetadataBatch, RecordBody, TopicId};
use spate_server::cluster::feed::MetadataFeed;
use spate_server::cluster::raft::{
    ApplyOutcome, Entry, LogId, LogStore, Raft, Snapshot, StateMachine, StorageError, TypeConfig,
    Vote, raft_config,
};
use tempfile::TempDir;

// ---------------------------------------------------------------- helpers

fn log_id(term: u64, index: u64) -> LogId {
    openraft::testing::log_id(term, 1, index)
}

fn blank(term: u64, index: u64) -> Entry {
    Entry {
        log_id: log_id(term, index),
        payload: EntryPayload::Blank,
    }
}

fn normal(term: u64, index: u64, records: impl IntoIterator<Item = RecordBody>) -> Entry {
    Entry {
        log_id: log_id(term, index),
        payload: EntryPayload::Normal(MetadataBatch::new(records)),
    }
}

fn blanks(term: u64, indexes: std::ops::Range<u64>) -> Vec<Entry> {
    indexes.map(|i| blank(term, i)).collect()
}

fn new_feed() -> Arc<MetadataFeed> {
    Arc::new(MetadataFeed::new(ClusterImage::default()))
}

fn cluster_init() -> RecordBody {
    RecordBody::ClusterInit {
        cluster_id: "spate-test".into(),
    }
}

fn topic_with_partition(topic_id: TopicId, name: &str) -> [RecordBody; 2] {
    [
        RecordBody::Topic {
            topic_id,
            name: name.into(),
            configs: BTreeMap::new(),
        },
        RecordBody::Partition {
            topic_id,
            partition: 0,
            replicas: vec![1],
            isr: vec![1],
            leader: 1,
            leader_epoch: 0,
            partition_epoch: 0,
            adding_replicas: Vec::new(),
            removing_replicas: Vec::new(),
            leader_recovery_state: Default::default(),
        },
    ]
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    found.sort();
    found
}

/// Byte offsets of the frames in a segment, walked by their length fields.
fn frame_offsets(bytes: &[u8]) -> Vec<usize> {
    let mut offsets = Vec::new();
    let mut at = 0;
    while at + 8 <= bytes.len() {
        offsets.push(at);
        let length = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
        at += 8 + length as usize;
    }
    offsets
}

async fn all_entries(store: &mut LogStore) -> Vec<Entry> {
    store.try_get_log_entries(..).await.unwrap()
}

fn indexes(entries: &[Entry]) -> Vec<u64> {
    entries.iter().map(|e| e.log_id.index).collect()
}

// ---------------------------------------------------------------- openraft's suite

struct TempStores;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for TempStores {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError> {
        let dir = tempfile::tempdir()
            .map_err(|e| StorageError::from_io_error(ErrorSubject::Store, ErrorVerb::Write, e))?;
        let log = LogStore::open(dir.path())?;
        let machine = StateMachine::open(dir.path(), new_feed())?;
        Ok((dir, log, machine))
    }
}

#[test]
fn the_stores_pass_openraft_storage_suite() {
    Suite::test_all(TempStores).unwrap();
}

// ---------------------------------------------------------------- log store durability

#[tokio::test]
async fn entries_vote_and_committed_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut entries = blanks(1, 0..3);
    entries.push(normal(1, 3, [cluster_init()]));
    {
        let mut store = LogStore::open(dir.path()).unwrap();
        store.save_vote(&Vote::new(3, 1)).await.unwrap();
        store.blocking_append(entries.clone()).await.unwrap();
        store.save_committed(Some(log_id(1, 2))).await.unwrap();
    }
    let mut store = LogStore::open(dir.path()).unwrap();
    assert_eq!(store.read_vote().await.unwrap(), Some(Vote::new(3, 1)));
    assert_eq!(store.read_committed().await.unwrap(), Some(log_id(1, 2)));
    assert_eq!(all_entries(&mut store).await, entries);
    let state = store.get_log_state().await.unwrap();
    assert_eq!(state.last_log_id, Some(log_id(1, 3)));
    assert_eq!(state.last_purged_log_id, None);
}

#[tokio::test]
async fn a_torn_last_entry_is_cut_on_reopen_and_the_log_keeps_working() {
    let dir = tempfile::tempdir().unwrap();
    LogStore::open(dir.path())
        .unwrap()
        .blocking_append(blanks(1, 0..5))
        .await
        .unwrap();
    let segment = &segments(dir.path())[0];
    let size = fs::metadata(segment).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(segment)
        .unwrap()
        .set_len(size - 3)
        .unwrap();

    let mut store = LogStore::open(dir.path()).unwrap();
    assert_eq!(indexes(&all_entries(&mut store).await), vec![0, 1, 2, 3]);
    store.blocking_append([blank(2, 4)]).await.unwrap();
    drop(store);

    let mut store = LogStore::open(dir.path()).unwrap();
    let entries = all_entries(&mut store).await;
    assert_eq!(indexes(&entries), vec![0, 1, 2, 3, 4]);
    assert_eq!(entries[4].log_id, log_id(2, 4));
}

#[tokio::test]
async fn garbage_or_zeros_after_the_last_entry_are_cut() {
    for tail in [b"garbage, never acknowledged".to_vec(), vec![0u8; 4096]] {
        let dir = tempfile::tempdir().unwrap();
        LogStore::open(dir.path())
            .unwrap()
            .blocking_append(blanks(1, 0..5))
            .await
            .unwrap();
        let segment = &segments(dir.path())[0];
        let size = fs::metadata(segment).unwrap().len();
        let mut bytes = fs::read(segment).unwrap();
        bytes.extend_from_slice(&tail);
        fs::write(segment, &bytes).unwrap();

        let mut store = LogStore::open(dir.path()).unwrap();
        assert_eq!(indexes(&all_entries(&mut store).await), vec![0, 1, 2, 3, 4]);
        assert_eq!(
            fs::metadata(segment).unwrap().len(),
            size,
            "the tail is cut"
        );
        store.blocking_append([blank(1, 5)]).await.unwrap();
    }
}

#[tokio::test]
async fn a_damaged_middle_entry_refuses_to_open_naming_the_file_and_byte() {
    // A flipped payload byte, and a flipped length byte (which hides where the entry ends).
    for (name, within_frame) in [("payload", 8 + 5), ("length", 3)] {
        let dir = tempfile::tempdir().unwrap();
        LogStore::open(dir.path())
            .unwrap()
            .blocking_append(blanks(1, 0..5))
            .await
            .unwrap();
        let segment = &segments(dir.path())[0];
        let mut bytes = fs::read(segment).unwrap();
        let damaged_at = frame_offsets(&bytes)[2];
        bytes[damaged_at + within_frame] ^= 0x10;
        fs::write(segment, &bytes).unwrap();

        let err = LogStore::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("00000000000000000000.log"), "{name}: {err}");
        assert!(err.contains(&format!("byte {damaged_at}")), "{name}: {err}");
        assert!(err.contains("refusing to start"), "{name}: {err}");
    }
}

#[tokio::test]
async fn an_entry_from_a_newer_release_asks_for_an_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let entry = normal(1, 0, [cluster_init()]);
    let json = serde_json::to_string(&entry)
        .unwrap()
        .replace(r#""v":1"#, r#""v":9"#);
    let mut frame = (json.len() as u32).to_le_bytes().to_vec();
    frame.extend_from_slice(&crc32c::crc32c(json.as_bytes()).to_le_bytes());
    frame.extend_from_slice(json.as_bytes());
    fs::write(dir.path().join("00000000000000000000.log"), frame).unwrap();

    let err = LogStore::open(dir.path()).unwrap_err().to_string();
    assert!(err.contains("upgrade this node"), "{err}");
    assert!(err.contains("00000000000000000000.log"), "{err}");
}

#[tokio::test]
async fn purge_then_reopen_reports_the_purged_id_and_no_purged_entries() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = LogStore::open(dir.path()).unwrap();
        store.blocking_append(blanks(1, 0..10)).await.unwrap();
        store.purge(log_id(1, 4)).await.unwrap();
    }
    let mut store = LogStore::open(dir.path()).unwrap();
    let state = store.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 4)));
    assert_eq!(state.last_log_id, Some(log_id(1, 9)));
    assert_eq!(indexes(&all_entries(&mut store).await), vec![5, 6, 7, 8, 9]);

    // Purging past the end empties the log; it resumes after the purged id.
    store.purge(log_id(1, 20)).await.unwrap();
    assert!(segments(dir.path()).is_empty());
    store.blocking_append([blank(1, 21)]).await.unwrap();
    drop(store);
    let mut store = LogStore::open(dir.path()).unwrap();
    assert_eq!(indexes(&all_entries(&mut store).await), vec![21]);
    assert_eq!(
        store.get_log_state().await.unwrap().last_purged_log_id,
        Some(log_id(1, 20))
    );
}

#[tokio::test]
async fn truncate_then_reopen_keeps_only_the_entries_before() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = LogStore::open(dir.path()).unwrap();
        store.blocking_append(blanks(1, 0..10)).await.unwrap();
        store.truncate(log_id(1, 6)).await.unwrap();
        store.blocking_append([blank(2, 6)]).await.unwrap();
    }
    let mut store = LogStore::open(dir.path()).unwrap();
    let entries = all_entries(&mut store).await;
    assert_eq!(indexes(&entries), vec![0, 1, 2, 3, 4, 5, 6]);
    assert_eq!(entries[6].log_id, log_id(2, 6));
}

#[tokio::test]
async fn appends_out_of_order_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = LogStore::open(dir.path()).unwrap();
    store.blocking_append(blanks(1, 0..3)).await.unwrap();
    assert!(store.blocking_append([blank(1, 5)]).await.is_err());
    assert!(store.blocking_append([blank(1, 2)]).await.is_err());
}

/// Entries of ~2 MiB, so four fill a segment.
fn big_entries(indexes: std::ops::Range<u64>) -> Vec<Entry> {
    let configs = BTreeMap::from([("x".to_owned(), "y".repeat(2 << 20))]);
    indexes
        .map(|i| {
            normal(
                1,
                i,
                [RecordBody::TopicConfigs {
                    topic_id: TopicId::random(),
                    configs: configs.clone(),
                }],
            )
        })
        .collect()
}

#[tokio::test]
async fn segments_roll_and_whole_ones_go_on_purge_and_truncate() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = LogStore::open(dir.path()).unwrap();
    store.blocking_append(big_entries(0..6)).await.unwrap();
    let names: Vec<_> = segments(dir.path())
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        ["00000000000000000000.log", "00000000000000000004.log"]
    );
    drop(store);

    let mut store = LogStore::open(dir.path()).unwrap();
    assert_eq!(
        indexes(&all_entries(&mut store).await),
        vec![0, 1, 2, 3, 4, 5]
    );
    store.truncate(log_id(1, 5)).await.unwrap();
    store.purge(log_id(1, 3)).await.unwrap();
    assert_eq!(
        segments(dir.path()).len(),
        1,
        "the first segment was wholly purged"
    );
    drop(store);

    let mut store = LogStore::open(dir.path()).unwrap();
    assert_eq!(indexes(&all_entries(&mut store).await), vec![4]);
    store.truncate(log_id(1, 4)).await.unwrap();
    assert!(
        segments(dir.path()).is_empty(),
        "truncating a segment's first entry removes it"
    );
    store.blocking_append(big_entries(4..5)).await.unwrap();
    drop(store);
    let mut store = LogStore::open(dir.path()).unwrap();
    assert_eq!(indexes(&all_entries(&mut store).await), vec![4]);
}

#[tokio::test]
async fn a_torn_segment_before_the_last_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    LogStore::open(dir.path())
        .unwrap()
        .blocking_append(big_entries(0..6))
        .await
        .unwrap();
    let first = &segments(dir.path())[0];
    let size = fs::metadata(first).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(first)
        .unwrap()
        .set_len(size - 10)
        .unwrap();
    let err = LogStore::open(dir.path()).unwrap_err().to_string();
    assert!(err.contains("00000000000000000000.log"), "{err}");
    assert!(err.contains("not the last"), "{err}");
}

// ---------------------------------------------------------------- a one-member quorum

/// A network for a quorum of one: openraft never has anyone to call.
struct NoNetwork;

fn unreachable<E: std::error::Error>() -> RPCError<u64, BasicNode, E> {
    RPCError::Network(NetworkError::new(&std::io::Error::other(
        "a one-member quorum has no peers",
    )))
}

impl RaftNetworkFactory<TypeConfig> for NoNetwork {
    type Network = NoNetwork;

    async fn new_client(&mut self, _target: u64, _node: &BasicNode) -> NoNetwork {
        NoNetwork
    }
}

impl RaftNetwork<TypeConfig> for NoNetwork {
    async fn append_entries(
        &mut self,
        _rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        Err(unreachable())
    }

    async fn vote(
        &mut self,
        _rpc: VoteRequest<u64>,
        _option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        Err(unreachable())
    }

    async fn full_snapshot(
        &mut self,
        _vote: Vote,
        _snapshot: Snapshot,
        _cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<u64>, StreamingError<TypeConfig, Fatal<u64>>> {
        Err(StreamingError::Network(NetworkError::new(
            &std::io::Error::other("a one-member quorum has no peers"),
        )))
    }
}

const WAIT: Option<Duration> = Some(Duration::from_secs(10));

async fn start(dir: &Path, feed: Arc<MetadataFeed>) -> Raft {
    let mut config = (*raft_config(300, 50).unwrap()).clone();
    // Purge everything a snapshot covers, so the restart must use snapshot and log.
    config.max_in_snapshot_log_to_keep = 0;
    let log = LogStore::open(dir).unwrap();
    let machine = StateMachine::open(dir, feed).unwrap();
    Raft::new(1, Arc::new(config), NoNetwork, log, machine)
        .await
        .unwrap()
}

async fn write(raft: &Raft, records: impl IntoIterator<Item = RecordBody>) -> LogId {
    let response = raft
        .client_write(MetadataBatch::new(records))
        .await
        .unwrap();
    assert_eq!(response.data, ApplyOutcome(Ok(())));
    response.log_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_member_quorum_applies_writes_and_rebuilds_its_image_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let topic_id = TopicId::random();
    let feed = new_feed();
    let raft = start(dir.path(), feed.clone()).await;
    raft.initialize(BTreeMap::from([(1, BasicNode::default())]))
        .await
        .unwrap();
    raft.wait(WAIT)
        .state(ServerState::Leader, "elected")
        .await
        .unwrap();

    write(&raft, [cluster_init()]).await;
    let snapshot_at = write(&raft, topic_with_partition(topic_id, "orders")).await;
    raft.trigger().snapshot().await.unwrap();
    raft.wait(WAIT)
        .snapshot(snapshot_at, "snapshot")
        .await
        .unwrap();
    raft.wait(WAIT)
        .purged(Some(snapshot_at), "purged")
        .await
        .unwrap();
    let configs = BTreeMap::from([("retention.ms".to_owned(), "1000".to_owned())]);
    let last = write(
        &raft,
        [RecordBody::TopicConfigs {
            topic_id,
            configs: configs.clone(),
        }],
    )
    .await;
    let before = feed.image();
    assert_eq!(before.cluster_id(), Some("spate-test"));
    assert_eq!(before.topic("orders").unwrap().configs, configs);
    assert_eq!(before.offset(), last.index);
    raft.shutdown().await.unwrap();
    drop(raft);

    let feed = new_feed();
    let raft = start(dir.path(), feed.clone()).await;
    // A node that has a vote or a log is initialized: asking again is refused, harmlessly.
    let again = raft
        .initialize(BTreeMap::from([(1, BasicNode::default())]))
        .await;
    assert!(
        matches!(
            again,
            Err(RaftError::APIError(InitializeError::NotAllowed(_)))
        ),
        "{again:?}"
    );
    raft.wait(WAIT)
        .state(ServerState::Leader, "leads again")
        .await
        .unwrap();
    raft.wait(WAIT)
        .applied_index_at_least(Some(last.index), "re-applied")
        .await
        .unwrap();
    let after = feed.image();
    assert_eq!(after.cluster_id(), before.cluster_id());
    assert_eq!(after.topic("orders"), before.topic("orders"));
    assert!(after.offset() >= before.offset());
    let voters: BTreeSet<u64> = raft
        .metrics()
        .borrow()
        .membership_config
        .membership()
        .voter_ids()
        .collect();
    assert_eq!(voters, BTreeSet::from([1]));
    raft.shutdown().await.unwrap();
}
