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
pub mod api_versions;
pub mod context;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_topics;
pub mod describe_cluster;
pub mod describe_configs;
pub mod error_code;
pub mod fetch;
mod fetch_encode;
pub mod incremental_alter_configs;
pub mod init_producer_id;
pub mod list_offsets;
pub mod metadata;
pub mod produce;
mod produce_errors;

use std::future::Future;
use std::ops::RangeInclusive;
use std::pin::Pin;
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
    (ApiKey::ApiVersions, api_versions::VERSIONS),
    (ApiKey::CreateTopics, create_topics::VERSIONS),
    (ApiKey::DeleteTopics, delete_topics::VERSIONS),
    (ApiKey::InitProducerId, init_producer_id::VERSIONS),
    (ApiKey::DescribeConfigs, describe_configs::VERSIONS),
    (ApiKey::AlterConfigs, alter_configs::VERSIONS),
    (ApiKey::CreatePartitions, create_partitions::VERSIONS),
    (
        ApiKey::IncrementalAlterConfigs,
        incremental_alter_configs::VERSIONS,
    ),
    (ApiKey::DescribeCluster, describe_cluster::VERSIONS),
];

/// The versions of `api` Spate serves, if it serves it at all.
pub fn supported_versions(api: ApiKey) -> Option<RangeInclusive<i16>> {
    SUPPORTED_APIS
        .iter()
        .find(|(key, _)| *key == api)
        .map(|(_, versions)| versions.clone())
}

/// Routes request frames to handlers. One per shard, shared by that shard's connections.
pub struct Dispatcher {
    broker: Arc<Broker>,
}

impl Dispatcher {
    pub fn new(broker: Arc<Broker>) -> Self {
        Self { broker }
    }
}

impl RequestHandler for Dispatcher {
    fn handle(&self, frame: Bytes) -> Pin<Box<dyn Future<Output = Outcome>>> {
        let broker = self.broker.clone();
        Box::pin(async move { dispatch(&broker, frame).await })
    }
}

async fn dispatch(broker: &Broker, mut frame: Bytes) -> Outcome {
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
        _ => Outcome::Close(format!("{} has no handler", api.name())),
    }
}
