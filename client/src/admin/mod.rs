//! The admin client: topics, partitions (leaders and reassignments too), configs and offsets.
//!
//! Each call is one request to any broker (Spate is single-node; in a Kafka cluster any
//! broker forwards these to the controller), and results are per item, because Kafka
//! answers per topic: creating three topics where one exists is two successes and one
//! `TOPIC_ALREADY_EXISTS`, not one failure.

mod configs;
mod groups;
mod partitions;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use spate_protocol::ErrorCode;
use spate_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use spate_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use spate_protocol::messages::delete_topics_request::DeleteTopicState;
use spate_protocol::messages::{CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest};

pub use configs::{AlterConfigOp, ConfigEntry, ConfigResource};
pub use groups::{GroupDescription, GroupListing, GroupMember, PartitionLag};
pub use partitions::{ElectionType, OngoingReassignment, PartitionResults};

use crate::client::Client;
use crate::config::ClientConfig;
use crate::error::{Error, error_code};
use crate::metadata::TopicInfo;
use crate::offsets::{ListedOffset, OffsetSpec, TopicPartition, list_offsets};

/// A topic to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopic {
    pub name: String,
    /// `None`: the broker's `num.partitions`.
    pub partitions: Option<i32>,
    /// `None`: the broker's `default.replication.factor`.
    pub replication_factor: Option<i16>,
    pub configs: Vec<(String, String)>,
}

impl NewTopic {
    pub fn new(name: impl Into<String>, partitions: i32) -> Self {
        Self {
            name: name.into(),
            partitions: Some(partitions),
            replication_factor: None,
            configs: Vec::new(),
        }
    }

    pub fn config(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.configs.push((name.into(), value.into()));
        self
    }
}

/// The admin client.
#[derive(Clone)]
pub struct Admin {
    client: Client,
}

impl Admin {
    pub async fn new(config: ClientConfig) -> Result<Admin, Error> {
        Ok(Admin {
            client: Client::connect(config).await?,
        })
    }

