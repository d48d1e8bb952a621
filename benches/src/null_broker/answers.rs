//! The null broker's answers, one function per API it serves.
//!
//! Produce counts records from batch headers only and stores nothing; Fetch copies one
//! pre-built batch with patched base offsets. Neither validates a CRC: the floor must stay
//! below any broker that does.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use spate_protocol::messages::api_versions_response::ApiVersion;
use spate_protocol::messages::create_topics_response::CreatableTopicResult;
use spate_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use spate_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use spate_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use spate_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use spate_protocol::messages::*;
use spate_protocol::records::{BatchBuilder, NewRecord, RecordBatchHeader};
use spate_protocol::{RequestBody, ResponseBody};
use tokio::sync::Notify;
use zerocopy::FromBytes;

use super::{NullConfig, SERVED_APIS};

/// A fetch response holds at most this much per partition, whatever the client allows, so
/// one response's copy stays bounded.
const FETCH_PARTITION_BYTES_MAX: usize = 8 * 1024 * 1024;
pub(super) struct Template {
    batch: Bytes,
    records_count: i64,
}

impl Template {
    pub(super) fn build(config: &NullConfig) -> io::Result<Template> {
        let record_size = config.record_size_bytes.max(1);
        let count = (config.batch_size_bytes / record_size).clamp(1, 100_000);
        let value = Bytes::from(vec![0x5a; record_size]);
        let mut builder = BatchBuilder::new();
        for _ in 0..count {
            let record = NewRecord {
                timestamp_ms: 0,
                key: None,
                value: Some(value.clone()),
                headers: Vec::new(),
            };
            builder.push(&record).map_err(io::Error::other)?;
        }
        let batch = builder.build().map_err(io::Error::other)?;
        Ok(Template {
            batch,
            records_count: count as i64,
        })
    }
}

#[derive(Default)]
pub(super) struct State {
    /// Partition count per created topic.
    topics: HashMap<String, i32>,
    /// Next offset per partition.
    high_watermarks: HashMap<(String, i32), i64>,
    next_producer_id: i64,
}

pub(super) struct Shared {
    pub(super) config: NullConfig,
    pub(super) template: Template,
    pub(super) state: Mutex<State>,
    pub(super) produced: Notify,
}

