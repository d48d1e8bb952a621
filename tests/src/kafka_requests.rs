//! The handful of Kafka requests the hostile-input tests send and read back by hand:
//! ApiVersions v0, Metadata v4 and Produce v7 (all non-flexible), plus the "does the broker
//! still serve a fresh client" check that ends every hostile test.

use std::net::SocketAddr;

use crate::HarnessError;
use crate::group_requests::FetchedOffset;
use crate::wire::{Decoder, Encoder, KafkaConnection, api_key};

/// One entry of an ApiVersions answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiVersionRange {
    pub api_key: i16,
    pub min_version: i16,
    pub max_version: i16,
}

/// An ApiVersions answer in the v0 layout (the one Kafka also uses for UNSUPPORTED_VERSION).
#[derive(Debug, Clone)]
pub struct ApiVersionsReply {
    pub error_code: i16,
    pub ranges: Vec<ApiVersionRange>,
}

impl ApiVersionsReply {
    /// The advertised range for `key`, if any.
    pub fn range(&self, key: i16) -> Option<ApiVersionRange> {
        self.ranges.iter().copied().find(|r| r.api_key == key)
    }
}

/// Decodes an ApiVersions response body (after the correlation id) in the v0 layout.
pub fn decode_api_versions_v0(body: &[u8]) -> Result<ApiVersionsReply, HarnessError> {
    let mut decoder = Decoder::new(body);
    let error_code = decoder.i16()?;
    let count = decoder.array_len(6)?;
    let mut ranges = Vec::with_capacity(count);
    for _ in 0..count {
        ranges.push(ApiVersionRange {
            api_key: decoder.i16()?,
            min_version: decoder.i16()?,
            max_version: decoder.i16()?,
        });
    }
    Ok(ApiVersionsReply { error_code, ranges })
}

/// ApiVersions v0 (empty body) on `connection`.
pub fn api_versions_v0(connection: &mut KafkaConnection) -> Result<ApiVersionsReply, HarnessError> {
    let body = connection.round_trip(api_key::API_VERSIONS, 0, &[])?;
    decode_api_versions_v0(&body)
}

/// A broker as Metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataBroker {
    pub node_id: i32,
    pub host: String,
    pub port: i32,
}

/// A topic as Metadata describes it.
#[derive(Debug, Clone)]
pub struct MetadataTopic {
    pub error_code: i16,
    pub name: String,
    pub partition_count: usize,
}

/// A Metadata v4 answer, minus the per-partition replica lists.
#[derive(Debug, Clone)]
pub struct MetadataReply {
    pub brokers: Vec<MetadataBroker>,
    pub topics: Vec<MetadataTopic>,
}

/// Metadata v4: `topics = None` asks for all topics.
pub fn metadata_v4(
    connection: &mut KafkaConnection,
    topics: Option<&[&str]>,
    allow_auto_topic_creation: bool,
) -> Result<MetadataReply, HarnessError> {
    let mut request = Encoder::default();
    match topics {
        None => {
            request.i32(-1);
        }
        Some(names) => {
            request.array_len(names.len());
            for name in names {
                request.string(name);
            }
        }
    }
    request.i8(i8::from(allow_auto_topic_creation));
    let body = connection.round_trip(api_key::METADATA, 4, &request.bytes)?;
    decode_metadata_v4(&body)
}

fn decode_metadata_v4(body: &[u8]) -> Result<MetadataReply, HarnessError> {
    let mut decoder = Decoder::new(body);
    let _throttle_time_ms = decoder.i32()?;
    let broker_count = decoder.array_len(12)?;
    let mut brokers = Vec::with_capacity(broker_count);
    for _ in 0..broker_count {
        let node_id = decoder.i32()?;
        let host = decoder.string()?;
        let port = decoder.i32()?;
        let _rack = decoder.nullable_string()?;
        brokers.push(MetadataBroker {
            node_id,
            host,
            port,
        });
    }
    let _cluster_id = decoder.nullable_string()?;
    let _controller_id = decoder.i32()?;
    let topic_count = decoder.array_len(9)?;
    let mut topics = Vec::with_capacity(topic_count);
    for _ in 0..topic_count {
        let error_code = decoder.i16()?;
        let name = decoder.string()?;
        let _is_internal = decoder.i8()?;
        let partition_count = decoder.array_len(18)?;
        for _ in 0..partition_count {
            let _error_code = decoder.i16()?;
            let _partition_index = decoder.i32()?;
            let _leader_id = decoder.i32()?;
            for _replica_list in 0..2 {
                let node_count = decoder.array_len(4)?;
                decoder.take(node_count * 4)?;
            }
        }
        topics.push(MetadataTopic {
            error_code,
            name,
            partition_count,
        });
    }
    Ok(MetadataReply { brokers, topics })
}

