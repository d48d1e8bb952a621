//! The metadata image: the cluster as the metadata log has built it so far.
//!
//! Every node holds one. Controllers build it in their openraft state machine; brokers that
//! are not controllers build it from the records they fetch. Both run [`ClusterImage::apply`],
//! so the same log gives the same image everywhere, and a snapshot restored with
//! [`ClusterImage::from_snapshot`] gives the image the log would have.
//!
//! Cloning is cheap where it matters: topics sit behind `Arc`, so publishing a new image to
//! every core after a change copies pointers, not partitions.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::NodeId;
pub use crate::partition::PartitionState;
use crate::records::{ApplyError, Endpoint, MetadataBatch, RecordBody};
use crate::topic_id::TopicId;
use crate::topic_name::validate_topic_name;

/// Partitions one topic may have. Each is a folder with open files and a slot on a shard of
/// each replica's node, so a typo like 1,000,000 must not exhaust the cluster.
pub const PARTITION_COUNT_MAX: i32 = 10_000;
/// Replicas one partition may have. Every follower fetches from the leader; more than 32
/// copies is a typo, not a durability plan.
pub const REPLICATION_FACTOR_MAX: usize = 32;
/// Config overrides one topic may carry (Kafka defines fewer than 40 topic configs).
pub const TOPIC_CONFIGS_MAX: usize = 256;
/// Longest config name or value kept.
pub const CONFIG_TEXT_BYTES_MAX: usize = 4096;
/// Longest cluster id, host name, rack or address kept.
pub const NAME_BYTES_MAX: usize = 255;
/// Most producer ids one block may hand out.
pub const PRODUCER_ID_BLOCK_MAX: i64 = 1_000_000;

/// A registered broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerRegistration {
    pub node_id: NodeId,
    pub incarnation_id: String,
    /// The log index of its registration: changes on every restart.
    pub broker_epoch: i64,
    pub kafka: Endpoint,
    pub cluster_addr: String,
    pub rack: Option<String>,
    /// A fenced broker leads nothing and is in no new ISR; clients are not told about it.
    pub fenced: bool,
    pub in_controlled_shutdown: bool,
}

impl BrokerRegistration {
    /// Live: unfenced and not on its way out. Only live brokers get new leaderships.
    pub fn is_live(&self) -> bool {
        !self.fenced && !self.in_controlled_shutdown
    }
}

/// One topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicImage {
    pub id: TopicId,
    pub name: Arc<str>,
    pub configs: BTreeMap<String, String>,
    pub partitions: Vec<PartitionState>,
}

impl TopicImage {
    pub fn partition_count(&self) -> i32 {
        // Bounded by PARTITION_COUNT_MAX at apply.
        i32::try_from(self.partitions.len()).unwrap_or(i32::MAX)
    }

    pub fn partition(&self, index: i32) -> Option<&PartitionState> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.partitions.get(i))
    }
}

/// The whole metadata image.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClusterImage {
    cluster_id: Option<String>,
    brokers: BTreeMap<NodeId, BrokerRegistration>,
    topics: BTreeMap<Arc<str>, Arc<TopicImage>>,
    names_by_id: HashMap<TopicId, Arc<str>>,
    next_producer_id: i64,
    /// Index of the last log entry applied: the broker's "metadata offset".
    offset: u64,
}

impl ClusterImage {
    pub fn cluster_id(&self) -> Option<&str> {
        self.cluster_id.as_deref()
    }

    /// The index of the last metadata log entry this image includes.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Moves the offset forward over entries that carry no records (openraft's blank and
    /// membership entries), so a broker's reported offset covers them too.
    pub fn advance_offset(&mut self, index: u64) {
        self.offset = self.offset.max(index);
    }

    pub fn broker(&self, node_id: NodeId) -> Option<&BrokerRegistration> {
        self.brokers.get(&node_id)
    }

    /// Every registered broker, fenced or not, by id.
    pub fn brokers(&self) -> impl Iterator<Item = &BrokerRegistration> {
        self.brokers.values()
    }

    pub fn topic(&self, name: &str) -> Option<&Arc<TopicImage>> {
        self.topics.get(name)
    }

    pub fn topic_by_id(&self, id: TopicId) -> Option<&Arc<TopicImage>> {
        self.names_by_id.get(&id).and_then(|n| self.topics.get(n))
    }

    /// Every topic, by name.
    pub fn topics(&self) -> impl Iterator<Item = &Arc<TopicImage>> {
        self.topics.values()
    }

    /// Partitions across all topics.
    pub fn partition_count(&self) -> i64 {
        self.topics
            .values()
            .map(|t| i64::from(t.partition_count()))
            .sum()
    }

    /// The first producer id not yet handed out.
    pub fn next_producer_id(&self) -> i64 {
        self.next_producer_id
    }

