//! Random sequences of controller decisions (and, optionally, raw records a buggy or hostile
//! writer could log), run against one image with a fake clock. Every batch applied is kept,
//! with its index and outcome, so it can be replayed on another image.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use spate_cluster::controller::alter_partition::{AlterPartition, alter_partition};
use spate_cluster::controller::elections::{
    ElectionKind, LEADER_IMBALANCE_PER_BROKER_PERCENTAGE, elect_leaders, preferred_leader_rebalance,
};
use spate_cluster::controller::reassignment::{
    alter_partition_reassignments, complete_reassignments,
};
use spate_cluster::controller::sessions::{BrokerSessions, Heartbeat};
use spate_cluster::controller::topics::{self, CreateTopic, TopicDefaults};
use spate_cluster::image::PRODUCER_ID_BLOCK_MAX;
use spate_cluster::replication::IsrMember;
use spate_cluster::{ApplyError, LeaderRecoveryState, MetadataBatch, NodeId, RecordBody};

use super::{Cluster, any_configs, register_request, topic_id};

pub const SESSION_TIMEOUT: Duration = Duration::from_secs(9);
/// Topic names the operations pick from: two that collide, and the internal one.
pub const NAMES: [&str; 5] = ["orders", "audit", "a.b", "a_b", "__consumer_offsets"];
const NODE_IDS: std::ops::Range<NodeId> = 0..5;

/// One step.
#[derive(Debug, Clone)]
pub enum Op {
    Register {
        node: NodeId,
        incarnation: u8,
        rack: Option<u8>,
    },
    Heartbeat {
        node: NodeId,
        lagging: bool,
        want_shutdown: bool,
        stale: bool,
    },
    Advance {
        millis: u64,
    },
    Expire,
    /// Another controller becomes active.
    Failover,
    CreateTopic {
        name: usize,
        partitions: i32,
        replication_factor: i16,
    },
    DeleteTopic {
        name: usize,
    },
    CreatePartitions {
        name: usize,
        count: i32,
    },
    SetConfigs {
        name: usize,
        value: u8,
    },
    ProducerIds {
        node: NodeId,
        count: i64,
    },
    /// The partition's leader asks for an ISR of itself and the replicas `keep` picks.
    /// (Replication decisions pick an existing topic and partition by index, modulo.)
    AlterIsr {
        name: usize,
        partition: i32,
        keep: Vec<bool>,
        recovered: bool,
    },
    Elect {
        name: usize,
        partition: i32,
        unclean: bool,
    },
    Rebalance,
    /// A reassignment to `target`, or a cancellation.
    Reassign {
        name: usize,
        partition: i32,
        target: Option<Vec<NodeId>>,
    },
    CompleteReassignments,
    /// A record no decision would write (at the current epochs, so it may well apply).
    Raw(Raw),
}

#[derive(Debug, Clone)]
pub enum Raw {
    BrokerChange {
        node: NodeId,
        fenced: Option<bool>,
        in_controlled_shutdown: Option<bool>,
    },
    PartitionChange {
        name: usize,
        partition: i32,
        leader: Option<NodeId>,
        isr: Option<Vec<NodeId>>,
        replicas: Option<Vec<NodeId>>,
        /// Adding and removing replicas (KIP-455), set together.
        moving: Option<(Vec<NodeId>, Vec<NodeId>)>,
        recovering: Option<bool>,
    },
    RegisterBroker {
        node: NodeId,
    },
}

/// Decisions only.
pub fn decision() -> impl Strategy<Value = Op> {
    let node = NODE_IDS;
    let name = 0..NAMES.len();
    prop_oneof![
        3 => (node.clone(), 0u8..3, prop::option::of(0u8..3))
            .prop_map(|(node, incarnation, rack)| Op::Register { node, incarnation, rack }),
        8 => (node.clone(), any::<bool>(), prop::bool::weighted(0.15), prop::bool::weighted(0.1))
            .prop_map(|(node, lagging, want_shutdown, stale)| Op::Heartbeat { node, lagging, want_shutdown, stale }),
        3 => (0u64..6000).prop_map(|millis| Op::Advance { millis }),
        2 => Just(Op::Expire),
        1 => Just(Op::Failover),
        3 => (name.clone(), -1i32..8, -1i16..4)
            .prop_map(|(name, partitions, replication_factor)| Op::CreateTopic { name, partitions, replication_factor }),
        1 => name.clone().prop_map(|name| Op::DeleteTopic { name }),
        1 => (name.clone(), 0i32..12).prop_map(|(name, count)| Op::CreatePartitions { name, count }),
        1 => (name, any::<u8>()).prop_map(|(name, value)| Op::SetConfigs { name, value }),
        1 => (node, -1i64..3000).prop_map(|(node, count)| Op::ProducerIds { node, count }),
        6 => replication_decision(),
    ]
}

