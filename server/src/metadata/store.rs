//! The topic metadata store: which topics exist, their ids, partition counts and config
//! overrides, and the producer-id reservation. Persisted atomically in one file under the
//! data dir (write a temp file, fsync, rename, fsync the folder), loaded at start.
//!
//! Readers (every request that names a topic) take an [`Arc<MetadataImage>`] snapshot and
//! never hold a lock while they work. Writers (admin requests, InitProducerId) are rare and
//! rewrite the whole file; a broker with thousands of topics still writes a few hundred KiB.
//!
//! This module does not talk to the engine: reconciling partitions with the engine's logs is
//! the broker's job ([`crate::broker`]).

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use serde::{Deserialize, Serialize};
use spate_engine::LogConfig;

use super::PARTITION_COUNT_MAX;
use super::topic_config::{self, ConfigError};
use super::topic_id::TopicId;
use super::topic_name::validate_topic_name;

/// File name of the metadata under the data dir.
pub const METADATA_FILE_NAME: &str = "spate-metadata.toml";
/// Producer ids are reserved on disk in blocks so InitProducerId rarely fsyncs; a restart
/// skips the rest of a block, which keeps ids monotonic across restarts.
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;
/// Format version written into the file, checked on load.
const METADATA_FORMAT_VERSION: u32 = 1;

/// Errors of the metadata layer.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("metadata file {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("metadata file {path} is not valid: {reason}; restore it or move it away")]
    Corrupt { path: PathBuf, reason: String },
    #[error("topic '{0}' already exists")]
    TopicExists(String),
    #[error("topic '{0}' does not exist")]
    UnknownTopic(String),
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// One topic as the broker knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Topic {
    pub name: Arc<str>,
    pub id: TopicId,
    pub partition_count: i32,
    /// Overrides exactly as set by clients (Kafka name → value).
    pub configs: BTreeMap<String, String>,
    /// Broker defaults with `configs` applied.
    pub log_config: LogConfig,
}

/// An immutable snapshot of every topic, cheap to share across cores.
#[derive(Debug, Default)]
pub struct MetadataImage {
    topics: BTreeMap<Arc<str>, Arc<Topic>>,
    names_by_id: HashMap<TopicId, Arc<str>>,
}

impl MetadataImage {
    pub fn topic(&self, name: &str) -> Option<&Arc<Topic>> {
        self.topics.get(name)
    }

    pub fn topic_by_id(&self, id: TopicId) -> Option<&Arc<Topic>> {
        self.names_by_id.get(&id).and_then(|n| self.topics.get(n))
    }

    pub fn topics(&self) -> impl Iterator<Item = &Arc<Topic>> {
        self.topics.values()
    }

    /// Partitions across all topics.
    pub fn partition_count(&self) -> i64 {
        self.topics
            .values()
            .map(|t| i64::from(t.partition_count))
            .sum()
    }

    fn with(mut self, topic: Topic) -> Self {
        self.names_by_id.insert(topic.id, topic.name.clone());
        self.topics.insert(topic.name.clone(), Arc::new(topic));
        self
    }
}

static NEXT_STORE_ID: AtomicU64 = AtomicU64::new(0);

/// Stores one thread remembers snapshots of; one broker per process needs one slot, tests a
/// few. Bounded so a long test run cannot grow it.
const IMAGE_CACHE_STORES_MAX: usize = 8;

struct CachedImage {
    store_id: u64,
    version: u64,
    image: Arc<MetadataImage>,
}

thread_local! {
    static IMAGE_CACHE: RefCell<Vec<CachedImage>> = const { RefCell::new(Vec::new()) };
}

#[derive(Serialize, Deserialize)]
struct MetadataFile {
    format_version: u32,
    /// Producer ids below this may have been handed out.
    producer_id_reserved_until: i64,
    #[serde(default)]
    topics: Vec<TopicRecord>,
}

#[derive(Serialize, Deserialize)]
struct TopicRecord {
    name: String,
    id: String,
    partitions: i32,
    #[serde(default)]
    configs: BTreeMap<String, String>,
}

struct ProducerIds {
    next: i64,
    reserved_until: i64,
}

/// The store. `Send + Sync`: one instance is shared by every core.
pub struct MetadataStore {
    path: PathBuf,
    defaults: LogConfig,
    image: RwLock<Arc<MetadataImage>>,
    /// Bumped after every change of `image`. Readers on the data path compare it with their
    /// shard-local copy and take the lock only when it moved (after an admin change).
    image_version: AtomicU64,
    /// Tells stores apart in the shard-local cache (tests run several brokers per process).
    store_id: u64,
    /// Serializes writers and holds the producer-id counter; never held across an await.
    writer: Mutex<ProducerIds>,
}

