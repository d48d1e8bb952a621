//! The active controller: on whichever voter leads the metadata quorum, one task that takes
//! requests (broker registrations and heartbeats, topic changes forwarded from any node,
//! producer-id blocks) one at a time, asks `spate-cluster` for the records each calls for,
//! writes them through openraft and answers once they are applied.
//!
//! One at a time is what makes the decisions safe: each is made on the image that includes
//! every earlier one (KRaft's controller is single-threaded for the same reason). When this
//! node stops leading, queued requests are answered with `NotController` and the caller
//! retries on the new leader. A new leader first waits until every entry of earlier terms is
//! applied, then gives every registered broker a fresh session.

mod partitions;
mod quorum;
mod topics;

pub use topics::topic_error;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::{ClientWriteError, RaftError};
use spate_cluster::controller::{self as decide, BrokerSessions, SessionError, TopicDefaults};
use spate_cluster::records::RecordBody;
use spate_cluster::{ApplyError, MetadataBatch, NodeId};
use spate_engine::LogConfig;
use tokio::sync::{mpsc, oneshot};

use super::feed::MetadataFeed;
use super::raft::{Raft, from_raft_id};
use super::rpc::{
    ControllerError, ControllerReply, ControllerReplyBody, ControllerRequest, TopicCreated,
};

/// Requests waiting for the controller task. Controller traffic is a heartbeat per broker
/// every couple of seconds plus admin calls; 1,024 queued means the quorum is stuck, and
/// callers should get an error rather than pile up.
const QUEUE_DEPTH: usize = 1024;
/// How often session expiry is checked when no session is about to expire.
const EXPIRY_TICK_MS: u64 = 250;

type Job = (
    ControllerRequest,
    oneshot::Sender<Result<ControllerReply, ControllerError>>,
);

/// What the controller needs to know beyond the image.
#[derive(Debug, Clone)]
pub struct ControllerSettings {
    pub node_id: NodeId,
    pub session_timeout: Duration,
    pub topic_defaults: TopicDefaults,
    /// Broker-wide topic defaults, to validate topic config overrides against.
    pub log_defaults: LogConfig,
    /// The voters and their addresses, for DescribeQuorum.
    pub voters: Vec<(NodeId, String)>,
    /// `auto.leader.rebalance.enable`: how often to check, and
    /// `leader.imbalance.per.broker.percentage`. `None` when disabled.
    pub leader_rebalance: Option<(Duration, u32)>,
    /// Records the first active controller of a new cluster writes: the cluster id, and the
    /// topics of a single-node data dir being migrated.
    pub bootstrap: Vec<RecordBody>,
}

/// A handle to submit requests to this node's controller task. `Send + Sync + Clone`.
#[derive(Clone)]
pub struct ControllerHandle {
    queue: mpsc::Sender<Job>,
    raft: Raft,
    node_id: NodeId,
}

impl ControllerHandle {
    /// Submits `request`; answered by the active controller if that is this node.
    pub async fn submit(
        &self,
        request: ControllerRequest,
    ) -> Result<ControllerReply, ControllerError> {
        let (tx, rx) = oneshot::channel();
        if self.queue.try_send((request, tx)).is_err() {
            return Err(ControllerError::Unavailable(
                "the controller's queue is full; retry".to_owned(),
            ));
        }
        rx.await.unwrap_or_else(|_| {
            Err(ControllerError::Unavailable(
                "the controller stopped".to_owned(),
            ))
        })
    }

    /// The quorum leader as this node knows it.
    pub fn leader(&self) -> Option<NodeId> {
        self.raft
            .metrics()
            .borrow()
            .current_leader
            .and_then(from_raft_id)
    }

    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    pub fn raft(&self) -> &Raft {
        &self.raft
    }
}

