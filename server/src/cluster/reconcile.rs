//! Turns each new metadata image into local state, then shows it to the handlers.
//!
//! For every image the feed publishes: create the replicas this node now hosts (one bulk
//! engine call per topic), delete the ones it no longer hosts, apply changed topic configs,
//! take each replicated partition's role (leader or follower, [`super::replication`]), load
//! or unload group coordinators as `__consumer_offsets` leadership moves, and only then
//! publish the image to [`MetadataView`]. Handlers therefore never see a partition led here
//! whose log does not exist yet.
//!
//! A partition folder is named after its topic, not its topic id, so the topic id of each
//! local replica is kept in `replica-topic-ids.json`: a topic deleted and re-created while
//! this node was down is then told from the old one, and the old data is dropped, not
//! served under the new topic. Stray replicas are deleted only once the image includes this
//! process's own registration, i.e. once this node has caught up with every change made
//! while it was away.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use spate_cluster::image::TopicImage;
use spate_cluster::{ClusterImage, NodeId, TopicId};
use spate_engine::{Engine, LogConfig, TopicPartition};
use tokio::sync::watch;

use super::identity;
use super::replication::{self, ReplicationContext};
use crate::groups;
use crate::metadata::{MetadataView, topic_config};

/// The file that remembers which topic id each local replica belongs to.
pub const REPLICA_TOPIC_IDS_FILE: &str = "replica-topic-ids.json";

/// Applies images to this node's engine and coordinators.
pub struct Reconciler {
    pub node_id: NodeId,
    pub incarnation_id: String,
    pub engine: Engine,
    pub view: Arc<MetadataView>,
    pub group_config: spate_coordinator::CoordinatorConfig,
    pub data_dir: PathBuf,
    pub log_defaults: LogConfig,
    /// Replication roles follow the image (leader and follower slots, fetch loops).
    pub replication: Option<Arc<ReplicationContext>>,
    /// Topic configs as last applied, to apply only what changed.
    applied_configs: HashMap<TopicId, BTreeMap<String, String>>,
    local_ids: BTreeMap<String, TopicId>,
}

/// Why reconciling cannot go on: the node must stop.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Identity(#[from] identity::IdentityError),
}

impl Reconciler {
    pub fn new(
        node_id: NodeId,
        incarnation_id: String,
        engine: Engine,
        view: Arc<MetadataView>,
        group_config: spate_coordinator::CoordinatorConfig,
        data_dir: PathBuf,
        log_defaults: LogConfig,
    ) -> Self {
        let local_ids = read_local_ids(&data_dir);
        Self {
            node_id,
            incarnation_id,
            engine,
            view,
            group_config,
            data_dir,
            log_defaults,
            replication: None,
            applied_configs: HashMap::new(),
            local_ids,
        }
    }

    /// Applies every image `images` shows, in order, until the sender is gone or the node
    /// cannot go on (a cluster id that does not match the data dir's stamp).
    pub async fn run(
        mut self,
        mut images: watch::Receiver<Arc<ClusterImage>>,
    ) -> Result<(), ReconcileError> {
        loop {
            let image = images.borrow_and_update().clone();
            self.apply(&image).await?;
            if images.changed().await.is_err() {
                return Ok(());
            }
        }
    }

    /// Makes local state match `image`, then publishes it to the handlers.
    pub async fn apply(&mut self, image: &Arc<ClusterImage>) -> Result<(), ReconcileError> {
        if let Some(cluster_id) = image.cluster_id() {
            identity::stamp_cluster_id(&self.data_dir, cluster_id)?;
        }
        let desired = self.desired_replicas(image);
        self.remove_strays(image, &desired, &self.existing()).await;
        self.create_missing(&desired, &self.existing()).await;
        self.apply_configs(image, &desired).await;
        if let Some(replication) = &self.replication {
            replication::apply_roles(replication, image, self.caught_up(image)).await;
        }
        groups::sync_coordinators(&self.engine, &self.group_config, image, self.node_id).await;
        self.view.publish(image.clone());
        Ok(())
    }

    fn existing(&self) -> HashMap<TopicPartition, ()> {
        self.engine
            .partitions()
            .into_iter()
            .map(|(tp, _)| (tp, ()))
            .collect()
    }

    /// Every partition this node holds a replica of, with its topic.
    fn desired_replicas(&self, image: &ClusterImage) -> BTreeMap<TopicPartition, Arc<TopicImage>> {
        let mut desired = BTreeMap::new();
        for topic in image.topics() {
            for (index, partition) in topic.partitions.iter().enumerate() {
                if partition.replicas.contains(&self.node_id) {
                    let index = i32::try_from(index).unwrap_or(i32::MAX);
                    desired.insert(
                        TopicPartition::new(topic.name.clone(), index),
                        topic.clone(),
                    );
                }
            }
        }
        desired
    }

    /// Whether the image has caught up with everything that happened while this process
    /// was not running: it holds this process's own registration.
    fn caught_up(&self, image: &ClusterImage) -> bool {
        image
            .broker(self.node_id)
            .is_some_and(|b| b.incarnation_id == self.incarnation_id)
    }

