//! The consumer's background task: finds positions for partitions that have none, and keeps
//! one Fetch in flight per leader for partitions whose prefetch buffer is empty.
//!
//! Records are decoded here (decompressed within a bound) so `poll` only moves them out of
//! the buffer. The buffer is bounded by `fetch.max.bytes`: no partition is fetched while
//! the buffered total is at or above it, and a partition is fetched again only once the
//! user has drained it, which is when Kafka's consumer prefetches too.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use spate_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use spate_protocol::messages::fetch_response::PartitionData;
use spate_protocol::messages::{FetchRequest, FetchResponse};
use spate_protocol::records::header::BATCH_LOG_OVERHEAD_BYTES;
use spate_protocol::records::{BATCH_HEADER_SIZE_BYTES, BatchRecords};
use spate_protocol::{ErrorCode, Uuid};
use tokio::sync::mpsc;

use super::state::ConsumerRecord;
use super::{ConsumerConfig, OffsetReset, Shared};
use crate::error::{Error, code_needs_metadata_refresh, error_code};
use crate::metadata::ClusterMetadata;
use crate::offsets::{OffsetSpec, TopicPartition, list_offsets};

/// How often the fetcher looks again when nothing wakes it.
const IDLE_CHECK: Duration = Duration::from_millis(200);

struct FetchDone {
    leader: i32,
    /// Each partition with the epoch and offset it was fetched at.
    partitions: Vec<(TopicPartition, u64, i64)>,
    result: Result<FetchResponse, Error>,
    /// Topic names by id, for Fetch v13+ answers.
    names: HashMap<Uuid, String>,
}

pub(crate) async fn run(shared: Arc<Shared>) {
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<FetchDone>();
    let mut leaders_in_flight: BTreeSet<i32> = BTreeSet::new();
    let mut backoff_until: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if backoff_until.is_none_or(|until| until <= now) {
            backoff_until = None;
            if let Err(error) = find_positions(&shared).await {
                tracing::debug!(%error, "offset lookup failed; retrying");
                backoff_until = Some(Instant::now() + shared.config.client.retry_backoff);
            }
            if let Err(error) = send_fetches(&shared, &mut leaders_in_flight, &done_tx).await {
                tracing::debug!(%error, "fetch could not be sent; retrying");
                backoff_until = Some(Instant::now() + shared.config.client.retry_backoff);
            }
        }
        let wake_at = backoff_until.unwrap_or_else(|| Instant::now() + IDLE_CHECK);
        tokio::select! {
            _ = shared.fetcher_wake.notified() => {}
            Some(done) = done_rx.recv() => {
                leaders_in_flight.remove(&done.leader);
                if !handle_fetch(&shared, done).await {
                    backoff_until = Some(Instant::now() + shared.config.client.retry_backoff);
                }
            }
            _ = tokio::time::sleep_until(wake_at.into()) => {}
        }
    }
}