/// Starts the controller task on the current (control-plane) runtime.
pub fn spawn(
    raft: Raft,
    feed: Arc<MetadataFeed>,
    settings: ControllerSettings,
    on_bootstrapped: Box<dyn FnOnce() + Send + Sync>,
) -> ControllerHandle {
    let (queue, jobs) = mpsc::channel(QUEUE_DEPTH);
    let handle = ControllerHandle {
        queue,
        raft: raft.clone(),
        node_id: settings.node_id,
    };
    let controller = Controller {
        sessions: BrokerSessions::new(settings.session_timeout),
        raft,
        feed,
        settings,
        on_bootstrapped: Some(on_bootstrapped),
        broker_offsets: BTreeMap::new(),
    };
    tokio::spawn(controller.run(jobs));
    handle
}

struct Controller {
    raft: Raft,
    feed: Arc<MetadataFeed>,
    settings: ControllerSettings,
    sessions: BrokerSessions,
    on_bootstrapped: Option<Box<dyn FnOnce() + Send + Sync>>,
    /// The metadata offset each broker last reported, and when (DescribeQuorum's observers).
    broker_offsets: BTreeMap<NodeId, (u64, std::time::SystemTime)>,
}

impl Controller {
    async fn run(mut self, mut jobs: mpsc::Receiver<Job>) {
        let mut metrics = self.raft.metrics();
        loop {
            // Followers refuse requests until this node leads.
            while !self.is_leader() {
                tokio::select! {
                    changed = metrics.changed() => {
                        if changed.is_err() {
                            return;
                        }
                    }
                    job = jobs.recv() => match job {
                        Some((_, reply)) => {
                            let _ = reply.send(Err(self.not_controller()));
                        }
                        None => return,
                    },
                }
            }
            if let Err(e) = self.activate().await {
                tracing::warn!(error = %e, "could not take over as the active controller; waiting for the next election");
                tokio::time::sleep(Duration::from_millis(EXPIRY_TICK_MS)).await;
                continue;
            }
            tracing::info!(
                node = self.settings.node_id,
                "this node is the active controller"
            );
            self.upkeep().await;
            let rebalance_every = self
                .settings
                .leader_rebalance
                .map_or(Duration::from_secs(3600), |(every, _)| every);
            let mut rebalance = tokio::time::interval_at(
                tokio::time::Instant::now() + rebalance_every,
                rebalance_every,
            );
            rebalance.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while self.is_leader() {
                let deadline = self
                    .sessions
                    .next_expiry()
                    .map(tokio::time::Instant::from_std)
                    .unwrap_or_else(|| {
                        tokio::time::Instant::now() + Duration::from_millis(EXPIRY_TICK_MS)
                    });
                tokio::select! {
                    changed = metrics.changed() => {
                        if changed.is_err() {
                            return;
                        }
                    }
                    job = jobs.recv() => match job {
                        Some((request, reply)) => {
                            let answer = self.handle(request).await;
                            let _ = reply.send(answer);
                        }
                        None => return,
                    },
                    _ = tokio::time::sleep_until(deadline) => {
                        if self.expire_sessions().await {
                            self.upkeep().await;
                        }
                    }
                    _ = rebalance.tick() => self.rebalance_leaders().await,
                }
            }
            tracing::info!(
                node = self.settings.node_id,
                "this node is no longer the active controller"
            );
        }
    }

    fn is_leader(&self) -> bool {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        metrics.state.is_leader()
            && metrics.current_leader.and_then(from_raft_id) == Some(self.settings.node_id)
    }

    fn not_controller(&self) -> ControllerError {
        let leader = self
            .raft
            .metrics()
            .borrow()
            .current_leader
            .and_then(from_raft_id)
            .filter(|l| *l != self.settings.node_id);
        ControllerError::NotController { leader }
    }

    /// Waits until the entries of earlier terms are applied, then starts sessions afresh and
    /// names a new cluster.
    async fn activate(&mut self) -> Result<(), String> {
        self.raft
            .ensure_linearizable()
            .await
            .map_err(|e| e.to_string())?;
        let image = self.feed.image();
        self.sessions.reset(&image, Instant::now());
        if image.cluster_id().is_none() && !self.settings.bootstrap.is_empty() {
            let records = self.settings.bootstrap.clone();
            let topics = records
                .iter()
                .filter(|r| matches!(r, RecordBody::Topic { .. }))
                .count();
            self.write(records)
                .await
                .map_err(|e| format!("cannot write the cluster's first records: {e}"))?;
            self.settings.bootstrap.clear();
            tracing::info!(
                cluster_id = self.feed.image().cluster_id().unwrap_or("?"),
                migrated_topics = topics,
                "new cluster initialized"
            );
            if let Some(done) = self.on_bootstrapped.take() {
                done();
            }
        }
        Ok(())
    }

