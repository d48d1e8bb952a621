//! Reaching the active controller from anywhere on the node, and answering peers.
//!
//! [`ControlPlane::call`] sends a request to whichever voter leads the quorum: to this
//! node's own controller task when that is the leader (the single node always is), or over
//! the transport otherwise, following `NotController` redirects and retrying while an
//! election runs. [`ControlClient`] is the same call from a shard's thread: shards never
//! touch the transport or openraft directly, they queue to the control-plane runtime.
//! [`NodeRpc`] is the other side: what this node answers when a peer calls it.

use std::pin::Pin;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use spate_cluster::{ClusterImage, NO_LEADER, NodeId};
use tokio::sync::{mpsc, oneshot};

use super::config::Voter;
use super::controller::ControllerHandle;
use super::feed::{FeedSince, MetadataFeed};
use super::raft::Raft;
use super::replication::{self, ReplicationContext};
use super::rpc::{
    ControllerError, ControllerReply, ControllerRequest, MetadataFetch, PeerRequest, PeerResponse,
};
use super::transport::{RpcHandler, Transport};
use crate::handlers::error_code;

/// First pause between attempts while no controller answers; doubles up to the max.
const RETRY_BACKOFF_MS_MIN: u64 = 50;
const RETRY_BACKOFF_MS_MAX: u64 = 500;
/// One attempt's bound: a controller that does not answer within it is tried again (or
/// another one is). Longer than a fsync'd quorum write on a slow disk.
const ATTEMPT_TIMEOUT_MS: u64 = 10_000;
/// Calls from shards queued to the control plane. Admin calls and InitProducerId blocks
/// are rare; a full queue means the control plane is stuck, and callers get an error.
const CLIENT_QUEUE_DEPTH: usize = 256;
/// Longest long poll of a broker fetching the metadata log.
const FETCH_WAIT_MS_MAX: u64 = 30_000;

/// Routes controller requests to the active controller. `Send + Sync`; lives on the
/// control-plane runtime.
pub struct ControlPlane {
    node_id: NodeId,
    voters: Vec<Voter>,
    controller: Option<ControllerHandle>,
    transport: Option<Transport>,
    /// The controller that last answered (or a redirect named), for nodes with no quorum
    /// state of their own.
    leader_hint: AtomicI32,
    /// The voter a broker that is not a voter follows the metadata log from.
    fetch_from: AtomicI32,
}

impl ControlPlane {
    pub fn new(
        node_id: NodeId,
        voters: Vec<Voter>,
        controller: Option<ControllerHandle>,
        transport: Option<Transport>,
    ) -> Self {
        Self {
            node_id,
            voters,
            controller,
            transport,
            leader_hint: AtomicI32::new(NO_LEADER),
            fetch_from: AtomicI32::new(NO_LEADER),
        }
    }

    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// The active controller as far as this node knows.
    pub fn leader(&self) -> Option<NodeId> {
        if let Some(controller) = &self.controller {
            return controller.leader();
        }
        Some(self.leader_hint.load(Ordering::Acquire)).filter(|id| *id != NO_LEADER)
    }

    pub fn voters(&self) -> &[Voter] {
        &self.voters
    }

    pub fn transport(&self) -> Option<&Transport> {
        self.transport.as_ref()
    }

    pub fn controller(&self) -> Option<&ControllerHandle> {
        self.controller.as_ref()
    }

