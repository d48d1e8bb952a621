//! The active controller's topic requests: create (with placement), delete, add partitions
//! and config changes, each decided by `spate-cluster` on the current image and written as
//! one entry, with the Kafka error code each refusal answers with.

use std::collections::BTreeMap;

use spate_cluster::controller::{self as decide};
use spate_cluster::records::RecordBody;
use spate_cluster::{ClusterImage, TopicId};

use super::Controller;
use crate::cluster::rpc::{ConfigChange, ConfigOp, ControllerError, TopicCreated, TopicOutcome};
use crate::handlers::error_code;
use crate::metadata::topic_config;

impl Controller {
    pub(super) async fn create_topic(
        &self,
        request: &decide::CreateTopic,
        validate_only: bool,
        offset: &mut u64,
    ) -> TopicOutcome {
        let image = self.feed.image();
        let topic_id = TopicId::random();
        let defaults = self.settings.log_defaults.clone();
        let validate = move |configs: &BTreeMap<String, String>| {
            topic_config::effective(&defaults, configs)
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        let records = decide::topics::create_topic(
            &image,
            request,
            &self.settings.topic_defaults,
            topic_id,
            &validate,
        )
        .map_err(|e| topic_error(&e))?;
        let created = created_shape(&records, topic_id);
        if !validate_only {
            self.write_topic(records, offset).await?;
            tracing::info!(topic = %request.name, id = %topic_id, partitions = created.partition_count, replication_factor = created.replication_factor, "topic created");
        }
        Ok(created)
    }

    pub(super) async fn alter_configs(
        &self,
        image: &ClusterImage,
        name: &str,
        change: ConfigChange,
        validate_only: bool,
        offset: &mut u64,
    ) -> TopicOutcome {
        let current = image
            .topic(name)
            .map(|t| t.configs.clone())
            .ok_or_else(|| {
                (
                    error_code::UNKNOWN_TOPIC_OR_PARTITION,
                    format!("topic '{name}' does not exist"),
                )
            })?;
        let configs = match change {
            ConfigChange::Replace(configs) => configs,
            ConfigChange::Incremental(ops) => apply_ops(current, &ops)?,
        };
        let defaults = self.settings.log_defaults.clone();
        let validate = move |configs: &BTreeMap<String, String>| {
            topic_config::effective(&defaults, configs)
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        let records = decide::topics::set_topic_configs(image, name, configs, &validate)
            .map_err(|e| topic_error(&e))?;
        if !validate_only {
            self.write_topic(records, offset).await?;
            tracing::info!(topic = name, "topic configs changed");
        }
        Ok(TopicCreated::default())
    }

    pub(super) async fn write_topic(
        &self,
        records: Vec<RecordBody>,
        offset: &mut u64,
    ) -> Result<(), (i16, String)> {
        match self.write(records).await {
            Ok(index) => {
                *offset = index;
                Ok(())
            }
            Err(ControllerError::NotController { .. }) => Err((
                error_code::NOT_CONTROLLER,
                "the active controller changed while the change was written; retry".to_owned(),
            )),
            Err(ControllerError::Invalid(message)) => Err((error_code::INVALID_REQUEST, message)),
            Err(e) => Err((error_code::REQUEST_TIMED_OUT, e.to_string())),
        }
    }
}

/// The partition count and replication factor the records create.
fn created_shape(records: &[RecordBody], topic_id: TopicId) -> TopicCreated {
    let mut partition_count = 0;
    let mut replication_factor = 0;
    for record in records {
        if let RecordBody::Partition { replicas, .. } = record {
            partition_count += 1;
            replication_factor = i16::try_from(replicas.len()).unwrap_or(i16::MAX);
        }
    }
    TopicCreated {
        topic_id: topic_id.to_string(),
        partition_count,
        replication_factor,
    }
}

/// IncrementalAlterConfigs' SET/DELETE; APPEND/SUBTRACT apply to list configs, which no
/// topic config Spate honours is.
fn apply_ops(
    mut configs: BTreeMap<String, String>,
    ops: &[ConfigOp],
) -> Result<BTreeMap<String, String>, (i16, String)> {
    const SET: i8 = 0;
    const DELETE: i8 = 1;
    for op in ops {
        match op.op {
            SET => {
                let value = op.value.clone().ok_or_else(|| {
                    (
                        error_code::INVALID_CONFIG,
                        format!("SET of '{}' has no value", op.key),
                    )
                })?;
                configs.insert(op.key.clone(), value);
            }
            DELETE => {
                configs.remove(&op.key);
            }
            other => {
                return Err((
                    error_code::INVALID_CONFIG,
                    format!(
                        "operation {other} on '{}' is not supported: APPEND and SUBTRACT apply to list configs only; use SET or DELETE",
                        op.key
                    ),
                ));
            }
        }
    }
    Ok(configs)
}

/// The Kafka error code and message a topic decision's refusal answers with.
pub fn topic_error(error: &decide::TopicError) -> (i16, String) {
    use decide::TopicError as E;
    let code = match error {
        E::InvalidName(_) | E::Internal(_) => error_code::INVALID_TOPIC_EXCEPTION,
        E::AlreadyExists(_) => error_code::TOPIC_ALREADY_EXISTS,
        E::Unknown(_) => error_code::UNKNOWN_TOPIC_OR_PARTITION,
        E::InvalidPartitions(_) => error_code::INVALID_PARTITIONS,
        E::InvalidReplicationFactor(_) => error_code::INVALID_REPLICATION_FACTOR,
        E::InvalidReplicaAssignment(_) => error_code::INVALID_REPLICA_ASSIGNMENT,
        E::InvalidConfig(_) => error_code::INVALID_CONFIG,
    };
    (code, error.to_string())
}
