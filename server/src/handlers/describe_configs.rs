//! `DescribeConfigs` (key 32): topic and broker configs, each with its value, whether it is
//! the default, where it comes from, and (on request) its synonyms and documentation.
//!
//! Topic configs report every key Spate honours; a key the topic does not override reports
//! the broker default with source DEFAULT_CONFIG, and its synonym is the broker-level name
//! (`retention.ms` ↔ `log.retention.ms`), as Kafka reports them. Broker configs are static
//! (from the config file and flags) and therefore read-only.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;

use bytes::Bytes;
use spate_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use spate_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use spate_protocol::wire::Decode;

use super::{RequestContext, error_code};
use crate::broker::Broker;
use crate::metadata::topic_config::{self, TOPIC_CONFIG_KEYS};
use crate::response::Outcome;

pub const VERSIONS: RangeInclusive<i16> = 0..=4;

/// Kafka's `ConfigResource.Type` values.
pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;
/// Kafka's `ConfigSource` values.
const SOURCE_DYNAMIC_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;
/// Kafka's `ConfigType` values (v3+).
const TYPE_BOOLEAN: i8 = 1;
const TYPE_STRING: i8 = 2;
const TYPE_INT: i8 = 3;
const TYPE_LONG: i8 = 5;
const TYPE_LIST: i8 = 7;

/// One config as reported, before it is shaped into a version's message.
pub struct ConfigEntry {
    pub name: String,
    pub value: Option<String>,
    pub read_only: bool,
    pub is_default: bool,
    pub config_source: i8,
    pub synonyms: Vec<(String, String, i8)>,
    pub config_type: i8,
    pub documentation: &'static str,
}

pub async fn handle(broker: &Broker, ctx: &RequestContext, mut body: Bytes) -> Outcome {
    let request = match DescribeConfigsRequest::decode(&mut body, ctx.version) {
        Ok(request) => request,
        Err(e) => return ctx.malformed(e),
    };
    let image = broker.metadata.image();
    let mut results = Vec::with_capacity(request.resources.len());
    for resource in request.resources {
        let mut result = DescribeConfigsResult {
            resource_type: resource.resource_type,
            resource_name: resource.resource_name.clone(),
            ..Default::default()
        };
        let entries = match resource.resource_type {
            RESOURCE_TOPIC => match image.topic(&resource.resource_name) {
                Some(topic) => topic_entries(broker, &topic.configs),
                None => {
                    result.error_code = error_code::UNKNOWN_TOPIC_OR_PARTITION;
                    result.error_message =
                        Some(format!("topic '{}' does not exist", resource.resource_name));
                    results.push(result);
                    continue;
                }
            },
            RESOURCE_BROKER
                if resource.resource_name.is_empty()
                    || resource.resource_name == broker.node_id.to_string() =>
            {
                broker_entries(broker)
            }
            RESOURCE_BROKER => {
                result.error_code = error_code::INVALID_REQUEST;
                result.error_message = Some(format!(
                    "this node is broker {}, not '{}'",
                    broker.node_id, resource.resource_name
                ));
                results.push(result);
                continue;
            }
            other => {
                result.error_code = error_code::INVALID_REQUEST;
                result.error_message = Some(format!(
                    "config resource type {other} is not supported; use topic (2) or broker (4)"
                ));
                results.push(result);
                continue;
            }
        };
        let keys = resource.configuration_keys.as_ref();
        result.configs = entries
            .into_iter()
            .filter(|e| keys.is_none_or(|keys| keys.contains(&e.name)))
            .map(|e| {
                shape(
                    e,
                    ctx.version,
                    request.include_synonyms,
                    request.include_documentation,
                )
            })
            .collect();
        results.push(result);
    }
    ctx.respond(&DescribeConfigsResponse {
        results,
        ..Default::default()
    })
}

fn shape(
    entry: ConfigEntry,
    version: i16,
    include_synonyms: bool,
    include_documentation: bool,
) -> DescribeConfigsResourceResult {
    DescribeConfigsResourceResult {
        name: entry.name,
        value: entry.value,
        read_only: entry.read_only,
        // v0 only; later versions say it with `config_source`.
        is_default: version == 0 && entry.is_default,
        config_source: entry.config_source,
        is_sensitive: false,
        synonyms: if include_synonyms {
            entry
                .synonyms
                .into_iter()
                .map(|(name, value, source)| DescribeConfigsSynonym {
                    name,
                    value: Some(value),
                    source,
                    ..Default::default()
                })
                .collect()
        } else {
            Vec::new()
        },
        config_type: entry.config_type,
        documentation: include_documentation.then(|| entry.documentation.to_owned()),
        ..Default::default()
    }
}

/// The broker-level name of a topic config, as Kafka reports synonyms.
fn broker_name(topic_key: &str) -> &'static str {
    match topic_key {
        "cleanup.policy" => "log.cleanup.policy",
        "index.interval.bytes" => "log.index.interval.bytes",
        "max.message.bytes" => "message.max.bytes",
        "message.timestamp.type" => "log.message.timestamp.type",
        "retention.bytes" => "log.retention.bytes",
        "retention.ms" => "log.retention.ms",
        "segment.bytes" => "log.segment.bytes",
        "segment.ms" => "log.roll.ms",
        "min.insync.replicas" => "min.insync.replicas",
        "unclean.leader.election.enable" => "unclean.leader.election.enable",
        _ => "flush",
    }
}