/// The replication decisions: ISR changes, elections, rebalances, reassignments.
pub fn replication_decision() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0usize..8, 0i32..8, prop::collection::vec(any::<bool>(), 6), any::<bool>())
            .prop_map(|(name, partition, keep, recovered)| Op::AlterIsr { name, partition, keep, recovered }),
        1 => (0usize..8, 0i32..8, any::<bool>())
            .prop_map(|(name, partition, unclean)| Op::Elect { name, partition, unclean }),
        1 => Just(Op::Rebalance),
        2 => (
            0usize..8,
            0i32..8,
            prop::option::weighted(0.8, (Just(NODE_IDS.collect::<Vec<NodeId>>()).prop_shuffle(), 1usize..4)),
        )
            .prop_map(|(name, partition, target)| Op::Reassign {
                name,
                partition,
                target: target.map(|(mut nodes, len)| {
                    nodes.truncate(len);
                    nodes
                }),
            }),
        1 => Just(Op::CompleteReassignments),
    ]
}

/// Decisions mixed with raw records.
pub fn decision_or_raw() -> impl Strategy<Value = Op> {
    let nodes = || prop::collection::vec(-1..6i32, 0..4);
    let raw = prop_oneof![
        (
            NODE_IDS,
            prop::option::of(any::<bool>()),
            prop::option::of(any::<bool>())
        )
            .prop_map(|(node, fenced, in_controlled_shutdown)| Raw::BrokerChange {
                node,
                fenced,
                in_controlled_shutdown
            }),
        (
            0..NAMES.len(),
            -1i32..8,
            prop::option::of(-1..6i32),
            prop::option::of(nodes()),
            prop::option::of(nodes()),
            prop::option::weighted(0.2, (nodes(), nodes())),
            prop::option::weighted(0.2, any::<bool>()),
        )
            .prop_map(
                |(name, partition, leader, isr, replicas, moving, recovering)| {
                    Raw::PartitionChange {
                        name,
                        partition,
                        leader,
                        isr,
                        replicas,
                        moving,
                        recovering,
                    }
                }
            ),
        NODE_IDS.prop_map(|node| Raw::RegisterBroker { node }),
    ];
    prop_oneof![6 => decision(), 1 => raw.prop_map(Op::Raw)]
}

/// A batch as it was applied.
#[derive(Debug, Clone)]
pub struct Applied {
    pub index: u64,
    pub batch: MetadataBatch,
    pub outcome: Result<(), ApplyError>,
}

pub struct Driver {
    pub cluster: Cluster,
    pub sessions: BrokerSessions,
    pub now: Instant,
    pub applied: Vec<Applied>,
    next_topic_id: u8,
}

impl Driver {
    pub fn new() -> Self {
        let now = Instant::now();
        Driver {
            cluster: Cluster::new(),
            sessions: BrokerSessions::new(SESSION_TIMEOUT),
            now,
            applied: Vec::new(),
            next_topic_id: 1,
        }
    }