    /// Applies one log entry's records, all or none, and moves the offset to `index`
    /// either way (a refused entry is still part of the log).
    pub fn apply(&mut self, index: u64, batch: &MetadataBatch) -> Result<(), ApplyError> {
        let mut next = self.clone();
        next.offset = index;
        let outcome = batch
            .records
            .iter()
            .try_for_each(|record| next.apply_one(index, &record.body));
        match outcome {
            Ok(()) => {
                *self = next;
                Ok(())
            }
            Err(error) => {
                self.advance_offset(index);
                Err(error)
            }
        }
    }

    fn apply_one(&mut self, index: u64, body: &RecordBody) -> Result<(), ApplyError> {
        let invalid = ApplyError::Invalid;
        match body {
            RecordBody::ClusterInit { cluster_id } => {
                check_cluster_id(cluster_id).map_err(invalid)?;
                match &self.cluster_id {
                    Some(existing) if existing != cluster_id => {
                        return Err(ApplyError::ClusterIdMismatch {
                            existing: existing.clone(),
                            found: cluster_id.clone(),
                        });
                    }
                    _ => self.cluster_id = Some(cluster_id.clone()),
                }
            }
            RecordBody::RegisterBroker {
                node_id,
                incarnation_id,
                kafka,
                cluster_addr,
                rack,
            } => {
                let registration = BrokerRegistration {
                    node_id: *node_id,
                    incarnation_id: incarnation_id.clone(),
                    broker_epoch: i64::try_from(index).unwrap_or(i64::MAX),
                    kafka: kafka.clone(),
                    cluster_addr: cluster_addr.clone(),
                    rack: rack.clone(),
                    fenced: true,
                    in_controlled_shutdown: false,
                };
                check_broker(&registration).map_err(invalid)?;
                self.brokers.insert(*node_id, registration);
            }
            RecordBody::BrokerChange {
                node_id,
                broker_epoch,
                fenced,
                in_controlled_shutdown,
            } => {
                let broker = self
                    .brokers
                    .get_mut(node_id)
                    .ok_or(ApplyError::UnknownBroker { node_id: *node_id })?;
                if broker.broker_epoch != *broker_epoch {
                    return Err(ApplyError::StaleBrokerEpoch {
                        node_id: *node_id,
                        current: broker.broker_epoch,
                        found: *broker_epoch,
                    });
                }
                if let Some(fenced) = fenced {
                    broker.fenced = *fenced;
                }
                if let Some(shutting_down) = in_controlled_shutdown {
                    broker.in_controlled_shutdown = *shutting_down;
                }
            }
            RecordBody::Topic {
                topic_id,
                name,
                configs,
            } => {
                validate_topic_name(name).map_err(|e| invalid(e.to_string()))?;
                check_configs(configs).map_err(invalid)?;
                if *topic_id == TopicId::ZERO {
                    return Err(invalid("topic id is zero".to_owned()));
                }
                if self.topics.contains_key(name.as_str()) {
                    return Err(ApplyError::TopicExists(name.clone()));
                }
                if self.names_by_id.contains_key(topic_id) {
                    return Err(ApplyError::TopicIdExists(*topic_id));
                }
                let name: Arc<str> = name.as_str().into();
                self.names_by_id.insert(*topic_id, name.clone());
                self.topics.insert(
                    name.clone(),
                    Arc::new(TopicImage {
                        id: *topic_id,
                        name,
                        configs: configs.clone(),
                        partitions: Vec::new(),
                    }),
                );
            }
            RecordBody::Partition {
                topic_id,
                partition,
                replicas,
                isr,
                leader,
                leader_epoch,
                partition_epoch,
                adding_replicas,
                removing_replicas,
                leader_recovery_state,
            } => {
                let state = PartitionState {
                    replicas: replicas.clone(),
                    isr: isr.clone(),
                    leader: *leader,
                    leader_epoch: *leader_epoch,
                    partition_epoch: *partition_epoch,
                    adding_replicas: adding_replicas.clone(),
                    removing_replicas: removing_replicas.clone(),
                    leader_recovery_state: *leader_recovery_state,
                };
                state
                    .check()
                    .map_err(|e| invalid(format!("partition {partition} of {topic_id}: {e}")))?;
                let topic = self.topic_mut(*topic_id)?;
                if i64::from(*partition) != topic.partitions.len() as i64 {
                    return Err(invalid(format!(
                        "partition {partition} of {topic_id} is created out of order (next is {})",
                        topic.partitions.len()
                    )));
                }
                if topic.partitions.len() >= PARTITION_COUNT_MAX as usize {
                    return Err(invalid(format!(
                        "topic {topic_id} would have more than {PARTITION_COUNT_MAX} partitions"
                    )));
                }
                topic.partitions.push(state);
            }
            RecordBody::PartitionChange {
                topic_id,
                partition,
                expected_partition_epoch,
                leader,
                isr,
                replicas,
                adding_replicas,
                removing_replicas,
                leader_recovery_state,
            } => {
                let topic = self.topic_mut(*topic_id)?;
                let current = usize::try_from(*partition)
                    .ok()
                    .and_then(|i| topic.partitions.get_mut(i))
                    .ok_or(ApplyError::UnknownPartition {
                        topic_id: *topic_id,
                        partition: *partition,
                    })?;
                if current.partition_epoch != *expected_partition_epoch {
                    return Err(ApplyError::StalePartitionEpoch {
                        topic_id: *topic_id,
                        partition: *partition,
                        current: current.partition_epoch,
                        expected: *expected_partition_epoch,
                    });
                }
                let mut next = current.clone();
                if let Some(replicas) = replicas {
                    next.replicas = replicas.clone();
                }
                if let Some(isr) = isr {
                    next.isr = isr.clone();
                }
                if let Some(leader) = leader {
                    next.leader = *leader;
                }
                if let Some(adding) = adding_replicas {
                    next.adding_replicas = adding.clone();
                }
                if let Some(removing) = removing_replicas {
                    next.removing_replicas = removing.clone();
                }
                if let Some(state) = leader_recovery_state {
                    next.leader_recovery_state = *state;
                }
                // A removed replica must be fenced out of fetching: the leader epoch bumps
                // with it, as with a new leader (Kafka's PartitionChangeBuilder, KIP-455).
                let replica_removed = current.replicas.iter().any(|r| !next.replicas.contains(r));
                if next.leader != current.leader || replica_removed {
                    next.leader_epoch = bump(current.leader_epoch)?;
                }
                next.partition_epoch = bump(current.partition_epoch)?;
                next.check()
                    .map_err(|e| invalid(format!("partition {partition} of {topic_id}: {e}")))?;
                *current = next;
            }
            RecordBody::TopicConfigs { topic_id, configs } => {
                check_configs(configs).map_err(invalid)?;
                self.topic_mut(*topic_id)?.configs = configs.clone();
            }
            RecordBody::RemoveTopic { topic_id } => {
                let name = self
                    .names_by_id
                    .remove(topic_id)
                    .ok_or(ApplyError::UnknownTopic(*topic_id))?;
                self.topics.remove(&name);
            }
            RecordBody::ProducerIds {
                node_id,
                first,
                count,
            } => {
                if *node_id < 0 || !(1..=PRODUCER_ID_BLOCK_MAX).contains(count) {
                    return Err(invalid(format!(
                        "producer id block of {count} for node {node_id}"
                    )));
                }
                if *first != self.next_producer_id {
                    return Err(ApplyError::ProducerIdGap {
                        expected: self.next_producer_id,
                        found: *first,
                    });
                }
                self.next_producer_id = first
                    .checked_add(*count)
                    .ok_or_else(|| invalid("producer ids are exhausted".to_owned()))?;
            }
        }
        Ok(())
    }

