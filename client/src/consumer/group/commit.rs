//! The group's coordinator connection, offset commits and committed-offset reads.
//!
//! Commits carry the member's generation and member id, so the coordinator refuses one
//! from a member that has been replaced or whose partitions have moved; the answer then
//! says which group and partition, and the member rejoins.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use spate_protocol::ErrorCode;
use spate_protocol::messages::OffsetCommitRequest;
use spate_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};

use super::GroupShared;
use crate::admin::Admin;
use crate::client::Client;
use crate::connection::{Connection, ConnectionSettings};
use crate::error::{Error, error_code};
use crate::group_coordinator::GroupCoordinator;
use crate::offsets::TopicPartition;

/// How much longer than the rebalance timeout a JoinGroup may stay unanswered: the
/// coordinator holds it until every member has rejoined, up to that timeout (Kafka's
/// consumer allows the same 5 s).
const JOIN_GRACE: Duration = Duration::from_secs(5);

/// The coordinator's address: the one found last, or a fresh FindCoordinator answer.
async fn coordinator_address(shared: &GroupShared) -> Result<GroupCoordinator, Error> {
    if let Some(known) = shared.lock().coordinator.clone() {
        return Ok(known);
    }
    let found = shared
        .consumer
        .client()
        .find_group_coordinator(shared.group())
        .await?;
    shared.lock().coordinator = Some(found.clone());
    Ok(found)
}

/// A connection to the group's coordinator for requests answered at once (Heartbeat,
/// OffsetCommit, LeaveGroup): the client's pooled one, with `request.timeout.ms`.
pub(super) async fn coordinator(shared: &GroupShared) -> Result<Connection, Error> {
    let found = coordinator_address(shared).await?;
    shared
        .consumer
        .client()
        .connection_to(&found.address, &found.label)
        .await
}

/// A connection to the coordinator for JoinGroup and SyncGroup, which the coordinator
/// holds until the rebalance completes: its own, whose request timeout covers the whole
/// rebalance timeout (`max.poll.interval.ms`), so a slow rebalance is not mistaken for a
/// dead broker, while the pooled connection keeps detecting one within
/// `request.timeout.ms`.
pub(super) async fn join_connection(shared: &GroupShared) -> Result<Connection, Error> {
    if let Some(connection) = shared.lock().join_connection.clone()
        && connection.is_open()
    {
        return Ok(connection);
    }
    let found = coordinator_address(shared).await?;
    let config = shared.consumer.client().config();
    let settings = ConnectionSettings {
        client_id: config.client_id.clone(),
        request_timeout: config
            .request_timeout
            .max(shared.config.max_poll_interval + JOIN_GRACE),
        connect_timeout: config.connect_timeout,
    };
    let connection = Connection::connect(&found.address, found.label, settings).await?;
    shared.lock().join_connection = Some(connection.clone());
    Ok(connection)
}

/// Forgets the coordinator after an answer saying it moved or a lost connection, so the
/// next call finds it again.
pub(super) fn coordinator_failed(shared: &GroupShared, error: &Error) {
    let moved = match error {
        Error::Broker { code, .. } => matches!(
            code,
            ErrorCode::NotCoordinator
                | ErrorCode::CoordinatorNotAvailable
                | ErrorCode::RequestTimedOut
        ),
        Error::Connect { .. }
        | Error::ConnectionLost { .. }
        | Error::Timeout { .. }
        | Error::NoBrokerReachable { .. } => true,
        _ => false,
    };
    if moved {
        let mut state = shared.lock();
        state.coordinator = None;
        state.join_connection = None;
    }
}

/// Commits `offsets` in the member's current generation, retrying for up to
/// `request.timeout.ms` while the coordinator moves or loads.
pub(super) async fn commit(
    shared: &GroupShared,
    offsets: BTreeMap<TopicPartition, i64>,
) -> Result<(), Error> {
    if offsets.is_empty() {
        return Ok(());
    }
    let group = shared.group();
    let retry_backoff = shared.consumer.client().config().retry_backoff;
    let deadline = Instant::now() + shared.consumer.client().config().request_timeout;
    loop {
        let result = commit_once(shared, &offsets).await;
        match result {
            Err(error) if error.is_retriable() && Instant::now() < deadline => {
                tracing::debug!(%error, group, "commit will be retried");
                coordinator_failed(shared, &error);
                tokio::time::sleep(retry_backoff).await;
            }
            Err(error) => {
                coordinator_failed(shared, &error);
                return Err(error);
            }
            Ok(()) => return Ok(()),
        }
    }
}

