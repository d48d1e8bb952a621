//! The producer: records in, per-partition batches out, a future per record.
//!
//! `send` picks the partition, waits for room in `buffer.memory`, appends the record to its
//! partition's open batch and returns a [`DeliveryFuture`] at once; the background sender
//! (see `sender`) ships batches after `linger.ms` or when full, retries what failed, and
//! completes the futures with the offset the broker assigned. Memory a record holds is
//! released only when its future completes, so a stalled broker makes `send` wait rather
//! than grow the heap.

mod accumulator;
mod config;
pub mod partitioner;
mod sender;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use spate_protocol::records::NewRecord;
use tokio::sync::{Notify, Semaphore, oneshot};
use tokio::task::AbortHandle;

pub use config::{Acks, ProducerConfig};

use accumulator::{Accumulator, PendingRecord, record_size_bytes};
use partitioner::{StickyPartitioner, partition_for_key};

use crate::client::Client;
use crate::error::Error;

/// A record to send.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerRecord {
    pub topic: String,
    /// Where to send it; `None` lets the partitioner choose (by key, or sticky if keyless).
    pub partition: Option<i32>,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
    /// Create time in ms since the epoch; `None` means now.
    pub timestamp_ms: Option<i64>,
}

impl ProducerRecord {
    pub fn new(topic: impl Into<String>, value: impl Into<Bytes>) -> Self {
        Self {
            topic: topic.into(),
            value: Some(value.into()),
            ..Default::default()
        }
    }

    pub fn key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    pub fn header(mut self, name: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.headers.push((name.into(), Some(value.into())));
        self
    }

    pub fn partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }

    pub fn timestamp_ms(mut self, timestamp_ms: i64) -> Self {
        self.timestamp_ms = Some(timestamp_ms);
        self
    }
}

/// Where a record landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMetadata {
    pub topic: String,
    pub partition: i32,
    /// -1 with `acks=0`, where the broker does not say.
    pub offset: i64,
    /// The create time sent, or the broker's append time on a `LogAppendTime` topic.
    pub timestamp_ms: i64,
}

/// Completes when the broker acknowledged the record (or it finally failed).
#[derive(Debug)]
pub struct DeliveryFuture {
    receiver: oneshot::Receiver<Result<RecordMetadata, Error>>,
}

impl Future for DeliveryFuture {
    type Output = Result<RecordMetadata, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.receiver)
            .poll(cx)
            .map(|result| result.unwrap_or(Err(Error::Closed("producer"))))
    }
}

pub(crate) struct Shared {
    config: ProducerConfig,
    client: Client,
    state: Mutex<State>,
    /// Wakes the sender: a batch filled, a flush began, or the producer is closing.
    wake: Notify,
    /// Wakes flushers when nothing is queued or in flight.
    idle: Notify,
    /// One permit per byte of `buffer.memory`.
    memory: Semaphore,
    /// Set while a metadata refresh the sender started is running, so a burst of sends to
    /// a leaderless partition starts one refresh, not one per wake-up.
    refreshing: AtomicBool,
}

#[derive(Default)]
struct State {
    accumulator: Accumulator,
    sticky: StickyPartitioner,
    flushers: usize,
    closed: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn release_memory(&self, bytes: usize) {
        self.memory.add_permits(bytes);
    }
}

struct SenderTask(AbortHandle);

impl Drop for SenderTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// An async producer; clones share batches, connections and the sender task.
///
/// Dropping the last clone stops the sender at once and fails records still queued with
/// [`Error::Closed`]; call [`Producer::close`] (or [`Producer::flush`]) first to deliver
/// them, as with Kafka's `close()`.
#[derive(Clone)]
pub struct Producer {
    shared: Arc<Shared>,
    _sender: Arc<SenderTask>,
}

