//! Topic administration by hand: DescribeConfigs v1, CreatePartitions v1 and DeleteTopics v1
//! (all non-flexible), for tests that must check the broker's answers without a client library
//! in between, e.g. right after a crash.

use crate::HarnessError;
use crate::wire::{Decoder, Encoder, KafkaConnection};

/// DescribeConfigs' api key.
pub const DESCRIBE_CONFIGS: i16 = 32;
/// CreatePartitions' api key.
pub const CREATE_PARTITIONS: i16 = 37;
/// DeleteTopics' api key.
pub const DELETE_TOPICS: i16 = 20;

/// Kafka's resource type for topics in DescribeConfigs.
const RESOURCE_TYPE_TOPIC: i8 = 2;

/// One config entry as DescribeConfigs v1 reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    pub name: String,
    pub value: Option<String>,
    /// Kafka's ConfigSource: 1 = topic override, 5 = default, …
    pub source: i8,
}

/// DescribeConfigs v1 of every config of `topic`; returns the error code and the entries.
pub fn describe_topic_configs_v1(
    connection: &mut KafkaConnection,
    topic: &str,
) -> Result<(i16, Vec<ConfigEntry>), HarnessError> {
    let mut request = Encoder::default();
    request
        .array_len(1)
        .i8(RESOURCE_TYPE_TOPIC)
        .string(topic)
        .i32(-1) // configuration_keys: all
        .i8(0); // include_synonyms
    let body = connection.round_trip(DESCRIBE_CONFIGS, 1, &request.bytes)?;
    let mut decoder = Decoder::new(&body);
    let _throttle_time_ms = decoder.i32()?;
    if decoder.array_len(9)? == 0 {
        return Err(HarnessError::MalformedResponse(
            "DescribeConfigs answer names no resource".into(),
        ));
    }
    let error_code = decoder.i16()?;
    let _error_message = decoder.nullable_string()?;
    let _resource_type = decoder.i8()?;
    let _resource_name = decoder.string()?;
    let entry_count = decoder.array_len(11)?;
    let mut entries = Vec::with_capacity(entry_count);
    for _ in 0..entry_count {
        let name = decoder.string()?;
        let value = decoder.nullable_string()?;
        let _read_only = decoder.i8()?;
        let source = decoder.i8()?;
        let _is_sensitive = decoder.i8()?;
        let synonym_count = decoder.array_len(5)?;
        for _ in 0..synonym_count {
            decoder.string()?;
            decoder.nullable_string()?;
            decoder.i8()?;
        }
        entries.push(ConfigEntry {
            name,
            value,
            source,
        });
    }
    Ok((error_code, entries))
}

/// CreatePartitions v1: grow `topic` to `total_count` partitions; returns the error code.
pub fn create_partitions_v1(
    connection: &mut KafkaConnection,
    topic: &str,
    total_count: i32,
) -> Result<i16, HarnessError> {
    let mut request = Encoder::default();
    request
        .array_len(1)
        .string(topic)
        .i32(total_count)
        .i32(-1) // assignments: let the broker choose
        .i32(10_000) // timeout_ms
        .i8(0); // validate_only
    let body = connection.round_trip(CREATE_PARTITIONS, 1, &request.bytes)?;
    let mut decoder = Decoder::new(&body);
    let _throttle_time_ms = decoder.i32()?;
    if decoder.array_len(6)? == 0 {
        return Err(HarnessError::MalformedResponse(
            "CreatePartitions answer names no topic".into(),
        ));
    }
    let _name = decoder.string()?;
    decoder.i16()
}

/// DeleteTopics v1 of one topic; returns the error code.
pub fn delete_topic_v1(connection: &mut KafkaConnection, topic: &str) -> Result<i16, HarnessError> {
    let mut request = Encoder::default();
    request.array_len(1).string(topic).i32(10_000);
    let body = connection.round_trip(DELETE_TOPICS, 1, &request.bytes)?;
    let mut decoder = Decoder::new(&body);
    let _throttle_time_ms = decoder.i32()?;
    if decoder.array_len(4)? == 0 {
        return Err(HarnessError::MalformedResponse(
            "DeleteTopics answer names no topic".into(),
        ));
    }
    let _name = decoder.string()?;
    decoder.i16()
}
