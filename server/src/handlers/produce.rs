//! `Produce` (key 0): append record batches, answer once they are durable per the topic's
//! flush policy (acks=1/all), or not at all (acks=0).
//!
//! The records stay `Bytes` slices of the request frame all the way to the engine: nothing
//! is decoded or copied here. The partitions of one request are appended concurrently, so
//! they share the engine's group commit instead of paying one fsync each in turn.
//!
//! Only the partition's leader appends; other nodes answer NOT_LEADER_OR_FOLLOWER with the
//! current leader and its endpoint (KIP-951). On a replicated partition, acks=all is refused
//! up front while the ISR is below `min.insync.replicas` (NOT_ENOUGH_REPLICAS) and answered
//! once the high watermark passes the batch, i.e. once every in-sync replica has it durably
//! (`cluster::replication::produce`); acks=1 answers once the leader's own copy is durable.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::time::Duration;

use bytes::Bytes;
use spate_engine::TopicPartition;
use spate_protocol::messages::produce_response::{
    LeaderIdAndEpoch, NodeEndpoint, PartitionProduceResponse, TopicProduceResponse,
};
use spate_protocol::messages::{ProduceRequest, ProduceResponse};
use spate_protocol::wire::Decode;
use tokio::task::JoinSet;

use super::produce_errors::replicated_append_error_code;
use super::{RequestContext, error_code};
use crate::broker::Broker;
use crate::cluster::replication::{self, AppendAcks};
use crate::metadata::{Leadership, validate_topic_name};
use crate::response::Outcome;
use spate_cluster::ClusterImage;
use spate_cluster::image::TopicImage;

/// From v0: librdkafka turns compression off when the broker's minimum is above 0. Batches
/// still must be RecordBatch v2 (magic 2); older formats are refused per partition.
pub const VERSIONS: RangeInclusive<i16> = 0..=11;

