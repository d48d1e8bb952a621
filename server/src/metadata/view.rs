//! The metadata image the request handlers see: the cluster image this node has applied to
//! its engine (partitions created, coordinators loaded), plus who the active controller is.
//!
//! The reconciler publishes an image here only after the engine holds every replica it
//! names, so a handler that finds a partition led by this node can use it at once. Readers
//! take an `Arc` snapshot and never hold a lock while they work.

use std::cell::RefCell;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use spate_cluster::image::PartitionState;
use spate_cluster::{ClusterImage, NO_LEADER, NodeId};
use tokio::sync::watch;

static NEXT_VIEW_ID: AtomicU64 = AtomicU64::new(0);

/// Views one thread remembers snapshots of; one broker per process needs one slot, tests a
/// few. Bounded so a long test run cannot grow it.
const IMAGE_CACHE_VIEWS_MAX: usize = 8;

struct CachedImage {
    view_id: u64,
    version: u64,
    image: Arc<ClusterImage>,
}

thread_local! {
    static IMAGE_CACHE: RefCell<Vec<CachedImage>> = const { RefCell::new(Vec::new()) };
}

/// `Send + Sync`: one instance is shared by every core.
pub struct MetadataView {
    node_id: NodeId,
    image: RwLock<Arc<ClusterImage>>,
    /// Bumped after every publish. Readers on the data path compare it with their
    /// shard-local copy and take the lock only when it moved.
    version: AtomicU64,
    view_id: u64,
    controller_id: AtomicI32,
    /// The offset of each published image, for callers waiting for a change to arrive.
    published: watch::Sender<u64>,
}

impl MetadataView {
    pub fn new(node_id: NodeId) -> Self {
        Self {
            node_id,
            image: RwLock::new(Arc::new(ClusterImage::default())),
            version: AtomicU64::new(0),
            view_id: NEXT_VIEW_ID.fetch_add(1, Ordering::Relaxed),
            controller_id: AtomicI32::new(NO_LEADER),
            published: watch::channel(0).0,
        }
    }

    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// The current snapshot.
    ///
    /// Called on every Produce and Fetch, so it avoids the lock: each thread keeps the last
    /// snapshot it saw with its version, and only a publish sends it to the lock. A version
    /// read before the snapshot can only be older than the snapshot, so the worst case is
    /// one extra refresh, never a stale image.
    pub fn image(&self) -> Arc<ClusterImage> {
        let version = self.version.load(Ordering::Acquire);
        IMAGE_CACHE.with(|cache| {
            let mut cache = cache.borrow_mut();
            if let Some(entry) = cache
                .iter()
                .find(|e| e.view_id == self.view_id && e.version == version)
            {
                return entry.image.clone();
            }
            let image = self
                .image
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            cache.retain(|e| e.view_id != self.view_id);
            if cache.len() >= IMAGE_CACHE_VIEWS_MAX {
                cache.remove(0);
            }
            cache.push(CachedImage {
                view_id: self.view_id,
                version,
                image: image.clone(),
            });
            image
        })
    }

    /// Makes `image` the one handlers see (the reconciler calls this once the engine
    /// matches it).
    pub fn publish(&self, image: Arc<ClusterImage>) {
        let offset = image.offset();
        *self.image.write().unwrap_or_else(PoisonError::into_inner) = image;
        self.version.fetch_add(1, Ordering::AcqRel);
        self.published.send_replace(offset);
    }

    /// Waits until handlers see an image at `offset` or later (a change this node asked the
    /// controller for), or `timeout` passes. Returns whether it arrived.
    pub async fn wait_for_offset(&self, offset: u64, timeout: Duration) -> bool {
        let mut published = self.published.subscribe();
        matches!(
            tokio::time::timeout(timeout, published.wait_for(|o| *o >= offset)).await,
            Ok(Ok(_))
        )
    }

    /// The metadata offset handlers currently see.
    pub fn offset(&self) -> u64 {
        self.image().offset()
    }

    /// The active controller, or [`NO_LEADER`] while an election runs.
    pub fn controller_id(&self) -> NodeId {
        self.controller_id.load(Ordering::Acquire)
    }

    pub fn set_controller_id(&self, id: NodeId) {
        self.controller_id.store(id, Ordering::Release);
    }
}

/// What a handler needs to know about one partition's leadership.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leadership {
    /// This node leads it, in this epoch.
    Local { leader_epoch: i32 },
    /// Another node leads it.
    Remote { leader: NodeId, leader_epoch: i32 },
    /// Nobody does (no ISR member is live).
    None { leader_epoch: i32 },
}

impl Leadership {
    pub fn of(partition: &PartitionState, local: NodeId) -> Leadership {
        match partition.leader {
            leader if leader == local => Leadership::Local {
                leader_epoch: partition.leader_epoch,
            },
            NO_LEADER => Leadership::None {
                leader_epoch: partition.leader_epoch,
            },
            leader => Leadership::Remote {
                leader,
                leader_epoch: partition.leader_epoch,
            },
        }
    }
}
