//! Finding a consumer group's coordinator: the one FindCoordinator loop that the group
//! member and the admin client both use.

use std::time::Instant;

use spate_protocol::ErrorCode;
use spate_protocol::messages::FindCoordinatorRequest;

use crate::client::Client;
use crate::error::{Error, error_code};

/// FindCoordinator's key type for consumer groups.
const GROUP_KEY_TYPE: i8 = 0;

/// Where a group's coordinator listens, as FindCoordinator answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupCoordinator {
    /// `host:port`, to connect to.
    pub address: String,
    /// How errors name it: the group, the node id and the address.
    pub label: String,
}

impl Client {
    /// Asks any broker for `group`'s coordinator, batched (v4+) or not, whichever the broker
    /// speaks. Retries while the answer is retriable (the coordinator is loading, or its
    /// `__consumer_offsets` partition is still being created), for up to
    /// `request.timeout.ms`.
    pub async fn find_group_coordinator(&self, group: &str) -> Result<GroupCoordinator, Error> {
        let deadline = Instant::now() + self.config().request_timeout;
        loop {
            let build = |version: i16| {
                Ok(if version >= 4 {
                    FindCoordinatorRequest {
                        key_type: GROUP_KEY_TYPE,
                        coordinator_keys: vec![group.to_string()],
                        ..Default::default()
                    }
                } else {
                    FindCoordinatorRequest {
                        key: group.to_string(),
                        key_type: GROUP_KEY_TYPE,
                        ..Default::default()
                    }
                })
            };
            let (broker, response) = self
                .send_any_versioned::<FindCoordinatorRequest, FindCoordinatorRequest>(build)
                .await?;
            let (code, node_id, host, port) = match response.coordinators.first() {
                Some(c) => (error_code(c.error_code), c.node_id, c.host.clone(), c.port),
                None => (
                    error_code(response.error_code),
                    response.node_id,
                    response.host.clone(),
                    response.port,
                ),
            };
            if code == ErrorCode::None {
                return Ok(GroupCoordinator {
                    address: format!("{host}:{port}"),
                    label: format!(
                        "coordinator of group {group} (node {node_id} at {host}:{port})"
                    ),
                });
            }
            let error = Error::Broker {
                broker,
                what: format!("finding the coordinator of group {group}"),
                code,
                message: None,
            };
            if !code.is_retriable() || Instant::now() >= deadline {
                return Err(error);
            }
            tokio::time::sleep(self.config().retry_backoff).await;
        }
    }
}
