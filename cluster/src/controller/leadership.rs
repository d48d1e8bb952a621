//! The partition changes that follow brokers leaving or returning, one record per partition.
//!
//! A [`RecordBody::PartitionChange`] is applied only at the partition epoch it expects, and
//! the epoch bumps when it applies: a second change for the same partition in the same batch
//! would be refused, and the whole batch with it. So when several brokers leave at once,
//! each partition's target is computed through all of them and written as one change.

use std::collections::BTreeSet;

use crate::NodeId;
use crate::election::{self, PartitionTarget};
use crate::image::{ClusterImage, PartitionState};
use crate::records::RecordBody;

/// The changes that take every broker in `leaving` out of service: out of every ISR where
/// it is not the last member, and out of leadership. Leaders are chosen among the brokers
/// the image calls live that are not leaving.
pub(crate) fn remove_from_isrs(
    image: &ClusterImage,
    leaving: &BTreeSet<NodeId>,
) -> Vec<RecordBody> {
    if leaving.is_empty() {
        return Vec::new();
    }
    let is_live =
        |id: NodeId| !leaving.contains(&id) && image.broker(id).is_some_and(|b| b.is_live());
    changes_where(
        image,
        |partition| {
            partition.isr.iter().any(|m| leaving.contains(m)) || leaving.contains(&partition.leader)
        },
        |partition| {
            let mut target = PartitionTarget::unchanged(partition);
            for &node in leaving {
                let step = PartitionState {
                    isr: target.isr.clone(),
                    leader: target.leader,
                    ..partition.clone()
                };
                target = election::without_node(&step, node, &is_live);
            }
            target
        },
    )
}

/// The elections `joining` makes possible by becoming live: every leaderless partition whose
/// ISR holds it gets its first live ISR member (in assignment order) as leader.
pub(crate) fn elect_leaderless(image: &ClusterImage, joining: NodeId) -> Vec<RecordBody> {
    let is_live = |id: NodeId| id == joining || image.broker(id).is_some_and(|b| b.is_live());
    changes_where(
        image,
        |partition| partition.leader == crate::NO_LEADER && partition.isr.contains(&joining),
        |partition| election::elect_if_leaderless(partition, &is_live),
    )
}

/// Whether `node` leads any partition.
pub(crate) fn leads_any(image: &ClusterImage, node: NodeId) -> bool {
    image
        .topics()
        .flat_map(|topic| topic.partitions.iter())
        .any(|partition| partition.leader == node)
}

/// One change record for every partition that `touched` selects and `decide` changes.
fn changes_where(
    image: &ClusterImage,
    touched: impl Fn(&PartitionState) -> bool,
    decide: impl Fn(&PartitionState) -> PartitionTarget,
) -> Vec<RecordBody> {
    let mut records = Vec::new();
    for topic in image.topics() {
        for (index, partition) in topic.partitions.iter().enumerate() {
            if !touched(partition) {
                continue;
            }
            // Bounded by PARTITION_COUNT_MAX, so the index fits an i32.
            let Ok(index) = i32::try_from(index) else {
                continue;
            };
            let target = decide(partition);
            records.extend(election::change_record(topic.id, index, partition, &target));
        }
    }
    records
}