    /// Sends `request` to the active controller, retrying through elections and redirects
    /// until `timeout` passes. Errors that retrying cannot fix (a refused registration, an
    /// invalid request) come back at once.
    pub async fn call(
        &self,
        request: ControllerRequest,
        timeout: Duration,
    ) -> Result<ControllerReply, ControllerError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut backoff_ms = RETRY_BACKOFF_MS_MIN;
        let mut attempt = 0usize;
        let mut last_error;
        loop {
            let target = self.leader().unwrap_or_else(|| self.voter_for(attempt));
            attempt += 1;
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            let attempt_timeout = remaining.min(Duration::from_millis(ATTEMPT_TIMEOUT_MS));
            let outcome = if target == self.node_id {
                match &self.controller {
                    Some(controller) => {
                        match tokio::time::timeout(
                            attempt_timeout,
                            controller.submit(request.clone()),
                        )
                        .await
                        {
                            Ok(outcome) => outcome,
                            Err(_) => Err(ControllerError::Unavailable(
                                "this node's controller did not answer in time".to_owned(),
                            )),
                        }
                    }
                    None => Err(ControllerError::NotController { leader: None }),
                }
            } else {
                // A controller node learns of a new quorum leader from openraft while a call
                // to the old one may still be waiting on a dead connection: go to the new
                // leader at once instead of waiting for the transport to give up.
                tokio::select! {
                    outcome = self.remote(target, request.clone(), attempt_timeout) => outcome,
                    leader = self.leader_moved_from(target) => {
                        Err(ControllerError::NotController { leader: Some(leader) })
                    }
                }
            };
            match outcome {
                Ok(reply) => {
                    self.leader_hint.store(target, Ordering::Release);
                    return Ok(reply);
                }
                Err(ControllerError::NotController {
                    leader: Some(leader),
                }) if leader != target => {
                    self.leader_hint.store(leader, Ordering::Release);
                    last_error = ControllerError::NotController {
                        leader: Some(leader),
                    };
                }
                Err(
                    error @ (ControllerError::NotController { .. }
                    | ControllerError::Unavailable(_)),
                ) => {
                    self.leader_hint.store(NO_LEADER, Ordering::Release);
                    last_error = error;
                    let pause = Duration::from_millis(backoff_ms);
                    if tokio::time::Instant::now() + pause >= deadline {
                        break;
                    }
                    tokio::time::sleep(pause).await;
                    backoff_ms = (backoff_ms * 2).min(RETRY_BACKOFF_MS_MAX);
                }
                Err(other) => return Err(other),
            }
            if tokio::time::Instant::now() >= deadline {
                break;
            }
        }
        Err(ControllerError::Unavailable(format!(
            "no active controller answered within {} ms (last: {last_error}); check that a majority of the controller voters ({}) are running and reachable",
            timeout.as_millis(),
            self.voters
                .iter()
                .map(|v| format!("{}@{}", v.node_id, v.address))
                .collect::<Vec<_>>()
                .join(",")
        )))
    }

    /// Resolves with the new quorum leader once this node's own quorum state names one other
    /// than `target`; never on a node with no quorum state (a broker that is not a voter).
    async fn leader_moved_from(&self, target: NodeId) -> NodeId {
        let Some(controller) = &self.controller else {
            return std::future::pending().await;
        };
        let mut metrics = controller.raft().metrics();
        loop {
            let leader = metrics
                .borrow_and_update()
                .current_leader
                .and_then(super::raft::from_raft_id);
            if let Some(leader) = leader.filter(|l| *l != target) {
                return leader;
            }
            if metrics.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }

    fn voter_for(&self, attempt: usize) -> NodeId {
        if self.voters.is_empty() {
            return self.node_id;
        }
        self.voters[attempt % self.voters.len()].node_id
    }

    fn address_of(&self, node: NodeId) -> Option<&str> {
        self.voters
            .iter()
            .find(|v| v.node_id == node)
            .map(|v| v.address.as_str())
    }

    async fn remote(
        &self,
        target: NodeId,
        request: ControllerRequest,
        timeout: Duration,
    ) -> Result<ControllerReply, ControllerError> {
        let Some(transport) = &self.transport else {
            return Err(ControllerError::Unavailable(format!(
                "node {target} leads the quorum but this node has no cluster listener"
            )));
        };
        let Some(address) = self.address_of(target) else {
            return Err(ControllerError::Unavailable(format!(
                "node {target} is not a configured voter"
            )));
        };
        let bytes = encode(&PeerRequest::Controller(request));
        match transport.call(target, address, bytes, timeout).await {
            Ok(answer) => match decode::<PeerResponse>(&answer) {
                Ok(PeerResponse::Controller(outcome)) => outcome,
                Ok(PeerResponse::Refused(reason)) => Err(ControllerError::Unavailable(format!(
                    "node {target} refused: {reason}"
                ))),
                Ok(_) => Err(ControllerError::Unavailable(format!(
                    "node {target} answered with the wrong message"
                ))),
                Err(e) => Err(ControllerError::Unavailable(format!(
                    "node {target}'s answer is unreadable: {e}"
                ))),
            },
            Err(e) => Err(ControllerError::Unavailable(format!(
                "node {target} at {address}: {e}"
            ))),
        }
    }

    /// Fetches the metadata log from the controller leader (brokers that are not voters).
    pub async fn fetch_metadata(
        &self,
        offset: u64,
        wait: Duration,
    ) -> Result<MetadataFetch, ControllerError> {
        let target = match self.fetch_from.load(Ordering::Acquire) {
            NO_LEADER => self.leader().unwrap_or_else(|| self.voter_for(0)),
            voter => voter,
        };
        let Some(transport) = &self.transport else {
            return Err(ControllerError::Unavailable(
                "no cluster listener".to_owned(),
            ));
        };
        let Some(address) = self.address_of(target) else {
            return Err(ControllerError::Unavailable(format!(
                "node {target} is not a configured voter"
            )));
        };
        let request = PeerRequest::FetchMetadata {
            offset,
            wait_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
        };
        let timeout = wait + Duration::from_millis(ATTEMPT_TIMEOUT_MS);
        let outcome = match transport
            .call(target, address, encode(&request), timeout)
            .await
        {
            Ok(answer) => match decode::<PeerResponse>(&answer) {
                Ok(PeerResponse::Metadata(outcome)) => outcome,
                Ok(PeerResponse::Refused(reason)) => Err(ControllerError::Unavailable(reason)),
                Ok(_) => Err(ControllerError::Unavailable("wrong answer".to_owned())),
                Err(e) => Err(ControllerError::Unavailable(e)),
            },
            Err(e) => Err(ControllerError::Unavailable(format!("node {target}: {e}"))),
        };
        if outcome.is_err() {
            // Any voter serves the log; try the next one next time. (A voter that answered is
            // not taken for the leader: only controller requests say who leads.)
            let next = self
                .voters
                .iter()
                .position(|v| v.node_id == target)
                .unwrap_or(0)
                + 1;
            self.fetch_from
                .store(self.voter_for(next), Ordering::Release);
        }
        outcome
    }
}

