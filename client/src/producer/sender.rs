//! The producer's background task: seals ready batches, sends them to partition leaders,
//! and applies the answers (complete, retry after backoff, or fail).
//!
//! Idempotence: before its first batch the sender asks for a producer id
//! (InitProducerId). Each partition's batches get consecutive sequence numbers when first
//! sealed, and a retry resends the sealed bytes unchanged, so a broker that already
//! appended a batch (say it crashed before answering) recognises the retry as a duplicate
//! instead of appending it twice.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use spate_protocol::ErrorCode;
use spate_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use spate_protocol::messages::produce_response::PartitionProduceResponse;
use spate_protocol::messages::{InitProducerIdRequest, ProduceRequest, ProduceResponse};
use spate_protocol::records::BatchBuilder;
use tokio::sync::mpsc;

use super::accumulator::{Batch, SealedBatch, TopicPartition};
use super::{Acks, RecordMetadata, Shared};
use crate::error::{Error, error_code};

/// Kafka's `transaction.timeout.ms` default, which Java sends even when not transactional.
const TRANSACTION_TIMEOUT_MS: i32 = 60_000;
/// How long the sender sleeps when nothing at all is queued.
const IDLE_CHECK: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy)]
struct ProducerId {
    id: i64,
    epoch: i16,
}

struct Completion {
    partitions: Vec<TopicPartition>,
    result: Result<Option<ProduceResponse>, Error>,
}

pub(crate) async fn run(shared: Arc<Shared>) {
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Completion>();
    let mut producer_id: Option<ProducerId> = None;
    let idempotent = shared.config.enable_idempotence;
    loop {
        if idempotent && producer_id.is_none() && !shared.lock().accumulator.is_empty() {
            match init_producer_id(&shared).await {
                Ok(id) => producer_id = Some(id),
                Err(error) => {
                    tracing::warn!(%error, "InitProducerId failed; retrying");
                    fail_expired(&shared, Instant::now());
                    tokio::time::sleep(shared.config.client.retry_backoff).await;
                    continue;
                }
            }
        }
        let next_check = send_ready(&shared, producer_id, &done_tx);
        let stop = {
            let state = shared.lock();
            let empty = state.accumulator.is_empty();
            if empty {
                shared.idle.notify_waiters();
            }
            state.closed && empty
        };
        if stop {
            return;
        }
        let sleep_until = next_check.unwrap_or_else(|| Instant::now() + IDLE_CHECK);
        tokio::select! {
            _ = shared.wake.notified() => {}
            Some(completion) = done_rx.recv() => {
                if handle_completion(&shared, completion) {
                    producer_id = None;
                }
            }
            _ = tokio::time::sleep_until(sleep_until.into()) => {}
        }
    }
}

async fn init_producer_id(shared: &Shared) -> Result<ProducerId, Error> {
    let request = InitProducerIdRequest {
        transactional_id: None,
        transaction_timeout_ms: TRANSACTION_TIMEOUT_MS,
        producer_id: -1,
        producer_epoch: -1,
        ..Default::default()
    };
    let (broker, response) = shared.client.send_any_labeled(&request).await?;
    let code = error_code(response.error_code);
    if code != ErrorCode::None {
        return Err(Error::Broker {
            broker,
            what: "getting a producer id (InitProducerId)".into(),
            code,
            message: None,
        });
    }
    Ok(ProducerId {
        id: response.producer_id,
        epoch: response.producer_epoch,
    })
}

fn fail_expired(shared: &Shared, now: Instant) {
    let config = &shared.config;
    let drained = shared.lock().accumulator.drain(
        now,
        config.linger,
        config.batch_size_bytes,
        config.delivery_timeout,
        false,
    );
    expire(shared, drained.expired);
}