/// The first partition's result of a Produce answer.
#[derive(Debug, Clone, Copy)]
pub struct ProducePartitionReply {
    pub error_code: i16,
    pub base_offset: i64,
}

/// Produce v7 of one batch (raw RecordBatch bytes) to one partition; returns that partition's
/// result. Not for `acks = 0`, which gets no answer: send [`produce_v7_body`] instead.
pub fn produce_v7(
    connection: &mut KafkaConnection,
    topic: &str,
    partition: i32,
    batch: &[u8],
    acks: i16,
) -> Result<ProducePartitionReply, HarnessError> {
    let request = produce_v7_body(topic, partition, batch, acks);
    let body = connection.round_trip(api_key::PRODUCE, 7, &request)?;
    decode_produce_v7(&body)
}

/// The body of a Produce v7 request carrying one batch for one partition.
pub fn produce_v7_body(topic: &str, partition: i32, batch: &[u8], acks: i16) -> Vec<u8> {
    let mut request = Encoder::default();
    request
        .null_string() // transactional_id
        .i16(acks)
        .i32(10_000) // timeout_ms
        .array_len(1)
        .string(topic)
        .array_len(1)
        .i32(partition)
        .bytes_i32(batch);
    request.bytes
}

/// Decodes a Produce v7 response body (after the correlation id): the first partition's result.
pub fn decode_produce_v7(body: &[u8]) -> Result<ProducePartitionReply, HarnessError> {
    let mut decoder = Decoder::new(body);
    let topic_count = decoder.array_len(6)?;
    if topic_count == 0 {
        return Err(HarnessError::MalformedResponse(
            "produce answer names no topic".into(),
        ));
    }
    let _name = decoder.string()?;
    let partition_count = decoder.array_len(14)?;
    if partition_count == 0 {
        return Err(HarnessError::MalformedResponse(
            "produce answer names no partition".into(),
        ));
    }
    let _index = decoder.i32()?;
    let error_code = decoder.i16()?;
    let base_offset = decoder.i64()?;
    Ok(ProducePartitionReply {
        error_code,
        base_offset,
    })
}

/// CreateTopics v4 of one topic with `configs` and one replica per partition; returns the
/// topic's error code.
pub fn create_topic_v4(
    connection: &mut KafkaConnection,
    name: &str,
    partition_count: i32,
    configs: &[(&str, &str)],
) -> Result<i16, HarnessError> {
    create_replicated_topic_v4(connection, name, partition_count, 1, configs, 10_000)
}

/// CreateTopics v4 of one topic with `replication_factor` replicas per partition (-1: the
/// broker's default), waiting up to `timeout_ms` for the controller (keep it below the
/// connection's read timeout); returns the topic's error code.
pub fn create_replicated_topic_v4(
    connection: &mut KafkaConnection,
    name: &str,
    partition_count: i32,
    replication_factor: i16,
    configs: &[(&str, &str)],
    timeout_ms: i32,
) -> Result<i16, HarnessError> {
    let mut request = Encoder::default();
    request
        .array_len(1)
        .string(name)
        .i32(partition_count)
        .i16(replication_factor)
        .array_len(0); // assignments
    request.array_len(configs.len());
    for (key, value) in configs {
        request.string(key).string(value);
    }
    request.i32(timeout_ms).i8(0); // timeout_ms, validate_only
    let body = connection.round_trip(api_key::CREATE_TOPICS, 4, &request.bytes)?;
    let mut decoder = Decoder::new(&body);
    let _throttle_time_ms = decoder.i32()?;
    if decoder.array_len(4)? == 0 {
        return Err(HarnessError::MalformedResponse(
            "CreateTopics answer names no topic".into(),
        ));
    }
    let _name = decoder.string()?;
    decoder.i16()
}

