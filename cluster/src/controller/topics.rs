//! Topic decisions: create (with placement), delete, add partitions, change configs, and
//! producer-id blocks.
//!
//! Each decision checks the request against the image and returns records that apply to
//! that image, or the error a client gets. The checks mirror Kafka's
//! `ReplicationControlManager` (and its messages, which operators search for), and cover
//! every check `apply` makes, so a request is refused here rather than by every node.

use std::collections::{BTreeMap, BTreeSet};

use crate::NodeId;
use crate::image::{ClusterImage, PARTITION_COUNT_MAX, REPLICATION_FACTOR_MAX, check_configs};
use crate::placement::{self, PlacementBroker};
use crate::records::RecordBody;
use crate::topic_id::TopicId;
use crate::topic_name::validate_topic_name;

/// Replicas one broker may hold across all topics. Each is a folder with open segment and
/// index files and a slot on a shard; without a cap, one CreateTopics request (1,000 topics ×
/// 10,000 partitions) could exhaust a broker's file descriptors and memory.
pub const BROKER_REPLICAS_MAX: usize = 100_000;

/// The internal topic consumer groups commit offsets to; deleting or repartitioning it would
/// lose or misroute every group's offsets.
pub const CONSUMER_OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Kafka's default replication factor when none is configured, capped by the live brokers.
const DEFAULT_REPLICATION_FACTOR_MAX: usize = 3;

/// Checks topic config overrides' names and values (the server knows the configs); the
/// error is the message the client gets.
pub type ValidateConfigs = dyn Fn(&BTreeMap<String, String>) -> Result<(), String>;

/// A topic to create, as CreateTopics asks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateTopic {
    pub name: String,
    /// -1: the default (`num.partitions`). Ignored when `assignments` is given.
    pub partition_count: i32,
    /// -1: the default. Ignored when `assignments` is given.
    pub replication_factor: i16,
    /// Manual replica lists, one per partition in order (CreateTopics' `assignments`).
    /// An empty list of lists means none, as in Kafka.
    pub assignments: Option<Vec<Vec<NodeId>>>,
    pub configs: BTreeMap<String, String>,
}

/// Cluster-wide defaults that topic decisions use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicDefaults {
    /// `num.partitions`.
    pub partition_count: i32,
    /// `default.replication.factor`; `None` = min(3, live brokers).
    pub replication_factor: Option<i16>,
}

/// Why a topic operation was refused. Each maps to one Kafka error code in `server/`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    #[error("{0}")]
    InvalidName(String),
    #[error("topic '{0}' already exists")]
    AlreadyExists(String),
    #[error("topic '{0}' does not exist")]
    Unknown(String),
    #[error("{0}")]
    InvalidPartitions(String),
    #[error("{0}")]
    InvalidReplicationFactor(String),
    #[error("{0}")]
    InvalidReplicaAssignment(String),
    #[error("{0}")]
    InvalidConfig(String),
    #[error("'{0}' is an internal topic; it cannot be deleted or repartitioned")]
    Internal(String),
}