/// Looks up positions for partitions without one: the seek's target, or `auto.offset.reset`.
async fn find_positions(shared: &Shared) -> Result<(), Error> {
    let lookups: Vec<(TopicPartition, OffsetSpec, u64)> = {
        let state = shared.lock();
        let mut lookups = Vec::new();
        for (tp, partition) in &state.partitions {
            if partition.position.is_some() {
                continue;
            }
            let spec = match (partition.reset_to, shared.config.auto_offset_reset) {
                (Some(spec), _) => spec,
                (None, OffsetReset::Earliest) => OffsetSpec::Earliest,
                (None, OffsetReset::Latest) => OffsetSpec::Latest,
                // `poll` reports it: the application may still seek before polling.
                (None, OffsetReset::None) => continue,
            };
            lookups.push((tp.clone(), spec, partition.epoch));
        }
        lookups
    };
    if lookups.is_empty() {
        return Ok(());
    }
    let request: Vec<(TopicPartition, OffsetSpec)> = lookups
        .iter()
        .map(|(tp, spec, _)| (tp.clone(), *spec))
        .collect();
    let mut answers = list_offsets(&shared.client, &request).await?;
    // A timestamp after the last record has no offset: the position is then the end.
    let past_end: Vec<(TopicPartition, OffsetSpec)> = answers
        .iter()
        .filter(|(_, answer)| matches!(answer, Ok(listed) if listed.offset < 0))
        .map(|(tp, _)| (tp.clone(), OffsetSpec::Latest))
        .collect();
    if !past_end.is_empty() {
        answers.extend(list_offsets(&shared.client, &past_end).await?);
    }
    let mut first_error = None;
    let mut state = shared.lock();
    for (tp, _, epoch) in lookups {
        match answers.remove(&tp) {
            Some(Ok(listed)) if listed.offset >= 0 => {
                state.set_looked_up_position(&tp, epoch, listed.offset)
            }
            Some(Err(error)) => {
                if !error.is_retriable() {
                    state.error.get_or_insert(error.clone());
                    shared.records_ready.notify_waiters();
                }
                first_error.get_or_insert(error);
            }
            _ => {}
        }
    }
    match first_error {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

async fn send_fetches(
    shared: &Arc<Shared>,
    leaders_in_flight: &mut BTreeSet<i32>,
    done_tx: &mpsc::UnboundedSender<FetchDone>,
) -> Result<(), Error> {
    let config = &shared.config;
    let mut metadata = shared.client.metadata();
    let wanted: Vec<String> = {
        let state = shared.lock();
        let mut topics: Vec<String> = state.partitions.keys().map(|(t, _)| t.clone()).collect();
        topics.dedup();
        topics
    };
    let stale = wanted.iter().any(|t| {
        metadata
            .topic_refreshed_at
            .get(t)
            .is_none_or(|at| at.elapsed() >= config.client.metadata_max_age)
    });
    if stale {
        metadata = shared.client.refresh_metadata(&wanted, false).await?;
    }
    let mut plan: BTreeMap<i32, Vec<(TopicPartition, u64, i64)>> = BTreeMap::new();
    let mut leaderless = false;
    {
        let mut state = shared.lock();
        if state.buffered_bytes >= config.fetch_max_bytes {
            return Ok(());
        }
        for (tp, partition) in state.partitions.iter_mut() {
            let Some(fetch_offset) = partition.fetch_offset else {
                continue;
            };
            if partition.paused || partition.in_flight || !partition.buffered.is_empty() {
                continue;
            }
            let Some(leader) = metadata.leader(&tp.0, tp.1) else {
                leaderless = true;
                continue;
            };
            if leaders_in_flight.contains(&leader) {
                continue;
            }
            plan.entry(leader)
                .or_default()
                .push((tp.clone(), partition.epoch, fetch_offset));
        }
        for entries in plan.values() {
            for (tp, _, _) in entries {
                if let Some(partition) = state.partitions.get_mut(tp) {
                    partition.in_flight = true;
                }
            }
        }
    }
    for (leader, partitions) in plan {
        leaders_in_flight.insert(leader);
        let client = shared.client.clone();
        let done_tx = done_tx.clone();
        let config = config.clone();
        let metadata = metadata.clone();
        tokio::spawn(async move {
            let mut names = HashMap::new();
            let result = async {
                let connection = client.connection_to_node(leader).await?;
                let version = connection.version_of::<FetchRequest>()?;
                let (request, topic_names) =
                    fetch_request(&config, version, &partitions, &metadata);
                names = topic_names;
                connection.send(&request).await
            }
            .await;
            let _ = done_tx.send(FetchDone {
                leader,
                partitions,
                result,
                names,
            });
        });
    }
    if leaderless {
        shared.client.refresh_metadata(&wanted, false).await?;
    }
    Ok(())
}

/// The Fetch for `partitions` at `version`: topics by name up to v12, by id from v13.
/// Also returns the ids' names, to read a by-id answer.
fn fetch_request(
    config: &ConsumerConfig,
    version: i16,
    partitions: &[(TopicPartition, u64, i64)],
    metadata: &ClusterMetadata,
) -> (FetchRequest, HashMap<Uuid, String>) {
    let by_id = version >= 13;
    let mut names = HashMap::new();
    let mut topics: BTreeMap<String, Vec<FetchPartition>> = BTreeMap::new();
    for ((topic, partition), _, offset) in partitions {
        topics
            .entry(topic.clone())
            .or_default()
            .push(FetchPartition {
                partition: *partition,
                current_leader_epoch: -1,
                fetch_offset: *offset,
                last_fetched_epoch: -1,
                log_start_offset: -1,
                partition_max_bytes: clamp_i32(config.max_partition_fetch_bytes),
                ..Default::default()
            });
    }
    let mut fetch_topics = Vec::new();
    for (topic, fetch_partitions) in topics {
        let topic_id = metadata
            .topics
            .get(&topic)
            .map_or(Uuid::ZERO, |t| t.topic_id);
        names.insert(topic_id, topic.clone());
        fetch_topics.push(FetchTopic {
            topic: if by_id { String::new() } else { topic },
            topic_id: if by_id { topic_id } else { Uuid::ZERO },
            partitions: fetch_partitions,
            ..Default::default()
        });
    }
    let request = FetchRequest {
        replica_id: -1,
        max_wait_ms: clamp_i32(config.fetch_max_wait.as_millis() as usize),
        min_bytes: clamp_i32(config.fetch_min_bytes),
        max_bytes: clamp_i32(config.fetch_max_bytes),
        isolation_level: 0,
        session_id: 0,
        session_epoch: -1,
        topics: fetch_topics,
        ..Default::default()
    };
    (request, names)
}

fn clamp_i32(value: usize) -> i32 {
    value.min(i32::MAX as usize) as i32
}

/// Applies one Fetch answer; returns false when the fetcher should back off.
async fn handle_fetch(shared: &Arc<Shared>, done: FetchDone) -> bool {
    let top_level = done.result.as_ref().ok().map(|r| error_code(r.error_code));
    let result = match (done.result, top_level) {
        (Ok(response), Some(ErrorCode::None)) => Ok(response),
        (Ok(_), Some(code)) => Err(Error::Broker {
            broker: shared.client.metadata().broker_label(done.leader),
            what: "Fetch".into(),
            code,
            message: None,
        }),
        (other, _) => other,
    };
    let response = match result {
        Ok(response) => response,
        Err(error) if !error.is_retriable() && !error.needs_metadata_refresh() => {
            let mut state = shared.lock();
            for (tp, _, _) in &done.partitions {
                if let Some(partition) = state.partitions.get_mut(tp) {
                    partition.in_flight = false;
                }
            }
            state.error.get_or_insert(error);
            shared.records_ready.notify_waiters();
            return false;
        }
        Err(error) => {
            tracing::debug!(%error, leader = done.leader, "fetch failed; will retry");
            {
                let mut state = shared.lock();
                for (tp, _, _) in &done.partitions {
                    if let Some(partition) = state.partitions.get_mut(tp) {
                        partition.in_flight = false;
                    }
                }
            }
            if error.needs_metadata_refresh() {
                let _ = shared.client.refresh_metadata(&[], false).await;
            }
            return false;
        }
    };
    let mut healthy = true;
    let mut reset_to = Vec::new();
    let mut any_records = false;
    {
        let mut state = shared.lock();
        for (tp, epoch, fetched_from) in &done.partitions {
            if let Some(partition) = state.partitions.get_mut(tp) {
                partition.in_flight = false;
            }
            let answer = response.responses.iter().filter(|t| {
                t.topic == tp.0
                    || done
                        .names
                        .get(&t.topic_id)
                        .is_some_and(|name| *name == tp.0)
            });
            let Some(data) = answer
                .flat_map(|t| t.partitions.iter())
                .find(|p| p.partition_index == tp.1)
            else {
                continue;
            };
            match error_code(data.error_code) {
                ErrorCode::None => match decode_records(
                    tp,
                    data,
                    *fetched_from,
                    shared.config.max_decompressed_bytes,
                ) {
                    Ok((records, next)) => {
                        any_records |= !records.is_empty();
                        state.accept_fetched(
                            tp,
                            *epoch,
                            *fetched_from,
                            records,
                            next,
                            data.high_watermark,
                        );
                    }
                    Err(error) => {
                        state.error.get_or_insert(error);
                    }
                },
                ErrorCode::OffsetOutOfRange => match shared.config.auto_offset_reset {
                    OffsetReset::None => {
                        state.error.get_or_insert(Error::OffsetOutOfRange {
                            topic: tp.0.clone(),
                            partition: tp.1,
                            offset: *fetched_from,
                        });
                    }
                    policy => reset_to.push((tp.clone(), *epoch, policy)),
                },
                code if code_needs_metadata_refresh(code) || code.is_retriable() => healthy = false,
                code => {
                    state.error.get_or_insert(Error::Partition {
                        topic: tp.0.clone(),
                        partition: tp.1,
                        code,
                    });
                }
            }
        }
        for (tp, epoch, policy) in reset_to {
            let Some(partition) = state.partitions.get_mut(&tp) else {
                continue;
            };
            if partition.epoch == epoch {
                tracing::info!(topic = %tp.0, partition = tp.1, ?policy, "offset out of range; resetting");
                partition.position = None;
                partition.fetch_offset = None;
                partition.reset_to = None;
                partition.epoch += 1;
            }
        }
        if any_records || state.error.is_some() {
            shared.records_ready.notify_waiters();
        }
    }
    if !healthy {
        let topics: Vec<String> = done
            .partitions
            .iter()
            .map(|((t, _), _, _)| t.clone())
            .collect();
        let _ = shared.client.refresh_metadata(&topics, false).await;
    }
    healthy
}

/// The records of a fetched partition at or after `fetched_from`, and the next offset to
/// fetch. A trailing partial batch (cut by the broker at the byte limit) is left for the
/// next fetch; control batches (transaction markers) are skipped.
fn decode_records(
    tp: &TopicPartition,
    data: &PartitionData,
    fetched_from: i64,
    max_decompressed_bytes: usize,
) -> Result<(Vec<ConsumerRecord>, i64), Error> {
    let corrupt = |offset: i64, reason: String| Error::CorruptRecords {
        topic: tp.0.clone(),
        partition: tp.1,
        offset,
        reason,
    };
    let bytes: Bytes = data.records.clone().unwrap_or_default();
    let mut records = Vec::new();
    let mut next_offset = fetched_from;
    let mut position = 0;
    while position < bytes.len() {
        let rest = bytes.slice(position..);
        let Some(frame) = peek_batch(&rest).map_err(|reason| corrupt(next_offset, reason))? else {
            break; // a partial batch at the end
        };
        position += frame.size_bytes;
        let batch_next = frame.base_offset + i64::from(frame.last_offset_delta) + 1;
        if frame.is_control || batch_next <= fetched_from {
            next_offset = next_offset.max(batch_next);
            continue;
        }
        let batch = BatchRecords::with_limit(rest, max_decompressed_bytes)
            .map_err(|e| corrupt(frame.base_offset, e.to_string()))?;
        for record in batch {
            let record = record.map_err(|e| corrupt(frame.base_offset, e.to_string()))?;
            if record.offset < fetched_from {
                continue;
            }
            records.push(ConsumerRecord {
                topic: tp.0.clone(),
                partition: tp.1,
                offset: record.offset,
                timestamp_ms: record.timestamp_ms,
                key: record.key,
                value: record.value,
                headers: record.headers,
            });
        }
        next_offset = next_offset.max(batch_next);
    }
    Ok((records, next_offset))
}

/// The fields of a batch header the fetcher needs before decoding the records.
struct BatchFrame {
    base_offset: i64,
    size_bytes: usize,
    last_offset_delta: i32,
    is_control: bool,
}

/// The control flag in a batch's attributes.
const CONTROL_FLAG: i16 = 0x20;

/// Reads a batch header's framing fields; `Ok(None)` when the batch is cut short (the
/// broker may end a fetch mid-batch), `Err` when the length cannot be right.
fn peek_batch(bytes: &[u8]) -> Result<Option<BatchFrame>, String> {
    let (Some(base), Some(length), Some(attributes), Some(delta)) = (
        bytes.get(0..8),
        bytes.get(8..12),
        bytes.get(21..23),
        bytes.get(23..27),
    ) else {
        return Ok(None);
    };
    let read_i32 = |b: &[u8]| i32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    let batch_length = read_i32(length);
    let min_length = (BATCH_HEADER_SIZE_BYTES - BATCH_LOG_OVERHEAD_BYTES) as i32;
    if batch_length < min_length {
        return Err(format!(
            "batch length {batch_length} is below the v2 header size"
        ));
    }
    let size_bytes = batch_length as usize + BATCH_LOG_OVERHEAD_BYTES;
    if size_bytes > bytes.len() {
        return Ok(None);
    }
    let mut base_offset = [0u8; 8];
    base_offset.copy_from_slice(base);
    Ok(Some(BatchFrame {
        base_offset: i64::from_be_bytes(base_offset),
        size_bytes,
        last_offset_delta: read_i32(delta),
        is_control: i16::from_be_bytes([attributes[0], attributes[1]]) & CONTROL_FLAG != 0,
    }))
}

#[cfg(test)]
mod tests {
    use spate_protocol::Encode;

    use super::*;
    use crate::connection::Request;

    #[test]
    fn fetch_request_encodes_at_every_client_version() {
        let mut metadata = ClusterMetadata::default();
        metadata.topics.insert(
            "t".into(),
            std::sync::Arc::new(crate::metadata::TopicInfo {
                name: "t".into(),
                topic_id: Uuid::from_u64_pair(1, 2),
                is_internal: false,
                partitions: Vec::new(),
                leaderless_partitions: 0,
                error: ErrorCode::None,
            }),
        );
        let partitions = vec![(("t".to_string(), 0), 0, 42)];
        for version in FetchRequest::CLIENT_VERSIONS {
            let (request, names) =
                fetch_request(&ConsumerConfig::default(), version, &partitions, &metadata);
            assert!(request.encoded_len(version).is_ok(), "v{version}");
            assert_eq!(names[&Uuid::from_u64_pair(1, 2)], "t");
            assert_eq!(request.topics[0].topic.is_empty(), version >= 13);
        }
    }

    #[test]
    fn a_partial_trailing_batch_is_left_for_the_next_fetch() {
        use spate_protocol::records::{BatchBuilder, NewRecord};
        let mut builder = BatchBuilder::new().base_offset(10);
        for index in 0..3 {
            builder
                .push(&NewRecord {
                    value: Some(Bytes::from(format!("v{index}"))),
                    ..Default::default()
                })
                .unwrap();
        }
        let batch = builder.build().unwrap();
        let mut both = batch.to_vec();
        both.extend_from_slice(&batch[..30]);
        let data = PartitionData {
            records: Some(Bytes::from(both)),
            ..Default::default()
        };
        let tp = ("t".to_string(), 0);
        let (records, next) = decode_records(&tp, &data, 11, 1 << 20).unwrap();
        assert_eq!(
            records.iter().map(|r| r.offset).collect::<Vec<_>>(),
            vec![11, 12],
            "skips below the fetch offset"
        );
        assert_eq!(next, 13);
        let mut corrupt = batch.to_vec();
        let last = corrupt.len() - 1;
        corrupt[last] ^= 0xff;
        let data = PartitionData {
            records: Some(Bytes::from(corrupt)),
            ..Default::default()
        };
        let error = decode_records(&tp, &data, 10, 1 << 20).unwrap_err();
        assert!(error.to_string().contains("t-0"), "{error}");
    }
}