    async fn remove_strays(
        &mut self,
        image: &ClusterImage,
        desired: &BTreeMap<TopicPartition, Arc<TopicImage>>,
        existing: &HashMap<TopicPartition, ()>,
    ) {
        let caught_up = self.caught_up(image);
        let mut changed = false;
        for tp in existing.keys() {
            let key = tp.dir_name();
            let stale = match desired.get(tp) {
                None => true,
                Some(topic) => self.local_ids.get(&key).is_some_and(|id| *id != topic.id),
            };
            if !stale || !caught_up {
                continue;
            }
            match self.engine.delete_partition(tp).await {
                Ok(()) => {
                    tracing::info!(partition = %tp, "deleted a local replica the metadata no longer assigns here (topic deleted, re-created, or moved)");
                    self.local_ids.remove(&key);
                    changed = true;
                }
                Err(e) => {
                    tracing::warn!(partition = %tp, error = %e, "cannot delete a stray replica; retrying at the next metadata change")
                }
            }
        }
        if changed {
            self.persist_local_ids();
        }
    }

    async fn create_missing(
        &mut self,
        desired: &BTreeMap<TopicPartition, Arc<TopicImage>>,
        existing: &HashMap<TopicPartition, ()>,
    ) {
        let mut by_topic: BTreeMap<Arc<str>, (Arc<TopicImage>, Vec<TopicPartition>)> =
            BTreeMap::new();
        let mut ids_changed = false;
        for (tp, topic) in desired {
            let key = tp.dir_name();
            if existing.contains_key(tp) {
                // Present: adopt it if no id is recorded (data from a single-node release).
                if let std::collections::btree_map::Entry::Vacant(entry) = self.local_ids.entry(key)
                {
                    entry.insert(topic.id);
                    ids_changed = true;
                }
                continue;
            }
            if self.local_ids.get(&key) != Some(&topic.id) {
                self.local_ids.insert(key, topic.id);
                ids_changed = true;
            }
            by_topic
                .entry(topic.name.clone())
                .or_insert_with(|| (topic.clone(), Vec::new()))
                .1
                .push(tp.clone());
        }
        // The ids go to disk before the folders exist, so a crash in between cannot leave a
        // folder whose topic is unknown.
        if ids_changed {
            self.persist_local_ids();
        }
        for (name, (topic, tps)) in by_topic {
            let log_config = self.log_config(&topic);
            match self.engine.create_partitions(tps.clone(), log_config).await {
                Ok(outcomes) => {
                    for (tp, outcome) in tps.iter().zip(outcomes) {
                        if let Err(e) = outcome {
                            tracing::error!(partition = %tp, error = %e, "cannot create a local replica");
                        }
                    }
                    tracing::debug!(topic = %name, replicas = tps.len(), "local replicas created");
                }
                Err(e) => {
                    tracing::error!(topic = %name, error = %e, "cannot create local replicas")
                }
            }
            self.applied_configs.insert(topic.id, topic.configs.clone());
        }
    }

    async fn apply_configs(
        &mut self,
        image: &ClusterImage,
        desired: &BTreeMap<TopicPartition, Arc<TopicImage>>,
    ) {
        let mut changed: BTreeMap<TopicId, LogConfig> = BTreeMap::new();
        for topic in image.topics() {
            if self.applied_configs.get(&topic.id) == Some(&topic.configs) {
                continue;
            }
            changed.insert(topic.id, self.log_config(topic));
            self.applied_configs.insert(topic.id, topic.configs.clone());
        }
        self.applied_configs
            .retain(|id, _| image.topic_by_id(*id).is_some());
        if changed.is_empty() {
            return;
        }
        for (tp, topic) in desired {
            let Some(log_config) = changed.get(&topic.id) else {
                continue;
            };
            if let Err(e) = self.engine.set_config(tp, log_config.clone()).await {
                tracing::warn!(partition = %tp, error = %e, "cannot apply topic configs to a local replica");
            }
        }
    }

    fn log_config(&self, topic: &TopicImage) -> LogConfig {
        topic_config::effective(&self.log_defaults, &topic.configs).unwrap_or_else(|e| {
            // The controller validated them; a config this build does not know (written by a
            // newer node) falls back to the broker defaults rather than stopping the topic.
            tracing::warn!(topic = %topic.name, error = %e, "topic configs are not valid for this node; using the broker defaults");
            self.log_defaults.clone()
        })
    }

    fn persist_local_ids(&self) {
        let path = self.data_dir.join(REPLICA_TOPIC_IDS_FILE);
        let text = serde_json::to_vec_pretty(&self.local_ids).unwrap_or_default();
        if let Err(e) = identity::write_atomically(&path, &text) {
            tracing::error!(path = %path.display(), error = %e, "cannot record the topic ids of local replicas");
        }
    }
}

/// The topic id recorded for each local replica (folder name → id).
pub fn read_local_ids(data_dir: &Path) -> BTreeMap<String, TopicId> {
    let path = data_dir.join(REPLICA_TOPIC_IDS_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            tracing::warn!(path = %path.display(), error = %e, "the topic ids of local replicas are unreadable; replicas are adopted as they are");
            BTreeMap::new()
        }),
        Err(_) => BTreeMap::new(),
    }
}
