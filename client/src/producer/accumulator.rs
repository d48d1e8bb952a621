//! Per-partition queues of batches waiting to be sent, and the rules for when one is ready.
//!
//! Sans-IO: time is an argument, so the linger, retry and expiry rules are unit-tested
//! without a clock. The sender task owns the I/O; `send` and the sender share this under one
//! mutex, held only for short, non-async sections.
//!
//! Ordering: a partition has at most one batch in flight. Its next batch goes only after
//! the broker answered the previous one, and a retried batch keeps its place and its
//! sequence numbers. That is what makes retries unable to reorder records, and, with the
//! idempotent producer's sequence numbers, unable to duplicate them. (Kafka allows up to
//! five in flight per partition with more bookkeeping; this keeps the proof short.)

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use spate_protocol::records::NewRecord;
use tokio::sync::oneshot;

use super::RecordMetadata;
use crate::error::Error;

/// Bytes a record costs beyond its key, value and headers: Kafka's worst case for the
/// varint lengths, attributes and deltas of a v2 record.
pub const RECORD_OVERHEAD_BYTES: usize = 21;
/// Bytes each header costs beyond its key and value.
pub const HEADER_OVERHEAD_BYTES: usize = 10;

/// Kafka's estimate of a record's size in a batch, which is what buffer memory counts.
pub fn record_size_bytes(record: &NewRecord) -> usize {
    let headers: usize = record
        .headers
        .iter()
        .map(|(k, v)| HEADER_OVERHEAD_BYTES + k.len() + v.as_ref().map_or(0, Bytes::len))
        .sum();
    RECORD_OVERHEAD_BYTES
        + record.key.as_ref().map_or(0, Bytes::len)
        + record.value.as_ref().map_or(0, Bytes::len)
        + headers
}

pub type TopicPartition = (String, i32);

/// A record waiting in a batch, with the future its sender holds.
pub struct PendingRecord {
    pub record: NewRecord,
    pub reply: oneshot::Sender<Result<RecordMetadata, Error>>,
}

/// The wire form of a batch, fixed at its first send so every retry is byte-identical.
#[derive(Debug, Clone)]
pub struct SealedBatch {
    pub bytes: Bytes,
    pub base_sequence: i32,
}

pub struct Batch {
    pub records: Vec<PendingRecord>,
    pub size_bytes: usize,
    pub created_at: Instant,
    pub sealed: Option<SealedBatch>,
    pub attempts: u32,
    pub retry_at: Option<Instant>,
    pub last_error: Option<Error>,
}

impl Batch {
    fn new(now: Instant) -> Self {
        Self {
            records: Vec::new(),
            size_bytes: 0,
            created_at: now,
            sealed: None,
            attempts: 0,
            retry_at: None,
            last_error: None,
        }
    }

    /// Completes every record's future; returns the buffer memory the batch held.
    pub fn complete(
        self,
        outcome: impl Fn(usize, &NewRecord) -> Result<RecordMetadata, Error>,
    ) -> usize {
        for (index, pending) in self.records.into_iter().enumerate() {
            let _ = pending.reply.send(outcome(index, &pending.record));
        }
        self.size_bytes
    }
}

#[derive(Default)]
pub struct PartitionQueue {
    pub batches: VecDeque<Batch>,
    pub in_flight: bool,
}

/// Every partition's queue.
#[derive(Default)]
pub struct Accumulator {
    /// Only partitions with something queued or in flight: emptied queues are dropped.
    pub queues: BTreeMap<TopicPartition, PartitionQueue>,
    /// Sequence number each partition's next sealed batch starts at (idempotent producer).
    /// Kept apart from `queues` because it must outlive an emptied queue: reusing a
    /// sequence would make the broker drop the batch as a duplicate.
    pub next_sequences: BTreeMap<TopicPartition, i32>,
}

/// What `drain` found.
pub struct Drained {
    /// Partitions whose front batch should be sent now.
    pub ready: Vec<TopicPartition>,
    /// Batches that outlived `delivery.timeout.ms` without being in flight.
    pub expired: Vec<(TopicPartition, Batch)>,
    /// When to look again if nothing else happens.
    pub next_check: Option<Instant>,
}

impl Accumulator {
    /// Appends a record to its partition's open batch, opening a new one when the record
    /// would push it past `batch_size_bytes` (a record bigger than that gets a batch alone).
    /// Returns whether a batch is now full, so the sender should wake early.
    pub fn append(
        &mut self,
        tp: TopicPartition,
        pending: PendingRecord,
        size_bytes: usize,
        batch_size_bytes: usize,
        now: Instant,
    ) -> bool {
        let queue = self.queues.entry(tp).or_default();
        let fits = queue.batches.back().is_some_and(|batch| {
            batch.sealed.is_none() && batch.size_bytes + size_bytes <= batch_size_bytes
        });
        if !fits {
            queue.batches.push_back(Batch::new(now));
        }
        let Some(batch) = queue.batches.back_mut() else {
            unreachable!("a batch was pushed above");
        };
        batch.records.push(pending);
        batch.size_bytes += size_bytes;
        let full = batch.size_bytes >= batch_size_bytes;
        full || queue.batches.len() > 1
    }

