//! The consumer, with manual assignment (`assign`); [`group`] adds consumer groups.
//!
//! A background fetcher keeps each assigned partition's prefetch buffer filled (see
//! `fetcher`); [`Consumer::poll`] hands out what is buffered and so never waits on the
//! network when records are ready. Positions live in [`state::Subscription`], which is the
//! seam for consumer groups: a group member will decide *which* partitions are assigned
//! (`assign`), seed their positions from committed offsets (`seek`), read `positions` to
//! commit, and leave fetching exactly as it is.

mod fetcher;
pub mod group;
pub mod state;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio::task::AbortHandle;

pub use state::{ConsumerRecord, SeekTarget};

use crate::client::Client;
use crate::config::ClientConfig;
use crate::error::Error;
use crate::offsets::{OffsetSpec, TopicPartition};
use state::Subscription;

/// `auto.offset.reset`: where to start when a partition has no position, or its position
/// fell out of the log (retention deleted it, or it is past the end).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetReset {
    Earliest,
    /// Kafka's default.
    Latest,
    /// Report an error from `poll`; the application must seek.
    None,
}

/// Consumer settings; defaults are Kafka 4.0's.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    pub client: ClientConfig,
    /// `auto.offset.reset` (latest).
    pub auto_offset_reset: OffsetReset,
    /// `fetch.min.bytes` (1).
    pub fetch_min_bytes: usize,
    /// `fetch.max.bytes` (50 MiB): per Fetch response, and the cap on prefetched bytes.
    pub fetch_max_bytes: usize,
    /// `max.partition.fetch.bytes` (1 MiB).
    pub max_partition_fetch_bytes: usize,
    /// `fetch.max.wait.ms` (500 ms): how long the broker may hold a Fetch for `min_bytes`.
    pub fetch_max_wait: Duration,
    /// `max.poll.records` (500).
    pub max_poll_records: usize,
    /// Cap on one batch's decompressed size, against decompression bombs.
    pub max_decompressed_bytes: usize,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self {
            client: ClientConfig::default(),
            auto_offset_reset: OffsetReset::Latest,
            fetch_min_bytes: 1,
            fetch_max_bytes: 50 * 1024 * 1024,
            max_partition_fetch_bytes: 1024 * 1024,
            fetch_max_wait: Duration::from_millis(500),
            max_poll_records: 500,
            max_decompressed_bytes: 64 * 1024 * 1024,
        }
    }
}

impl ConsumerConfig {
    pub fn new(bootstrap: impl Into<String>) -> Self {
        Self {
            client: ClientConfig::new(bootstrap),
            ..Self::default()
        }
    }
}

pub(crate) struct Shared {
    config: ConsumerConfig,
    client: Client,
    state: Mutex<Subscription>,
    /// Wakes the fetcher: assignment, seek, resume, or a drained buffer.
    fetcher_wake: Notify,
    /// Wakes `poll`: records or an error arrived.
    records_ready: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Subscription> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

struct FetcherTask(AbortHandle);

impl Drop for FetcherTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A consumer of explicitly assigned partitions.
pub struct Consumer {
    shared: Arc<Shared>,
    _fetcher: FetcherTask,
}

impl Consumer {
    /// Reaches the cluster and starts the fetcher (idle until something is assigned).
    pub async fn new(config: ConsumerConfig) -> Result<Consumer, Error> {
        let client = Client::connect(config.client.clone()).await?;
        let shared = Arc::new(Shared {
            config,
            client,
            state: Mutex::new(Subscription::default()),
            fetcher_wake: Notify::new(),
            records_ready: Notify::new(),
        });
        let task = tokio::spawn(fetcher::run(shared.clone()));
        Ok(Consumer {
            shared,
            _fetcher: FetcherTask(task.abort_handle()),
        })
    }

    pub fn client(&self) -> &Client {
        &self.shared.client
    }

    /// Replaces the assignment. New partitions start at `auto.offset.reset` unless sought.
    pub fn assign(&self, partitions: impl IntoIterator<Item = (String, i32)>) {
        self.shared.lock().assign(partitions);
        self.shared.fetcher_wake.notify_one();
    }