pub async fn handle(broker: &Broker, ctx: &RequestContext, mut body: Bytes) -> Outcome {
    let request = match ProduceRequest::decode(&mut body, ctx.version) {
        Ok(request) => request,
        Err(e) => return ctx.malformed(e),
    };
    let mut responses: Vec<TopicProduceResponse> = request
        .topic_data
        .iter()
        .map(|t| TopicProduceResponse {
            name: t.name.clone(),
            partition_responses: t
                .partition_data
                .iter()
                .map(|p| PartitionProduceResponse {
                    index: p.index,
                    base_offset: -1,
                    log_append_time_ms: -1,
                    log_start_offset: -1,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })
        .collect();

    let refusal = if request.transactional_id.is_some() {
        Some((
            error_code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
            "transactions are not supported yet; produce without a transactional.id".to_owned(),
        ))
    } else if !matches!(request.acks, -1..=1) {
        Some((
            error_code::INVALID_REQUIRED_ACKS,
            format!("acks={} is invalid: use 0, 1 or -1 (all)", request.acks),
        ))
    } else {
        None
    };

    let acks = if request.acks == -1 {
        AppendAcks::All {
            timeout: Duration::from_millis(u64::try_from(request.timeout_ms).unwrap_or(0)),
        }
    } else {
        AppendAcks::Leader
    };
    let image = broker.metadata.image();
    let mut leaders = LeaderHints::default();
    let mut appends = JoinSet::new();
    for (topic_index, topic) in request.topic_data.into_iter().enumerate() {
        let known = image.topic(&topic.name).cloned();
        for (partition_index, partition) in topic.partition_data.into_iter().enumerate() {
            let slot = &mut responses[topic_index].partition_responses[partition_index];
            let immediate = refusal.clone().or_else(|| {
                check_partition(
                    &topic.name,
                    known.as_deref(),
                    partition.index,
                    &partition.records,
                )
            });
            if let Some((code, message)) = immediate {
                slot.error_code = code;
                slot.error_message = Some(message);
                continue;
            }
            let leadership = known
                .as_deref()
                .and_then(|t| t.partition(partition.index))
                .map(|p| Leadership::of(p, broker.node_id));
            if let Some(hint) = leadership.and_then(|l| leaders.not_leader(&image, l)) {
                slot.error_code = error_code::NOT_LEADER_OR_FOLLOWER;
                slot.error_message = Some(format!(
                    "{}-{}: {hint}; send it to the leader (refresh metadata)",
                    topic.name, partition.index
                ));
                if ctx.version >= CURRENT_LEADER_VERSION_MIN {
                    slot.current_leader = leaders.current_leader(leadership);
                }
                continue;
            }
            // Until the append answers: a task that dies must not read as a success.
            slot.error_code = error_code::UNKNOWN_SERVER_ERROR;
            slot.error_message = Some(format!(
                "{}-{}: the append was lost inside the broker; retry",
                topic.name, partition.index
            ));
            let Some(topic_meta) = &known else { continue };
            let tp = TopicPartition::new(topic_meta.name.clone(), partition.index);
            let records = partition.records.unwrap_or_default();
            let engine = broker.engine.clone();
            appends.spawn_local(async move {
                let outcome = replication::append(&engine, &tp, records, acks).await;
                (topic_index, partition_index, tp, outcome)
            });
        }
    }

    while let Some(joined) = appends.join_next().await {
        let Ok((topic_index, partition_index, tp, outcome)) = joined else {
            tracing::error!("a produce append task panicked");
            continue;
        };
        let slot = &mut responses[topic_index].partition_responses[partition_index];
        match outcome {
            Ok(appended) => {
                slot.error_code = error_code::NONE;
                slot.error_message = None;
                slot.base_offset = appended.base_offset;
                slot.log_append_time_ms = appended.log_append_time_ms.unwrap_or(-1);
                slot.log_start_offset = appended.log_start_offset;
            }
            Err(e) => {
                let code = replicated_append_error_code(&e);
                if code == error_code::KAFKA_STORAGE_ERROR {
                    tracing::error!(partition = %tp, error = %e, "append failed");
                } else {
                    tracing::debug!(partition = %tp, error = %e, "append refused");
                }
                slot.error_code = code;
                slot.error_message = Some(format!("{tp}: {e}"));
            }
        }
    }

    if request.acks == 0 {
        return Outcome::Silent;
    }
    ctx.respond(&ProduceResponse {
        responses,
        node_endpoints: if ctx.version >= CURRENT_LEADER_VERSION_MIN {
            leaders.endpoints()
        } else {
            Vec::new()
        },
        ..Default::default()
    })
}

/// First Produce version that carries the current leader and its endpoint (KIP-951), so a
/// client can go to the new leader without refreshing all its metadata.
const CURRENT_LEADER_VERSION_MIN: i16 = 10;

/// The leaders named in NOT_LEADER_OR_FOLLOWER answers, for the response's endpoints.
#[derive(Default)]
struct LeaderHints {
    endpoints: BTreeMap<i32, NodeEndpoint>,
}

impl LeaderHints {
    /// `None` if this node leads; otherwise why not, remembering the leader's endpoint.
    fn not_leader(&mut self, image: &ClusterImage, leadership: Leadership) -> Option<String> {
        match leadership {
            Leadership::Local { .. } => None,
            Leadership::None { .. } => {
                Some("the partition has no leader (its in-sync replicas are down)".to_owned())
            }
            Leadership::Remote { leader, .. } => {
                if let Some(b) = image.broker(leader).filter(|b| !b.fenced) {
                    self.endpoints
                        .entry(leader)
                        .or_insert_with(|| NodeEndpoint {
                            node_id: leader,
                            host: b.kafka.host.clone(),
                            port: i32::from(b.kafka.port),
                            rack: b.rack.clone(),
                            ..Default::default()
                        });
                }
                Some(format!("node {leader} leads it, not this node"))
            }
        }
    }

    fn current_leader(&self, leadership: Option<Leadership>) -> LeaderIdAndEpoch {
        match leadership {
            Some(Leadership::Remote {
                leader,
                leader_epoch,
            }) => LeaderIdAndEpoch {
                leader_id: leader,
                leader_epoch,
                ..Default::default()
            },
            Some(Leadership::None { leader_epoch }) => LeaderIdAndEpoch {
                leader_id: -1,
                leader_epoch,
                ..Default::default()
            },
            _ => LeaderIdAndEpoch {
                leader_id: -1,
                leader_epoch: -1,
                ..Default::default()
            },
        }
    }

    fn endpoints(self) -> Vec<NodeEndpoint> {
        self.endpoints.into_values().collect()
    }
}

/// Why a partition of the request cannot be appended at all, before asking the engine.
fn check_partition(
    topic_name: &str,
    topic: Option<&TopicImage>,
    partition: i32,
    records: &Option<Bytes>,
) -> Option<(i16, String)> {
    if let Err(e) = validate_topic_name(topic_name) {
        return Some((error_code::INVALID_TOPIC_EXCEPTION, e.to_string()));
    }
    if topic_name == crate::groups::OFFSETS_TOPIC {
        return Some((
            error_code::INVALID_TOPIC_EXCEPTION,
            format!(
                "{topic_name} is internal: only the group coordinator writes to it; commit offsets with OffsetCommit"
            ),
        ));
    }
    if !topic.is_some_and(|t| (0..t.partition_count()).contains(&partition)) {
        return Some((
            error_code::UNKNOWN_TOPIC_OR_PARTITION,
            format!(
                "{topic_name}-{partition} does not exist; create the topic or fetch metadata first"
            ),
        ));
    }
    if records.as_ref().is_none_or(Bytes::is_empty) {
        return Some((
            error_code::CORRUPT_MESSAGE,
            "the records field is empty".to_owned(),
        ));
    }
    None
}