impl MetadataStore {
    /// Loads the store from `data_dir`, or starts empty if the file is absent.
    pub fn open(data_dir: &Path, defaults: LogConfig) -> Result<Self, MetadataError> {
        let path = data_dir.join(METADATA_FILE_NAME);
        let io_err = |source| MetadataError::Io {
            path: path.clone(),
            source,
        };
        let (image, reserved_until) = match fs::read_to_string(&path) {
            Ok(text) => load(&path, &text, &defaults)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => (MetadataImage::default(), 0),
            Err(e) => return Err(io_err(e)),
        };
        Ok(Self {
            path,
            defaults,
            image: RwLock::new(Arc::new(image)),
            image_version: AtomicU64::new(0),
            store_id: NEXT_STORE_ID.fetch_add(1, Ordering::Relaxed),
            writer: Mutex::new(ProducerIds {
                next: reserved_until,
                reserved_until,
            }),
        })
    }

    /// The current snapshot.
    ///
    /// Called on every Produce and Fetch, so it avoids the lock: each thread keeps the last
    /// snapshot it saw with its version, and only an admin change (a new version) sends it
    /// to the lock. A version read before the snapshot can only be older than the snapshot,
    /// so the worst case is one extra refresh, never a stale image.
    pub fn image(&self) -> Arc<MetadataImage> {
        let version = self.image_version.load(Ordering::Acquire);
        IMAGE_CACHE.with(|cache| {
            let mut cache = cache.borrow_mut();
            let cached = cache
                .iter()
                .find(|e| e.store_id == self.store_id && e.version == version);
            if let Some(entry) = cached {
                return entry.image.clone();
            }
            let image = self
                .image
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            cache.retain(|e| e.store_id != self.store_id);
            if cache.len() >= IMAGE_CACHE_STORES_MAX {
                cache.remove(0);
            }
            cache.push(CachedImage {
                store_id: self.store_id,
                version,
                image: image.clone(),
            });
            image
        })
    }

    /// The broker-wide topic defaults.
    pub fn defaults(&self) -> &LogConfig {
        &self.defaults
    }

    /// Builds a topic record (fresh id, validated configs) without storing it.
    pub fn new_topic(
        &self,
        name: &str,
        partition_count: i32,
        configs: BTreeMap<String, String>,
    ) -> Result<Topic, MetadataError> {
        let log_config = topic_config::effective(&self.defaults, &configs)?;
        Ok(Topic {
            name: name.into(),
            id: TopicId::random(),
            partition_count,
            configs,
            log_config,
        })
    }

    /// Adds a topic; fails if one with that name exists.
    pub fn insert_topic(&self, topic: Topic) -> Result<(), MetadataError> {
        let ids = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let image = self.image();
        if image.topic(&topic.name).is_some() {
            return Err(MetadataError::TopicExists(topic.name.to_string()));
        }
        let next = rebuild(&image, None).with(topic);
        self.commit(next, ids.reserved_until)
    }

    /// Replaces an existing topic (new partition count or configs).
    pub fn update_topic(&self, topic: Topic) -> Result<(), MetadataError> {
        let ids = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let image = self.image();
        if image.topic(&topic.name).is_none() {
            return Err(MetadataError::UnknownTopic(topic.name.to_string()));
        }
        let next = rebuild(&image, Some(&topic.name)).with(topic);
        self.commit(next, ids.reserved_until)
    }

    /// Removes a topic; returns it.
    pub fn remove_topic(&self, name: &str) -> Result<Arc<Topic>, MetadataError> {
        let ids = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let image = self.image();
        let Some(topic) = image.topic(name).cloned() else {
            return Err(MetadataError::UnknownTopic(name.to_owned()));
        };
        let next = rebuild(&image, Some(name));
        self.commit(next, ids.reserved_until)?;
        Ok(topic)
    }

    /// Hands out the next producer id. Ids are unique and increase across restarts.
    pub fn allocate_producer_id(&self) -> Result<i64, MetadataError> {
        let mut ids = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        if ids.next >= ids.reserved_until {
            let reserved_until = ids.next + PRODUCER_ID_BLOCK_SIZE;
            let image = self.image();
            self.persist(&image, reserved_until)?;
            ids.reserved_until = reserved_until;
        }
        let id = ids.next;
        ids.next += 1;
        Ok(id)
    }