    /// Runs `op`. A decision whose records the image refuses is a bug: that is the error.
    pub fn step(&mut self, op: &Op) -> Result<(), String> {
        let image = &self.cluster.image;
        let now = self.now;
        let (records, must_apply) = match op {
            Op::Register {
                node,
                incarnation,
                rack,
            } => {
                let rack = rack.map(|r| format!("rack-{r}"));
                let request =
                    register_request(*node, &format!("inc-{incarnation}"), rack.as_deref());
                (
                    self.sessions
                        .register(image, now, &request)
                        .unwrap_or_default(),
                    true,
                )
            }
            Op::Heartbeat {
                node,
                lagging,
                want_shutdown,
                stale,
            } => {
                let epoch = image.broker(*node).map_or(0, |b| b.broker_epoch);
                let request = Heartbeat {
                    node_id: *node,
                    broker_epoch: if *stale { epoch - 1 } else { epoch },
                    metadata_offset: if *lagging {
                        epoch.max(1) as u64 - 1
                    } else {
                        image.offset()
                    },
                    want_shutdown: *want_shutdown,
                };
                let records = self
                    .sessions
                    .heartbeat(image, now, &request)
                    .map(|(_, r)| r);
                (records.unwrap_or_default(), true)
            }
            Op::Advance { millis } => {
                self.now += Duration::from_millis(*millis);
                return Ok(());
            }
            Op::Expire => (self.sessions.expire(image, now), true),
            Op::Failover => {
                self.sessions = BrokerSessions::new(SESSION_TIMEOUT);
                self.sessions.reset(image, now);
                return Ok(());
            }
            Op::CreateTopic {
                name,
                partitions,
                replication_factor,
            } => {
                let request = CreateTopic {
                    name: NAMES[*name].to_owned(),
                    partition_count: *partitions,
                    replication_factor: *replication_factor,
                    assignments: None,
                    configs: BTreeMap::new(),
                };
                let defaults = TopicDefaults {
                    partition_count: 3,
                    replication_factor: None,
                };
                let id = topic_id(self.next_topic_id);
                self.next_topic_id = self.next_topic_id.wrapping_add(1).max(1);
                let records = topics::create_topic(image, &request, &defaults, id, &any_configs);
                (records.unwrap_or_default(), true)
            }
            Op::DeleteTopic { name } => (
                topics::delete_topic(image, NAMES[*name]).unwrap_or_default(),
                true,
            ),
            Op::CreatePartitions { name, count } => {
                let records = topics::create_partitions(image, NAMES[*name], *count, None);
                (records.unwrap_or_default(), true)
            }
            Op::SetConfigs { name, value } => {
                let configs = BTreeMap::from([("retention.ms".to_owned(), value.to_string())]);
                let records = topics::set_topic_configs(image, NAMES[*name], configs, &any_configs);
                (records.unwrap_or_default(), true)
            }
            Op::ProducerIds { node, count } => (
                vec![topics::allocate_producer_ids(image, *node, *count)],
                (1..=PRODUCER_ID_BLOCK_MAX).contains(count),
            ),
            Op::AlterIsr {
                name,
                partition,
                keep,
                recovered,
            } => (self.alter_isr(*name, *partition, keep, *recovered), true),
            Op::Elect {
                name,
                partition,
                unclean,
            } => {
                let partitions: Vec<_> =
                    self.pick_partition(*name, *partition).into_iter().collect();
                let kind = if *unclean {
                    ElectionKind::Unclean
                } else {
                    ElectionKind::Preferred
                };
                (elect_leaders(image, &partitions, kind).records, true)
            }
            Op::Rebalance => (
                preferred_leader_rebalance(image, LEADER_IMBALANCE_PER_BROKER_PERCENTAGE),
                true,
            ),
            Op::Reassign {
                name,
                partition,
                target,
            } => {
                let picked = self.pick_partition(*name, *partition);
                let change: Vec<_> = picked
                    .map(|(id, index)| (id, index, target.clone()))
                    .into_iter()
                    .collect();
                (alter_partition_reassignments(image, &change).records, true)
            }
            Op::CompleteReassignments => (complete_reassignments(image), true),
            Op::Raw(raw) => (vec![self.raw_record(raw)], false),
        };
        if records.is_empty() {
            return Ok(());
        }
        let batch = MetadataBatch::new(records);
        let index = self.cluster.next_index;
        self.cluster.next_index += 1;
        let outcome = self.cluster.image.apply(index, &batch);
        self.applied.push(Applied {
            index,
            batch: batch.clone(),
            outcome: outcome.clone(),
        });
        match outcome {
            Err(error) if must_apply => Err(format!("{op:?} decided {batch:?}, refused: {error}")),
            _ => Ok(()),
        }
    }

    /// An existing partition picked by two numbers (replication decisions act on what exists).
    fn pick_partition(
        &self,
        topic: usize,
        partition: i32,
    ) -> Option<(spate_cluster::TopicId, i32)> {
        let image = &self.cluster.image;
        let count = image.topics().count();
        let topic = image.topics().nth(topic.checked_rem(count)?)?;
        let index = partition.checked_rem(topic.partition_count())?;
        Some((topic.id, index))
    }