fn expire(shared: &Shared, expired: Vec<(TopicPartition, Batch)>) {
    for ((topic, partition), batch) in expired {
        let last_error = batch
            .last_error
            .as_ref()
            .map_or_else(|| "never sent".to_string(), ToString::to_string);
        let error = Error::DeliveryTimeout {
            topic,
            partition,
            timeout_ms: shared.config.delivery_timeout.as_millis() as u64,
            last_error,
        };
        let bytes = batch.complete(|_, _| Err(error.clone()));
        shared.release_memory(bytes);
    }
}

/// Seals and sends every ready batch; returns when to look again.
fn send_ready(
    shared: &Arc<Shared>,
    producer_id: Option<ProducerId>,
    done_tx: &mpsc::UnboundedSender<Completion>,
) -> Option<Instant> {
    let config = &shared.config;
    let metadata = shared.client.metadata();
    let mut by_leader: BTreeMap<i32, Vec<(TopicPartition, Bytes)>> = BTreeMap::new();
    let mut request_sizes: BTreeMap<i32, usize> = BTreeMap::new();
    let mut deferred = false;
    let mut unknown_leaders: Vec<String> = Vec::new();
    let mut failed: Vec<(TopicPartition, Batch, Error)> = Vec::new();
    let (expired, next_check) = {
        let mut state = shared.lock();
        let flushing = state.flushers > 0 || state.closed;
        let drained = state.accumulator.drain(
            Instant::now(),
            config.linger,
            config.batch_size_bytes,
            config.delivery_timeout,
            flushing,
        );
        let accumulator = &mut state.accumulator;
        for tp in drained.ready {
            let Some(leader) = metadata.leader(&tp.0, tp.1) else {
                unknown_leaders.push(tp.0.clone());
                continue;
            };
            let next_sequence = accumulator.next_sequences.get(&tp).copied().unwrap_or(0);
            let Some(queue) = accumulator.queues.get_mut(&tp) else {
                continue;
            };
            let Some(batch) = queue.batches.front_mut() else {
                continue;
            };
            if batch.sealed.is_none() {
                match seal(batch, config.compression, producer_id, next_sequence) {
                    Ok(sealed) => {
                        let next = advance_sequence(next_sequence, batch.records.len());
                        batch.sealed = Some(sealed);
                        accumulator.next_sequences.insert(tp.clone(), next);
                    }
                    Err(error) => {
                        if let Some(batch) = queue.batches.pop_front() {
                            failed.push((tp.clone(), batch, error));
                        }
                        continue;
                    }
                }
            }
            let Some(sealed) = &batch.sealed else {
                continue;
            };
            // Keep each Produce request within max.request.size, as Kafka's sender does; a
            // batch that does not fit goes in the next request, right after this one.
            let request_bytes = request_sizes.entry(leader).or_insert(0);
            if *request_bytes > 0
                && *request_bytes + sealed.bytes.len() > config.max_request_size_bytes
            {
                deferred = true;
                continue;
            }
            *request_bytes += sealed.bytes.len();
            batch.attempts += 1;
            queue.in_flight = true;
            tracing::trace!(topic = %tp.0, partition = tp.1, base_sequence = sealed.base_sequence, attempt = batch.attempts, "sending batch");
            by_leader
                .entry(leader)
                .or_default()
                .push((tp.clone(), sealed.bytes.clone()));
        }
        (drained.expired, drained.next_check)
    };
    expire(shared, expired);
    for ((topic, partition), batch, error) in failed {
        let error = Error::CorruptRecords {
            topic,
            partition,
            offset: -1,
            reason: error.to_string(),
        };
        let bytes = batch.complete(|_, _| Err(error.clone()));
        shared.release_memory(bytes);
    }
    if !unknown_leaders.is_empty() {
        spawn_refresh(shared, unknown_leaders);
    }
    for (leader, batches) in by_leader {
        spawn_produce(shared, leader, batches, done_tx.clone());
    }
    if deferred {
        return Some(Instant::now());
    }
    next_check
}