    /// Which partitions can send now, which batches expired, and when to check next.
    ///
    /// A front batch is ready when its partition has nothing in flight, any retry backoff
    /// has passed, and it is full, followed by another batch, older than `linger`, or the
    /// caller is flushing.
    pub fn drain(
        &mut self,
        now: Instant,
        linger: Duration,
        batch_size_bytes: usize,
        delivery_timeout: Duration,
        flushing: bool,
    ) -> Drained {
        let mut drained = Drained {
            ready: Vec::new(),
            expired: Vec::new(),
            next_check: None,
        };
        let wake = |at: Instant, next: &mut Option<Instant>| {
            *next = Some(next.map_or(at, |n| n.min(at)));
        };
        for (tp, queue) in &mut self.queues {
            if queue.in_flight {
                continue;
            }
            while let Some(front) = queue.batches.front() {
                if now.duration_since(front.created_at) < delivery_timeout {
                    break;
                }
                if let Some(batch) = queue.batches.pop_front() {
                    drained.expired.push((tp.clone(), batch));
                }
            }
            let Some(front) = queue.batches.front() else {
                continue;
            };
            wake(front.created_at + delivery_timeout, &mut drained.next_check);
            if let Some(retry_at) = front.retry_at
                && retry_at > now
            {
                wake(retry_at, &mut drained.next_check);
                continue;
            }
            let full = front.size_bytes >= batch_size_bytes || queue.batches.len() > 1;
            let lingered = now.duration_since(front.created_at) >= linger;
            if full || lingered || flushing || front.sealed.is_some() {
                drained.ready.push(tp.clone());
            } else {
                wake(front.created_at + linger, &mut drained.next_check);
            }
        }
        self.queues
            .retain(|_, q| q.in_flight || !q.batches.is_empty());
        drained
    }

    /// Whether nothing is queued or in flight.
    pub fn is_empty(&self) -> bool {
        self.queues
            .values()
            .all(|q| !q.in_flight && q.batches.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(
        value: &str,
    ) -> (
        PendingRecord,
        oneshot::Receiver<Result<RecordMetadata, Error>>,
    ) {
        let (reply, rx) = oneshot::channel();
        let record = NewRecord {
            value: Some(Bytes::copy_from_slice(value.as_bytes())),
            ..Default::default()
        };
        (PendingRecord { record, reply }, rx)
    }

    fn tp() -> TopicPartition {
        ("t".to_string(), 0)
    }

    const LINGER: Duration = Duration::from_millis(5);
    const TIMEOUT: Duration = Duration::from_secs(120);

    #[test]
    fn batch_waits_for_linger_unless_full_or_flushing() {
        let start = Instant::now();
        let mut acc = Accumulator::default();
        let (r, _rx) = record("a");
        assert!(!acc.append(tp(), r, 100, 1000, start));
        let drained = acc.drain(start, LINGER, 1000, TIMEOUT, false);
        assert!(drained.ready.is_empty());
        assert_eq!(drained.next_check, Some(start + LINGER));
        assert_eq!(
            acc.drain(start, LINGER, 1000, TIMEOUT, true).ready,
            vec![tp()]
        );
        assert_eq!(
            acc.drain(start + LINGER, LINGER, 1000, TIMEOUT, false)
                .ready,
            vec![tp()]
        );
        let (r, _rx2) = record("b");
        assert!(
            acc.append(tp(), r, 950, 1000, start),
            "overflow opens a second batch"
        );
        assert_eq!(acc.queues[&tp()].batches.len(), 2);
        assert_eq!(
            acc.drain(start, LINGER, 1000, TIMEOUT, false).ready,
            vec![tp()]
        );
    }

    #[test]
    fn in_flight_partition_is_never_ready_and_backoff_delays_retry() {
        let start = Instant::now();
        let mut acc = Accumulator::default();
        let (r, _rx) = record("a");
        acc.append(tp(), r, 2000, 1000, start);
        let queue = acc.queues.get_mut(&tp()).unwrap();
        queue.in_flight = true;
        assert!(
            acc.drain(start, LINGER, 1000, TIMEOUT, true)
                .ready
                .is_empty()
        );
        let queue = acc.queues.get_mut(&tp()).unwrap();
        queue.in_flight = false;
        queue.batches[0].retry_at = Some(start + Duration::from_millis(100));
        let drained = acc.drain(start, LINGER, 1000, TIMEOUT, true);
        assert!(drained.ready.is_empty());
        assert_eq!(drained.next_check, Some(start + Duration::from_millis(100)));
        let later = start + Duration::from_millis(100);
        assert_eq!(
            acc.drain(later, LINGER, 1000, TIMEOUT, false).ready,
            vec![tp()]
        );
    }

    #[test]
    fn batches_past_delivery_timeout_expire() {
        let start = Instant::now();
        let mut acc = Accumulator::default();
        let (r, _rx) = record("a");
        acc.append(tp(), r, 10, 1000, start);
        let drained = acc.drain(start + TIMEOUT, LINGER, 1000, TIMEOUT, false);
        assert_eq!(drained.expired.len(), 1);
        assert!(acc.is_empty());
    }

    #[test]
    fn record_size_counts_key_value_headers_and_overhead() {
        let record = NewRecord {
            key: Some(Bytes::from_static(b"kk")),
            value: Some(Bytes::from_static(b"vvv")),
            headers: vec![("h".into(), Some(Bytes::from_static(b"x")))],
            ..Default::default()
        };
        assert_eq!(
            record_size_bytes(&record),
            RECORD_OVERHEAD_BYTES + 5 + HEADER_OVERHEAD_BYTES + 2
        );
    }
}
