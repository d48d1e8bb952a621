//! The producer's background task: seals ready batches, sends them to partition leaders,
//! and applies the answers (complete, retry after backoff, or fail).
//!
//! Idempotence: before its first batch the sender asks for a producer id
//! (InitProducerId). Each partition's batches get consecutive sequence numbers when first
//! sealed, and a retry resends the sealed bytes unchanged, so a broker that already
//! appended a batch (say it crashed before answering) recognises the retry as a duplicate
//! instead of appending it twice.
//!
//! Several batches of one partition may be in flight (`max.in.flight.requests.per.connection`).
//! Each leader has one *pipe* task that starts that leader's requests one after another on
//! its connection, so they reach the broker in the order they were sealed; answers are
//! awaited apart and matched to their batches by id. See `accumulator` for the retry rules.

use std::collections::{BTreeMap, BTreeSet, HashMap};
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

use super::accumulator::{Batch, DrainRules, SealedBatch, TopicPartition};
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
    /// The batches the request carried: partition and batch id.
    batches: Vec<(TopicPartition, u64)>,
    result: Result<Option<ProduceResponse>, Error>,
}

/// One Produce request for a pipe to start.
struct Outgoing {
    request: ProduceRequest,
    batches: Vec<(TopicPartition, u64)>,
}

/// Each leader's pipe, created on first use; they end when the sender does.
type Pipes = HashMap<i32, mpsc::UnboundedSender<Outgoing>>;