    fn commit(&self, next: MetadataImage, reserved_until: i64) -> Result<(), MetadataError> {
        self.persist(&next, reserved_until)?;
        *self.image.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(next);
        self.image_version.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    fn persist(&self, image: &MetadataImage, reserved_until: i64) -> Result<(), MetadataError> {
        let file = MetadataFile {
            format_version: METADATA_FORMAT_VERSION,
            producer_id_reserved_until: reserved_until,
            topics: image
                .topics()
                .map(|t| TopicRecord {
                    name: t.name.to_string(),
                    id: t.id.to_string(),
                    partitions: t.partition_count,
                    configs: t.configs.clone(),
                })
                .collect(),
        };
        let text = toml::to_string(&file).map_err(|e| MetadataError::Corrupt {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        write_atomically(&self.path, text.as_bytes()).map_err(|source| MetadataError::Io {
            path: self.path.clone(),
            source,
        })
    }
}

fn rebuild(image: &MetadataImage, without: Option<&str>) -> MetadataImage {
    image
        .topics()
        .filter(|t| Some(&*t.name) != without)
        .fold(MetadataImage::default(), |acc, t| acc.with(Topic::clone(t)))
}

fn load(
    path: &Path,
    text: &str,
    defaults: &LogConfig,
) -> Result<(MetadataImage, i64), MetadataError> {
    let corrupt = |reason: String| MetadataError::Corrupt {
        path: path.to_owned(),
        reason,
    };
    let file: MetadataFile = toml::from_str(text).map_err(|e| corrupt(e.to_string()))?;
    if file.format_version != METADATA_FORMAT_VERSION {
        return Err(corrupt(format!(
            "format version {} (this build reads {METADATA_FORMAT_VERSION})",
            file.format_version
        )));
    }
    let mut image = MetadataImage::default();
    for record in file.topics {
        let id: TopicId = record
            .id
            .parse()
            .map_err(|_| corrupt(format!("topic '{}' has a bad id", record.name)))?;
        validate_topic_name(&record.name).map_err(|e| corrupt(e.to_string()))?;
        if !(1..=PARTITION_COUNT_MAX).contains(&record.partitions) {
            return Err(corrupt(format!(
                "topic '{}' has {} partitions",
                record.name, record.partitions
            )));
        }
        let log_config = topic_config::effective(defaults, &record.configs)
            .map_err(|e| corrupt(format!("topic '{}': {e}", record.name)))?;
        image = image.with(Topic {
            name: record.name.into(),
            id,
            partition_count: record.partitions,
            configs: record.configs,
            log_config,
        });
    }
    Ok((image, file.producer_id_reserved_until.max(0)))
}

/// Replaces `path` with `bytes` so that a crash leaves either the old or the new file.
fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("toml.tmp");
    {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &Path) -> MetadataStore {
        MetadataStore::open(dir, LogConfig::default()).unwrap()
    }

    #[test]
    fn topics_survive_a_reopen_with_the_same_id() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let configs = BTreeMap::from([("retention.ms".to_owned(), "5000".to_owned())]);
        let topic = s.new_topic("orders", 3, configs).unwrap();
        let id = topic.id;
        s.insert_topic(topic).unwrap();
        drop(s);

        let s = store(dir.path());
        let image = s.image();
        let t = image.topic("orders").unwrap();
        assert_eq!(t.id, id);
        assert_eq!(t.partition_count, 3);
        assert_eq!(t.log_config.retention_ms, 5000);
        assert_eq!(image.topic_by_id(id).unwrap().name.as_ref(), "orders");
    }

    #[test]
    fn duplicate_topic_is_refused_and_removal_persists() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        s.insert_topic(s.new_topic("a", 1, BTreeMap::new()).unwrap())
            .unwrap();
        let again = s.new_topic("a", 1, BTreeMap::new()).unwrap();
        assert!(matches!(
            s.insert_topic(again),
            Err(MetadataError::TopicExists(_))
        ));
        s.remove_topic("a").unwrap();
        drop(s);
        assert!(store(dir.path()).image().topic("a").is_none());
    }

    #[test]
    fn producer_ids_increase_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let first = s.allocate_producer_id().unwrap();
        let second = s.allocate_producer_id().unwrap();
        assert!(second > first);
        drop(s);
        let third = store(dir.path()).allocate_producer_id().unwrap();
        assert!(third > second);
    }

    #[test]
    fn a_thread_with_a_cached_snapshot_sees_later_changes() {
        let dir = tempfile::tempdir().unwrap();
        let s = std::sync::Arc::new(store(dir.path()));
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let (cached_tx, cached_rx) = std::sync::mpsc::channel::<bool>();
        let reader = {
            let s = s.clone();
            std::thread::spawn(move || {
                cached_tx.send(s.image().topic("late").is_none()).unwrap();
                go_rx.recv().unwrap();
                s.image().topic("late").is_some()
            })
        };
        assert!(
            cached_rx.recv().unwrap(),
            "the reader cached the empty image"
        );
        s.insert_topic(s.new_topic("late", 1, BTreeMap::new()).unwrap())
            .unwrap();
        go_tx.send(()).unwrap();
        assert!(reader.join().unwrap());
        assert!(s.image().topic("late").is_some());
    }

    #[test]
    fn corrupt_file_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join(METADATA_FILE_NAME),
            b"\xff\x00 not toml [[[",
        )
        .unwrap();
        assert!(matches!(
            MetadataStore::open(dir.path(), LogConfig::default()),
            Err(MetadataError::Corrupt { .. } | MetadataError::Io { .. })
        ));
    }
}
