//! openraft's network over the cluster transport: append, vote and snapshot calls between
//! voters ride the same QUIC connection as everything else between two nodes.
//!
//! The one-member quorum of a single node never calls it; without a transport every call
//! reports the peer unreachable.

use std::future::Future;

use openraft::error::{
    Fatal, NetworkError, RPCError, RaftError, RemoteError, ReplicationClosed, StreamingError,
    Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{BasicNode, Snapshot, Vote};
use spate_cluster::NodeId;

use super::control::{decode, encode};
use super::raft::{TypeConfig, from_raft_id};
use super::rpc::{PeerRequest, PeerResponse};
use super::transport::Transport;

/// Makes one client per peer voter.
#[derive(Clone)]
pub struct NetworkFactory {
    pub transport: Option<Transport>,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerVoter;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> PeerVoter {
        PeerVoter {
            transport: self.transport.clone(),
            target: from_raft_id(target),
            raft_target: target,
            address: node.addr.clone(),
        }
    }
}

/// One peer voter, as openraft's leader or candidate talks to it.
pub struct PeerVoter {
    transport: Option<Transport>,
    target: Option<NodeId>,
    raft_target: u64,
    address: String,
}

/// Why a call did not get an answer from the peer's openraft.
enum CallError {
    Unreachable(String),
    Network(String),
}

impl PeerVoter {
    async fn exchange(
        &self,
        request: PeerRequest,
        option: &RPCOption,
    ) -> Result<PeerResponse, CallError> {
        let (Some(transport), Some(target)) = (&self.transport, self.target) else {
            return Err(CallError::Unreachable(format!(
                "node {} is not reachable: this node has no cluster listener",
                self.raft_target
            )));
        };
        let answer = transport
            .call(target, &self.address, encode(&request), option.hard_ttl())
            .await
            .map_err(|e| CallError::Unreachable(e.to_string()))?;
        match decode::<PeerResponse>(&answer) {
            Ok(PeerResponse::Refused(reason)) => Err(CallError::Unreachable(format!(
                "node {target} refused: {reason}"
            ))),
            Ok(response) => Ok(response),
            Err(e) => Err(CallError::Network(format!(
                "node {target}: unreadable answer: {e}"
            ))),
        }
    }
}

fn rpc_error<E: std::error::Error>(error: CallError) -> RPCError<u64, BasicNode, E> {
    let io = |m: String| std::io::Error::other(m);
    match error {
        CallError::Unreachable(m) => RPCError::Unreachable(Unreachable::new(&io(m))),
        CallError::Network(m) => RPCError::Network(NetworkError::new(&io(m))),
    }
}

fn wrong_answer<E: std::error::Error>() -> RPCError<u64, BasicNode, E> {
    RPCError::Network(NetworkError::new(&std::io::Error::other(
        "the peer answered with the wrong message",
    )))
}

impl RaftNetwork<TypeConfig> for PeerVoter {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        match self
            .exchange(PeerRequest::AppendEntries(rpc), &option)
            .await
        {
            Ok(PeerResponse::AppendEntries(Ok(response))) => Ok(response),
            Ok(PeerResponse::AppendEntries(Err(e))) => {
                Err(RPCError::RemoteError(RemoteError::new(self.raft_target, e)))
            }
            Ok(_) => Err(wrong_answer()),
            Err(e) => Err(rpc_error(e)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        match self.exchange(PeerRequest::Vote(rpc), &option).await {
            Ok(PeerResponse::Vote(Ok(response))) => Ok(response),
            Ok(PeerResponse::Vote(Err(e))) => {
                Err(RPCError::RemoteError(RemoteError::new(self.raft_target, e)))
            }
            Ok(_) => Err(wrong_answer()),
            Err(e) => Err(rpc_error(e)),
        }
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote<u64>,
        snapshot: Snapshot<TypeConfig>,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<u64>, StreamingError<TypeConfig, Fatal<u64>>> {
        let Snapshot {
            meta,
            snapshot: data,
        } = snapshot;
        let request = PeerRequest::Snapshot {
            vote,
            meta,
            data: *data,
        };
        let exchange = self.exchange(request, &option);
        let outcome = tokio::select! {
            closed = cancel => return Err(StreamingError::Closed(closed)),
            outcome = exchange => outcome,
        };
        let io = |m: String| std::io::Error::other(m);
        match outcome {
            Ok(PeerResponse::Snapshot(Ok(response))) => Ok(response),
            Ok(PeerResponse::Snapshot(Err(fatal))) => Err(StreamingError::RemoteError(
                RemoteError::new(self.raft_target, fatal),
            )),
            Ok(_) => Err(StreamingError::Network(NetworkError::new(&io(
                "the peer answered with the wrong message".to_owned(),
            )))),
            Err(CallError::Unreachable(m)) => {
                Err(StreamingError::Unreachable(Unreachable::new(&io(m))))
            }
            Err(CallError::Network(m)) => Err(StreamingError::Network(NetworkError::new(&io(m)))),
        }
    }
}