/// One queued call: the request, its timeout, and where the answer goes.
type QueuedCall = (
    ControllerRequest,
    Duration,
    oneshot::Sender<Result<ControllerReply, ControllerError>>,
);

/// A controller call from any runtime (a shard's): queued to the control plane's runtime.
/// `Send + Sync + Clone`.
#[derive(Clone)]
pub struct ControlClient {
    queue: mpsc::Sender<QueuedCall>,
}

impl ControlClient {
    /// Starts the forwarding task on the current (control-plane) runtime.
    pub fn spawn(plane: Arc<ControlPlane>) -> ControlClient {
        let (queue, mut calls) = mpsc::channel::<QueuedCall>(CLIENT_QUEUE_DEPTH);
        tokio::spawn(async move {
            while let Some((request, timeout, reply)) = calls.recv().await {
                let plane = plane.clone();
                tokio::spawn(async move {
                    let _ = reply.send(plane.call(request, timeout).await);
                });
            }
        });
        ControlClient { queue }
    }

    /// [`ControlPlane::call`], from any thread.
    pub async fn call(
        &self,
        request: ControllerRequest,
        timeout: Duration,
    ) -> Result<ControllerReply, ControllerError> {
        let (tx, rx) = oneshot::channel();
        if self.queue.try_send((request, timeout, tx)).is_err() {
            return Err(ControllerError::Unavailable(
                "the control plane's queue is full; retry".to_owned(),
            ));
        }
        rx.await.unwrap_or_else(|_| {
            Err(ControllerError::Unavailable(
                "the node is shutting down".to_owned(),
            ))
        })
    }
}

/// The quorum and controller a node answers peers with, once they exist (the transport
/// starts first, since the quorum's network needs it).
#[derive(Clone)]
pub struct RpcTargets {
    pub raft: Option<Raft>,
    pub controller: Option<ControllerHandle>,
}

/// What this node answers when a peer calls it.
pub struct NodeRpc {
    targets: Arc<OnceLock<RpcTargets>>,
    replication: Arc<OnceLock<Arc<ReplicationContext>>>,
    feed: Arc<MetadataFeed>,
}

impl NodeRpc {
    pub fn new(
        targets: Arc<OnceLock<RpcTargets>>,
        replication: Arc<OnceLock<Arc<ReplicationContext>>>,
        feed: Arc<MetadataFeed>,
    ) -> Self {
        Self {
            targets,
            replication,
            feed,
        }
    }
}

