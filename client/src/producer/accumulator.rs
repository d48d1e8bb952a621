//! Per-partition queues of batches waiting to be sent, and the rules for when one is ready.
//!
//! Sans-IO: time is an argument, so the linger, retry and expiry rules are unit-tested
//! without a clock. The sender task owns the I/O; `send` and the sender share this under one
//! mutex, held only for short, non-async sections.
//!
//! Ordering: a partition keeps up to `max.in.flight.requests.per.connection` batches in
//! flight, sent in sequence order over its leader's one connection, which the broker reads
//! in order. When an answer says "retry", the partition *recovers*: nothing more is sent
//! until every batch in flight has been answered, and then the oldest unacknowledged batch
//! goes first, with the same bytes and sequence numbers. Later batches the broker refused
//! because of the gap (OUT_OF_ORDER_SEQUENCE_NUMBER) are retried behind it. That is what
//! keeps retries from reordering records and, with the idempotent producer's sequence
//! numbers, from duplicating them.

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
    /// The [`Accumulator::generation`] it was sealed in: a batch sealed under a producer id
    /// that was since replaced is resealed rather than failed when the broker refuses it.
    pub generation: u64,
}

pub struct Batch {
    /// Unique within the producer: answers find their batch by it, wherever it now sits.
    pub id: u64,
    pub in_flight: bool,
    pub records: Vec<PendingRecord>,
    pub size_bytes: usize,
    pub created_at: Instant,
    pub sealed: Option<SealedBatch>,
    pub attempts: u32,
    pub retry_at: Option<Instant>,
    pub last_error: Option<Error>,
}