    fn topic_mut(&mut self, id: TopicId) -> Result<&mut TopicImage, ApplyError> {
        let name = self
            .names_by_id
            .get(&id)
            .ok_or(ApplyError::UnknownTopic(id))?;
        let topic = self
            .topics
            .get_mut(name)
            .ok_or(ApplyError::UnknownTopic(id))?;
        Ok(Arc::make_mut(topic))
    }

    /// The image as a snapshot: everything needed to rebuild it without the log.
    pub fn to_snapshot(&self) -> Vec<u8> {
        let snapshot = ImageSnapshot {
            v: SNAPSHOT_VERSION,
            offset: self.offset,
            cluster_id: self.cluster_id.clone(),
            brokers: self.brokers.values().cloned().collect(),
            topics: self.topics.values().map(|t| TopicImage::clone(t)).collect(),
            next_producer_id: self.next_producer_id,
        };
        // Plain data with string keys always serializes.
        serde_json::to_vec(&snapshot).unwrap_or_default()
    }

    /// Rebuilds an image from [`ClusterImage::to_snapshot`]'s bytes, checking every invariant
    /// `apply` keeps: damaged or hostile bytes are an error, never a panic or a bad image.
    pub fn from_snapshot(bytes: &[u8]) -> Result<Self, ApplyError> {
        let snapshot: ImageSnapshot = serde_json::from_slice(bytes)
            .map_err(|e| ApplyError::Invalid(format!("metadata snapshot: {e}")))?;
        if !SNAPSHOT_VERSIONS_READ.contains(&snapshot.v) {
            return Err(ApplyError::Invalid(format!(
                "metadata snapshot version {} (this build reads 1 to {SNAPSHOT_VERSION})",
                snapshot.v
            )));
        }
        let invalid = |e: String| ApplyError::Invalid(format!("metadata snapshot: {e}"));
        let mut image = ClusterImage {
            cluster_id: snapshot.cluster_id,
            offset: snapshot.offset,
            next_producer_id: snapshot.next_producer_id,
            ..ClusterImage::default()
        };
        if let Some(id) = &image.cluster_id {
            check_cluster_id(id).map_err(invalid)?;
        }
        if image.next_producer_id < 0 {
            return Err(invalid("negative next producer id".to_owned()));
        }
        for broker in snapshot.brokers {
            check_broker(&broker).map_err(invalid)?;
            if image.brokers.insert(broker.node_id, broker).is_some() {
                return Err(invalid("a broker is listed twice".to_owned()));
            }
        }
        for topic in snapshot.topics {
            validate_topic_name(&topic.name).map_err(|e| invalid(e.to_string()))?;
            check_configs(&topic.configs).map_err(invalid)?;
            if topic.partitions.len() > PARTITION_COUNT_MAX as usize {
                return Err(invalid(format!(
                    "topic '{}' has too many partitions",
                    topic.name
                )));
            }
            for partition in &topic.partitions {
                partition
                    .check()
                    .map_err(|e| invalid(format!("topic '{}': {e}", topic.name)))?;
            }
            if topic.id == TopicId::ZERO
                || image.names_by_id.contains_key(&topic.id)
                || image.topics.contains_key(&topic.name)
            {
                return Err(invalid(format!("topic '{}' is listed twice", topic.name)));
            }
            image.names_by_id.insert(topic.id, topic.name.clone());
            image.topics.insert(topic.name.clone(), Arc::new(topic));
        }
        Ok(image)
    }
}