impl RpcHandler for NodeRpc {
    fn handle(
        &self,
        from: NodeId,
        request: Bytes,
    ) -> Pin<Box<dyn std::future::Future<Output = Bytes> + Send>> {
        if spate_protocol::replica_fetch::is_replica_fetch(&request) {
            let context = self.replication.get().cloned();
            return Box::pin(async move {
                match context {
                    Some(context) => replication::answer_fetch(context, from, request).await,
                    None => {
                        spate_protocol::replica_fetch::refusal(error_code::NOT_LEADER_OR_FOLLOWER)
                    }
                }
            });
        }
        let targets = self.targets.get().cloned();
        let feed = self.feed.clone();
        Box::pin(async move {
            let Some(RpcTargets { raft, controller }) = targets else {
                return encode(&PeerResponse::Refused(
                    "the node is still starting".to_owned(),
                ));
            };
            let response = match decode::<PeerRequest>(&request) {
                Ok(request) => answer(raft, controller, feed, request).await,
                Err(e) => {
                    tracing::warn!(peer = from, error = %e, "unreadable request from a peer");
                    PeerResponse::Refused(format!("unreadable request: {e}"))
                }
            };
            encode(&response)
        })
    }
}

async fn answer(
    raft: Option<Raft>,
    controller: Option<ControllerHandle>,
    feed: Arc<MetadataFeed>,
    request: PeerRequest,
) -> PeerResponse {
    let not_voter = || PeerResponse::Refused("this node is not a controller voter".to_owned());
    match request {
        PeerRequest::AppendEntries(rpc) => match raft {
            Some(raft) => PeerResponse::AppendEntries(raft.append_entries(rpc).await),
            None => not_voter(),
        },
        PeerRequest::Vote(rpc) => match raft {
            Some(raft) => PeerResponse::Vote(raft.vote(rpc).await),
            None => not_voter(),
        },
        PeerRequest::Snapshot { vote, meta, data } => match raft {
            Some(raft) => {
                let snapshot = openraft::Snapshot {
                    meta,
                    snapshot: Box::new(data),
                };
                PeerResponse::Snapshot(raft.install_full_snapshot(vote, snapshot).await)
            }
            None => not_voter(),
        },
        PeerRequest::Controller(request) => match controller {
            Some(controller) => PeerResponse::Controller(controller.submit(request).await),
            None => PeerResponse::Controller(Err(ControllerError::NotController { leader: None })),
        },
        PeerRequest::FetchMetadata { offset, wait_ms } => {
            if controller.is_none() {
                return PeerResponse::Metadata(Err(ControllerError::NotController {
                    leader: None,
                }));
            }
            PeerResponse::Metadata(Ok(feed_since(&feed, offset, wait_ms).await))
        }
    }
}

/// The entries after `offset`, waiting up to `wait_ms` for some to arrive.
async fn feed_since(feed: &MetadataFeed, offset: u64, wait_ms: u64) -> MetadataFetch {
    let mut changes = feed.subscribe();
    let wait = Duration::from_millis(wait_ms.min(FETCH_WAIT_MS_MAX));
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match feed.since(offset) {
            FeedSince::Entries(entries) => return MetadataFetch::Entries(entries),
            FeedSince::Image(image) => return MetadataFetch::Image(image.to_snapshot()),
            FeedSince::UpToDate => {}
        }
        let changed = tokio::time::timeout_at(deadline, changes.changed()).await;
        if !matches!(changed, Ok(Ok(()))) {
            return MetadataFetch::UpToDate {
                offset: feed.image().offset(),
            };
        }
    }
}

/// Applies a fetched answer to a broker's own image. Entries must continue from the
/// image's offset; anything else restarts from a full image next time.
pub fn apply_fetched(
    image: &ClusterImage,
    fetched: MetadataFetch,
) -> Result<Option<ClusterImage>, String> {
    match fetched {
        MetadataFetch::UpToDate { .. } => Ok(None),
        MetadataFetch::Image(bytes) => ClusterImage::from_snapshot(&bytes)
            .map(Some)
            .map_err(|e| e.to_string()),
        MetadataFetch::Entries(entries) => {
            let mut next = image.clone();
            for (index, batch) in entries {
                if index <= next.offset() {
                    continue;
                }
                match batch {
                    Some(batch) => {
                        if let Err(e) = next.apply(index, &batch) {
                            tracing::warn!(index, error = %e, "metadata entry refused (as on every node)");
                        }
                    }
                    None => next.advance_offset(index),
                }
            }
            Ok(Some(next))
        }
    }
}

pub(crate) fn encode<T: serde::Serialize>(message: &T) -> Bytes {
    // The messages are plain data with string keys: serializing cannot fail.
    Bytes::from(serde_json::to_vec(message).unwrap_or_default())
}

pub(crate) fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    serde_json::from_slice(bytes).map_err(|e| e.to_string())
}