impl Shared {
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A null broker running on its own thread; stopped on drop.
pub(super) async fn respond(
    request: RequestBody,
    address: SocketAddr,
    shared: &Shared,
) -> Option<ResponseBody> {
    Some(match request {
        RequestBody::ApiVersions(_) => ResponseBody::ApiVersions(ApiVersionsResponse {
            api_keys: SERVED_APIS
                .iter()
                .map(|(key, versions)| ApiVersion {
                    api_key: key.id(),
                    min_version: *versions.start(),
                    max_version: *versions.end(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }),
        RequestBody::Metadata(request) => {
            ResponseBody::Metadata(metadata(request, address, shared))
        }
        RequestBody::CreateTopics(request) => {
            let mut state = shared.lock();
            let topics = request
                .topics
                .into_iter()
                .map(|topic| {
                    let partitions = if topic.num_partitions > 0 {
                        topic.num_partitions
                    } else {
                        shared.config.partitions as i32
                    };
                    state.topics.insert(topic.name.clone(), partitions);
                    CreatableTopicResult {
                        name: topic.name,
                        num_partitions: partitions,
                        replication_factor: 1,
                        ..Default::default()
                    }
                })
                .collect();
            ResponseBody::CreateTopics(CreateTopicsResponse {
                topics,
                ..Default::default()
            })
        }
        RequestBody::InitProducerId(_) => {
            let mut state = shared.lock();
            state.next_producer_id += 1;
            ResponseBody::InitProducerId(InitProducerIdResponse {
                producer_id: state.next_producer_id,
                producer_epoch: 0,
                ..Default::default()
            })
        }
        RequestBody::Produce(request) => {
            let response = produce(&request, shared);
            shared.produced.notify_waiters();
            if request.acks == 0 {
                return None;
            }
            ResponseBody::Produce(response)
        }
        RequestBody::ListOffsets(request) => {
            ResponseBody::ListOffsets(list_offsets(request, shared))
        }
        RequestBody::Fetch(request) => ResponseBody::Fetch(fetch(request, shared).await),
        _ => return None,
    })
}

fn metadata(request: MetadataRequest, address: SocketAddr, shared: &Shared) -> MetadataResponse {
    let mut state = shared.lock();
    let names: Vec<String> = match request.topics {
        Some(topics) => topics.into_iter().filter_map(|t| t.name).collect(),
        None => state.topics.keys().cloned().collect(),
    };
    let default_partitions = shared.config.partitions.max(1) as i32;
    let topics = names
        .into_iter()
        .map(|name| {
            let count = *state
                .topics
                .entry(name.clone())
                .or_insert(default_partitions);
            MetadataResponseTopic {
                name: Some(name),
                partitions: (0..count)
                    .map(|index| MetadataResponsePartition {
                        partition_index: index,
                        leader_id: 0,
                        leader_epoch: 0,
                        replica_nodes: vec![0],
                        isr_nodes: vec![0],
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }
        })
        .collect();
    MetadataResponse {
        brokers: vec![MetadataResponseBroker {
            node_id: 0,
            host: address.ip().to_string(),
            port: i32::from(address.port()),
            rack: None,
            ..Default::default()
        }],
        cluster_id: Some("null-broker".into()),
        controller_id: 0,
        topics,
        ..Default::default()
    }
}

/// Records in `records`, read from the batch headers only (no CRC pass: the floor does not
/// validate, so it stays below any broker that does).
fn records_in(records: &[u8]) -> i64 {
    let mut count = 0i64;
    let mut rest = records;
    while let Ok((header, _)) = RecordBatchHeader::ref_from_prefix(rest) {
        count += i64::from(header.last_offset_delta.get()) + 1;
        match header.total_size_bytes() {
            Some(size) if size > 0 && size <= rest.len() => rest = &rest[size..],
            _ => break,
        }
    }
    count
}

fn produce(request: &ProduceRequest, shared: &Shared) -> ProduceResponse {
    let mut state = shared.lock();
    let responses = request
        .topic_data
        .iter()
        .map(|topic| TopicProduceResponse {
            name: topic.name.clone(),
            partition_responses: topic
                .partition_data
                .iter()
                .map(|partition| {
                    let count = partition.records.as_deref().map_or(0, records_in);
                    let next = state
                        .high_watermarks
                        .entry((topic.name.clone(), partition.index))
                        .or_insert(0);
                    let base_offset = *next;
                    *next += count;
                    PartitionProduceResponse {
                        index: partition.index,
                        base_offset,
                        log_append_time_ms: -1,
                        ..Default::default()
                    }
                })
                .collect(),
            ..Default::default()
        })
        .collect();
    ProduceResponse {
        responses,
        ..Default::default()
    }
}

fn list_offsets(request: ListOffsetsRequest, shared: &Shared) -> ListOffsetsResponse {
    let state = shared.lock();
    let topics = request
        .topics
        .into_iter()
        .map(|topic| ListOffsetsTopicResponse {
            partitions: topic
                .partitions
                .iter()
                .map(|p| {
                    let end = state
                        .high_watermarks
                        .get(&(topic.name.clone(), p.partition_index))
                        .copied()
                        .unwrap_or(0);
                    ListOffsetsPartitionResponse {
                        partition_index: p.partition_index,
                        timestamp: -1,
                        // -1 is latest; earliest and any timestamp answer the log start.
                        offset: if p.timestamp == -1 { end } else { 0 },
                        leader_epoch: 0,
                        ..Default::default()
                    }
                })
                .collect(),
            name: topic.name,
            ..Default::default()
        })
        .collect();
    ListOffsetsResponse {
        topics,
        ..Default::default()
    }
}

async fn fetch(request: FetchRequest, shared: &Shared) -> FetchResponse {
    let max_wait = Duration::from_millis(u64::try_from(request.max_wait_ms).unwrap_or(0));
    let deadline = tokio::time::Instant::now() + max_wait;
    loop {
        let produced = shared.produced.notified();
        let response = fetch_once(&request, shared);
        let empty = response
            .responses
            .iter()
            .all(|t| t.partitions.iter().all(|p| p.records.is_none()));
        if !empty || tokio::time::Instant::now() >= deadline {
            return response;
        }
        if tokio::time::timeout_at(deadline, produced).await.is_err() {
            return fetch_once(&request, shared);
        }
    }
}

fn fetch_once(request: &FetchRequest, shared: &Shared) -> FetchResponse {
    let state = shared.lock();
    let template = &shared.template;
    let mut budget_bytes = usize::try_from(request.max_bytes).unwrap_or(0).max(1);
    let responses = request
        .topics
        .iter()
        .map(|topic| FetchableTopicResponse {
            topic: topic.topic.clone(),
            partitions: topic
                .partitions
                .iter()
                .map(|p| {
                    let end = state
                        .high_watermarks
                        .get(&(topic.topic.clone(), p.partition))
                        .copied()
                        .unwrap_or(0);
                    let limit_bytes = usize::try_from(p.partition_max_bytes)
                        .unwrap_or(0)
                        .min(FETCH_PARTITION_BYTES_MAX)
                        .min(budget_bytes);
                    let records = copies(template, p.fetch_offset, end, limit_bytes);
                    budget_bytes =
                        budget_bytes.saturating_sub(records.as_ref().map_or(0, Bytes::len));
                    PartitionData {
                        partition_index: p.partition,
                        high_watermark: end,
                        last_stable_offset: end,
                        log_start_offset: 0,
                        records,
                        ..Default::default()
                    }
                })
                .collect(),
            ..Default::default()
        })
        .collect();
    FetchResponse {
        responses,
        ..Default::default()
    }
}

/// Copies of the template batch from `offset` while below `end`; always at least one batch
/// when there is anything to read, as Kafka returns a whole first batch past any limit.
fn copies(template: &Template, offset: i64, end: i64, limit_bytes: usize) -> Option<Bytes> {
    if offset >= end || offset < 0 {
        return None;
    }
    let size = template.batch.len();
    let mut out = BytesMut::with_capacity(size.max(limit_bytes.min(size * 64)));
    let mut base = offset;
    while base < end && (out.is_empty() || out.len() + size <= limit_bytes) {
        let start = out.len();
        out.extend_from_slice(&template.batch);
        out[start..start + 8].copy_from_slice(&base.to_be_bytes());
        base += template.records_count;
    }
    Some(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> NullConfig {
        NullConfig {
            partitions: 1,
            record_size_bytes: 100,
            batch_size_bytes: 1000,
        }
    }

    #[test]
    fn fetch_copies_carry_consecutive_offsets_and_valid_crcs() {
        let template = Template::build(&config()).unwrap();
        assert_eq!(template.records_count, 10);
        let bytes = copies(&template, 5, 40, 1 << 20).unwrap();
        let mut offsets = Vec::new();
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let summary = spate_protocol::records::check_batch(rest).unwrap();
            offsets.push(summary.base_offset);
            rest = &rest[summary.size_bytes..];
        }
        assert_eq!(offsets, vec![5, 15, 25, 35]);
        assert_eq!(records_in(&bytes), 40);
    }

    #[test]
    fn fetch_past_the_end_is_empty_and_a_tight_limit_still_gives_one_batch() {
        let template = Template::build(&config()).unwrap();
        assert!(copies(&template, 40, 40, 1 << 20).is_none());
        let one = copies(&template, 0, 100, 1).unwrap();
        assert_eq!(one.len(), template.batch.len());
    }
}
