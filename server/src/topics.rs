//! Topic lifecycle operations shared by several APIs: create (CreateTopics and auto-creation
//! in Metadata), add partitions, change configs, delete.
//!
//! Each operation takes the broker's admin lock, so "check, then act" is atomic against
//! other admin requests on any core. Order on disk: the metadata is written first, then the
//! engine's partitions are created, so a crash in between is repaired by the reconcile step
//! at the next start (missing partitions are created). Deletion runs the other way round.

use std::collections::BTreeMap;
use std::sync::Arc;

use spate_engine::TopicPartition;

use crate::broker::Broker;
use crate::handlers::error_code;
use crate::metadata::topic_config::{self, ConfigError};
use crate::metadata::topic_name::TopicNameError;
use crate::metadata::{
    BROKER_PARTITION_COUNT_MAX, MetadataError, PARTITION_COUNT_MAX, Topic, validate_topic_name,
};

/// Why a topic operation was refused. Each maps to one Kafka error code.
#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    #[error(transparent)]
    InvalidName(#[from] TopicNameError),
    #[error("topic '{0}' already exists")]
    AlreadyExists(String),
    #[error("topic '{0}' does not exist")]
    Unknown(String),
    #[error("{0}")]
    InvalidPartitions(String),
    #[error("replication factor {0} is impossible on a single node: use 1 or -1")]
    InvalidReplicationFactor(i16),
    #[error("manual replica assignment is not supported on a single node")]
    InvalidReplicaAssignment,
    #[error(transparent)]
    InvalidConfig(#[from] ConfigError),
    #[error("metadata: {0}")]
    Metadata(MetadataError),
    #[error("storage engine: {0}")]
    Engine(String),
    #[error(
        "'{0}' is an internal topic (committed offsets live there); it cannot be deleted or repartitioned"
    )]
    Internal(String),
}

impl From<MetadataError> for TopicError {
    fn from(e: MetadataError) -> Self {
        match e {
            MetadataError::TopicExists(name) => TopicError::AlreadyExists(name),
            MetadataError::UnknownTopic(name) => TopicError::Unknown(name),
            MetadataError::Config(c) => TopicError::InvalidConfig(c),
            other => TopicError::Metadata(other),
        }
    }
}

impl TopicError {
    pub fn code(&self) -> i16 {
        match self {
            TopicError::InvalidName(_) | TopicError::Internal(_) => {
                error_code::INVALID_TOPIC_EXCEPTION
            }
            TopicError::AlreadyExists(_) => error_code::TOPIC_ALREADY_EXISTS,
            TopicError::Unknown(_) => error_code::UNKNOWN_TOPIC_OR_PARTITION,
            TopicError::InvalidPartitions(_) => error_code::INVALID_PARTITIONS,
            TopicError::InvalidReplicationFactor(_) => error_code::INVALID_REPLICATION_FACTOR,
            TopicError::InvalidReplicaAssignment => error_code::INVALID_REPLICA_ASSIGNMENT,
            TopicError::InvalidConfig(_) => error_code::INVALID_CONFIG,
            TopicError::Metadata(_) | TopicError::Engine(_) => error_code::KAFKA_STORAGE_ERROR,
        }
    }
}

/// What a client asked to create.
pub struct NewTopic<'a> {
    pub name: &'a str,
    /// -1 = the broker's `num.partitions`.
    pub partition_count: i32,
    /// -1 = the default (1 on a single node).
    pub replication_factor: i16,
    pub configs: BTreeMap<String, String>,
}

/// Creates a topic (or, with `validate_only`, checks that it could be created).
pub async fn create_topic(
    broker: &Broker,
    request: NewTopic<'_>,
    validate_only: bool,
) -> Result<Arc<Topic>, TopicError> {
    validate_topic_name(request.name)?;
    let partition_count = match request.partition_count {
        -1 => broker.config.num_partitions,
        n => n,
    };
    check_partition_count(partition_count)?;
    if !matches!(request.replication_factor, -1 | 1) {
        return Err(TopicError::InvalidReplicationFactor(
            request.replication_factor,
        ));
    }
    let _admin = broker.admin_lock.lock().await;
    let image = broker.metadata.image();
    if image.topic(request.name).is_some() {
        return Err(TopicError::AlreadyExists(request.name.to_owned()));
    }
    check_broker_capacity(image.partition_count() + i64::from(partition_count))?;
    let topic = broker
        .metadata
        .new_topic(request.name, partition_count, request.configs)?;
    if validate_only {
        return Ok(Arc::new(topic));
    }
    broker.metadata.insert_topic(topic.clone())?;
    create_partitions_in_engine(broker, &topic, 0).await?;
    tracing::info!(topic = %topic.name, partitions = partition_count, id = %topic.id, "topic created");
    Ok(Arc::new(topic))
}