/// Builds the batch's wire bytes once; every retry resends exactly these.
fn seal(
    batch: &Batch,
    compression: spate_protocol::records::Compression,
    producer_id: Option<ProducerId>,
    base_sequence: i32,
) -> Result<SealedBatch, Error> {
    let mut builder = BatchBuilder::new().compression(compression);
    let base_sequence = match producer_id {
        Some(pid) => {
            builder = builder.producer(pid.id, pid.epoch, base_sequence);
            base_sequence
        }
        None => -1,
    };
    for pending in &batch.records {
        builder
            .push(&pending.record)
            .map_err(|e| Error::Config(format!("record cannot be batched: {e}")))?;
    }
    let bytes = builder
        .build()
        .map_err(|e| Error::Config(format!("batch cannot be built: {e}")))?;
    Ok(SealedBatch {
        bytes,
        base_sequence,
    })
}

/// Kafka's sequence numbers wrap from `i32::MAX` to 0.
fn advance_sequence(sequence: i32, records: usize) -> i32 {
    let next = (i64::from(sequence) + records as i64) % (i64::from(i32::MAX) + 1);
    next as i32
}

fn spawn_refresh(shared: &Arc<Shared>, mut topics: Vec<String>) {
    if shared.refreshing.swap(true, Ordering::AcqRel) {
        return;
    }
    topics.sort();
    topics.dedup();
    let client = shared.client.clone();
    let shared = shared.clone();
    tokio::spawn(async move {
        if let Err(error) = client.refresh_metadata(&topics, true).await {
            tracing::debug!(%error, "metadata refresh failed");
            tokio::time::sleep(client.config().retry_backoff).await;
        }
        shared.refreshing.store(false, Ordering::Release);
        shared.wake.notify_one();
    });
}