    /// AlterPartition from the partition's leader, at its epochs, for an ISR of the leader
    /// and the replicas `keep` picks (refused requests write nothing).
    fn alter_isr(
        &self,
        name: usize,
        partition: i32,
        keep: &[bool],
        recovered: bool,
    ) -> Vec<RecordBody> {
        let image = &self.cluster.image;
        let Some((topic_id, partition)) = self.pick_partition(name, partition) else {
            return Vec::new();
        };
        let Some(p) = image
            .topic_by_id(topic_id)
            .and_then(|t| t.partition(partition))
        else {
            return Vec::new();
        };
        let new_isr = p
            .replicas
            .iter()
            .zip(keep.iter().chain(std::iter::repeat(&false)))
            .filter(|&(&r, &kept)| kept || r == p.leader)
            .map(|(&node, _)| IsrMember {
                node,
                broker_epoch: image.broker(node).map(|b| b.broker_epoch),
            })
            .collect();
        let request = AlterPartition {
            broker: p.leader,
            broker_epoch: image.broker(p.leader).map_or(-1, |b| b.broker_epoch),
            topic_id,
            partition,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            new_isr,
            leader_recovery_state: if recovered {
                LeaderRecoveryState::Recovered
            } else {
                p.leader_recovery_state
            },
        };
        alter_partition(image, &request).unwrap_or_default()
    }

    fn raw_record(&self, raw: &Raw) -> RecordBody {
        let image = &self.cluster.image;
        match raw {
            Raw::BrokerChange {
                node,
                fenced,
                in_controlled_shutdown,
            } => RecordBody::BrokerChange {
                node_id: *node,
                broker_epoch: image.broker(*node).map_or(0, |b| b.broker_epoch),
                fenced: *fenced,
                in_controlled_shutdown: *in_controlled_shutdown,
            },
            Raw::PartitionChange {
                name,
                partition,
                leader,
                isr,
                replicas,
                moving,
                recovering,
            } => {
                let topic = image.topic(NAMES[*name]);
                let epoch = topic
                    .and_then(|t| t.partition(*partition))
                    .map_or(0, |p| p.partition_epoch);
                RecordBody::PartitionChange {
                    topic_id: topic.map_or(topic_id(250), |t| t.id),
                    partition: *partition,
                    expected_partition_epoch: epoch,
                    leader: *leader,
                    isr: isr.clone(),
                    replicas: replicas.clone(),
                    adding_replicas: moving.as_ref().map(|(adding, _)| adding.clone()),
                    removing_replicas: moving.as_ref().map(|(_, removing)| removing.clone()),
                    leader_recovery_state: recovering.map(|recovering| {
                        if recovering {
                            LeaderRecoveryState::Recovering
                        } else {
                            LeaderRecoveryState::Recovered
                        }
                    }),
                }
            }
            Raw::RegisterBroker { node } => super::register_record(*node, "raw", None),
        }
    }
}

/// A cluster with some of everything: racked brokers, topics, configs, producer ids, a
/// fenced broker, a broker in controlled shutdown and a leaderless partition.
pub fn populated() -> Cluster {
    let mut driver = Driver::new();
    let ops = [
        Op::Register {
            node: 0,
            incarnation: 0,
            rack: Some(0),
        },
        Op::Register {
            node: 1,
            incarnation: 0,
            rack: Some(1),
        },
        Op::Register {
            node: 2,
            incarnation: 0,
            rack: Some(2),
        },
        Op::Register {
            node: 3,
            incarnation: 0,
            rack: None,
        },
        Op::Heartbeat {
            node: 0,
            lagging: false,
            want_shutdown: false,
            stale: false,
        },
        Op::Heartbeat {
            node: 1,
            lagging: false,
            want_shutdown: false,
            stale: false,
        },
        Op::Heartbeat {
            node: 2,
            lagging: false,
            want_shutdown: false,
            stale: false,
        },
        Op::Heartbeat {
            node: 3,
            lagging: false,
            want_shutdown: false,
            stale: false,
        },
        Op::CreateTopic {
            name: 0,
            partitions: 6,
            replication_factor: 3,
        },
        Op::CreateTopic {
            name: 1,
            partitions: 4,
            replication_factor: 1,
        },
        Op::SetConfigs { name: 0, value: 7 },
        Op::ProducerIds {
            node: 1,
            count: 1000,
        },
        Op::Heartbeat {
            node: 2,
            lagging: false,
            want_shutdown: true,
            stale: false,
        },
        Op::Advance { millis: 5000 },
        Op::Heartbeat {
            node: 0,
            lagging: false,
            want_shutdown: false,
            stale: false,
        },
        Op::Heartbeat {
            node: 1,
            lagging: false,
            want_shutdown: false,
            stale: false,
        },
        Op::Heartbeat {
            node: 2,
            lagging: false,
            want_shutdown: true,
            stale: false,
        },
        Op::Advance { millis: 5000 },
        Op::Expire,
        Op::Register {
            node: 4,
            incarnation: 0,
            rack: Some(0),
        },
    ];
    for op in &ops {
        driver.step(op).unwrap();
    }
    driver.cluster
}
