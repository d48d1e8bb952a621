//! The metadata feed: the latest image and the recent log entries it came from, as a node
//! publishes them after applying.
//!
//! Controllers publish from their openraft state machine; brokers that are not controllers
//! publish what they fetch from a controller. Everything downstream (the reconciler that
//! applies the image to the engine, and controllers answering a broker's fetch) reads the
//! feed, so a node learns of changes one way whatever its roles.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use spate_cluster::{ClusterImage, MetadataBatch};
use tokio::sync::watch;

/// Entries kept for brokers that fetch deltas; a broker further behind gets the image.
pub const FEED_ENTRIES_MAX: usize = 4096;

/// What a fetching broker gets.
#[derive(Debug, Clone)]
pub enum FeedSince {
    /// Nothing newer than the offset asked for.
    UpToDate,
    /// The entries after the offset, in order (blank entries included, as `None`).
    Entries(Vec<(u64, Option<MetadataBatch>)>),
    /// The offset is older than the entries kept: start over from this image.
    Image(Arc<ClusterImage>),
}

struct Recent {
    entries: VecDeque<(u64, Option<MetadataBatch>)>,
}

/// `Send + Sync`; one per node, shared.
pub struct MetadataFeed {
    image: watch::Sender<Arc<ClusterImage>>,
    recent: Mutex<Recent>,
}

impl MetadataFeed {
    pub fn new(image: ClusterImage) -> Self {
        let (sender, _) = watch::channel(Arc::new(image));
        Self {
            image: sender,
            recent: Mutex::new(Recent {
                entries: VecDeque::new(),
            }),
        }
    }

    /// Publishes `image`, which includes `entries` (applied in order). A restored snapshot
    /// publishes with no entries and forgets the ones kept, since they no longer lead to it.
    pub fn publish(&self, image: Arc<ClusterImage>, entries: Vec<(u64, Option<MetadataBatch>)>) {
        {
            let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
            if entries.is_empty() {
                recent.entries.clear();
            }
            for entry in entries {
                if recent.entries.len() >= FEED_ENTRIES_MAX {
                    recent.entries.pop_front();
                }
                recent.entries.push_back(entry);
            }
        }
        self.image.send_replace(image);
    }

    /// The latest image.
    pub fn image(&self) -> Arc<ClusterImage> {
        self.image.borrow().clone()
    }

    /// Changes whenever a new image is published.
    pub fn subscribe(&self) -> watch::Receiver<Arc<ClusterImage>> {
        self.image.subscribe()
    }

    /// What a broker whose image is at `offset` needs to catch up.
    pub fn since(&self, offset: u64) -> FeedSince {
        let image = self.image();
        if image.offset() <= offset {
            return FeedSince::UpToDate;
        }
        let recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        let first_kept = recent.entries.front().map(|(index, _)| *index);
        match first_kept {
            Some(first) if first <= offset + 1 => FeedSince::Entries(
                recent
                    .entries
                    .iter()
                    .filter(|(index, _)| *index > offset && *index <= image.offset())
                    .cloned()
                    .collect(),
            ),
            _ => FeedSince::Image(image),
        }
    }
}