fn config_type(topic_key: &str) -> i8 {
    match topic_key {
        "cleanup.policy" => TYPE_LIST,
        "flush" | "message.timestamp.type" => TYPE_STRING,
        "index.interval.bytes" | "max.message.bytes" | "segment.bytes" | "min.insync.replicas" => {
            TYPE_INT
        }
        "unclean.leader.election.enable" => TYPE_BOOLEAN,
        _ => TYPE_LONG,
    }
}

/// The broker's default for topic config `name` (its log defaults, or its cluster settings
/// for the replication keys).
fn broker_default(broker: &Broker, name: &str) -> String {
    match name {
        "min.insync.replicas" => broker.config.cluster.min_insync_replicas.to_string(),
        _ => topic_config::value_of(&broker.config.log_defaults, name).unwrap_or_default(),
    }
}

/// Every topic config of `topic` with value, default flag, source and synonyms.
pub fn topic_entries(broker: &Broker, overrides: &BTreeMap<String, String>) -> Vec<ConfigEntry> {
    TOPIC_CONFIG_KEYS
        .iter()
        .map(|key| {
            let default_value = broker_default(broker, key.name);
            let default_synonym = (
                broker_name(key.name).to_owned(),
                default_value.clone(),
                SOURCE_DEFAULT,
            );
            let (value, is_default, source, synonyms) = match overrides.get(key.name) {
                Some(set) => (
                    set.clone(),
                    false,
                    SOURCE_DYNAMIC_TOPIC,
                    vec![
                        (key.name.to_owned(), set.clone(), SOURCE_DYNAMIC_TOPIC),
                        default_synonym,
                    ],
                ),
                None => (default_value, true, SOURCE_DEFAULT, vec![default_synonym]),
            };
            ConfigEntry {
                name: key.name.to_owned(),
                value: Some(value),
                read_only: false,
                is_default,
                config_source: source,
                synonyms,
                config_type: config_type(key.name),
                documentation: key.doc,
            }
        })
        .collect()
}

fn broker_entries(broker: &Broker) -> Vec<ConfigEntry> {
    let config = &broker.config;
    let cluster = &config.cluster;
    let mut entries: Vec<(String, String, i8, &'static str)> = vec![
        (
            "auto.create.topics.enable".into(),
            config.auto_create_topics.to_string(),
            TYPE_BOOLEAN,
            "Create unknown topics on Metadata requests.",
        ),
        (
            "broker.id".into(),
            broker.node_id.to_string(),
            TYPE_INT,
            "This node's id.",
        ),
        (
            "max.connections".into(),
            config.connections_max.to_string(),
            TYPE_INT,
            "Open client connections allowed.",
        ),
        (
            "num.partitions".into(),
            config.num_partitions.to_string(),
            TYPE_INT,
            "Partitions of auto-created topics.",
        ),
        (
            "socket.request.max.bytes".into(),
            config.request_size_bytes_max.to_string(),
            TYPE_INT,
            "Largest request frame accepted.",
        ),
        (
            "default.replication.factor".into(),
            cluster
                .default_replication_factor
                .map_or_else(|| "-1".to_owned(), |rf| rf.to_string()),
            TYPE_INT,
            "Replicas of topics created without a replication factor (-1: min(3, live brokers)).",
        ),
        (
            "replica.lag.time.max.ms".into(),
            cluster.replica_lag_time_max_ms.to_string(),
            TYPE_LONG,
            "A follower not caught up for this long leaves the ISR.",
        ),
        (
            "replica.fetch.max.bytes".into(),
            cluster.replica_fetch_max_bytes.to_string(),
            TYPE_INT,
            "Bytes a follower fetches per partition per request.",
        ),
        (
            "replica.fetch.response.max.bytes".into(),
            cluster.replica_fetch_response_max_bytes.to_string(),
            TYPE_INT,
            "Bytes a follower fetches per request.",
        ),
        (
            "replica.fetch.wait.max.ms".into(),
            cluster.replica_fetch_wait_max_ms.to_string(),
            TYPE_INT,
            "How long a leader parks a follower fetch with nothing new.",
        ),
        (
            "leader.replication.throttled.rate".into(),
            cluster
                .leader_replication_throttled_rate
                .map_or_else(|| i64::MAX.to_string(), |r| r.to_string()),
            TYPE_LONG,
            "Bytes per second sent to followers outside the ISR.",
        ),
        (
            "auto.leader.rebalance.enable".into(),
            cluster.auto_leader_rebalance_enable.to_string(),
            TYPE_BOOLEAN,
            "Move leaderships back to preferred replicas.",
        ),
        (
            "leader.imbalance.check.interval.seconds".into(),
            (cluster.leader_imbalance_check_interval_ms / 1000).to_string(),
            TYPE_LONG,
            "How often the controller checks leader balance.",
        ),
        (
            "leader.imbalance.per.broker.percentage".into(),
            cluster.leader_imbalance_per_broker_percentage.to_string(),
            TYPE_INT,
            "Imbalance allowed per broker before a rebalance.",
        ),
    ];
    for key in TOPIC_CONFIG_KEYS {
        let value = broker_default(broker, key.name);
        entries.push((
            broker_name(key.name).to_owned(),
            value,
            config_type(key.name),
            key.doc,
        ));
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    entries
        .into_iter()
        .map(|(name, value, config_type, documentation)| ConfigEntry {
            synonyms: vec![(name.clone(), value.clone(), SOURCE_STATIC_BROKER)],
            name,
            value: Some(value),
            read_only: true,
            is_default: false,
            config_source: SOURCE_STATIC_BROKER,
            config_type,
            documentation,
        })
        .collect()
}
