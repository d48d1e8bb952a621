//! Group admin calls: list, describe and delete groups, read and overwrite committed
//! offsets, and lag.
//!
//! Everything about one group goes to its coordinator, found with FindCoordinator. Offsets
//! are written as Kafka's admin client writes them: OffsetCommit with generation -1 and no
//! member id, which a coordinator accepts only while the group has no active members (so a
//! reset cannot fight a running consumer).

use std::collections::BTreeMap;
use std::time::Instant;

use bytes::{Buf, Bytes};
use spate_protocol::ErrorCode;
use spate_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use spate_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use spate_protocol::messages::{
    DeleteGroupsRequest, DescribeGroupsRequest, ListGroupsRequest, OffsetCommitRequest,
    OffsetFetchRequest,
};

use super::Admin;
use crate::client::Client;
use crate::connection::Connection;
use crate::error::{Error, error_code};
use crate::offsets::{OffsetSpec, TopicPartition, list_offsets};

/// A group as ListGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    pub group_id: String,
    pub protocol_type: String,
    /// Empty from brokers older than ListGroups v4.
    pub state: String,
}

/// One member of a described group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// Decoded from the consumer protocol's assignment; empty for other protocol types.
    pub assignment: Vec<TopicPartition>,
}

/// A group as DescribeGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub group_id: String,
    pub state: String,
    pub protocol_type: String,
    /// The assignor in use, e.g. `range` or `cooperative-sticky`.
    pub protocol: String,
    pub members: Vec<GroupMember>,
}

/// How far a group's committed offset trails the end of one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionLag {
    pub committed: i64,
    pub log_end: i64,
    pub lag: i64,
}

impl Admin {
    /// A connection to `group`'s coordinator. Retries while the coordinator is loading or
    /// not yet available, for up to `request.timeout.ms`.
    async fn coordinator(&self, group: &str) -> Result<Connection, Error> {
        let found = self.client.find_group_coordinator(group).await?;
        self.client
            .connection_to(&found.address, &found.label)
            .await
    }

    /// Runs `call` against the group's coordinator, finding it again and retrying after
    /// `retry.backoff.ms` while the answer is retriable (the coordinator is loading, moved,
    /// or its `__consumer_offsets` partition is still being created), for up to
    /// `request.timeout.ms`.
    async fn at_coordinator<T, F, Fut>(&self, group: &str, call: F) -> Result<T, Error>
    where
        F: Fn(Connection) -> Fut,
        Fut: std::future::Future<Output = Result<T, Error>>,
    {
        let deadline = Instant::now() + self.client.config().request_timeout;
        loop {
            let result = match self.coordinator(group).await {
                Ok(connection) => call(connection).await,
                Err(error) => Err(error),
            };
            match result {
                Err(error) if error.is_retriable() && Instant::now() < deadline => {
                    tracing::debug!(%error, group, "group call will be retried");
                    tokio::time::sleep(self.client.config().retry_backoff).await;
                }
                other => return other,
            }
        }
    }

    /// Every group on every broker, sorted by id.
    pub async fn list_groups(&self) -> Result<Vec<GroupListing>, Error> {
        let metadata = self.client.refresh_metadata(&[], false).await?;
        let mut groups = Vec::new();
        let mut node_ids: Vec<i32> = metadata.brokers.keys().copied().collect();
        node_ids.sort();
        for node_id in node_ids {
            let response = self
                .client
                .send_to_node(node_id, &ListGroupsRequest::default())
                .await?;
            let code = error_code(response.error_code);
            if code != ErrorCode::None {
                return Err(Error::Broker {
                    broker: metadata.broker_label(node_id),
                    what: "listing groups".into(),
                    code,
                    message: None,
                });
            }
            groups.extend(response.groups.into_iter().map(|g| GroupListing {
                group_id: g.group_id,
                protocol_type: g.protocol_type,
                state: g.group_state,
            }));
        }
        groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        Ok(groups)
    }

    /// State, assignor and members (with their partitions) of one group.
    pub async fn describe_group(&self, group: &str) -> Result<GroupDescription, Error> {
        let request = DescribeGroupsRequest {
            groups: vec![group.to_string()],
            ..Default::default()
        };
        let request = &request;
        self.at_coordinator(group, |connection| async move {
            let response = connection.send(request).await?;
            let Some(described) = response.groups.into_iter().find(|g| g.group_id == group) else {
                return Err(missing_group("DescribeGroups", connection.broker(), group));
            };
            let code = error_code(described.error_code);
            if code != ErrorCode::None {
                return Err(Error::Broker {
                    broker: connection.broker().to_string(),
                    what: format!("describing group {group}"),
                    code,
                    message: None,
                });
            }
            let consumer = described.protocol_type == "consumer";
            Ok(GroupDescription {
                group_id: described.group_id,
                state: described.group_state,
                protocol_type: described.protocol_type,
                protocol: described.protocol_data,
                members: described
                    .members
                    .into_iter()
                    .map(|m| GroupMember {
                        assignment: if consumer {
                            parse_assignment(m.member_assignment).unwrap_or_default()
                        } else {
                            Vec::new()
                        },
                        member_id: m.member_id,
                        group_instance_id: m.group_instance_id,
                        client_id: m.client_id,
                        client_host: m.client_host,
                    })
                    .collect(),
            })
        })
        .await
    }

