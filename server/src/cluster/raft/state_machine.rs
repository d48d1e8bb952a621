//! The metadata log's openraft state machine: the [`ClusterImage`], and its snapshots.
//!
//! Applying is in memory; only snapshots reach the disk (see [`super::snapshot_file`]). A
//! restart loads the snapshot and openraft re-applies the log after it: up to the committed
//! log id the log store saved before the node is even running, the rest once a leader
//! commits again. Every apply publishes the new image to the [`MetadataFeed`], which is how
//! the rest of the node learns of a change.
//!
//! A batch the image refuses ([`spate_cluster::ApplyError`]) is not a failure: every node
//! refuses the same batch, the image stays as it was, and the proposer gets the reason as
//! the entry's [`ApplyOutcome`]. Snapshot files are written with blocking I/O inside async
//! methods, as in the log store: they are rare, and this runs on the controller task.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use openraft::storage::RaftStateMachine;
use openraft::{
    AnyError, EntryPayload, ErrorSubject, ErrorVerb, OptionalSend, RaftSnapshotBuilder,
    StorageIOError,
};
use spate_cluster::{ClusterImage, MetadataBatch};

use super::durable_file;
use super::error::StoreError;
use super::snapshot_file::{self, SNAPSHOT_FILE, StoredSnapshot};
use super::types::{
    ApplyOutcome, Entry, LogId, Snapshot, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
};
use crate::cluster::feed::MetadataFeed;

/// The current snapshot, shared with builders: openraft builds snapshots on a task of
/// their own, concurrently with apply and install.
type SnapshotSlot = Arc<Mutex<Option<Arc<StoredSnapshot>>>>;

/// The metadata state machine. One per controller node, owned by its openraft task.
pub struct StateMachine {
    dir: PathBuf,
    image: ClusterImage,
    last_applied: Option<LogId>,
    last_membership: StoredMembership,
    snapshot: SnapshotSlot,
    /// Builders started, to tell snapshots at the same log id apart.
    builds: u64,
    feed: Arc<MetadataFeed>,
}

impl std::fmt::Debug for StateMachine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateMachine")
            .field("dir", &self.dir)
            .field("last_applied", &self.last_applied)
            .field("last_membership", &self.last_membership)
            .finish_non_exhaustive()
    }
}

impl StateMachine {
    /// Opens the state machine in `dir` (shared with the log store), loading the snapshot if
    /// there is one and publishing its image. A damaged snapshot is an error naming the file.
    pub fn open(dir: &Path, feed: Arc<MetadataFeed>) -> Result<StateMachine, StoreError> {
        durable_file::ensure_dir(dir)?;
        durable_file::remove_stale_tmp(dir, &[SNAPSHOT_FILE])?;
        let mut machine = StateMachine {
            dir: dir.to_owned(),
            image: ClusterImage::default(),
            last_applied: None,
            last_membership: StoredMembership::default(),
            snapshot: Arc::new(Mutex::new(None)),
            builds: 0,
            feed,
        };
        if let Some((stored, image)) = snapshot_file::read(dir)? {
            tracing::info!(
                dir = %dir.display(),
                last_log_id = ?stored.meta.last_log_id,
                "loaded the metadata snapshot"
            );
            machine.restore(&stored.meta, image);
            *lock(&machine.snapshot) = Some(Arc::new(stored));
        }
        Ok(machine)
    }

    /// The image as of the last applied entry.
    pub fn image(&self) -> &ClusterImage {
        &self.image
    }

    /// Makes `image`, a snapshot at `meta`, the state, and publishes it.
    fn restore(&mut self, meta: &SnapshotMeta, image: ClusterImage) {
        self.last_applied = meta.last_log_id;
        self.last_membership = meta.last_membership.clone();
        self.image = image;
        self.feed.publish(Arc::new(self.image.clone()), Vec::new());
    }