async fn commit_once(
    shared: &GroupShared,
    offsets: &BTreeMap<TopicPartition, i64>,
) -> Result<(), Error> {
    let group = shared.group();
    let (generation, member_id) = {
        let state = shared.lock();
        (state.generation, state.member_id.clone())
    };
    let Some(generation) = generation else {
        return Err(Error::Broker {
            broker: format!("coordinator of group {group}"),
            what: format!(
                "committing offsets for group {group}: the member is (re)joining the group; \
                 keep polling until it has partitions, then commit again"
            ),
            code: ErrorCode::RebalanceInProgress,
            message: None,
        });
    };
    let connection = coordinator(shared).await?;
    let mut topics: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
    for ((topic, partition), offset) in offsets {
        topics
            .entry(topic)
            .or_default()
            .push(OffsetCommitRequestPartition {
                partition_index: *partition,
                committed_offset: *offset,
                committed_leader_epoch: -1,
                commit_timestamp: -1,
                committed_metadata: Some(String::new()),
                ..Default::default()
            });
    }
    let instance_id = shared.config.group_instance_id.clone();
    let build = |version: i16| {
        Ok(OffsetCommitRequest {
            group_id: group.to_string(),
            generation_id_or_member_epoch: generation,
            member_id: member_id.clone(),
            group_instance_id: if version >= 7 {
                instance_id.clone()
            } else {
                None
            },
            retention_time_ms: -1,
            topics: topics
                .iter()
                .map(|(name, partitions)| OffsetCommitRequestTopic {
                    name: name.to_string(),
                    partitions: partitions.clone(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })
    };
    let response = Client::send_versioned::<OffsetCommitRequest, _>(&connection, build).await?;
    for topic in &response.topics {
        for p in &topic.partitions {
            let code = error_code(p.error_code);
            if code == ErrorCode::None {
                continue;
            }
            match code {
                ErrorCode::UnknownMemberId
                | ErrorCode::IllegalGeneration
                | ErrorCode::RebalanceInProgress => {
                    // The partitions may have moved; the membership task finds out how.
                    shared.lock().rejoin_needed = true;
                    shared.membership_wake.notify_one();
                }
                ErrorCode::FencedInstanceId => {
                    shared
                        .lock()
                        .fatal
                        .get_or_insert(fenced(shared, &connection));
                    shared.poll_wake.notify_one();
                }
                _ => {}
            }
            let offset = offsets
                .get(&(topic.name.clone(), p.partition_index))
                .copied()
                .unwrap_or(-1);
            return Err(Error::Broker {
                broker: connection.broker().to_string(),
                what: format!(
                    "committing offset {offset} of {}-{} for group {group} (generation \
                     {generation}, member {member_id})",
                    topic.name, p.partition_index
                ),
                code,
                message: None,
            });
        }
    }
    Ok(())
}

/// The error for another member having taken this static member's instance id.
pub(super) fn fenced(shared: &GroupShared, connection: &Connection) -> Error {
    Error::Broker {
        broker: connection.broker().to_string(),
        what: format!(
            "member of group {} with group.instance.id {:?}: another consumer with the same \
             instance id took its place; give each consumer its own group.instance.id",
            shared.group(),
            shared.config.group_instance_id.as_deref().unwrap_or("")
        ),
        code: ErrorCode::FencedInstanceId,
        message: None,
    }
}

/// The group's committed offsets for `partitions`, `None` where there is none. Read with
/// the admin client's OffsetFetch, which retries while the coordinator moves or loads.
pub(super) async fn fetch_committed(
    shared: &GroupShared,
    partitions: &[TopicPartition],
) -> Result<BTreeMap<TopicPartition, Option<i64>>, Error> {
    if partitions.is_empty() {
        return Ok(BTreeMap::new());
    }
    let admin = Admin::from_client(shared.consumer.client().clone());
    let mut committed = admin
        .list_committed_offsets(shared.group(), Some(partitions))
        .await?;
    Ok(partitions
        .iter()
        .map(|tp| (tp.clone(), committed.remove(tp)))
        .collect())
}