    /// Fences brokers whose sessions expired; `true` if any was.
    async fn expire_sessions(&mut self) -> bool {
        let image = self.feed.image();
        let records = self.sessions.expire(&image, Instant::now());
        if records.is_empty() {
            return false;
        }
        let fenced: Vec<NodeId> = records
            .iter()
            .filter_map(|r| match r {
                RecordBody::BrokerChange {
                    node_id,
                    fenced: Some(true),
                    ..
                } => Some(*node_id),
                _ => None,
            })
            .collect();
        match self.write(records).await {
            Ok(_) => {
                tracing::warn!(brokers = ?fenced, "fenced brokers whose sessions expired; their leaderships moved")
            }
            Err(e) => {
                tracing::warn!(brokers = ?fenced, error = %e, "could not fence brokers whose sessions expired")
            }
        }
        true
    }

    /// Writes `records` as one entry; returns its index once applied.
    async fn write(&self, records: Vec<RecordBody>) -> Result<u64, ControllerError> {
        let batch = MetadataBatch::new(records);
        match self.raft.client_write(batch).await {
            Ok(written) => match written.data.0 {
                Ok(()) => Ok(written.log_id.index),
                Err(refused) => Err(refused_by_image(refused)),
            },
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => {
                Err(ControllerError::NotController {
                    leader: forward.leader_id.and_then(from_raft_id),
                })
            }
            Err(e) => Err(ControllerError::Unavailable(e.to_string())),
        }
    }