impl Producer {
    /// Checks the config, reaches the cluster, and starts the sender task.
    pub async fn new(config: ProducerConfig) -> Result<Producer, Error> {
        config.validate()?;
        let client = Client::connect(config.client.clone()).await?;
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        let shared = Arc::new(Shared {
            memory: Semaphore::new(config.buffer_memory_bytes),
            config,
            client,
            state: Mutex::new(State {
                sticky: StickyPartitioner::new(seed),
                ..State::default()
            }),
            wake: Notify::new(),
            idle: Notify::new(),
            refreshing: AtomicBool::new(false),
        });
        let task = tokio::spawn(sender::run(shared.clone()));
        Ok(Producer {
            shared,
            _sender: Arc::new(SenderTask(task.abort_handle())),
        })
    }

    /// The client underneath, e.g. for metadata.
    pub fn client(&self) -> &Client {
        &self.shared.client
    }

    /// Queues `record` and returns the future of its delivery.
    ///
    /// Waits (up to `max.block.ms`) for the topic's metadata and for room in
    /// `buffer.memory`; that wait is the producer's backpressure.
    pub async fn send(&self, record: ProducerRecord) -> Result<DeliveryFuture, Error> {
        let shared = &self.shared;
        let config = &shared.config;
        let topic = record.topic.clone();
        let info = shared
            .client
            .topic_info(&topic, true, config.max_block)
            .await?;
        let partition_count = info.partitions.len();
        let new_record = NewRecord {
            timestamp_ms: record.timestamp_ms.unwrap_or_else(now_ms),
            key: record.key,
            value: record.value,
            headers: record.headers,
        };
        let size_bytes = record_size_bytes(&new_record);
        for (limit_name, limit_bytes) in [
            ("max.request.size", config.max_request_size_bytes),
            ("buffer.memory", config.buffer_memory_bytes),
        ] {
            if size_bytes > limit_bytes {
                return Err(Error::RecordTooLarge {
                    topic,
                    size_bytes,
                    limit_name,
                    limit_bytes,
                });
            }
        }
        let partition = match (record.partition, &new_record.key) {
            (Some(partition), _) => {
                if partition < 0 || partition as usize >= partition_count {
                    return Err(Error::NoSuchPartition {
                        topic,
                        partition,
                        partition_count,
                    });
                }
                partition
            }
            (None, Some(key)) => partition_for_key(key, partition_count),
            (None, None) => shared.lock().sticky.partition(
                &topic,
                partition_count,
                size_bytes,
                config.batch_size_bytes,
            ),
        };
        let permits = size_bytes as u32;
        match tokio::time::timeout(config.max_block, shared.memory.acquire_many(permits)).await {
            Ok(Ok(permit)) => permit.forget(),
            Ok(Err(_)) => return Err(Error::Closed("producer")),
            Err(_) => {
                return Err(Error::BufferExhausted {
                    topic,
                    waited_ms: config.max_block.as_millis() as u64,
                    buffer_memory_bytes: config.buffer_memory_bytes,
                });
            }
        }
        let (reply, receiver) = oneshot::channel();
        {
            let mut state = shared.lock();
            if state.closed {
                drop(state);
                shared.release_memory(size_bytes);
                return Err(Error::Closed("producer"));
            }
            let pending = PendingRecord {
                record: new_record,
                reply,
            };
            state.accumulator.append(
                (topic, partition),
                pending,
                size_bytes,
                config.batch_size_bytes,
                Instant::now(),
            );
        }
        shared.wake.notify_one();
        Ok(DeliveryFuture { receiver })
    }

    /// Sends everything queued now, ignoring `linger.ms`, and waits until every queued
    /// record is acknowledged or failed.
    pub async fn flush(&self) {
        let shared = &self.shared;
        shared.lock().flushers += 1;
        let _guard = FlushGuard(shared);
        shared.wake.notify_one();
        loop {
            let idle = shared.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if shared.lock().accumulator.is_empty() {
                return;
            }
            idle.await;
        }
    }

    /// Flushes, then refuses further sends and stops the sender.
    pub async fn close(&self) {
        self.shared.lock().closed = true;
        self.flush().await;
        self.shared.wake.notify_one();
    }
}

struct FlushGuard<'a>(&'a Shared);

impl Drop for FlushGuard<'_> {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.flushers = state.flushers.saturating_sub(1);
    }
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
