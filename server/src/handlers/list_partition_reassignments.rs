//! `ListPartitionReassignments` (key 46): the partition moves under way (KIP-455), with each
//! partition's current replicas and the replicas being added and removed.
//!
//! Answered from this node's metadata image, which every node follows: no controller round
//! trip, and an answer right after an AlterPartitionReassignments sent to this node already
//! includes it (that handler waits for the image). `topics: null` lists every ongoing
//! reassignment; a list names partitions, and those with nothing under way, or of topics
//! that do not exist, are left out, as Kafka's controller does.

use std::ops::RangeInclusive;

use bytes::Bytes;
use spate_cluster::TopicId;
use spate_cluster::controller::list_partition_reassignments;
use spate_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use spate_protocol::messages::{
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse,
};
use spate_protocol::wire::Decode;

use super::{RequestContext, error_code};
use crate::broker::Broker;
use crate::response::Outcome;

/// Kafka 4.0's only version.
pub const VERSIONS: RangeInclusive<i16> = 0..=0;

pub async fn handle(broker: &Broker, ctx: &RequestContext, mut body: Bytes) -> Outcome {
    let request = match ListPartitionReassignmentsRequest::decode(&mut body, ctx.version) {
        Ok(request) => request,
        Err(e) => return ctx.malformed(e),
    };
    let image = broker.metadata.image();
    let wanted: Option<Vec<(TopicId, i32)>> = request.topics.as_ref().map(|topics| {
        topics
            .iter()
            .filter_map(|t| image.topic(&t.name).map(|known| (known.id, t)))
            .flat_map(|(id, t)| t.partition_indexes.iter().map(move |p| (id, *p)))
            .collect()
    });
    let ongoing = list_partition_reassignments(&image, wanted.as_deref());
    let mut topics: Vec<(TopicId, OngoingTopicReassignment)> = Vec::new();
    for reassignment in ongoing {
        let Some(topic) = image.topic_by_id(reassignment.topic_id) else {
            continue;
        };
        let partition = OngoingPartitionReassignment {
            partition_index: reassignment.partition,
            replicas: reassignment.replicas,
            adding_replicas: reassignment.adding_replicas,
            removing_replicas: reassignment.removing_replicas,
            ..Default::default()
        };
        match topics.iter_mut().find(|(id, _)| *id == topic.id) {
            Some((_, listed)) => listed.partitions.push(partition),
            None => topics.push((
                topic.id,
                OngoingTopicReassignment {
                    name: topic.name.to_string(),
                    partitions: vec![partition],
                    ..Default::default()
                },
            )),
        }
    }
    ctx.respond(&ListPartitionReassignmentsResponse {
        error_code: error_code::NONE,
        error_message: None,
        topics: topics.into_iter().map(|(_, topic)| topic).collect(),
        ..Default::default()
    })
}