    /// Deletes a group and its committed offsets; the group must have no members.
    pub async fn delete_group(&self, group: &str) -> Result<(), Error> {
        let request = DeleteGroupsRequest {
            groups_names: vec![group.to_string()],
            ..Default::default()
        };
        let request = &request;
        self.at_coordinator(group, |connection| async move {
            let response = connection.send(request).await?;
            let Some(result) = response.results.into_iter().find(|r| r.group_id == group) else {
                return Err(missing_group("DeleteGroups", connection.broker(), group));
            };
            match error_code(result.error_code) {
                ErrorCode::None => Ok(()),
                code => Err(Error::Broker {
                    broker: connection.broker().to_string(),
                    what: format!("deleting group {group}"),
                    code,
                    message: None,
                }),
            }
        })
        .await
    }

    /// The group's committed offsets (all of them when `partitions` is `None`).
    /// Partitions without a committed offset are left out.
    pub async fn list_committed_offsets(
        &self,
        group: &str,
        partitions: Option<&[TopicPartition]>,
    ) -> Result<BTreeMap<TopicPartition, i64>, Error> {
        let by_topic = partitions.map(|list| {
            let mut topics: BTreeMap<String, Vec<i32>> = BTreeMap::new();
            for (topic, partition) in list {
                topics.entry(topic.clone()).or_default().push(*partition);
            }
            topics
        });
        let build = |version: i16| {
            let mut request = OffsetFetchRequest {
                require_stable: version >= 7,
                ..Default::default()
            };
            if version >= 8 {
                use spate_protocol::messages::offset_fetch_request::OffsetFetchRequestTopics;
                request.groups = vec![OffsetFetchRequestGroup {
                    group_id: group.to_string(),
                    topics: by_topic.as_ref().map(|topics| {
                        topics
                            .iter()
                            .map(|(name, indexes)| OffsetFetchRequestTopics {
                                name: name.clone(),
                                partition_indexes: indexes.clone(),
                                ..Default::default()
                            })
                            .collect()
                    }),
                    ..Default::default()
                }];
            } else {
                use spate_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
                request.group_id = group.to_string();
                request.topics = by_topic.as_ref().map(|topics| {
                    topics
                        .iter()
                        .map(|(name, indexes)| OffsetFetchRequestTopic {
                            name: name.clone(),
                            partition_indexes: indexes.clone(),
                            ..Default::default()
                        })
                        .collect()
                });
            }
            Ok(request)
        };
        let build = &build;
        self.at_coordinator(group, |connection| async move {
            let response =
                Client::send_versioned::<OffsetFetchRequest, _>(&connection, build).await?;
            let fail = |code: ErrorCode, what: String| Error::Broker {
                broker: connection.broker().to_string(),
                what,
                code,
                message: None,
            };
            // v8+ answers per group; older versions at the top level. Either way: (topic,
            // partition, committed offset, error code).
            let (group_code, rows) = match response.groups.iter().find(|g| g.group_id == group) {
                Some(answer) => (
                    answer.error_code,
                    offset_rows(
                        &answer.topics,
                        |t| (&t.name, &t.partitions),
                        |p| (p.partition_index, p.committed_offset, p.error_code),
                    ),
                ),
                None => (
                    response.error_code,
                    offset_rows(
                        &response.topics,
                        |t| (&t.name, &t.partitions),
                        |p| (p.partition_index, p.committed_offset, p.error_code),
                    ),
                ),
            };
            let code = error_code(group_code);
            if code != ErrorCode::None {
                return Err(fail(code, format!("reading offsets of group {group}")));
            }
            let mut offsets = BTreeMap::new();
            for (topic, partition, committed, code) in rows {
                let code = error_code(code);
                if code != ErrorCode::None {
                    return Err(fail(
                        code,
                        format!("reading offset of {topic}-{partition} in group {group}"),
                    ));
                }
                if committed >= 0 {
                    offsets.insert((topic, partition), committed);
                }
            }
            Ok(offsets)
        })
        .await
    }

