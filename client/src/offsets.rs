//! ListOffsets: the offset of the first record at or after a timestamp, or of a partition's
//! beginning or end. Shared by the consumer's seeks and resets and the admin client.

use std::collections::{BTreeMap, HashMap};

use spate_protocol::ErrorCode;
use spate_protocol::messages::ListOffsetsRequest;
use spate_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};

use crate::client::Client;
use crate::error::{Error, error_code};

/// Kafka's special timestamps for ListOffsets.
pub const EARLIEST_TIMESTAMP: i64 = -2;
pub const LATEST_TIMESTAMP: i64 = -1;

/// Which offset to look up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    /// The log start offset.
    Earliest,
    /// The log end offset (high watermark): the offset the next record will get.
    Latest,
    /// The first offset whose record timestamp is at or after this (ms since the epoch).
    Timestamp(i64),
}

impl OffsetSpec {
    fn wire(self) -> i64 {
        match self {
            OffsetSpec::Earliest => EARLIEST_TIMESTAMP,
            OffsetSpec::Latest => LATEST_TIMESTAMP,
            OffsetSpec::Timestamp(ms) => ms,
        }
    }
}

/// An answer to one lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListedOffset {
    /// -1 when a timestamp lookup found no record at or after the timestamp.
    pub offset: i64,
    pub timestamp_ms: i64,
}

pub type TopicPartition = (String, i32);

/// One leader's share of a lookup. Every field is valid at every version the client sends
/// (`timeout_ms` exists from v10 and is ignorable before).
fn list_offsets_request(
    entries: &[(TopicPartition, OffsetSpec)],
    timeout_ms: i32,
) -> ListOffsetsRequest {
    let mut topics: BTreeMap<String, Vec<ListOffsetsPartition>> = BTreeMap::new();
    for ((topic, partition), spec) in entries {
        topics
            .entry(topic.clone())
            .or_default()
            .push(ListOffsetsPartition {
                partition_index: *partition,
                current_leader_epoch: -1,
                timestamp: spec.wire(),
                ..Default::default()
            });
    }
    ListOffsetsRequest {
        replica_id: -1,
        isolation_level: 0,
        topics: topics
            .into_iter()
            .map(|(name, partitions)| ListOffsetsTopic {
                name,
                partitions,
                ..Default::default()
            })
            .collect(),
        timeout_ms,
        ..Default::default()
    }
}

/// Looks up every `(partition, spec)` at the partitions' leaders. Each partition gets its
/// own result, so one missing partition does not hide the others' answers.
pub async fn list_offsets(
    client: &Client,
    lookups: &[(TopicPartition, OffsetSpec)],
) -> Result<HashMap<TopicPartition, Result<ListedOffset, Error>>, Error> {
    let mut results = HashMap::new();
    let mut by_leader: BTreeMap<i32, Vec<(TopicPartition, OffsetSpec)>> = BTreeMap::new();
    let topics: Vec<String> = {
        let mut names: Vec<String> = lookups.iter().map(|((t, _), _)| t.clone()).collect();
        names.sort();
        names.dedup();
        names
    };
    let metadata = client.refresh_metadata(&topics, false).await?;
    for (tp, spec) in lookups {
        match metadata.leader(&tp.0, tp.1) {
            Some(leader) => by_leader
                .entry(leader)
                .or_default()
                .push((tp.clone(), *spec)),
            None => {
                let code = match metadata.topics.get(&tp.0) {
                    Some(topic) if topic.error != ErrorCode::None => topic.error,
                    Some(topic) if topic.partition(tp.1).is_some() => ErrorCode::LeaderNotAvailable,
                    _ => ErrorCode::UnknownTopicOrPartition,
                };
                let error = Error::Partition {
                    topic: tp.0.clone(),
                    partition: tp.1,
                    code,
                };
                results.insert(tp.clone(), Err(error));
            }
        }
    }
    for (leader, entries) in by_leader {
        let timeout_ms = client
            .config()
            .request_timeout
            .as_millis()
            .min(i32::MAX as u128) as i32;
        let request = list_offsets_request(&entries, timeout_ms);
        let response = match client.send_to_node(leader, &request).await {
            Ok(response) => response,
            Err(error) => {
                for (tp, _) in entries {
                    results.insert(tp, Err(error.clone()));
                }
                continue;
            }
        };
        for (tp, _) in entries {
            let answer = response
                .topics
                .iter()
                .filter(|t| t.name == tp.0)
                .flat_map(|t| t.partitions.iter())
                .find(|p| p.partition_index == tp.1);
            let result = match answer {
                None => Err(Error::Protocol {
                    broker: metadata.broker_label(leader),
                    reason: format!("ListOffsets response left out {}-{}", tp.0, tp.1),
                }),
                Some(p) if error_code(p.error_code) != ErrorCode::None => Err(Error::Partition {
                    topic: tp.0.clone(),
                    partition: tp.1,
                    code: error_code(p.error_code),
                }),
                Some(p) => Ok(ListedOffset {
                    offset: p.offset,
                    timestamp_ms: p.timestamp,
                }),
            };
            results.insert(tp, result);
        }
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    use spate_protocol::Encode;

    use super::*;
    use crate::connection::Request;

    #[test]
    fn list_offsets_request_encodes_at_every_client_version() {
        let entries = vec![
            (("t".to_string(), 0), OffsetSpec::Earliest),
            (("t".to_string(), 1), OffsetSpec::Timestamp(5)),
        ];
        let request = list_offsets_request(&entries, 30_000);
        assert_eq!(
            request.topics[0].partitions[0].timestamp,
            EARLIEST_TIMESTAMP
        );
        for version in ListOffsetsRequest::CLIENT_VERSIONS {
            assert!(request.encoded_len(version).is_ok(), "v{version}");
        }
    }
}
