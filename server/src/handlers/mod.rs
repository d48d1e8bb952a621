//! The Kafka API handlers: one file per API, and this module as the only registry.
//!
//! Each handler file declares `VERSIONS`, the versions it serves, and an async `handle` that
//! decodes the body, does the work (through the engine for anything touching a partition)
//! and returns an [`Outcome`]. [`SUPPORTED_APIS`] is what ApiVersions advertises and what
//! dispatch checks, so advertising and serving cannot drift apart.
//!
//! Handlers run on the connection's shard; partition work is routed by the engine to the
//! partition's owning shard.

pub mod alter_configs;
pub mod alter_partition_reassignments;
pub mod api_versions;
pub mod context;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_groups;
pub mod delete_topics;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_groups;
pub mod describe_log_dirs;
pub mod describe_quorum;
pub mod elect_leaders;
pub mod error_code;
pub mod fetch;
mod fetch_encode;
pub mod find_coordinator;
pub mod heartbeat;
pub mod incremental_alter_configs;
pub mod init_producer_id;
pub mod join_group;
pub mod leave_group;
pub mod list_groups;
pub mod list_offsets;
pub mod list_partition_reassignments;
pub mod metadata;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod offset_for_leader_epoch;
pub(crate) mod partition_changes;
pub mod produce;
pub(crate) mod produce_errors;
pub mod sync_group;

use std::future::Future;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use spate_protocol::api_key::ApiKey;
use spate_protocol::frame::peek_request_header;
use spate_protocol::header::decode_request_header;

use crate::broker::Broker;
use crate::connection::RequestHandler;
use crate::response::Outcome;
pub use context::RequestContext;

/// Every API Spate serves and the versions it serves, in API-key order.
pub const SUPPORTED_APIS: &[(ApiKey, RangeInclusive<i16>)] = &[
    (ApiKey::Produce, produce::VERSIONS),
    (ApiKey::Fetch, fetch::VERSIONS),
    (ApiKey::ListOffsets, list_offsets::VERSIONS),
    (ApiKey::Metadata, metadata::VERSIONS),
    (ApiKey::OffsetCommit, offset_commit::VERSIONS),
    (ApiKey::OffsetFetch, offset_fetch::VERSIONS),
    (ApiKey::FindCoordinator, find_coordinator::VERSIONS),
    (ApiKey::JoinGroup, join_group::VERSIONS),
    (ApiKey::Heartbeat, heartbeat::VERSIONS),
    (ApiKey::LeaveGroup, leave_group::VERSIONS),
    (ApiKey::SyncGroup, sync_group::VERSIONS),
    (ApiKey::DescribeGroups, describe_groups::VERSIONS),
    (ApiKey::ListGroups, list_groups::VERSIONS),
    (ApiKey::ApiVersions, api_versions::VERSIONS),
    (ApiKey::CreateTopics, create_topics::VERSIONS),
    (ApiKey::DeleteTopics, delete_topics::VERSIONS),
    (ApiKey::InitProducerId, init_producer_id::VERSIONS),
    (
        ApiKey::OffsetForLeaderEpoch,
        offset_for_leader_epoch::VERSIONS,
    ),
    (ApiKey::DescribeConfigs, describe_configs::VERSIONS),
    (ApiKey::AlterConfigs, alter_configs::VERSIONS),
    (ApiKey::DescribeLogDirs, describe_log_dirs::VERSIONS),
    (ApiKey::CreatePartitions, create_partitions::VERSIONS),
    (ApiKey::DeleteGroups, delete_groups::VERSIONS),
    (ApiKey::ElectLeaders, elect_leaders::VERSIONS),
    (
        ApiKey::IncrementalAlterConfigs,
        incremental_alter_configs::VERSIONS,
    ),
    (
        ApiKey::AlterPartitionReassignments,
        alter_partition_reassignments::VERSIONS,
    ),
    (
        ApiKey::ListPartitionReassignments,
        list_partition_reassignments::VERSIONS,
    ),
    (ApiKey::OffsetDelete, offset_delete::VERSIONS),
    (ApiKey::DescribeQuorum, describe_quorum::VERSIONS),
    (ApiKey::DescribeCluster, describe_cluster::VERSIONS),
];

/// The versions of `api` Spate serves, if it serves it at all.
pub fn supported_versions(api: ApiKey) -> Option<RangeInclusive<i16>> {
    SUPPORTED_APIS
        .iter()
        .find(|(key, _)| *key == api)
        .map(|(_, versions)| versions.clone())
}

/// Routes one connection's request frames to handlers.
pub struct Dispatcher {
    broker: Arc<Broker>,
    /// The client's address as Kafka prints it (`/127.0.0.1`), for group member listings.
    client_host: Rc<str>,
}

impl Dispatcher {
    pub fn new(broker: Arc<Broker>, peer: Option<SocketAddr>) -> Self {
        let client_host = peer.map(|p| format!("/{}", p.ip())).unwrap_or_default();
        Self {
            broker,
            client_host: client_host.into(),
        }
    }
}