/// Grows `name` to `partition_count` partitions.
pub async fn add_partitions(
    broker: &Broker,
    name: &str,
    partition_count: i32,
    validate_only: bool,
) -> Result<(), TopicError> {
    refuse_internal(name)?;
    let _admin = broker.admin_lock.lock().await;
    let image = broker.metadata.image();
    let Some(current) = image.topic(name) else {
        return Err(TopicError::Unknown(name.to_owned()));
    };
    if partition_count <= current.partition_count {
        return Err(TopicError::InvalidPartitions(format!(
            "topic '{name}' has {} partitions; the new count {partition_count} must be larger",
            current.partition_count
        )));
    }
    check_partition_count(partition_count)?;
    check_broker_capacity(
        image.partition_count() + i64::from(partition_count - current.partition_count),
    )?;
    if validate_only {
        return Ok(());
    }
    let previous_count = current.partition_count;
    let topic = Topic {
        partition_count,
        ..Topic::clone(current)
    };
    broker.metadata.update_topic(topic.clone())?;
    create_partitions_in_engine(broker, &topic, previous_count).await?;
    tracing::info!(
        topic = name,
        from = previous_count,
        to = partition_count,
        "partitions added"
    );
    Ok(())
}

/// Replaces a topic's config overrides with `configs` and applies them to its partitions.
pub async fn set_topic_configs(
    broker: &Broker,
    name: &str,
    configs: BTreeMap<String, String>,
    validate_only: bool,
) -> Result<(), TopicError> {
    update_topic_configs(broker, name, |_| Ok(configs), validate_only).await
}

/// Computes a topic's new overrides from its current ones (under the admin lock, so
/// concurrent incremental changes are not lost), validates and applies them.
pub async fn update_topic_configs(
    broker: &Broker,
    name: &str,
    change: impl FnOnce(&BTreeMap<String, String>) -> Result<BTreeMap<String, String>, TopicError>,
    validate_only: bool,
) -> Result<(), TopicError> {
    let _admin = broker.admin_lock.lock().await;
    let image = broker.metadata.image();
    let Some(current) = image.topic(name) else {
        return Err(TopicError::Unknown(name.to_owned()));
    };
    let configs = change(&current.configs)?;
    let log_config = topic_config::effective(broker.metadata.defaults(), &configs)?;
    if validate_only {
        return Ok(());
    }
    let topic = Topic {
        configs,
        log_config: log_config.clone(),
        ..Topic::clone(current)
    };
    broker.metadata.update_topic(topic)?;
    for partition in 0..current.partition_count {
        let tp = TopicPartition::new(current.name.clone(), partition);
        broker
            .engine
            .set_config(&tp, log_config.clone())
            .await
            .map_err(|e| TopicError::Engine(e.to_string()))?;
    }
    tracing::info!(topic = name, "topic configs changed");
    Ok(())
}

/// Deletes a topic and its data.
pub async fn delete_topic(broker: &Broker, name: &str) -> Result<Arc<Topic>, TopicError> {
    refuse_internal(name)?;
    let _admin = broker.admin_lock.lock().await;
    let image = broker.metadata.image();
    let Some(topic) = image.topic(name).cloned() else {
        return Err(TopicError::Unknown(name.to_owned()));
    };
    for partition in 0..topic.partition_count {
        let tp = TopicPartition::new(topic.name.clone(), partition);
        if let Err(e) = broker.engine.delete_partition(&tp).await {
            tracing::warn!(partition = %tp, error = %e, "deleting partition failed; continuing");
        }
    }
    broker.metadata.remove_topic(name)?;
    tracing::info!(topic = name, "topic deleted");
    Ok(topic)
}

fn check_partition_count(partition_count: i32) -> Result<(), TopicError> {
    if !(1..=PARTITION_COUNT_MAX).contains(&partition_count) {
        return Err(TopicError::InvalidPartitions(format!(
            "number of partitions must be between 1 and {PARTITION_COUNT_MAX}, got {partition_count}"
        )));
    }
    Ok(())
}

fn check_broker_capacity(partition_count_after: i64) -> Result<(), TopicError> {
    if partition_count_after > BROKER_PARTITION_COUNT_MAX {
        return Err(TopicError::InvalidPartitions(format!(
            "the broker would hold {partition_count_after} partitions; the limit is {BROKER_PARTITION_COUNT_MAX}: delete unused topics first"
        )));
    }
    Ok(())
}

/// Creates partitions `from_partition..` of `topic` in one engine call (one placement write
/// and one call per shard, however many partitions). The first partition that failed is
/// reported; the others that failed are logged.
async fn create_partitions_in_engine(
    broker: &Broker,
    topic: &Topic,
    from_partition: i32,
) -> Result<(), TopicError> {
    let tps: Vec<TopicPartition> = (from_partition..topic.partition_count)
        .map(|partition| TopicPartition::new(topic.name.clone(), partition))
        .collect();
    let outcomes = broker
        .engine
        .create_partitions(tps, topic.log_config.clone())
        .await
        .map_err(|e| TopicError::Engine(e.to_string()))?;
    let mut first_error = None;
    for error in outcomes.into_iter().filter_map(Result::err) {
        if first_error.is_none() {
            first_error = Some(error);
        } else {
            tracing::warn!(topic = %topic.name, %error, "creating a partition failed");
        }
    }
    match first_error {
        Some(error) => Err(TopicError::Engine(error.to_string())),
        None => Ok(()),
    }
}

/// Deleting or repartitioning `__consumer_offsets` would lose or strand every group's
/// offsets (a group's partition is a hash of its id modulo the count).
fn refuse_internal(name: &str) -> Result<(), TopicError> {
    if name == crate::groups::OFFSETS_TOPIC {
        return Err(TopicError::Internal(name.to_owned()));
    }
    Ok(())
}