/// The records that create `request` (a topic record, then one partition record per
/// partition, leaders and ISRs set to the live replicas), or why it cannot be created.
/// `validate_configs` checks the overrides' names and values (the server knows them).
/// `topic_id` must be fresh ([`TopicId::random`]); the image refuses a reused one.
///
/// A name that differs from an existing topic's only by `.` versus `_` is refused, as Kafka
/// refuses it: both map to the same metric names.
pub fn create_topic(
    image: &ClusterImage,
    request: &CreateTopic,
    defaults: &TopicDefaults,
    topic_id: TopicId,
    validate_configs: &ValidateConfigs,
) -> Result<Vec<RecordBody>, TopicError> {
    let name = request.name.as_str();
    validate_topic_name(name).map_err(|e| TopicError::InvalidName(e.to_string()))?;
    if image.topic(name).is_some() {
        return Err(TopicError::AlreadyExists(name.to_owned()));
    }
    if let Some(other) = colliding_topic(image, name) {
        return Err(TopicError::InvalidName(format!(
            "Topic '{name}' collides with existing topic: {other}"
        )));
    }
    check_topic_configs(&request.configs, validate_configs)?;
    let live = live_brokers(image);
    let assignments = match request.assignments.as_deref() {
        Some(manual) if !manual.is_empty() => {
            check_manual_assignments(image, manual, None)?;
            manual.to_vec()
        }
        _ => {
            let partition_count = match request.partition_count {
                -1 => defaults.partition_count,
                n => n,
            };
            check_partition_count(partition_count)?;
            let replication_factor =
                resolve_replication_factor(request.replication_factor, defaults, live.len())?;
            let rotation = usize::try_from(image.partition_count()).unwrap_or(0);
            placement::assign_replicas(&live, 0, partition_count, replication_factor, rotation)
                .map_err(|e| TopicError::InvalidReplicationFactor(e.to_string()))?
        }
    };
    check_broker_replicas(image, &assignments)?;
    let mut records = Vec::with_capacity(assignments.len() + 1);
    records.push(RecordBody::Topic {
        topic_id,
        name: name.to_owned(),
        configs: request.configs.clone(),
    });
    records.extend(partition_records(image, topic_id, 0, assignments));
    Ok(records)
}

/// The record that deletes topic `name`.
pub fn delete_topic(image: &ClusterImage, name: &str) -> Result<Vec<RecordBody>, TopicError> {
    let topic = image
        .topic(name)
        .ok_or_else(|| TopicError::Unknown(name.to_owned()))?;
    refuse_internal(name)?;
    Ok(vec![RecordBody::RemoveTopic { topic_id: topic.id }])
}

/// The records that grow `name` to `partition_count` partitions.
///
/// New partitions get the replication factor of the topic's first partition. Their leaders
/// continue the cluster-wide stripe where a topic created now would start, less the
/// partitions the topic already has, so that leaders stay spread across topics.
pub fn create_partitions(
    image: &ClusterImage,
    name: &str,
    partition_count: i32,
    assignments: Option<&[Vec<NodeId>]>,
) -> Result<Vec<RecordBody>, TopicError> {
    let topic = image
        .topic(name)
        .ok_or_else(|| TopicError::Unknown(name.to_owned()))?;
    refuse_internal(name)?;
    let current = topic.partition_count();
    if partition_count == current {
        return Err(TopicError::InvalidPartitions(format!(
            "Topic already has {current} partition(s)."
        )));
    }
    if partition_count < current {
        return Err(TopicError::InvalidPartitions(format!(
            "The topic {name} currently has {current} partition(s); {partition_count} would not be an increase."
        )));
    }
    check_partition_count(partition_count)?;
    let added = partition_count - current;
    let existing_replication_factor = topic.partitions.first().map(|p| p.replicas.len());
    let assignments = match assignments {
        Some(manual) => {
            if i64::try_from(manual.len()).ok() != Some(i64::from(added)) {
                return Err(TopicError::InvalidReplicaAssignment(format!(
                    "Attempted to add {added} additional partition(s), but only {} assignment(s) were specified.",
                    manual.len()
                )));
            }
            check_manual_assignments(image, manual, existing_replication_factor)?;
            manual.to_vec()
        }
        None => {
            let live = live_brokers(image);
            let replication_factor = existing_replication_factor
                .unwrap_or_else(|| live.len().clamp(1, DEFAULT_REPLICATION_FACTOR_MAX));
            if replication_factor > live.len() {
                return Err(not_enough_brokers(replication_factor, live.len()));
            }
            let rotation =
                usize::try_from(image.partition_count() - i64::from(current)).unwrap_or(0);
            placement::assign_replicas(&live, current, added, replication_factor, rotation)
                .map_err(|e| TopicError::InvalidReplicationFactor(e.to_string()))?
        }
    };
    check_broker_replicas(image, &assignments)?;
    Ok(partition_records(image, topic.id, current, assignments))
}

