//! Topic changes from any node: CreateTopics (and auto-creation in Metadata), DeleteTopics,
//! CreatePartitions and the config APIs are forwarded to the active controller (as
//! KIP-590), which decides and writes them through the metadata quorum. Each call then waits
//! until this node has applied the change, so a client that asks this node next sees it.
//!
//! The engine's partitions are not touched here: every node's reconciler creates and deletes
//! its local replicas as the change reaches it.

use std::time::Duration;

use crate::broker::Broker;
use crate::cluster::rpc::{
    ControllerError, ControllerReplyBody, ControllerRequest, CreatePartitionsRequest,
    CreateTopicRequest, TopicConfigChange, TopicOutcome,
};
use crate::handlers::error_code;

/// How long an admin request waits for the controller when the client gives no timeout.
pub const ADMIN_TIMEOUT_MS_DEFAULT: u64 = 30_000;
/// The longest wait honoured, whatever the client asks.
const ADMIN_TIMEOUT_MS_MAX: u64 = 120_000;

/// A client's `timeout_ms`, bounded; 0 or negative means the default.
pub fn admin_timeout(timeout_ms: i32) -> Duration {
    let ms = u64::try_from(timeout_ms)
        .ok()
        .filter(|ms| *ms > 0)
        .unwrap_or(ADMIN_TIMEOUT_MS_DEFAULT)
        .min(ADMIN_TIMEOUT_MS_MAX);
    Duration::from_millis(ms)
}

/// Creates `topics` (or, with `validate_only`, checks that they could be created).
pub async fn create_topics(
    broker: &Broker,
    topics: Vec<CreateTopicRequest>,
    validate_only: bool,
    timeout: Duration,
) -> Vec<(String, TopicOutcome)> {
    let names = topics.iter().map(|t| t.name.clone()).collect();
    let request = ControllerRequest::CreateTopics {
        topics,
        validate_only,
    };
    submit(broker, request, names, timeout).await
}

/// Deletes `names` and their data on every replica.
pub async fn delete_topics(
    broker: &Broker,
    names: Vec<String>,
    timeout: Duration,
) -> Vec<(String, TopicOutcome)> {
    let request = ControllerRequest::DeleteTopics {
        names: names.clone(),
    };
    submit(broker, request, names, timeout).await
}

/// Grows topics to new partition counts.
pub async fn create_partitions(
    broker: &Broker,
    topics: Vec<CreatePartitionsRequest>,
    validate_only: bool,
    timeout: Duration,
) -> Vec<(String, TopicOutcome)> {
    let names = topics.iter().map(|t| t.name.clone()).collect();
    let request = ControllerRequest::CreatePartitions {
        topics,
        validate_only,
    };
    submit(broker, request, names, timeout).await
}

/// Changes topics' config overrides.
pub async fn alter_topic_configs(
    broker: &Broker,
    changes: Vec<TopicConfigChange>,
    validate_only: bool,
    timeout: Duration,
) -> Vec<(String, TopicOutcome)> {
    let names = changes.iter().map(|c| c.name.clone()).collect();
    let request = ControllerRequest::AlterTopicConfigs {
        changes,
        validate_only,
    };
    submit(broker, request, names, timeout).await
}

async fn submit(
    broker: &Broker,
    request: ControllerRequest,
    names: Vec<String>,
    timeout: Duration,
) -> Vec<(String, TopicOutcome)> {
    let started = tokio::time::Instant::now();
    match broker.control.call(request, timeout).await {
        Ok(reply) => {
            let remaining = timeout.saturating_sub(started.elapsed());
            if !broker
                .metadata
                .wait_for_offset(reply.offset, remaining)
                .await
            {
                tracing::warn!(
                    offset = reply.offset,
                    "a topic change was made but has not reached this node yet"
                );
            }
            match reply.body {
                ControllerReplyBody::Topics(outcomes) => outcomes,
                _ => refuse_all(
                    names,
                    error_code::UNKNOWN_SERVER_ERROR,
                    "the controller answered with the wrong message",
                ),
            }
        }
        Err(error) => {
            let code = controller_error_code(&error);
            let message = error.to_string();
            refuse_all(names, code, &message)
        }
    }
}

/// The code an admin request answers with when the controller could not be asked.
pub fn controller_error_code(error: &ControllerError) -> i16 {
    match error {
        ControllerError::NotController { .. } => error_code::NOT_CONTROLLER,
        ControllerError::Unavailable(_) => error_code::REQUEST_TIMED_OUT,
        ControllerError::Invalid(_)
        | ControllerError::Session(_)
        | ControllerError::Reregister(_) => error_code::INVALID_REQUEST,
    }
}

fn refuse_all(names: Vec<String>, code: i16, message: &str) -> Vec<(String, TopicOutcome)> {
    names
        .into_iter()
        .map(|name| (name, Err((code, message.to_owned()))))
        .collect()
}