/// The producer id and epoch InitProducerId hands an idempotent producer.
#[derive(Debug, Clone, Copy)]
pub struct InitProducerIdReply {
    pub error_code: i16,
    pub producer_id: i64,
    pub producer_epoch: i16,
}

/// InitProducerId v1 without a transactional id: what an idempotent producer sends first.
pub fn init_producer_id_v1(
    connection: &mut KafkaConnection,
) -> Result<InitProducerIdReply, HarnessError> {
    let mut request = Encoder::default();
    request.null_string().i32(60_000); // transactional_id, transaction_timeout_ms
    let body = connection.round_trip(api_key::INIT_PRODUCER_ID, 1, &request.bytes)?;
    let mut decoder = Decoder::new(&body);
    let _throttle_time_ms = decoder.i32()?;
    Ok(InitProducerIdReply {
        error_code: decoder.i16()?,
        producer_id: decoder.i64()?,
        producer_epoch: decoder.i16()?,
    })
}

/// Proves the broker still serves a new client: a fresh connection gets a correct ApiVersions
/// v0 answer (advertising Produce, Fetch, Metadata and ApiVersions) and a Metadata v4 answer
/// naming the broker itself. Returns a readable reason when it does not.
pub fn check_broker_serves(addr: SocketAddr) -> Result<(), String> {
    let mut connection = KafkaConnection::connect(addr).map_err(|e| e.to_string())?;
    let versions = api_versions_v0(&mut connection).map_err(|e| format!("ApiVersions: {e}"))?;
    if versions.error_code != 0 {
        return Err(format!("ApiVersions error code {}", versions.error_code));
    }
    for key in [
        api_key::PRODUCE,
        api_key::FETCH,
        api_key::METADATA,
        api_key::API_VERSIONS,
    ] {
        if versions.range(key).is_none() {
            return Err(format!("ApiVersions does not advertise api key {key}"));
        }
    }
    let metadata =
        metadata_v4(&mut connection, None, false).map_err(|e| format!("Metadata v4: {e}"))?;
    let port = i32::from(addr.port());
    if !metadata.brokers.iter().any(|broker| broker.port == port) {
        return Err(format!(
            "Metadata brokers {:?} do not include port {port}",
            metadata.brokers
        ));
    }
    Ok(())
}

/// OffsetFetch v3, encoded by hand so that a check of committed offsets depends on neither the
/// codec nor the client that committed them. `topic = None` asks for every committed partition
/// of the group. Returns the top-level error code and the partitions the broker listed.
pub fn offset_fetch_v3(
    addr: SocketAddr,
    group: &str,
    topic: Option<(&str, &[i32])>,
) -> Result<(i16, Vec<FetchedOffset>), HarnessError> {
    let mut connection = KafkaConnection::connect(addr)?;
    let mut request = Encoder::default();
    request.string(group);
    match topic {
        None => {
            request.i32(-1);
        }
        Some((name, partitions)) => {
            request
                .array_len(1)
                .string(name)
                .array_len(partitions.len());
            for partition in partitions {
                request.i32(*partition);
            }
        }
    }
    let body = connection.round_trip(api_key::OFFSET_FETCH, 3, &request.bytes)?;
    let mut decoder = Decoder::new(&body);
    let _throttle_time_ms = decoder.i32()?;
    let mut fetched = Vec::new();
    for _ in 0..decoder.array_len(6)? {
        let topic = decoder.string()?;
        for _ in 0..decoder.array_len(16)? {
            fetched.push(FetchedOffset {
                topic: topic.clone(),
                partition: decoder.i32()?,
                offset: decoder.i64()?,
                metadata: decoder.nullable_string()?,
                error_code: decoder.i16()?,
            });
        }
    }
    Ok((decoder.i16()?, fetched))
}