/// The record that replaces `name`'s config overrides with `configs`.
pub fn set_topic_configs(
    image: &ClusterImage,
    name: &str,
    configs: BTreeMap<String, String>,
    validate_configs: &ValidateConfigs,
) -> Result<Vec<RecordBody>, TopicError> {
    let topic = image
        .topic(name)
        .ok_or_else(|| TopicError::Unknown(name.to_owned()))?;
    check_topic_configs(&configs, validate_configs)?;
    Ok(vec![RecordBody::TopicConfigs {
        topic_id: topic.id,
        configs,
    }])
}

/// The record that hands `count` producer ids to `node_id`, starting at the image's next.
/// The image refuses a count outside `1..=PRODUCER_ID_BLOCK_MAX`.
pub fn allocate_producer_ids(image: &ClusterImage, node_id: NodeId, count: i64) -> RecordBody {
    RecordBody::ProducerIds {
        node_id,
        first: image.next_producer_id(),
        count,
    }
}

/// The brokers that take new replicas and leaderships: registered, unfenced and not in
/// controlled shutdown.
fn live_brokers(image: &ClusterImage) -> Vec<PlacementBroker> {
    image
        .brokers()
        .filter(|broker| broker.is_live())
        .map(|broker| PlacementBroker {
            node_id: broker.node_id,
            rack: broker.rack.clone(),
        })
        .collect()
}

/// Partition records for `assignments`, numbered from `first_partition`: the ISR is the
/// live replicas and the first live replica leads. With no live replica (a manual
/// assignment to fenced brokers) every replica is in the ISR and nobody leads until one
/// is unfenced; a new partition is empty, so any of them may lead.
fn partition_records(
    image: &ClusterImage,
    topic_id: TopicId,
    first_partition: i32,
    assignments: Vec<Vec<NodeId>>,
) -> Vec<RecordBody> {
    let is_live = |id: &NodeId| image.broker(*id).is_some_and(|b| b.is_live());
    (first_partition..)
        .zip(assignments)
        .map(|(partition, replicas)| {
            let live: Vec<NodeId> = replicas.iter().copied().filter(is_live).collect();
            let (isr, leader) = match live.first() {
                Some(&leader) => (live, leader),
                None => (replicas.clone(), crate::NO_LEADER),
            };
            RecordBody::Partition {
                topic_id,
                partition,
                replicas,
                isr,
                leader,
                leader_epoch: 0,
                partition_epoch: 0,
                adding_replicas: Vec::new(),
                removing_replicas: Vec::new(),
                leader_recovery_state: crate::LeaderRecoveryState::Recovered,
            }
        })
        .collect()
}

fn resolve_replication_factor(
    requested: i16,
    defaults: &TopicDefaults,
    live_count: usize,
) -> Result<usize, TopicError> {
    let factor = match (requested, defaults.replication_factor) {
        (-1, Some(default)) => i64::from(default),
        (-1, None) => live_count.clamp(1, DEFAULT_REPLICATION_FACTOR_MAX) as i64,
        (n, _) => i64::from(n),
    };
    let factor = usize::try_from(factor)
        .ok()
        .filter(|f| (1..=REPLICATION_FACTOR_MAX).contains(f))
        .ok_or_else(|| {
            TopicError::InvalidReplicationFactor(format!(
                "Replication factor must be larger than 0 and at most {REPLICATION_FACTOR_MAX}, or -1 to use the default value; got {factor}."
            ))
        })?;
    if factor > live_count {
        return Err(not_enough_brokers(factor, live_count));
    }
    Ok(factor)
}

fn not_enough_brokers(replication_factor: usize, live_count: usize) -> TopicError {
    TopicError::InvalidReplicationFactor(format!(
        "Unable to replicate the partition {replication_factor} time(s): The target replication factor of {replication_factor} cannot be reached because only {live_count} broker(s) are registered."
    ))
}

fn check_partition_count(partition_count: i32) -> Result<(), TopicError> {
    if !(1..=PARTITION_COUNT_MAX).contains(&partition_count) {
        return Err(TopicError::InvalidPartitions(format!(
            "Number of partitions must be between 1 and {PARTITION_COUNT_MAX}; got {partition_count}."
        )));
    }
    Ok(())
}

