//! The APIs the capture tool answers. It advertises Kafka 4.0's full version range for each
//! (from the generated `ApiKey` table), so clients choose the versions they would choose
//! against a real 4.0 broker.

use spate_protocol::ApiKey;

pub const ANSWERED: [ApiKey; 13] = [
    ApiKey::Produce,
    ApiKey::Fetch,
    ApiKey::ListOffsets,
    ApiKey::Metadata,
    ApiKey::OffsetCommit,
    ApiKey::OffsetFetch,
    ApiKey::FindCoordinator,
    ApiKey::JoinGroup,
    ApiKey::Heartbeat,
    ApiKey::LeaveGroup,
    ApiKey::SyncGroup,
    ApiKey::ApiVersions,
    ApiKey::InitProducerId,
];

/// Name used in capture file names, e.g. `JoinGroup`.
pub fn name(key: ApiKey) -> String {
    format!("{key:?}")
}