impl RequestHandler for Dispatcher {
    fn handle(&self, frame: Bytes) -> Pin<Box<dyn Future<Output = Outcome>>> {
        let broker = self.broker.clone();
        let client_host = self.client_host.clone();
        Box::pin(async move { dispatch(&broker, client_host, frame).await })
    }
}

async fn dispatch(broker: &Broker, client_host: Rc<str>, mut frame: Bytes) -> Outcome {
    let peeked = match peek_request_header(&frame) {
        Ok(peeked) => peeked,
        Err(e) => return Outcome::Close(format!("unreadable request header: {e}")),
    };
    let api = ApiKey::from_i16(peeked.api_key);
    let versions = api.and_then(supported_versions);
    let (Some(api), Some(versions)) = (api, versions) else {
        // No response schema exists for an API we do not know; the ApiVersions v0 error
        // reply is the one answer every client can parse, and it tells them what we serve.
        tracing::debug!(api_key = peeked.api_key, "unsupported API key");
        return api_versions::unsupported_version_reply(peeked.correlation_id);
    };
    if !versions.contains(&peeked.api_version) {
        tracing::debug!(
            api = api.name(),
            version = peeked.api_version,
            "unsupported version"
        );
        if api == ApiKey::ApiVersions {
            return api_versions::unsupported_version_reply(peeked.correlation_id);
        }
        return Outcome::Close(format!(
            "{} v{} is not supported (supported: {}..={}); the client should have checked ApiVersions",
            api.name(),
            peeked.api_version,
            versions.start(),
            versions.end()
        ));
    }
    let header = match decode_request_header(&mut frame) {
        Ok(header) => header,
        Err(e) => return Outcome::Close(format!("malformed request header: {e}")),
    };
    let ctx = RequestContext {
        api,
        version: header.request_api_version,
        correlation_id: header.correlation_id,
        client_id: header.client_id,
        client_host,
    };
    let body = frame;
    match api {
        ApiKey::Produce => produce::handle(broker, &ctx, body).await,
        ApiKey::Fetch => fetch::handle(broker, &ctx, body).await,
        ApiKey::ListOffsets => list_offsets::handle(broker, &ctx, body).await,
        ApiKey::Metadata => metadata::handle(broker, &ctx, body).await,
        ApiKey::ApiVersions => api_versions::handle(broker, &ctx, body).await,
        ApiKey::CreateTopics => create_topics::handle(broker, &ctx, body).await,
        ApiKey::DeleteTopics => delete_topics::handle(broker, &ctx, body).await,
        ApiKey::InitProducerId => init_producer_id::handle(broker, &ctx, body).await,
        ApiKey::DescribeConfigs => describe_configs::handle(broker, &ctx, body).await,
        ApiKey::AlterConfigs => alter_configs::handle(broker, &ctx, body).await,
        ApiKey::CreatePartitions => create_partitions::handle(broker, &ctx, body).await,
        ApiKey::IncrementalAlterConfigs => {
            incremental_alter_configs::handle(broker, &ctx, body).await
        }
        ApiKey::DescribeCluster => describe_cluster::handle(broker, &ctx, body).await,
        ApiKey::DescribeQuorum => describe_quorum::handle(broker, &ctx, body).await,
        ApiKey::OffsetCommit => offset_commit::handle(broker, &ctx, body).await,
        ApiKey::OffsetFetch => offset_fetch::handle(broker, &ctx, body).await,
        ApiKey::FindCoordinator => find_coordinator::handle(broker, &ctx, body).await,
        ApiKey::JoinGroup => join_group::handle(broker, &ctx, body).await,
        ApiKey::Heartbeat => heartbeat::handle(broker, &ctx, body).await,
        ApiKey::LeaveGroup => leave_group::handle(broker, &ctx, body).await,
        ApiKey::SyncGroup => sync_group::handle(broker, &ctx, body).await,
        ApiKey::DescribeGroups => describe_groups::handle(broker, &ctx, body).await,
        ApiKey::ListGroups => list_groups::handle(broker, &ctx, body).await,
        ApiKey::DeleteGroups => delete_groups::handle(broker, &ctx, body).await,
        ApiKey::OffsetDelete => offset_delete::handle(broker, &ctx, body).await,
        ApiKey::OffsetForLeaderEpoch => offset_for_leader_epoch::handle(broker, &ctx, body).await,
        ApiKey::DescribeLogDirs => describe_log_dirs::handle(broker, &ctx, body).await,
        ApiKey::ElectLeaders => elect_leaders::handle(broker, &ctx, body).await,
        ApiKey::AlterPartitionReassignments => {
            alter_partition_reassignments::handle(broker, &ctx, body).await
        }
        ApiKey::ListPartitionReassignments => {
            list_partition_reassignments::handle(broker, &ctx, body).await
        }
        _ => Outcome::Close(format!("{} has no handler", api.name())),
    }
}