/// Kafka's manual assignment checks: every list non-empty, without repeats, of registered
/// brokers, and all of one length (`replication_factor`, when the topic has one already).
fn check_manual_assignments(
    image: &ClusterImage,
    assignments: &[Vec<NodeId>],
    replication_factor: Option<usize>,
) -> Result<(), TopicError> {
    let invalid = |message: String| Err(TopicError::InvalidReplicaAssignment(message));
    if assignments.len() > PARTITION_COUNT_MAX as usize {
        return Err(TopicError::InvalidPartitions(format!(
            "{} partitions were assigned; the maximum is {PARTITION_COUNT_MAX}.",
            assignments.len()
        )));
    }
    let expected = replication_factor.or_else(|| assignments.first().map(Vec::len));
    for replicas in assignments {
        if replicas.is_empty() {
            return invalid(
                "The manual partition assignment includes an empty replica list.".to_owned(),
            );
        }
        if replicas.len() > REPLICATION_FACTOR_MAX {
            return invalid(format!(
                "The manual partition assignment lists {} replicas; the maximum is {REPLICATION_FACTOR_MAX}.",
                replicas.len()
            ));
        }
        let mut seen = BTreeSet::new();
        for &id in replicas {
            if image.broker(id).is_none() {
                return invalid(format!(
                    "The manual partition assignment includes broker {id}, but no such broker is registered."
                ));
            }
            if !seen.insert(id) {
                return invalid(format!(
                    "The manual partition assignment includes the broker {id} more than once."
                ));
            }
        }
        if let Some(expected) = expected.filter(|&e| e != replicas.len()) {
            return invalid(format!(
                "The manual partition assignment includes a partition with {} replica(s), but this is not consistent with previous partitions, which have {expected} replica(s).",
                replicas.len()
            ));
        }
    }
    Ok(())
}

/// Refuses assignments that would give any broker more than [`BROKER_REPLICAS_MAX`] replicas.
pub(crate) fn check_broker_replicas(
    image: &ClusterImage,
    assignments: &[Vec<NodeId>],
) -> Result<(), TopicError> {
    let mut added: BTreeMap<NodeId, usize> = BTreeMap::new();
    for &id in assignments.iter().flatten() {
        *added.entry(id).or_insert(0) += 1;
    }
    let mut held: BTreeMap<NodeId, usize> = BTreeMap::new();
    for partition in image.topics().flat_map(|t| t.partitions.iter()) {
        for id in &partition.replicas {
            if added.contains_key(id) {
                *held.entry(*id).or_insert(0) += 1;
            }
        }
    }
    for (id, count) in added {
        let total = held.get(&id).copied().unwrap_or(0) + count;
        if total > BROKER_REPLICAS_MAX {
            return Err(TopicError::InvalidPartitions(format!(
                "Broker {id} would hold {total} replicas; the limit is {BROKER_REPLICAS_MAX}. Delete unused topics or add brokers first."
            )));
        }
    }
    Ok(())
}

fn check_topic_configs(
    configs: &BTreeMap<String, String>,
    validate_configs: &ValidateConfigs,
) -> Result<(), TopicError> {
    check_configs(configs).map_err(TopicError::InvalidConfig)?;
    validate_configs(configs).map_err(TopicError::InvalidConfig)
}

fn refuse_internal(name: &str) -> Result<(), TopicError> {
    if name == CONSUMER_OFFSETS_TOPIC {
        return Err(TopicError::Internal(name.to_owned()));
    }
    Ok(())
}

/// An existing topic whose name equals `name` once `.` and `_` are made the same.
fn colliding_topic(image: &ClusterImage, name: &str) -> Option<String> {
    if !name.contains(['.', '_']) {
        return None;
    }
    let unify = |s: &str| s.replace('.', "_");
    let wanted = unify(name);
    image
        .topics()
        .find(|topic| *topic.name != *name && unify(&topic.name) == wanted)
        .map(|topic| topic.name.to_string())
}