fn spawn_produce(
    shared: &Arc<Shared>,
    leader: i32,
    batches: Vec<(TopicPartition, Bytes)>,
    done_tx: mpsc::UnboundedSender<Completion>,
) {
    let config = &shared.config;
    let mut topics: BTreeMap<String, Vec<PartitionProduceData>> = BTreeMap::new();
    let mut partitions = Vec::with_capacity(batches.len());
    for ((topic, partition), bytes) in batches {
        topics
            .entry(topic.clone())
            .or_default()
            .push(PartitionProduceData {
                index: partition,
                records: Some(bytes),
                ..Default::default()
            });
        partitions.push((topic, partition));
    }
    let request = ProduceRequest {
        transactional_id: None,
        acks: config.acks.wire(),
        timeout_ms: config
            .client
            .request_timeout
            .as_millis()
            .min(i32::MAX as u128) as i32,
        topic_data: topics
            .into_iter()
            .map(|(name, partition_data)| TopicProduceData {
                name,
                partition_data,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    let client = shared.client.clone();
    let acks = config.acks;
    tokio::spawn(async move {
        let result = async {
            let connection = client.connection_to_node(leader).await?;
            if acks == Acks::None {
                connection
                    .send_without_response(&request)
                    .await
                    .map(|()| None)
            } else {
                connection.send(&request).await.map(Some)
            }
        }
        .await;
        let _ = done_tx.send(Completion { partitions, result });
    });
}

/// What happened to one partition's in-flight batch.
enum Outcome {
    Delivered {
        base_offset: i64,
        log_append_time_ms: i64,
    },
    Retry(Error),
    Failed(Error),
    /// The broker lost track of this producer's sequence; the batch fails and the
    /// producer starts over with a new producer id.
    SequenceReset(Error),
}

/// Applies a Produce answer; returns whether the producer id must be renewed.
fn handle_completion(shared: &Arc<Shared>, completion: Completion) -> bool {
    let mut refresh_topics = Vec::new();
    let mut reset = false;
    for tp in &completion.partitions {
        let outcome = outcome_for(tp, &completion.result);
        let (topic, partition) = tp;
        let mut state = shared.lock();
        let Some(queue) = state.accumulator.queues.get_mut(tp) else {
            continue;
        };
        queue.in_flight = false;
        let finished = match outcome {
            Outcome::Delivered {
                base_offset,
                log_append_time_ms,
            } => queue.batches.pop_front().map(|batch| {
                let topic = topic.clone();
                batch.complete(move |index, record| {
                    Ok(RecordMetadata {
                        topic: topic.clone(),
                        partition: *partition,
                        offset: if base_offset < 0 {
                            -1
                        } else {
                            base_offset + index as i64
                        },
                        timestamp_ms: if log_append_time_ms >= 0 {
                            log_append_time_ms
                        } else {
                            record.timestamp_ms
                        },
                    })
                })
            }),
            Outcome::Retry(error) => {
                if error.needs_metadata_refresh() {
                    refresh_topics.push(topic.clone());
                }
                tracing::debug!(%error, %topic, partition, "produce will be retried");
                if let Some(batch) = queue.batches.front_mut() {
                    batch.retry_at = Some(Instant::now() + shared.config.client.retry_backoff);
                    batch.last_error = Some(error);
                }
                None
            }
            Outcome::Failed(error) => queue
                .batches
                .pop_front()
                .map(|batch| batch.complete(|_, _| Err(error.clone()))),
            Outcome::SequenceReset(error) => {
                reset = true;
                queue
                    .batches
                    .pop_front()
                    .map(|batch| batch.complete(|_, _| Err(error.clone())))
            }
        };
        drop(state);
        if let Some(bytes) = finished {
            shared.release_memory(bytes);
        }
    }
    if reset {
        let mut state = shared.lock();
        state.accumulator.next_sequences.clear();
        for queue in state.accumulator.queues.values_mut() {
            for batch in queue.batches.iter_mut() {
                if !queue.in_flight {
                    batch.sealed = None;
                }
            }
        }
    }
    if !refresh_topics.is_empty() {
        spawn_refresh(shared, refresh_topics);
    }
    shared.wake.notify_one();
    reset
}

fn outcome_for(tp: &TopicPartition, result: &Result<Option<ProduceResponse>, Error>) -> Outcome {
    let (topic, partition) = tp;
    let response = match result {
        Err(error) if error.is_retriable() => return Outcome::Retry(error.clone()),
        Err(error) => return Outcome::Failed(error.clone()),
        Ok(None) => {
            return Outcome::Delivered {
                base_offset: -1,
                log_append_time_ms: -1,
            };
        }
        Ok(Some(response)) => response,
    };
    let found: Option<&PartitionProduceResponse> = response
        .responses
        .iter()
        .filter(|t| &t.name == topic)
        .flat_map(|t| t.partition_responses.iter())
        .find(|p| p.index == *partition);
    let Some(answer) = found else {
        return Outcome::Retry(Error::Protocol {
            broker: format!("leader of {topic}-{partition}"),
            reason: "Produce response left out this partition".into(),
        });
    };
    let code = error_code(answer.error_code);
    let error = Error::Partition {
        topic: topic.clone(),
        partition: *partition,
        code,
    };
    match code {
        ErrorCode::None | ErrorCode::DuplicateSequenceNumber => Outcome::Delivered {
            base_offset: answer.base_offset,
            log_append_time_ms: answer.log_append_time_ms,
        },
        ErrorCode::OutOfOrderSequenceNumber
        | ErrorCode::UnknownProducerId
        | ErrorCode::InvalidProducerEpoch => Outcome::SequenceReset(error),
        code if code.is_retriable() => Outcome::Retry(error),
        _ => Outcome::Failed(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_wrap_like_kafka() {
        assert_eq!(advance_sequence(0, 5), 5);
        assert_eq!(advance_sequence(i32::MAX - 1, 1), i32::MAX);
        assert_eq!(advance_sequence(i32::MAX, 1), 0);
        assert_eq!(advance_sequence(i32::MAX - 1, 3), 1);
    }
}