    fn apply_entry(
        &mut self,
        entry: Entry,
        published: &mut Vec<(u64, Option<MetadataBatch>)>,
    ) -> ApplyOutcome {
        let index = entry.log_id.index;
        self.last_applied = Some(entry.log_id);
        match entry.payload {
            EntryPayload::Normal(batch) => {
                let outcome = self.image.apply(index, &batch);
                if let Err(error) = &outcome {
                    tracing::warn!(index, %error, "metadata batch refused");
                }
                published.push((index, Some(batch)));
                ApplyOutcome(outcome)
            }
            EntryPayload::Blank => {
                self.image.advance_offset(index);
                published.push((index, None));
                ApplyOutcome(Ok(()))
            }
            EntryPayload::Membership(membership) => {
                self.image.advance_offset(index);
                self.last_membership = StoredMembership::new(Some(entry.log_id), membership);
                published.push((index, None));
                ApplyOutcome(Ok(()))
            }
        }
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        Ok((self.last_applied, self.last_membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<ApplyOutcome>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut published = Vec::new();
        let outcomes: Vec<_> = entries
            .into_iter()
            .map(|entry| self.apply_entry(entry, &mut published))
            .collect();
        // An empty publish would tell the feed a snapshot replaced its entries.
        if !published.is_empty() {
            self.feed.publish(Arc::new(self.image.clone()), published);
        }
        Ok(outcomes)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        self.builds += 1;
        SnapshotBuilder {
            dir: self.dir.clone(),
            image: self.image.clone(),
            last_applied: self.last_applied,
            last_membership: self.last_membership.clone(),
            build: self.builds,
            slot: self.snapshot.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Vec<u8>>, StorageError> {
        Ok(Box::default())
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Vec<u8>>,
    ) -> Result<(), StorageError> {
        let refuse = |reason: String| -> StorageError {
            StorageIOError::read_snapshot(Some(meta.signature()), AnyError::error(reason)).into()
        };
        let image = ClusterImage::from_snapshot(&snapshot).map_err(|e| {
            refuse(format!(
                "the received metadata snapshot does not decode: {e}"
            ))
        })?;
        let expected = snapshot_file::expected_offset(meta);
        if image.offset() != expected {
            return Err(refuse(format!(
                "the received metadata image is at offset {} but the snapshot claims {expected}",
                image.offset()
            )));
        }
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data: *snapshot,
        };
        {
            // Held across the write so a concurrent builder cannot put an older file
            // under the newer slot.
            let mut slot = lock(&self.snapshot);
            snapshot_file::write(&self.dir, &stored).map_err(|e| {
                e.into_storage(
                    ErrorSubject::Snapshot(Some(meta.signature())),
                    ErrorVerb::Write,
                )
            })?;
            *slot = Some(Arc::new(stored));
        }
        tracing::info!(last_log_id = ?meta.last_log_id, "installed a metadata snapshot");
        self.restore(meta, image);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        Ok(lock(&self.snapshot).as_ref().map(|s| s.to_snapshot()))
    }
}

/// Builds a snapshot of the image as it was when openraft asked, on openraft's builder task.
pub struct SnapshotBuilder {
    dir: PathBuf,
    image: ClusterImage,
    last_applied: Option<LogId>,
    last_membership: StoredMembership,
    build: u64,
    slot: SnapshotSlot,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let at = self.last_applied.map_or_else(
            || "none".to_owned(),
            |id| format!("{}-{}", id.leader_id, id.index),
        );
        let stored = StoredSnapshot {
            meta: SnapshotMeta {
                last_log_id: self.last_applied,
                last_membership: self.last_membership.clone(),
                snapshot_id: format!("{at}-{}", self.build),
            },
            data: self.image.to_snapshot(),
        };
        let mut slot = lock(&self.slot);
        // An install may have raced ahead; never replace a snapshot with an older one.
        if let Some(current) = slot.as_ref()
            && current.meta.last_log_id >= stored.meta.last_log_id
        {
            return Ok(current.to_snapshot());
        }
        snapshot_file::write(&self.dir, &stored).map_err(|e| {
            e.into_storage(
                ErrorSubject::Snapshot(Some(stored.meta.signature())),
                ErrorVerb::Write,
            )
        })?;
        let snapshot = stored.to_snapshot();
        *slot = Some(Arc::new(stored));
        Ok(snapshot)
    }
}

/// The snapshot slot, even if a builder panicked holding it: it is only ever replaced whole.
fn lock(slot: &Mutex<Option<Arc<StoredSnapshot>>>) -> MutexGuard<'_, Option<Arc<StoredSnapshot>>> {
    slot.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::fs;

    use openraft::{BasicNode, Membership};
    use spate_cluster::{ApplyError, RecordBody, TopicId};

    use super::*;

    fn log_id(term: u64, index: u64) -> LogId {
        openraft::testing::log_id(term, 1, index)
    }

    fn entry(term: u64, index: u64, payload: EntryPayload<TypeConfig>) -> Entry {
        Entry {
            log_id: log_id(term, index),
            payload,
        }
    }

    fn blank(term: u64, index: u64) -> Entry {
        entry(term, index, EntryPayload::Blank)
    }

    fn normal(term: u64, index: u64, records: impl IntoIterator<Item = RecordBody>) -> Entry {
        entry(
            term,
            index,
            EntryPayload::Normal(MetadataBatch::new(records)),
        )
    }

    fn new_feed() -> Arc<MetadataFeed> {
        Arc::new(MetadataFeed::new(ClusterImage::default()))
    }

    fn metadata_entries(topic_id: TopicId) -> Vec<Entry> {
        let members = BTreeMap::from([(1, BasicNode::default())]);
        vec![
            entry(1, 0, EntryPayload::Membership(Membership::from(members))),
            blank(1, 1),
            normal(
                1,
                2,
                [RecordBody::ClusterInit {
                    cluster_id: "spate-test".into(),
                }],
            ),
            normal(
                1,
                3,
                [
                    RecordBody::Topic {
                        topic_id,
                        name: "orders".into(),
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
                ],
            ),
        ]
    }

    #[tokio::test]
    async fn apply_publishes_the_image_and_a_refused_batch_is_an_outcome() {
        let dir = tempfile::tempdir().unwrap();
        let feed = new_feed();
        let mut machine = StateMachine::open(dir.path(), feed.clone()).unwrap();
        let topic_id = TopicId::random();
        let unknown = TopicId::random();
        let mut entries = metadata_entries(topic_id);
        entries.push(normal(
            1,
            4,
            [RecordBody::RemoveTopic { topic_id: unknown }],
        ));
        let outcomes = machine.apply(entries).await.unwrap();

        assert_eq!(outcomes.len(), 5);
        assert!(outcomes[..4].iter().all(|o| *o == ApplyOutcome(Ok(()))));
        assert_eq!(
            outcomes[4],
            ApplyOutcome(Err(ApplyError::UnknownTopic(unknown)))
        );
        assert_eq!(machine.applied_state().await.unwrap().0, Some(log_id(1, 4)));
        let image = feed.image();
        assert_eq!(image.offset(), 4, "a refused batch still moves the offset");
        assert_eq!(image.cluster_id(), Some("spate-test"));
        assert_eq!(image.topic("orders").unwrap().partition_count(), 1);
    }

    #[tokio::test]
    async fn a_built_snapshot_reopens_to_the_same_image_and_last_applied() {
        let dir = tempfile::tempdir().unwrap();
        let mut machine = StateMachine::open(dir.path(), new_feed()).unwrap();
        machine
            .apply(metadata_entries(TopicId::random()))
            .await
            .unwrap();
        let built = machine
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();
        let applied = machine.applied_state().await.unwrap();
        let image = machine.image().clone();
        drop(machine);

        let feed = new_feed();
        let mut reopened = StateMachine::open(dir.path(), feed.clone()).unwrap();
        assert_eq!(reopened.applied_state().await.unwrap(), applied);
        assert_eq!(reopened.image(), &image);
        assert_eq!(*feed.image(), image, "loading a snapshot publishes it");
        let current = reopened.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(current.meta, built.meta);
        assert_eq!(current.snapshot, built.snapshot);
    }

    #[tokio::test]
    async fn a_damaged_snapshot_file_refuses_to_open_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut machine = StateMachine::open(dir.path(), new_feed()).unwrap();
        machine
            .apply(metadata_entries(TopicId::random()))
            .await
            .unwrap();
        machine
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();
        drop(machine);
        let path = dir.path().join("snapshot");
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 2;
        bytes[last] ^= 0x01;
        fs::write(&path, bytes).unwrap();

        let err = StateMachine::open(dir.path(), new_feed())
            .unwrap_err()
            .to_string();
        assert!(err.contains("snapshot"), "{err}");
        assert!(err.contains("checksum mismatch"), "{err}");
    }

    #[tokio::test]
    async fn a_corrupt_installed_snapshot_is_refused_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let feed = new_feed();
        let mut machine = StateMachine::open(dir.path(), feed.clone()).unwrap();
        machine
            .apply(metadata_entries(TopicId::random()))
            .await
            .unwrap();
        let applied = machine.applied_state().await.unwrap();
        let image = machine.image().clone();
        let published = feed.image();

        // Another node's valid snapshot, to borrow its meta and bytes.
        let other = tempfile::tempdir().unwrap();
        let mut donor = StateMachine::open(other.path(), new_feed()).unwrap();
        let mut entries = metadata_entries(TopicId::random());
        entries.push(blank(2, 4));
        donor.apply(entries).await.unwrap();
        let Snapshot { meta, snapshot } = donor
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();

        let mut wrong_offset = meta.clone();
        wrong_offset.last_log_id = Some(log_id(2, 9));
        let attempts = [
            (meta.clone(), b"not a snapshot".to_vec()),
            (wrong_offset, (*snapshot).clone()),
        ];
        for (meta, bytes) in attempts {
            let mut data = machine.begin_receiving_snapshot().await.unwrap();
            *data = bytes;
            assert!(machine.install_snapshot(&meta, data).await.is_err());
            assert_eq!(machine.applied_state().await.unwrap(), applied);
            assert_eq!(machine.image(), &image);
            assert!(
                Arc::ptr_eq(&feed.image(), &published),
                "nothing was published"
            );
            assert!(machine.get_current_snapshot().await.unwrap().is_none());
            assert!(!dir.path().join("snapshot").exists());
        }

        // The genuine one installs.
        let mut data = machine.begin_receiving_snapshot().await.unwrap();
        *data = *snapshot;
        machine.install_snapshot(&meta, data).await.unwrap();
        assert_eq!(machine.applied_state().await.unwrap().0, Some(log_id(2, 4)));
        assert_eq!(feed.image().offset(), 4);
    }
}