    /// Overwrites the group's committed offsets (for resets); the group must be empty.
    pub async fn alter_committed_offsets(
        &self,
        group: &str,
        offsets: &BTreeMap<TopicPartition, i64>,
    ) -> Result<(), Error> {
        let mut topics: BTreeMap<String, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
        for ((topic, partition), offset) in offsets {
            topics
                .entry(topic.clone())
                .or_default()
                .push(OffsetCommitRequestPartition {
                    partition_index: *partition,
                    committed_offset: *offset,
                    committed_leader_epoch: -1,
                    committed_metadata: Some(String::new()),
                    ..Default::default()
                });
        }
        let request = OffsetCommitRequest {
            group_id: group.to_string(),
            generation_id_or_member_epoch: -1,
            member_id: String::new(),
            group_instance_id: None,
            topics: topics
                .into_iter()
                .map(|(name, partitions)| OffsetCommitRequestTopic {
                    name,
                    partitions,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        let request = &request;
        self.at_coordinator(group, |connection| async move {
            let response = connection.send(request).await?;
            for topic in &response.topics {
                for p in &topic.partitions {
                    let code = error_code(p.error_code);
                    if code != ErrorCode::None {
                        return Err(Error::Broker {
                            broker: connection.broker().to_string(),
                            what: format!(
                                "committing {}-{} for group {group}",
                                topic.name, p.partition_index
                            ),
                            code,
                            message: None,
                        });
                    }
                }
            }
            Ok(())
        })
        .await
    }

    /// Per partition with a committed offset: the offset, the log end, and the difference.
    pub async fn group_lag(
        &self,
        group: &str,
    ) -> Result<BTreeMap<TopicPartition, PartitionLag>, Error> {
        let committed = self.list_committed_offsets(group, None).await?;
        let lookups: Vec<(TopicPartition, OffsetSpec)> = committed
            .keys()
            .map(|tp| (tp.clone(), OffsetSpec::Latest))
            .collect();
        let mut ends = list_offsets(&self.client, &lookups).await?;
        let mut lag = BTreeMap::new();
        for (tp, committed) in committed {
            let log_end = match ends.remove(&tp) {
                Some(Ok(listed)) => listed.offset,
                Some(Err(error)) => return Err(error),
                None => continue,
            };
            lag.insert(
                tp,
                PartitionLag {
                    committed,
                    log_end,
                    lag: (log_end - committed).max(0),
                },
            );
        }
        Ok(lag)
    }
}

fn missing_group(api: &str, broker: &str, group: &str) -> Error {
    Error::Protocol {
        broker: broker.to_string(),
        reason: format!("{api} response left out group {group}"),
    }
}

/// Reads the consumer protocol's `ConsumerProtocolAssignment` (v0-3, never flexible):
/// version, then `[topic, [partition]]`, then user data, which is ignored.
fn parse_assignment(mut bytes: Bytes) -> Option<Vec<TopicPartition>> {
    if bytes.remaining() < 2 {
        return None;
    }
    let _version = bytes.get_i16();
    if bytes.remaining() < 4 {
        return None;
    }
    let topic_count = bytes.get_i32();
    let mut out = Vec::new();
    for _ in 0..topic_count.max(0) {
        if bytes.remaining() < 2 {
            return None;
        }
        let name_len = usize::try_from(bytes.get_i16()).ok()?;
        if bytes.remaining() < name_len + 4 {
            return None;
        }
        let name = String::from_utf8(bytes.split_to(name_len).to_vec()).ok()?;
        let partition_count = usize::try_from(bytes.get_i32()).ok()?;
        if bytes.remaining() < partition_count.checked_mul(4)? {
            return None;
        }
        for _ in 0..partition_count {
            out.push((name.clone(), bytes.get_i32()));
        }
    }
    out.sort();
    Some(out)
}

/// The (topic, partition, committed offset, error code) rows of an OffsetFetch answer. The v8+
/// per-group layout and the older top-level one are different generated types with the same
/// fields, so the caller says how to reach them.
fn offset_rows<T, P>(
    topics: &[T],
    parts: impl Fn(&T) -> (&String, &Vec<P>),
    row: impl Fn(&P) -> (i32, i64, i16),
) -> Vec<(String, i32, i64, i16)> {
    let row = &row;
    topics
        .iter()
        .flat_map(|topic| {
            let (name, partitions) = parts(topic);
            partitions.iter().map(move |p| {
                let (partition, committed, code) = row(p);
                (name.clone(), partition, committed, code)
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumer_assignment_is_decoded_and_truncation_refused() {
        let mut raw = vec![
            0, 1, 0, 0, 0, 1, 0, 1, b't', 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 1,
        ];
        raw.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]); // null user data
        let parsed = parse_assignment(Bytes::from(raw.clone())).unwrap();
        assert_eq!(parsed, vec![("t".to_string(), 1), ("t".to_string(), 3)]);
        assert_eq!(parse_assignment(Bytes::from(raw[..12].to_vec())), None);
        assert_eq!(parse_assignment(Bytes::new()), None);
    }
}
