//! Shared by the integration tests: a cluster image that applies records at increasing log
//! indexes, as the quorum would, and an invariant check written against the public API only
//! (independent of the checks `apply` and `from_snapshot` make themselves).
#![allow(dead_code)] // Each test file uses a different part.

pub mod decisions;
pub mod driver;
pub mod sim;

use std::collections::{BTreeMap, BTreeSet};

use spate_cluster::controller::sessions::{BrokerSessions, Heartbeat, RegisterBroker};
use spate_cluster::image::{PARTITION_COUNT_MAX, REPLICATION_FACTOR_MAX};
use spate_cluster::records::Endpoint;
use spate_cluster::topic_name::validate_topic_name;
use spate_cluster::{
    ApplyError, ClusterImage, MetadataBatch, NO_LEADER, NodeId, RecordBody, TopicId,
};

/// An image and the next log index to apply at.
#[derive(Debug, Clone)]
pub struct Cluster {
    pub image: ClusterImage,
    pub next_index: u64,
}

impl Cluster {
    /// A named cluster with no brokers.
    pub fn new() -> Self {
        let mut cluster = Cluster {
            image: ClusterImage::default(),
            next_index: 1,
        };
        cluster
            .apply(vec![RecordBody::ClusterInit {
                cluster_id: "test-cluster".into(),
            }])
            .unwrap();
        cluster
    }

    /// Applies `records` as one log entry; returns the entry's index.
    pub fn apply(&mut self, records: Vec<RecordBody>) -> Result<u64, ApplyError> {
        let index = self.next_index;
        self.next_index += 1;
        self.image.apply(index, &MetadataBatch::new(records))?;
        Ok(index)
    }

    /// Registers and unfences broker `node_id` directly with records (no sessions).
    pub fn add_live_broker(&mut self, node_id: NodeId, rack: Option<&str>) {
        let epoch = self
            .apply(vec![register_record(node_id, "boot", rack)])
            .unwrap();
        self.apply(vec![RecordBody::BrokerChange {
            node_id,
            broker_epoch: epoch as i64,
            fenced: Some(false),
            in_controlled_shutdown: None,
        }])
        .unwrap();
    }

    pub fn epoch(&self, node_id: NodeId) -> i64 {
        self.image.broker(node_id).unwrap().broker_epoch
    }

    /// Registers `node_id` through `sessions` and heartbeats until it is unfenced.
    pub fn join(
        &mut self,
        sessions: &mut BrokerSessions,
        now: std::time::Instant,
        node_id: NodeId,
        incarnation: &str,
        rack: Option<&str>,
    ) {
        let records = sessions
            .register(
                &self.image,
                now,
                &register_request(node_id, incarnation, rack),
            )
            .unwrap();
        self.apply(records).unwrap();
        let (_, records) = sessions
            .heartbeat(&self.image, now, &self.heartbeat(node_id))
            .unwrap();
        self.apply(records).unwrap();
        assert!(!self.image.broker(node_id).unwrap().fenced);
    }

    /// A heartbeat from `node_id` at its current epoch, caught up with the image.
    pub fn heartbeat(&self, node_id: NodeId) -> Heartbeat {
        Heartbeat {
            node_id,
            broker_epoch: self.epoch(node_id),
            metadata_offset: self.image.offset(),
            want_shutdown: false,
        }
    }

    /// The partition `index` of topic `name`.
    pub fn partition(&self, name: &str, index: usize) -> spate_cluster::PartitionState {
        self.image.topic(name).unwrap().partitions[index].clone()
    }

    /// Leaders of every partition, counted per broker.
    pub fn leader_counts(&self) -> BTreeMap<NodeId, usize> {
        let mut counts = BTreeMap::new();
        for topic in self.image.topics() {
            for partition in &topic.partitions {
                *counts.entry(partition.leader).or_insert(0) += 1;
            }
        }
        counts
    }
}