pub(crate) async fn run(shared: Arc<Shared>) {
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Completion>();
    let mut producer_id: Option<ProducerId> = None;
    let mut pipes = Pipes::new();
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
        let round = send_ready(&shared, producer_id, &mut pipes, &done_tx);
        if round.restarted {
            producer_id = None;
        }
        let next_check = round.next_check;
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

fn drain_rules(shared: &Shared) -> DrainRules {
    let config = &shared.config;
    DrainRules {
        linger: config.linger,
        batch_size_bytes: config.batch_size_bytes,
        delivery_timeout: config.delivery_timeout,
        max_in_flight: config.max_in_flight,
    }
}

fn fail_expired(shared: &Shared, now: Instant) {
    let drained = shared
        .lock()
        .accumulator
        .drain(now, drain_rules(shared), false);
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

/// What `send_ready` did that the loop must act on.
struct SendRound {
    next_check: Option<Instant>,
    /// Sequence numbering restarted: a new producer id is needed before the next seal.
    restarted: bool,
}

/// Seals and sends every ready batch; returns when to look again.
fn send_ready(
    shared: &Arc<Shared>,
    producer_id: Option<ProducerId>,
    pipes: &mut Pipes,
    done_tx: &mpsc::UnboundedSender<Completion>,
) -> SendRound {
    let config = &shared.config;
    let metadata = shared.client.metadata();
    let mut requests: BTreeMap<i32, Vec<PlannedRequest>> = BTreeMap::new();
    let mut unknown_leaders: Vec<String> = Vec::new();
    let mut failed: Vec<(TopicPartition, Batch, Error)> = Vec::new();
    let (expired, next_check, restarted) = {
        let mut state = shared.lock();
        let flushing = state.flushers > 0 || state.closed;
        let drained = state
            .accumulator
            .drain(Instant::now(), drain_rules(shared), flushing);
        // Sealing needs a producer id when idempotent; without one, wait for the loop to
        // fetch it (it does before calling here whenever anything is queued).
        let can_seal = producer_id.is_some() || !config.enable_idempotence;
        let accumulator = &mut state.accumulator;
        let generation = accumulator.generation;
        for (tp, count) in drained.ready {
            let Some(leader) = metadata.leader(&tp.0, tp.1) else {
                unknown_leaders.push(tp.0.clone());
                continue;
            };
            let leader_requests = requests.entry(leader).or_default();
            // This partition's next batch goes in a later request than its previous one.
            let mut earliest_request = 0;
            for _ in 0..count {
                let next_sequence = accumulator.next_sequences.get(&tp).copied().unwrap_or(0);
                let Some(queue) = accumulator.queues.get_mut(&tp) else {
                    break;
                };
                let index = queue.in_flight;
                let Some(batch) = queue.batches.get_mut(index) else {
                    break;
                };
                if batch.sealed.is_none() {
                    if !can_seal {
                        break;
                    }
                    match seal(
                        batch,
                        config.compression,
                        producer_id,
                        next_sequence,
                        generation,
                    ) {
                        Ok(sealed) => {
                            let next = advance_sequence(next_sequence, batch.records.len());
                            batch.sealed = Some(sealed);
                            accumulator.next_sequences.insert(tp.clone(), next);
                        }
                        Err(error) => {
                            // Nothing was numbered, so no gap: later batches are unaffected.
                            if let Some(batch) = queue.batches.remove(index) {
                                failed.push((tp.clone(), batch, error));
                            }
                            continue;
                        }
                    }
                }
                let Some(sealed) = &batch.sealed else {
                    break;
                };
                let bytes = sealed.bytes.clone();
                tracing::trace!(topic = %tp.0, partition = tp.1, base_sequence = sealed.base_sequence, attempt = batch.attempts + 1, "sending batch");
                batch.attempts += 1;
                batch.in_flight = true;
                let id = batch.id;
                queue.in_flight += 1;
                earliest_request = plan(
                    leader_requests,
                    earliest_request,
                    &tp,
                    id,
                    bytes,
                    config.max_request_size_bytes,
                ) + 1;
            }
        }
        (drained.expired, drained.next_check, drained.restarted)
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
    for (leader, planned) in requests {
        let pipe = pipes
            .entry(leader)
            .or_insert_with(|| spawn_pipe(shared, leader, done_tx.clone()));
        for request in planned {
            let outgoing = produce_request(config, request);
            if let Err(mpsc::error::SendError(outgoing)) = pipe.send(outgoing) {
                // The pipe task is gone (it only ends when the runtime shuts down); answer
                // for it so the batches are not stranded in flight.
                let _ = done_tx.send(Completion {
                    batches: outgoing.batches,
                    result: Err(Error::Closed("producer")),
                });
            }
        }
    }
    SendRound {
        next_check,
        restarted,
    }
}

/// Batches bound for one leader in one Produce request.
#[derive(Default)]
struct PlannedRequest {
    batches: Vec<(TopicPartition, u64, Bytes)>,
    partitions: BTreeSet<TopicPartition>,
    size_bytes: usize,
}

/// Puts a batch in the first request at or after `earliest` that does not already carry its
/// partition (Kafka takes one batch per partition per request) and stays within
/// `max.request.size`; returns that request's index.
fn plan(
    requests: &mut Vec<PlannedRequest>,
    earliest: usize,
    tp: &TopicPartition,
    id: u64,
    bytes: Bytes,
    max_request_size_bytes: usize,
) -> usize {
    let fits = |request: &PlannedRequest| {
        !request.partitions.contains(tp)
            && (request.size_bytes == 0
                || request.size_bytes + bytes.len() <= max_request_size_bytes)
    };
    let index = match requests.iter().skip(earliest).position(fits) {
        Some(offset) => earliest + offset,
        None => {
            requests.push(PlannedRequest::default());
            requests.len() - 1
        }
    };
    let request = &mut requests[index];
    request.size_bytes += bytes.len();
    request.partitions.insert(tp.clone());
    request.batches.push((tp.clone(), id, bytes));
    index
}

/// Builds the batch's wire bytes once; every retry resends exactly these.
fn seal(
    batch: &Batch,
    compression: spate_protocol::records::Compression,
    producer_id: Option<ProducerId>,
    base_sequence: i32,
    generation: u64,
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
        generation,
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

fn produce_request(config: &super::ProducerConfig, planned: PlannedRequest) -> Outgoing {
    let mut topics: BTreeMap<String, Vec<PartitionProduceData>> = BTreeMap::new();
    let mut batches = Vec::with_capacity(planned.batches.len());
    for ((topic, partition), id, bytes) in planned.batches {
        topics
            .entry(topic.clone())
            .or_default()
            .push(PartitionProduceData {
                index: partition,
                records: Some(bytes),
                ..Default::default()
            });
        batches.push(((topic, partition), id));
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
    Outgoing { request, batches }
}

/// Starts a leader's pipe: it writes that leader's requests in the order they come, each
/// after the previous one is queued on the connection, and awaits answers apart so several
/// can be in flight.
fn spawn_pipe(
    shared: &Arc<Shared>,
    leader: i32,
    done_tx: mpsc::UnboundedSender<Completion>,
) -> mpsc::UnboundedSender<Outgoing> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Outgoing>();
    let client = shared.client.clone();
    let acks = shared.config.acks;
    tokio::spawn(async move {
        while let Some(Outgoing { request, batches }) = rx.recv().await {
            let started = async {
                let connection = client.connection_to_node(leader).await?;
                if acks == Acks::None {
                    connection.send_without_response(&request).await?;
                    Ok(None)
                } else {
                    connection.start(&request).await.map(Some)
                }
            }
            .await;
            match started {
                Ok(Some(pending)) => {
                    let done_tx = done_tx.clone();
                    tokio::spawn(async move {
                        let result = pending.response().await.map(Some);
                        let _ = done_tx.send(Completion { batches, result });
                    });
                }
                Ok(None) => {
                    let _ = done_tx.send(Completion {
                        batches,
                        result: Ok(None),
                    });
                }
                Err(error) => {
                    let _ = done_tx.send(Completion {
                        batches,
                        result: Err(error),
                    });
                }
            }
        }
    });
    tx
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
    let mut restart = false;
    let mut released_bytes = 0;
    {
        let mut state = shared.lock();
        let accumulator = &mut state.accumulator;
        let generation = accumulator.generation;
        for (tp, id) in &completion.batches {
            let (topic, partition) = tp;
            let Some(queue) = accumulator.queues.get_mut(tp) else {
                continue;
            };
            let Some(index) = queue.position(*id) else {
                continue;
            };
            let batch = &mut queue.batches[index];
            if !batch.in_flight {
                continue;
            }
            batch.in_flight = false;
            queue.in_flight -= 1;
            let (numbered, stale) = batch.sealed.as_ref().map_or((false, false), |sealed| {
                (sealed.base_sequence >= 0, sealed.generation != generation)
            });
            let outcome = match outcome_for(tp, &completion.result) {
                // A refusal of the sequence is only the broker's word on *this* batch when
                // it is the oldest one unacknowledged and numbered under the current producer
                // id. Otherwise an earlier batch's failure or a renumbering caused it, and
                // the batch goes again behind the ones before it.
                Outcome::SequenceReset(error) if index > 0 || stale => Outcome::Retry(error),
                outcome => outcome,
            };
            let finished = match outcome {
                Outcome::Delivered {
                    base_offset,
                    log_append_time_ms,
                } => queue.batches.remove(index).map(|batch| {
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
                    batch.retry_at = Some(Instant::now() + shared.config.client.retry_backoff);
                    batch.last_error = Some(error);
                    if stale {
                        batch.sealed = None;
                    }
                    queue.recovering = true;
                    None
                }
                Outcome::Failed(error) => {
                    // A numbered batch that never reached the log leaves a gap the broker
                    // would refuse every later batch for: number afresh.
                    restart |= numbered && !stale;
                    queue
                        .batches
                        .remove(index)
                        .map(|batch| batch.complete(|_, _| Err(error.clone())))
                }
                Outcome::SequenceReset(error) => {
                    restart = true;
                    queue
                        .batches
                        .remove(index)
                        .map(|batch| batch.complete(|_, _| Err(error.clone())))
                }
            };
            released_bytes += finished.unwrap_or(0);
        }
        if restart {
            accumulator.restart_sequences();
        }
    }
    if released_bytes > 0 {
        shared.release_memory(released_bytes);
    }
    if !refresh_topics.is_empty() {
        spawn_refresh(shared, refresh_topics);
    }
    shared.wake.notify_one();
    restart
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
