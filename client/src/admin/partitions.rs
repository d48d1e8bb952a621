//! Leaders and replica placement of existing partitions: ElectLeaders (KIP-460),
//! AlterPartitionReassignments and ListPartitionReassignments (KIP-455).
//!
//! Any broker takes these (it forwards the changes to the active controller), and the
//! answers are per partition, like the topic calls: electing three partitions where one
//! already has its preferred leader is two successes and one `ELECTION_NOT_NEEDED`.

use std::collections::BTreeMap;

use spate_protocol::ErrorCode;
use spate_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use spate_protocol::messages::elect_leaders_request::TopicPartitions;
use spate_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsTopics;
use spate_protocol::messages::{
    AlterPartitionReassignmentsRequest, ElectLeadersRequest, ListPartitionReassignmentsRequest,
};

use super::Admin;
use crate::error::{Error, error_code};
use crate::offsets::TopicPartition;

/// Which leader an election picks (Kafka's `ElectionType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElectionType {
    /// The first replica in assignment order, if it is live and in the ISR.
    Preferred,
    /// For a leaderless partition, any live replica, even one outside the ISR: records the
    /// old ISR acknowledged may be lost.
    Unclean,
}

impl ElectionType {
    fn wire(self) -> i8 {
        match self {
            ElectionType::Preferred => 0,
            ElectionType::Unclean => 1,
        }
    }
}

/// One partition's reassignment under way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OngoingReassignment {
    pub topic: String,
    pub partition: i32,
    /// Every replica the partition has while it moves: the target ones first.
    pub replicas: Vec<i32>,
    /// Replicas being added (catching up, not yet all in the ISR).
    pub adding_replicas: Vec<i32>,
    /// Replicas that leave once every adding replica is in the ISR.
    pub removing_replicas: Vec<i32>,
}

/// Per-partition results, in the order the broker answered.
pub type PartitionResults = Vec<(TopicPartition, Result<(), Error>)>;

impl Admin {
    /// Elects leaders for `partitions` (`None`: every partition that needs an election; the
    /// answer then lists only those). A partition that already has the leader asked for
    /// answers `ELECTION_NOT_NEEDED`.
    pub async fn elect_leaders(
        &self,
        election: ElectionType,
        partitions: Option<&[TopicPartition]>,
    ) -> Result<PartitionResults, Error> {
        let request = ElectLeadersRequest {
            election_type: election.wire(),
            topic_partitions: partitions.map(|list| {
                group_by_topic(list)
                    .into_iter()
                    .map(|(topic, partitions)| TopicPartitions {
                        topic,
                        partitions,
                        ..Default::default()
                    })
                    .collect()
            }),
            timeout_ms: self.timeout_ms(),
            ..Default::default()
        };
        let (broker, response) = self.client.send_any_labeled(&request).await?;
        if response.error_code != 0 {
            return Err(Error::Broker {
                broker,
                what: "electing leaders".to_owned(),
                code: error_code(response.error_code),
                message: first_message(
                    response
                        .replica_election_results
                        .iter()
                        .flat_map(|t| t.partition_result.iter())
                        .map(|p| &p.error_message),
                ),
            });
        }
        Ok(response
            .replica_election_results
            .into_iter()
            .flat_map(|topic| {
                let broker = broker.clone();
                topic.partition_result.into_iter().map(move |p| {
                    let tp = (topic.topic.clone(), p.partition_id);
                    let result = check(
                        &broker,
                        format!("electing a leader for {}-{}", tp.0, tp.1),
                        p.error_code,
                        p.error_message,
                    );
                    (tp, result)
                })
            })
            .collect())
    }