    /// The assigned partitions.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.shared.lock().partitions.keys().cloned().collect()
    }

    /// Moves `topic-partition` to `offset`; the next poll returns records from there.
    pub fn seek(&self, topic: &str, partition: i32, offset: i64) -> Result<(), Error> {
        self.seek_to(topic, partition, SeekTarget::Offset(offset))
    }

    pub fn seek_to_beginning(&self, topic: &str, partition: i32) -> Result<(), Error> {
        self.seek_to(topic, partition, SeekTarget::Lookup(OffsetSpec::Earliest))
    }

    pub fn seek_to_end(&self, topic: &str, partition: i32) -> Result<(), Error> {
        self.seek_to(topic, partition, SeekTarget::Lookup(OffsetSpec::Latest))
    }

    /// Moves to the first record at or after `timestamp_ms` (the end if there is none).
    pub fn seek_to_timestamp(
        &self,
        topic: &str,
        partition: i32,
        timestamp_ms: i64,
    ) -> Result<(), Error> {
        self.seek_to(
            topic,
            partition,
            SeekTarget::Lookup(OffsetSpec::Timestamp(timestamp_ms)),
        )
    }

    fn seek_to(&self, topic: &str, partition: i32, target: SeekTarget) -> Result<(), Error> {
        self.shared
            .lock()
            .seek(&(topic.to_string(), partition), target)?;
        self.shared.fetcher_wake.notify_one();
        Ok(())
    }

    /// The next offset `poll` will return for the partition; `None` while it is being
    /// looked up (after assign or a seek to beginning/end/timestamp).
    pub fn position(&self, topic: &str, partition: i32) -> Result<Option<i64>, Error> {
        let state = self.shared.lock();
        match state.partitions.get(&(topic.to_string(), partition)) {
            Some(p) => Ok(p.position),
            None => Err(Error::NotAssigned {
                topic: topic.to_string(),
                partition,
            }),
        }
    }

    /// Every assigned partition's known position: what a group member commits.
    pub fn positions(&self) -> BTreeMap<TopicPartition, i64> {
        let state = self.shared.lock();
        state
            .partitions
            .iter()
            .filter_map(|(tp, p)| p.position.map(|pos| (tp.clone(), pos)))
            .collect()
    }

    /// Stops returning and fetching records of these partitions; their positions and any
    /// prefetched records are kept.
    pub fn pause(&self, partitions: &[(String, i32)]) {
        self.set_paused(partitions, true);
    }

    pub fn resume(&self, partitions: &[(String, i32)]) {
        self.set_paused(partitions, false);
        self.shared.fetcher_wake.notify_one();
    }

    fn set_paused(&self, partitions: &[(String, i32)], paused: bool) {
        let mut state = self.shared.lock();
        for tp in partitions {
            if let Some(p) = state.partitions.get_mut(tp) {
                p.paused = paused;
            }
        }
    }

    /// Records from the prefetch buffer, at most `max.poll.records`, waiting up to
    /// `timeout` for some to arrive. An empty result means none arrived in time.
    pub async fn poll(&self, timeout: Duration) -> Result<Vec<ConsumerRecord>, Error> {
        let deadline = Instant::now() + timeout;
        loop {
            let ready = self.shared.records_ready.notified();
            tokio::pin!(ready);
            ready.as_mut().enable();
            {
                let mut state = self.shared.lock();
                if let Some(error) = state.error.take() {
                    return Err(error);
                }
                if self.shared.config.auto_offset_reset == OffsetReset::None
                    && let Some((topic, partition)) = state.without_position()
                {
                    return Err(Error::NoOffset {
                        topic: topic.clone(),
                        partition: *partition,
                    });
                }
                let records = state.take_records(self.shared.config.max_poll_records);
                if !records.is_empty() {
                    drop(state);
                    self.shared.fetcher_wake.notify_one();
                    return Ok(records);
                }
            }
            if Instant::now() >= deadline {
                return Ok(Vec::new());
            }
            tokio::select! {
                _ = &mut ready => {}
                _ = tokio::time::sleep_until(deadline.into()) => {}
            }
        }
    }
}