    /// An admin client sharing `client`'s connections.
    pub fn from_client(client: Client) -> Admin {
        Admin { client }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    fn timeout_ms(&self) -> i32 {
        self.client
            .config()
            .request_timeout
            .as_millis()
            .min(i32::MAX as u128) as i32
    }

    /// Creates topics; one result per topic, in the order given.
    pub async fn create_topics(
        &self,
        topics: &[NewTopic],
    ) -> Result<Vec<(String, Result<(), Error>)>, Error> {
        let request = CreateTopicsRequest {
            topics: topics
                .iter()
                .map(|t| CreatableTopic {
                    name: t.name.clone(),
                    num_partitions: t.partitions.unwrap_or(-1),
                    replication_factor: t.replication_factor.unwrap_or(-1),
                    configs: t
                        .configs
                        .iter()
                        .map(|(name, value)| CreatableTopicConfig {
                            name: name.clone(),
                            value: Some(value.clone()),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                })
                .collect(),
            timeout_ms: self.timeout_ms(),
            validate_only: false,
            ..Default::default()
        };
        let (broker, response) = self.client.send_any_labeled(&request).await?;
        let mut answers: HashMap<String, (ErrorCode, Option<String>)> = response
            .topics
            .into_iter()
            .map(|t| (t.name, (error_code(t.error_code), t.error_message)))
            .collect();
        Ok(topics
            .iter()
            .map(|t| {
                let result = match answers.remove(&t.name) {
                    Some((ErrorCode::None, _)) => Ok(()),
                    Some((code, message)) => Err(Error::Broker {
                        broker: broker.clone(),
                        what: format!("creating topic {}", t.name),
                        code,
                        message,
                    }),
                    None => Err(missing("CreateTopics", &t.name)),
                };
                (t.name.clone(), result)
            })
            .collect())
    }

    /// Creates one topic.
    pub async fn create_topic(&self, topic: NewTopic) -> Result<(), Error> {
        first(self.create_topics(&[topic]).await?)
    }

    /// Deletes topics by name; one result per topic.
    pub async fn delete_topics(
        &self,
        names: &[&str],
    ) -> Result<Vec<(String, Result<(), Error>)>, Error> {
        let timeout_ms = self.timeout_ms();
        let build = |version: i16| {
            Ok(if version >= 6 {
                DeleteTopicsRequest {
                    topics: names
                        .iter()
                        .map(|n| DeleteTopicState {
                            name: Some(n.to_string()),
                            ..Default::default()
                        })
                        .collect(),
                    timeout_ms,
                    ..Default::default()
                }
            } else {
                DeleteTopicsRequest {
                    topic_names: names.iter().map(|n| n.to_string()).collect(),
                    timeout_ms,
                    ..Default::default()
                }
            })
        };
        let (_, response) = self
            .client
            .send_any_versioned::<DeleteTopicsRequest, DeleteTopicsRequest>(build)
            .await?;
        let mut answers: HashMap<String, (ErrorCode, Option<String>)> = response
            .responses
            .into_iter()
            .filter_map(|r| {
                r.name
                    .map(|n| (n, (error_code(r.error_code), r.error_message)))
            })
            .collect();
        Ok(names
            .iter()
            .map(|name| {
                let result = match answers.remove(*name) {
                    Some((ErrorCode::None, _)) => Ok(()),
                    Some((code, _)) => Err(Error::Topic {
                        topic: name.to_string(),
                        code,
                    }),
                    None => Err(missing("DeleteTopics", name)),
                };
                (name.to_string(), result)
            })
            .collect())
    }

    pub async fn delete_topic(&self, name: &str) -> Result<(), Error> {
        first(self.delete_topics(&[name]).await?)
    }

    /// Every topic's name, sorted; internal topics (`__consumer_offsets`) only if asked.
    pub async fn list_topics(&self, include_internal: bool) -> Result<Vec<String>, Error> {
        let metadata = self.client.refresh_all_metadata().await?;
        let mut names: Vec<String> = metadata
            .topics
            .values()
            .filter(|t| t.error == ErrorCode::None && (include_internal || !t.is_internal))
            .map(|t| t.name.clone())
            .collect();
        names.sort();
        Ok(names)
    }

    /// Partitions, leaders and replicas of the named topics.
    pub async fn describe_topics(&self, names: &[&str]) -> Result<Vec<Arc<TopicInfo>>, Error> {
        let owned: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let metadata = self.client.refresh_metadata(&owned, false).await?;
        names
            .iter()
            .map(|name| match metadata.topics.get(*name) {
                Some(info) if info.error == ErrorCode::None => Ok(info.clone()),
                Some(info) => Err(Error::Topic {
                    topic: name.to_string(),
                    code: info.error,
                }),
                None => Err(Error::Topic {
                    topic: name.to_string(),
                    code: ErrorCode::UnknownTopicOrPartition,
                }),
            })
            .collect()
    }

    /// Grows `topic` to `total_count` partitions (Kafka never shrinks a topic).
    pub async fn create_partitions(&self, topic: &str, total_count: i32) -> Result<(), Error> {
        let request = CreatePartitionsRequest {
            topics: vec![CreatePartitionsTopic {
                name: topic.to_string(),
                count: total_count,
                assignments: None,
                ..Default::default()
            }],
            timeout_ms: self.timeout_ms(),
            validate_only: false,
            ..Default::default()
        };
        let (broker, response) = self.client.send_any_labeled(&request).await?;
        let Some(result) = response.results.into_iter().find(|r| r.name == topic) else {
            return Err(missing("CreatePartitions", topic));
        };
        match error_code(result.error_code) {
            ErrorCode::None => Ok(()),
            code => Err(Error::Broker {
                broker,
                what: format!("growing topic {topic} to {total_count} partitions"),
                code,
                message: result.error_message,
            }),
        }
    }

    /// Offsets at the beginning, end, or a timestamp, per partition.
    pub async fn list_offsets(
        &self,
        lookups: &[(TopicPartition, OffsetSpec)],
    ) -> Result<HashMap<TopicPartition, Result<ListedOffset, Error>>, Error> {
        list_offsets(&self.client, lookups).await
    }

    /// Waits until `topic` has a leader for every partition (a new topic takes a moment).
    pub async fn wait_for_topic(
        &self,
        topic: &str,
        max_wait: Duration,
    ) -> Result<Arc<TopicInfo>, Error> {
        self.client.topic_info(topic, false, max_wait).await
    }
}

fn missing(api: &str, name: &str) -> Error {
    Error::Protocol {
        broker: "cluster".into(),
        reason: format!("{api} response left out {name}"),
    }
}

fn first(mut results: Vec<(String, Result<(), Error>)>) -> Result<(), Error> {
    match results.pop() {
        Some((_, result)) => result,
        None => Err(missing("admin", "the only item")),
    }
}