    /// Starts (`Some(replicas)`) or cancels (`None`) the reassignment of each partition. The
    /// answer means accepted, not done: [`Admin::list_partition_reassignments`] shows the
    /// moves until they complete.
    pub async fn alter_partition_reassignments(
        &self,
        changes: &[(TopicPartition, Option<Vec<i32>>)],
    ) -> Result<PartitionResults, Error> {
        let mut topics: Vec<ReassignableTopic> = Vec::new();
        for ((topic, partition), replicas) in changes {
            let entry = ReassignablePartition {
                partition_index: *partition,
                replicas: replicas.clone(),
                ..Default::default()
            };
            match topics.iter_mut().find(|t| t.name == *topic) {
                Some(t) => t.partitions.push(entry),
                None => topics.push(ReassignableTopic {
                    name: topic.clone(),
                    partitions: vec![entry],
                    ..Default::default()
                }),
            }
        }
        let request = AlterPartitionReassignmentsRequest {
            timeout_ms: self.timeout_ms(),
            topics,
            ..Default::default()
        };
        let (broker, response) = self.client.send_any_labeled(&request).await?;
        if response.error_code != 0 {
            return Err(Error::Broker {
                broker,
                what: "changing partition reassignments".to_owned(),
                code: error_code(response.error_code),
                message: response.error_message,
            });
        }
        let cancels = |tp: &TopicPartition| {
            changes
                .iter()
                .any(|(changed, replicas)| changed == tp && replicas.is_none())
        };
        Ok(response
            .responses
            .into_iter()
            .flat_map(|topic| {
                topic.partitions.into_iter().map(move |p| {
                    let tp = (topic.name.clone(), p.partition_index);
                    (tp, p)
                })
            })
            .map(|(tp, p)| {
                let what = if cancels(&tp) {
                    format!("cancelling the reassignment of {}-{}", tp.0, tp.1)
                } else {
                    format!("reassigning {}-{}", tp.0, tp.1)
                };
                let result = check(&broker, what, p.error_code, p.error_message);
                (tp, result)
            })
            .collect())
    }

    /// The reassignments under way among `partitions` (`None`: all of them), sorted by topic
    /// and partition.
    pub async fn list_partition_reassignments(
        &self,
        partitions: Option<&[TopicPartition]>,
    ) -> Result<Vec<OngoingReassignment>, Error> {
        let request = ListPartitionReassignmentsRequest {
            timeout_ms: self.timeout_ms(),
            topics: partitions.map(|list| {
                group_by_topic(list)
                    .into_iter()
                    .map(
                        |(name, partition_indexes)| ListPartitionReassignmentsTopics {
                            name,
                            partition_indexes,
                            ..Default::default()
                        },
                    )
                    .collect()
            }),
            ..Default::default()
        };
        let (broker, response) = self.client.send_any_labeled(&request).await?;
        if response.error_code != 0 {
            return Err(Error::Broker {
                broker,
                what: "listing partition reassignments".to_owned(),
                code: error_code(response.error_code),
                message: response.error_message,
            });
        }
        let mut ongoing: Vec<OngoingReassignment> = response
            .topics
            .into_iter()
            .flat_map(|topic| {
                topic
                    .partitions
                    .into_iter()
                    .map(move |p| OngoingReassignment {
                        topic: topic.name.clone(),
                        partition: p.partition_index,
                        replicas: p.replicas,
                        adding_replicas: p.adding_replicas,
                        removing_replicas: p.removing_replicas,
                    })
            })
            .collect();
        ongoing.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        Ok(ongoing)
    }
}

/// Partitions grouped by topic (topics sorted, partitions in the order given).
fn group_by_topic(partitions: &[TopicPartition]) -> BTreeMap<String, Vec<i32>> {
    let mut topics: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for (topic, partition) in partitions {
        topics.entry(topic.clone()).or_default().push(*partition);
    }
    topics
}

fn check(broker: &str, what: String, code: i16, message: Option<String>) -> Result<(), Error> {
    match error_code(code) {
        ErrorCode::None => Ok(()),
        code => Err(Error::Broker {
            broker: broker.to_owned(),
            what,
            code,
            message,
        }),
    }
}

fn first_message<'a>(messages: impl Iterator<Item = &'a Option<String>>) -> Option<String> {
    messages.flatten().next().cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_grouped_by_topic() {
        let grouped = group_by_topic(&[
            ("b".to_owned(), 2),
            ("a".to_owned(), 1),
            ("b".to_owned(), 0),
        ]);
        assert_eq!(
            grouped.into_iter().collect::<Vec<_>>(),
            vec![("a".to_owned(), vec![1]), ("b".to_owned(), vec![2, 0])]
        );
    }
}
