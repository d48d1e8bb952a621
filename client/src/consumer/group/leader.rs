//! The leader's part of a rebalance: read every member's subscription, look up the
//! subscribed topics, and run the assignor the coordinator chose.

use std::collections::{BTreeMap, BTreeSet};

use spate_protocol::ErrorCode;
use spate_protocol::messages::join_group_response::JoinGroupResponseMember;
use spate_protocol::messages::sync_group_request::SyncGroupRequestAssignment;

use super::GroupShared;
use super::assignor::{Assignor, Member};
use super::membership::{Step, Stop};
use super::protocol::{Assignment, Subscription};
use crate::client::Client;
use crate::connection::Connection;
use crate::error::Error;

/// The leader's part: read every member's subscription, look up the topics and run
/// the assignor the coordinator chose.
pub(super) async fn lead(
    shared: &GroupShared,
    assignor: Assignor,
    joined: &[JoinGroupResponseMember],
    connection: &Connection,
) -> Step<Vec<SyncGroupRequestAssignment>> {
    let group = shared.group();
    let mut topics = BTreeSet::new();
    let mut members = Vec::with_capacity(joined.len());
    for member in joined {
        let subscription = Subscription::decode(member.metadata.clone()).unwrap_or_else(|error| {
            tracing::warn!(%error, group, member = %member.member_id,
                    "member's subscription is unreadable; it gets no partitions");
            Subscription {
                generation: -1,
                ..Default::default()
            }
        });
        topics.extend(subscription.topics.iter().cloned());
        members.push(Member {
            member_id: member.member_id.clone(),
            group_instance_id: member.group_instance_id.clone(),
            subscription,
        });
    }
    let topics: Vec<String> = topics.into_iter().collect();
    let counts = partition_counts(shared.consumer.client(), &topics)
        .await
        .map_err(Stop::Retry)?;
    let counts: BTreeMap<String, i32> = counts
        .into_iter()
        .map(|(t, n)| (t, n.min(i32::MAX as usize) as i32))
        .collect();
    let result = assignor.assign(&members, &counts);
    tracing::info!(
        group,
        assignor = assignor.name(),
        ?result,
        "assigned as leader"
    );
    result
        .into_iter()
        .map(|(member_id, partitions)| {
            let assignment = Assignment {
                partitions,
                user_data: None,
            };
            match assignment.encode() {
                Ok(bytes) => Ok(SyncGroupRequestAssignment {
                    member_id,
                    assignment: bytes,
                    ..Default::default()
                }),
                Err(e) => Err(Stop::Fatal(Error::Encode {
                    broker: connection.broker().to_string(),
                    api: "SyncGroup",
                    reason: format!("assignment of group {group}: {e}"),
                })),
            }
        })
        .collect()
}

/// Partition counts of those `topics` that exist.
pub(super) async fn partition_counts(
    client: &Client,
    topics: &[String],
) -> Result<BTreeMap<String, usize>, Error> {
    if topics.is_empty() {
        return Ok(BTreeMap::new());
    }
    let metadata = client.refresh_metadata(topics, false).await?;
    Ok(topics
        .iter()
        .filter_map(|topic| {
            let info = metadata.topics.get(topic)?;
            (info.error == ErrorCode::None && !info.partitions.is_empty())
                .then(|| (topic.clone(), info.partitions.len()))
        })
        .collect())
}
