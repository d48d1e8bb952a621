//! Which request types the client sends, at which versions, and what answers them.
//!
//! The client range of each API is the versions whose fields this crate fills in correctly;
//! the version actually sent is the highest one both the client and the broker (from its
//! ApiVersions answer) support, as Kafka's clients do.

use std::collections::HashMap;
use std::fmt::Debug;
use std::ops::RangeInclusive;

use spate_protocol::messages::*;
use spate_protocol::{ApiKey, Decode, Encode};

use crate::error::Error;

/// A request message and its response type, with the versions this client can speak.
pub trait Request: Encode + Debug + Send + Sync {
    const KEY: ApiKey;
    /// Versions this crate builds correctly; the broker's range is intersected with it.
    const CLIENT_VERSIONS: RangeInclusive<i16>;
    type Response: Decode + Debug + Send;
}

macro_rules! requests {
    ($($request:ident => $response:ident, $key:ident, $versions:expr;)*) => {
        $(impl Request for $request {
            const KEY: ApiKey = ApiKey::$key;
            const CLIENT_VERSIONS: RangeInclusive<i16> = $versions;
            type Response = $response;
        })*
    };
}

requests! {
    // v3 is the first with record batch v2 (the only format the builder writes).
    ProduceRequest => ProduceResponse, Produce, 3..=11;
    // v4 is the first with record batch v2 responses; v13+ names topics by id.
    FetchRequest => FetchResponse, Fetch, 4..=17;
    ListOffsetsRequest => ListOffsetsResponse, ListOffsets, 1..=10;
    // v4 is the first with allow_auto_topic_creation.
    MetadataRequest => MetadataResponse, Metadata, 4..=12;
    OffsetCommitRequest => OffsetCommitResponse, OffsetCommit, 2..=9;
    OffsetFetchRequest => OffsetFetchResponse, OffsetFetch, 1..=9;
    FindCoordinatorRequest => FindCoordinatorResponse, FindCoordinator, 0..=6;
    DescribeGroupsRequest => DescribeGroupsResponse, DescribeGroups, 0..=5;
    ListGroupsRequest => ListGroupsResponse, ListGroups, 0..=5;
    ApiVersionsRequest => ApiVersionsResponse, ApiVersions, 0..=4;
    CreateTopicsRequest => CreateTopicsResponse, CreateTopics, 2..=7;
    DeleteTopicsRequest => DeleteTopicsResponse, DeleteTopics, 1..=6;
    InitProducerIdRequest => InitProducerIdResponse, InitProducerId, 0..=5;
    DescribeConfigsRequest => DescribeConfigsResponse, DescribeConfigs, 1..=4;
    CreatePartitionsRequest => CreatePartitionsResponse, CreatePartitions, 0..=3;
    DeleteGroupsRequest => DeleteGroupsResponse, DeleteGroups, 0..=2;
    // The group member's APIs. JoinGroup v4 is the first answering MEMBER_ID_REQUIRED
    // (KIP-394) and v5 the first with static membership (KIP-345), which the other three
    // carry from v3; LeaveGroup v3 is the first naming members in a batch.
    JoinGroupRequest => JoinGroupResponse, JoinGroup, 5..=9;
    SyncGroupRequest => SyncGroupResponse, SyncGroup, 3..=5;
    HeartbeatRequest => HeartbeatResponse, Heartbeat, 3..=4;
    LeaveGroupRequest => LeaveGroupResponse, LeaveGroup, 3..=5;
    IncrementalAlterConfigsRequest => IncrementalAlterConfigsResponse, IncrementalAlterConfigs, 0..=1;
    // v1 is the first with an election type (v0 is preferred only).
    ElectLeadersRequest => ElectLeadersResponse, ElectLeaders, 1..=2;
    AlterPartitionReassignmentsRequest => AlterPartitionReassignmentsResponse, AlterPartitionReassignments, 0..=0;
    ListPartitionReassignmentsRequest => ListPartitionReassignmentsResponse, ListPartitionReassignments, 0..=0;
}

/// The versions one broker serves, from its ApiVersions answer.
#[derive(Debug, Clone, Default)]
pub struct ApiVersionTable {
    ranges: HashMap<i16, (i16, i16)>,
}

impl ApiVersionTable {
    pub fn from_response(response: &ApiVersionsResponse) -> Self {
        let ranges = response
            .api_keys
            .iter()
            .map(|api| (api.api_key, (api.min_version, api.max_version)))
            .collect();
        Self { ranges }
    }

    /// The broker's range for `key`, if it serves it.
    pub fn broker_range(&self, key: ApiKey) -> Option<(i16, i16)> {
        self.ranges.get(&key.id()).copied()
    }

    /// The highest version of `R` both sides support.
    pub fn pick<R: Request>(&self, broker: &str) -> Result<i16, Error> {
        let Some((broker_min, broker_max)) = self.broker_range(R::KEY) else {
            return Err(Error::ApiNotServed {
                broker: broker.to_string(),
                api: R::KEY.name(),
            });
        };
        let client = R::CLIENT_VERSIONS;
        let version = broker_max.min(*client.end());
        if version < broker_min || version < *client.start() {
            return Err(Error::UnsupportedVersion {
                broker: broker.to_string(),
                api: R::KEY.name(),
                broker_min,
                broker_max,
                client_min: *client.start(),
                client_max: *client.end(),
            });
        }
        Ok(version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(entries: &[(ApiKey, i16, i16)]) -> ApiVersionTable {
        let response = ApiVersionsResponse {
            api_keys: entries
                .iter()
                .map(|(key, min, max)| api_versions_response::ApiVersion {
                    api_key: key.id(),
                    min_version: *min,
                    max_version: *max,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        ApiVersionTable::from_response(&response)
    }

    #[test]
    fn picks_the_highest_version_both_sides_support() {
        let versions = table(&[(ApiKey::Fetch, 0, 20), (ApiKey::Produce, 3, 7)]);
        assert_eq!(versions.pick::<FetchRequest>("b").unwrap(), 17);
        assert_eq!(versions.pick::<ProduceRequest>("b").unwrap(), 7);
    }

    #[test]
    fn no_overlap_is_an_error_naming_both_ranges() {
        let versions = table(&[(ApiKey::Produce, 0, 2)]);
        let error = versions.pick::<ProduceRequest>("node 1").unwrap_err();
        let text = error.to_string();
        assert!(text.contains("node 1") && text.contains("0..=2") && text.contains("3..=11"));
        let missing = versions.pick::<FetchRequest>("node 1").unwrap_err();
        assert!(matches!(missing, Error::ApiNotServed { .. }));
    }
}
