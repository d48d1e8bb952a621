//! The client's view of the cluster: brokers, topics, partitions and their leaders.
//!
//! Built from Metadata responses and replaced wholesale per topic on each refresh, so a
//! reader always sees one consistent answer for a topic. Readers take an `Arc` snapshot and
//! never hold a lock across an await.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use spate_protocol::messages::MetadataResponse;
use spate_protocol::{ErrorCode, Uuid};

use crate::error::error_code;

/// A broker as the cluster advertises it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    pub node_id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

impl BrokerInfo {
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// One partition's leadership, as last reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    pub partition: i32,
    /// -1 while no leader is known (an election is in progress).
    pub leader_id: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub error: ErrorCode,
}

/// One topic, as last reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    pub name: String,
    pub topic_id: Uuid,
    pub is_internal: bool,
    /// Sorted by partition index; index `i` holds partition `i` when the broker reported all.
    pub partitions: Vec<PartitionInfo>,
    /// How many partitions have no leader right now; counted once per metadata answer so
    /// that the per-record check "is this topic usable" does not walk every partition.
    pub leaderless_partitions: usize,
    /// `NONE`, or why the topic could not be described (e.g. `UNKNOWN_TOPIC_OR_PARTITION`).
    pub error: ErrorCode,
}

impl TopicInfo {
    pub fn partition(&self, partition: i32) -> Option<&PartitionInfo> {
        self.partitions
            .binary_search_by_key(&partition, |p| p.partition)
            .ok()
            .and_then(|index| self.partitions.get(index))
    }
}

/// A snapshot of the cluster.
#[derive(Debug, Clone, Default)]
pub struct ClusterMetadata {
    pub cluster_id: Option<String>,
    pub controller_id: i32,
    pub brokers: HashMap<i32, BrokerInfo>,
    /// Shared, so that a snapshot or a lookup (one per produced record) copies a pointer,
    /// not a topic's partition list.
    pub topics: HashMap<String, Arc<TopicInfo>>,
    /// When each topic was last described; drives `metadata.max.age.ms`.
    pub topic_refreshed_at: HashMap<String, Instant>,
}

impl ClusterMetadata {
    /// A new snapshot: this one with the response's brokers and topics laid over it.
    ///
    /// Brokers are replaced (the response lists them all). Topics the response does not
    /// mention are kept, since a Metadata request usually asks about only a few, unless
    /// `all_topics` says the request asked for every topic: then they are gone.
    pub fn merged(
        &self,
        response: &MetadataResponse,
        now: Instant,
        all_topics: bool,
    ) -> ClusterMetadata {
        let mut next = self.clone();
        if all_topics {
            next.topics.clear();
            next.topic_refreshed_at.clear();
        }
        next.cluster_id = response.cluster_id.clone();
        next.controller_id = response.controller_id;
        if !response.brokers.is_empty() {
            next.brokers = response
                .brokers
                .iter()
                .map(|b| {
                    let info = BrokerInfo {
                        node_id: b.node_id,
                        host: b.host.clone(),
                        port: b.port,
                        rack: b.rack.clone(),
                    };
                    (b.node_id, info)
                })
                .collect();
        }
        for topic in &response.topics {
            let Some(name) = topic.name.clone() else {
                continue;
            };
            let mut partitions: Vec<PartitionInfo> = topic
                .partitions
                .iter()
                .map(|p| PartitionInfo {
                    partition: p.partition_index,
                    leader_id: p.leader_id,
                    leader_epoch: p.leader_epoch,
                    replicas: p.replica_nodes.clone(),
                    isr: p.isr_nodes.clone(),
                    error: error_code(p.error_code),
                })
                .collect();
            partitions.sort_by_key(|p| p.partition);
            let leaderless_partitions = partitions.iter().filter(|p| p.leader_id < 0).count();
            next.topic_refreshed_at.insert(name.clone(), now);
            next.topics.insert(
                name.clone(),
                Arc::new(TopicInfo {
                    name,
                    topic_id: topic.topic_id,
                    is_internal: topic.is_internal,
                    partitions,
                    leaderless_partitions,
                    error: error_code(topic.error_code),
                }),
            );
        }
        next
    }

    /// The topic name for a topic id (Fetch v13+ answers by id).
    pub fn topic_name(&self, topic_id: Uuid) -> Option<&str> {
        self.topics
            .values()
            .find(|t| t.topic_id == topic_id && topic_id != Uuid::ZERO)
            .map(|t| t.name.as_str())
    }

    /// The leader's node id for a partition, when one is known.
    pub fn leader(&self, topic: &str, partition: i32) -> Option<i32> {
        let leader = self.topics.get(topic)?.partition(partition)?.leader_id;
        (leader >= 0).then_some(leader)
    }

    /// The label errors use for a node: `node 1 at host:port`.
    pub fn broker_label(&self, node_id: i32) -> String {
        match self.brokers.get(&node_id) {
            Some(b) => format!("node {node_id} at {}", b.address()),
            None => format!("node {node_id}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use spate_protocol::messages::metadata_response::{
        MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
    };

    use super::*;

    fn topic(name: &str, leaders: &[i32], id: u64) -> MetadataResponseTopic {
        MetadataResponseTopic {
            name: Some(name.into()),
            topic_id: Uuid::from_u64_pair(0, id),
            partitions: leaders
                .iter()
                .enumerate()
                .rev()
                .map(|(index, leader)| MetadataResponsePartition {
                    partition_index: index as i32,
                    leader_id: *leader,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    fn response(topics: Vec<MetadataResponseTopic>) -> MetadataResponse {
        MetadataResponse {
            brokers: vec![MetadataResponseBroker {
                node_id: 1,
                host: "h".into(),
                port: 9092,
                ..Default::default()
            }],
            topics,
            ..Default::default()
        }
    }

    #[test]
    fn partial_answers_keep_other_topics_and_full_answers_replace_them() {
        let now = Instant::now();
        let first =
            ClusterMetadata::default().merged(&response(vec![topic("a", &[1, -1], 7)]), now, false);
        assert_eq!(first.leader("a", 0), Some(1));
        assert_eq!(first.leader("a", 1), None, "no leader during an election");
        assert_eq!(
            first.topics["a"].partitions[1].partition, 1,
            "sorted by index"
        );
        assert_eq!(first.topic_name(Uuid::from_u64_pair(0, 7)), Some("a"));
        assert_eq!(first.broker_label(1), "node 1 at h:9092");

        let second = first.merged(&response(vec![topic("b", &[1], 8)]), now, false);
        assert!(second.topics.contains_key("a") && second.topics.contains_key("b"));
        let full = second.merged(&response(vec![topic("b", &[1], 8)]), now, true);
        assert!(
            !full.topics.contains_key("a"),
            "a full listing drops deleted topics"
        );
        assert_eq!(full.topic_name(Uuid::ZERO), None);
    }
}