    async fn handle(
        &mut self,
        request: ControllerRequest,
    ) -> Result<ControllerReply, ControllerError> {
        let image = self.feed.image();
        let now = Instant::now();
        match request {
            ControllerRequest::RegisterBroker {
                node_id,
                incarnation_id,
                kafka,
                cluster_addr,
                rack,
            } => {
                let request = decide::RegisterBroker {
                    node_id,
                    incarnation_id,
                    kafka,
                    cluster_addr,
                    rack,
                };
                let records = self
                    .sessions
                    .register(&image, now, &request)
                    .map_err(session_error)?;
                if records.is_empty() {
                    let epoch = image
                        .broker(node_id)
                        .map(|b| b.broker_epoch)
                        .ok_or_else(|| {
                            ControllerError::Reregister(format!(
                                "broker {node_id} is not registered"
                            ))
                        })?;
                    return Ok(reply(
                        image.offset(),
                        ControllerReplyBody::Registered {
                            broker_epoch: epoch,
                        },
                    ));
                }
                let offset = self.write(records).await?;
                tracing::info!(broker = node_id, broker_epoch = offset, "broker registered");
                Ok(reply(
                    offset,
                    ControllerReplyBody::Registered {
                        broker_epoch: i64::try_from(offset).unwrap_or(i64::MAX),
                    },
                ))
            }
            ControllerRequest::Heartbeat {
                node_id,
                broker_epoch,
                metadata_offset,
                want_shutdown,
            } => {
                let request = decide::Heartbeat {
                    node_id,
                    broker_epoch,
                    metadata_offset,
                    want_shutdown,
                };
                self.broker_offsets
                    .insert(node_id, (metadata_offset, std::time::SystemTime::now()));
                let (mut answer, records) = self
                    .sessions
                    .heartbeat(&image, now, &request)
                    .map_err(session_error)?;
                let mut offset = image.offset();
                if !records.is_empty() {
                    offset = self.write(records).await?;
                    self.upkeep().await;
                    // Answer with the state the records made (unfenced, in controlled
                    // shutdown), so the broker acts on it without another round trip.
                    if let Some(broker) = self.feed.image().broker(node_id) {
                        answer.fenced = broker.fenced;
                        answer.in_controlled_shutdown = broker.in_controlled_shutdown;
                    }
                }
                Ok(reply(offset, answer.into()))
            }
            ControllerRequest::CreateTopics {
                topics,
                validate_only,
            } => {
                let mut outcomes = Vec::with_capacity(topics.len());
                let mut offset = image.offset();
                for topic in topics {
                    let name = topic.name.clone();
                    let request: decide::CreateTopic = topic.into();
                    let outcome = self
                        .create_topic(&request, validate_only, &mut offset)
                        .await;
                    outcomes.push((name, outcome));
                }
                Ok(reply(offset, ControllerReplyBody::Topics(outcomes)))
            }
            ControllerRequest::DeleteTopics { names } => {
                let mut outcomes = Vec::with_capacity(names.len());
                let mut offset = image.offset();
                for name in names {
                    let image = self.feed.image();
                    let outcome = match decide::topics::delete_topic(&image, &name) {
                        Ok(records) => self
                            .write_topic(records, &mut offset)
                            .await
                            .map(|()| TopicCreated::default()),
                        Err(e) => Err(topic_error(&e)),
                    };
                    outcomes.push((name, outcome));
                }
                Ok(reply(offset, ControllerReplyBody::Topics(outcomes)))
            }
            ControllerRequest::CreatePartitions {
                topics,
                validate_only,
            } => {
                let mut outcomes = Vec::with_capacity(topics.len());
                let mut offset = image.offset();
                for topic in topics {
                    let image = self.feed.image();
                    let decided = decide::topics::create_partitions(
                        &image,
                        &topic.name,
                        topic.partition_count,
                        topic.assignments.as_deref(),
                    );
                    let outcome = match decided {
                        Err(e) => Err(topic_error(&e)),
                        Ok(_) if validate_only => Ok(TopicCreated::default()),
                        Ok(records) => self
                            .write_topic(records, &mut offset)
                            .await
                            .map(|()| TopicCreated::default()),
                    };
                    outcomes.push((topic.name, outcome));
                }
                Ok(reply(offset, ControllerReplyBody::Topics(outcomes)))
            }
            ControllerRequest::AlterTopicConfigs {
                changes,
                validate_only,
            } => {
                let mut outcomes = Vec::with_capacity(changes.len());
                let mut offset = image.offset();
                for change in changes {
                    let image = self.feed.image();
                    let outcome = self
                        .alter_configs(
                            &image,
                            &change.name,
                            change.change,
                            validate_only,
                            &mut offset,
                        )
                        .await;
                    outcomes.push((change.name, outcome));
                }
                Ok(reply(offset, ControllerReplyBody::Topics(outcomes)))
            }
            ControllerRequest::AllocateProducerIds { node_id, count } => {
                let record = decide::topics::allocate_producer_ids(&image, node_id, count);
                let first = image.next_producer_id();
                let offset = self.write(vec![record]).await?;
                Ok(reply(
                    offset,
                    ControllerReplyBody::ProducerIds { first, count },
                ))
            }
            ControllerRequest::AlterPartition(request) => self.alter_partition(request).await,
            ControllerRequest::ElectLeaders {
                unclean,
                partitions,
            } => self.elect_leaders(unclean, partitions).await,
            ControllerRequest::AlterReassignments { changes } => {
                self.alter_reassignments(changes).await
            }
            ControllerRequest::DescribeQuorum => Ok(reply(
                image.offset(),
                ControllerReplyBody::Quorum(self.quorum_state()),
            )),
        }
    }
}

fn reply(offset: u64, body: ControllerReplyBody) -> ControllerReply {
    ControllerReply { offset, body }
}

fn session_error(error: SessionError) -> ControllerError {
    match error {
        SessionError::UnknownBroker(_) | SessionError::StaleBrokerEpoch { .. } => {
            ControllerError::Reregister(error.to_string())
        }
        SessionError::DuplicateRegistration(_) | SessionError::Invalid(_) => {
            ControllerError::Session(error.to_string())
        }
    }
}

fn refused_by_image(error: ApplyError) -> ControllerError {
    ControllerError::Invalid(format!(
        "the metadata changed under the request and the change was refused: {error}; retry"
    ))
}