impl Batch {
    fn new(id: u64, now: Instant) -> Self {
        Self {
            id,
            in_flight: false,
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

/// One partition's batches, oldest (lowest sequence) first.
///
/// Outside recovery, the batches in flight are a prefix of `batches`: they are sent in
/// order, and answered (removed) or returned to the queue only while recovering.
#[derive(Default)]
pub struct PartitionQueue {
    pub batches: VecDeque<Batch>,
    /// How many of `batches` are in flight.
    pub in_flight: usize,
    /// Set when an answer asked for a retry: no batch is sent until none is in flight.
    pub recovering: bool,
}

impl PartitionQueue {
    pub fn position(&self, id: u64) -> Option<usize> {
        self.batches.iter().position(|batch| batch.id == id)
    }
}

/// The rules `drain` applies, from the producer's config.
#[derive(Debug, Clone, Copy)]
pub struct DrainRules {
    pub linger: Duration,
    pub batch_size_bytes: usize,
    pub delivery_timeout: Duration,
    pub max_in_flight: usize,
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
    /// Bumped whenever sequence numbering starts over under a new producer id.
    pub generation: u64,
    next_batch_id: u64,
}

/// What `drain` found.
pub struct Drained {
    /// Partitions with batches to send now, and how many: the first that many batches
    /// after those in flight.
    pub ready: Vec<(TopicPartition, usize)>,
    /// Batches that outlived `delivery.timeout.ms` without being in flight.
    pub expired: Vec<(TopicPartition, Batch)>,
    /// When to look again if nothing else happens.
    pub next_check: Option<Instant>,
    /// An expired batch had sequence numbers the broker never saw, so the batches after it
    /// would be refused for the gap: numbering was restarted and needs a new producer id.
    pub restarted: bool,
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
            self.next_batch_id += 1;
            queue.batches.push_back(Batch::new(self.next_batch_id, now));
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
    /// The batches after those in flight are ready, in order, while fewer than
    /// `max_in_flight` are in flight, the partition is not recovering, any retry backoff
    /// has passed, and each is full, followed by another batch, older than `linger`, already
    /// sealed, or the caller is flushing. Batches expire only from a partition with nothing
    /// in flight, so an expiry never leaves a batch in flight behind a hole.
    pub fn drain(&mut self, now: Instant, rules: DrainRules, flushing: bool) -> Drained {
        let mut drained = Drained {
            ready: Vec::new(),
            expired: Vec::new(),
            next_check: None,
            restarted: false,
        };
        let wake = |at: Instant, next: &mut Option<Instant>| {
            *next = Some(next.map_or(at, |n| n.min(at)));
        };
        for (tp, queue) in &mut self.queues {
            if queue.in_flight > 0 {
                if queue.recovering {
                    continue;
                }
            } else {
                queue.recovering = false;
                while let Some(front) = queue.batches.front() {
                    if now.duration_since(front.created_at) < rules.delivery_timeout {
                        break;
                    }
                    if let Some(batch) = queue.batches.pop_front() {
                        drained.expired.push((tp.clone(), batch));
                    }
                }
                if let Some(front) = queue.batches.front() {
                    wake(
                        front.created_at + rules.delivery_timeout,
                        &mut drained.next_check,
                    );
                }
            }
            let mut count = 0;
            for index in queue.in_flight..queue.batches.len() {
                if queue.in_flight + count >= rules.max_in_flight {
                    break;
                }
                let batch = &queue.batches[index];
                if let Some(retry_at) = batch.retry_at
                    && retry_at > now
                {
                    wake(retry_at, &mut drained.next_check);
                    break;
                }
                let full =
                    batch.size_bytes >= rules.batch_size_bytes || index + 1 < queue.batches.len();
                let lingered = now.duration_since(batch.created_at) >= rules.linger;
                if full || lingered || flushing || batch.sealed.is_some() {
                    count += 1;
                } else {
                    wake(batch.created_at + rules.linger, &mut drained.next_check);
                    break;
                }
            }
            if count > 0 {
                drained.ready.push((tp.clone(), count));
            }
        }
        self.queues
            .retain(|_, q| q.in_flight > 0 || !q.batches.is_empty());
        let generation = self.generation;
        let numbered = |batch: &Batch| {
            batch
                .sealed
                .as_ref()
                .is_some_and(|s| s.base_sequence >= 0 && s.generation == generation)
        };
        if drained.expired.iter().any(|(_, batch)| numbered(batch)) {
            self.restart_sequences();
            drained.restarted = true;
        }
        drained
    }

    /// Starts sequence numbering over (a new producer id is coming): unseals every batch
    /// not in flight, and makes partitions with batches in flight wait for all of them, so
    /// no batch of the new numbering can overtake one of the old.
    pub fn restart_sequences(&mut self) {
        self.generation += 1;
        self.next_sequences.clear();
        for queue in self.queues.values_mut() {
            if queue.in_flight > 0 {
                queue.recovering = true;
            }
            for batch in queue.batches.iter_mut().filter(|batch| !batch.in_flight) {
                batch.sealed = None;
            }
        }
    }

    /// Whether nothing is queued or in flight.
    pub fn is_empty(&self) -> bool {
        self.queues
            .values()
            .all(|q| q.in_flight == 0 && q.batches.is_empty())
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

    fn rules(max_in_flight: usize) -> DrainRules {
        DrainRules {
            linger: LINGER,
            batch_size_bytes: 1000,
            delivery_timeout: TIMEOUT,
            max_in_flight,
        }
    }

    fn ready(acc: &mut Accumulator, now: Instant, flushing: bool) -> Vec<(TopicPartition, usize)> {
        acc.drain(now, rules(5), flushing).ready
    }

    /// Marks the first `count` sendable batches in flight, as the sender does.
    fn send(acc: &mut Accumulator, count: usize) {
        let queue = acc.queues.get_mut(&tp()).unwrap();
        for _ in 0..count {
            let index = queue.in_flight;
            queue.batches[index].in_flight = true;
            queue.in_flight += 1;
        }
    }

    #[test]
    fn batch_waits_for_linger_unless_full_or_flushing() {
        let start = Instant::now();
        let mut acc = Accumulator::default();
        let (r, _rx) = record("a");
        assert!(!acc.append(tp(), r, 100, 1000, start));
        let drained = acc.drain(start, rules(5), false);
        assert!(drained.ready.is_empty());
        assert_eq!(drained.next_check, Some(start + LINGER));
        assert_eq!(ready(&mut acc, start, true), vec![(tp(), 1)]);
        assert_eq!(ready(&mut acc, start + LINGER, false), vec![(tp(), 1)]);
        let (r, _rx2) = record("b");
        assert!(
            acc.append(tp(), r, 950, 1000, start),
            "overflow opens a second batch"
        );
        assert_eq!(acc.queues[&tp()].batches.len(), 2);
        assert_eq!(
            ready(&mut acc, start, false),
            vec![(tp(), 1)],
            "the first batch is followed by another; the second still lingers"
        );
    }

    #[test]
    fn up_to_max_in_flight_batches_go_in_order() {
        let start = Instant::now();
        let mut acc = Accumulator::default();
        let mut receivers = Vec::new();
        for value in ["a", "b", "c", "d"] {
            let (r, rx) = record(value);
            receivers.push(rx);
            acc.append(tp(), r, 1000, 1000, start);
        }
        assert_eq!(acc.drain(start, rules(3), false).ready, vec![(tp(), 3)]);
        send(&mut acc, 2);
        assert_eq!(
            acc.drain(start, rules(3), false).ready,
            vec![(tp(), 1)],
            "two in flight leave room for one"
        );
        send(&mut acc, 1);
        assert!(acc.drain(start, rules(3), false).ready.is_empty());
        let ids: Vec<u64> = acc.queues[&tp()].batches.iter().map(|b| b.id).collect();
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(ids, sorted, "batch ids are unique and rise in queue order");
    }

    #[test]
    fn a_recovering_partition_waits_until_nothing_is_in_flight() {
        let start = Instant::now();
        let mut acc = Accumulator::default();
        let mut receivers = Vec::new();
        for value in ["a", "b", "c"] {
            let (r, rx) = record(value);
            receivers.push(rx);
            acc.append(tp(), r, 1000, 1000, start);
        }
        send(&mut acc, 3);
        // The first batch's answer asks for a retry: it leaves flight, the others are
        // still out.
        let queue = acc.queues.get_mut(&tp()).unwrap();
        queue.batches[0].in_flight = false;
        queue.in_flight -= 1;
        queue.recovering = true;
        assert!(ready(&mut acc, start, true).is_empty());
        let queue = acc.queues.get_mut(&tp()).unwrap();
        for batch in queue.batches.iter_mut() {
            batch.in_flight = false;
        }
        queue.in_flight = 0;
        assert_eq!(
            ready(&mut acc, start, false),
            vec![(tp(), 3)],
            "once all are back, all go again, oldest first"
        );
        assert!(!acc.queues[&tp()].recovering);
    }

    #[test]
    fn backoff_delays_a_retry_and_everything_behind_it() {
        let start = Instant::now();
        let mut acc = Accumulator::default();
        let (r, _rx) = record("a");
        acc.append(tp(), r, 2000, 1000, start);
        let (r, _rx2) = record("b");
        acc.append(tp(), r, 2000, 1000, start);
        let queue = acc.queues.get_mut(&tp()).unwrap();
        queue.batches[0].retry_at = Some(start + Duration::from_millis(100));
        let drained = acc.drain(start, rules(5), true);
        assert!(drained.ready.is_empty());
        assert_eq!(drained.next_check, Some(start + Duration::from_millis(100)));
        let later = start + Duration::from_millis(100);
        assert_eq!(ready(&mut acc, later, false), vec![(tp(), 2)]);
    }

    #[test]
    fn batches_past_delivery_timeout_expire_only_with_nothing_in_flight() {
        let start = Instant::now();
        let mut acc = Accumulator::default();
        let (r, _rx) = record("a");
        acc.append(tp(), r, 1000, 1000, start);
        let (r, _rx2) = record("b");
        acc.append(tp(), r, 10, 1000, start);
        send(&mut acc, 1);
        let drained = acc.drain(start + TIMEOUT, rules(5), false);
        assert!(drained.expired.is_empty());
        let queue = acc.queues.get_mut(&tp()).unwrap();
        queue.batches.pop_front();
        queue.in_flight = 0;
        let drained = acc.drain(start + TIMEOUT, rules(5), false);
        assert_eq!(drained.expired.len(), 1);
        assert!(acc.is_empty());
    }

    #[test]
    fn restarting_sequences_unseals_what_is_not_in_flight() {
        let start = Instant::now();
        let mut acc = Accumulator::default();
        for value in ["a", "b"] {
            let (r, _rx) = record(value);
            acc.append(tp(), r, 1000, 1000, start);
        }
        acc.next_sequences.insert(tp(), 7);
        let queue = acc.queues.get_mut(&tp()).unwrap();
        for (base_sequence, batch) in queue.batches.iter_mut().enumerate() {
            batch.sealed = Some(SealedBatch {
                bytes: Bytes::new(),
                base_sequence: base_sequence as i32,
                generation: 0,
            });
        }
        send(&mut acc, 1);
        acc.restart_sequences();
        assert_eq!(acc.generation, 1);
        assert!(acc.next_sequences.is_empty());
        let queue = &acc.queues[&tp()];
        assert!(queue.recovering);
        assert!(queue.batches[0].sealed.is_some(), "in flight: left alone");
        assert!(queue.batches[1].sealed.is_none());
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