pub fn register_record(node_id: NodeId, incarnation: &str, rack: Option<&str>) -> RecordBody {
    let request = register_request(node_id, incarnation, rack);
    RecordBody::RegisterBroker {
        node_id,
        incarnation_id: request.incarnation_id,
        kafka: request.kafka,
        cluster_addr: request.cluster_addr,
        rack: request.rack,
    }
}

pub fn register_request(node_id: NodeId, incarnation: &str, rack: Option<&str>) -> RegisterBroker {
    RegisterBroker {
        node_id,
        incarnation_id: incarnation.to_owned(),
        kafka: Endpoint {
            host: format!("127.0.0.{}", node_id + 1),
            port: 9092,
        },
        cluster_addr: format!("127.0.0.{}:9093", node_id + 1),
        rack: rack.map(str::to_owned),
    }
}

/// A topic id from a small number, never zero.
pub fn topic_id(n: u8) -> TopicId {
    let mut bytes = [0u8; 16];
    bytes[0] = 0xa0;
    bytes[15] = n;
    TopicId(bytes)
}

/// Config validation that accepts everything.
pub fn any_configs(_: &BTreeMap<String, String>) -> Result<(), String> {
    Ok(())
}

/// Every invariant the image promises, checked through its public API.
pub fn check_invariants(image: &ClusterImage) -> Result<(), String> {
    for broker in image.brokers() {
        if broker.node_id < 0 || broker.broker_epoch < 0 {
            return Err(format!("broker {broker:?} has a negative id or epoch"));
        }
        if image.broker(broker.node_id) != Some(broker) {
            return Err(format!("broker {} is not found by its id", broker.node_id));
        }
    }
    if image.next_producer_id() < 0 {
        return Err("negative next producer id".into());
    }
    let mut ids = BTreeSet::new();
    for topic in image.topics() {
        validate_topic_name(&topic.name).map_err(|e| e.to_string())?;
        if topic.id == TopicId::ZERO || !ids.insert(topic.id) {
            return Err(format!("topic {} has a zero or repeated id", topic.name));
        }
        if image.topic_by_id(topic.id).map(|t| t.name.clone()) != Some(topic.name.clone()) {
            return Err(format!("topic {} is not found by its id", topic.name));
        }
        if topic.partitions.len() > PARTITION_COUNT_MAX as usize {
            return Err(format!("topic {} has too many partitions", topic.name));
        }
        for (index, p) in topic.partitions.iter().enumerate() {
            let at = format!("{}-{index}", topic.name);
            let replicas: BTreeSet<NodeId> = p.replicas.iter().copied().collect();
            let isr: BTreeSet<NodeId> = p.isr.iter().copied().collect();
            if p.replicas.is_empty() || p.replicas.len() > REPLICATION_FACTOR_MAX {
                return Err(format!("{at}: {} replicas", p.replicas.len()));
            }
            if replicas.len() != p.replicas.len() || isr.len() != p.isr.len() {
                return Err(format!("{at}: repeated replica or ISR member"));
            }
            if replicas.iter().any(|&r| r < 0) {
                return Err(format!("{at}: negative replica"));
            }
            if p.isr.is_empty() || !isr.is_subset(&replicas) {
                return Err(format!(
                    "{at}: ISR {:?} is empty or not in {:?}",
                    p.isr, p.replicas
                ));
            }
            if p.leader != NO_LEADER && !isr.contains(&p.leader) {
                return Err(format!(
                    "{at}: leader {} outside the ISR {:?}",
                    p.leader, p.isr
                ));
            }
            if p.leader_epoch < 0 || p.partition_epoch < 0 {
                return Err(format!("{at}: negative epoch"));
            }
        }
    }
    Ok(())
}

/// The image survives its own snapshot unchanged.
pub fn assert_snapshot_round_trips(image: &ClusterImage) {
    let restored = ClusterImage::from_snapshot(&image.to_snapshot())
        .unwrap_or_else(|e| panic!("an applied image's snapshot is refused: {e}"));
    assert_eq!(&restored, image);
}