/// Version 2 added the partitions' reassignment sets and leader recovery state; both are
/// optional in the bytes, so version 1 snapshots still restore.
const SNAPSHOT_VERSION: u16 = 2;
const SNAPSHOT_VERSIONS_READ: std::ops::RangeInclusive<u16> = 1..=SNAPSHOT_VERSION;

#[derive(Serialize, Deserialize)]
struct ImageSnapshot {
    v: u16,
    offset: u64,
    cluster_id: Option<String>,
    brokers: Vec<BrokerRegistration>,
    topics: Vec<TopicImage>,
    next_producer_id: i64,
}

fn bump(epoch: i32) -> Result<i32, ApplyError> {
    epoch
        .checked_add(1)
        .ok_or_else(|| ApplyError::Invalid("epoch overflow".to_owned()))
}

/// Cluster ids are what Kafka generates (base64url of a UUID) or what an operator picks:
/// letters, digits, `-` and `_`, at most 64.
pub fn check_cluster_id(id: &str) -> Result<(), String> {
    let legal = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
    if id.is_empty() || id.len() > 64 || !id.bytes().all(legal) {
        return Err(format!(
            "cluster id '{id}' must be 1 to 64 letters, digits, '-' or '_'"
        ));
    }
    Ok(())
}

fn check_broker(broker: &BrokerRegistration) -> Result<(), String> {
    let id = broker.node_id;
    if id < 0 {
        return Err(format!("broker id {id} is negative"));
    }
    let too_long = |s: &str| s.is_empty() || s.len() > NAME_BYTES_MAX;
    if too_long(&broker.kafka.host) || too_long(&broker.cluster_addr) {
        return Err(format!("broker {id} has an empty or overlong address"));
    }
    if broker.incarnation_id.len() > NAME_BYTES_MAX {
        return Err(format!("broker {id} has an overlong incarnation id"));
    }
    if broker.rack.as_deref().is_some_and(too_long) {
        return Err(format!("broker {id} has an empty or overlong rack"));
    }
    if broker.broker_epoch < 0 {
        return Err(format!("broker {id} has a negative epoch"));
    }
    Ok(())
}

/// The limits every topic's config overrides keep (count and text sizes).
pub(crate) fn check_configs(configs: &BTreeMap<String, String>) -> Result<(), String> {
    if configs.len() > TOPIC_CONFIGS_MAX {
        return Err(format!(
            "{} config overrides (at most {TOPIC_CONFIGS_MAX})",
            configs.len()
        ));
    }
    if let Some((name, _)) = configs.iter().find(|(name, value)| {
        name.is_empty() || name.len() > CONFIG_TEXT_BYTES_MAX || value.len() > CONFIG_TEXT_BYTES_MAX
    }) {
        return Err(format!(
            "config '{}' has an empty or overlong name or value",
            name.chars().take(64).collect::<String>()
        ));
    }
    Ok(())
}
