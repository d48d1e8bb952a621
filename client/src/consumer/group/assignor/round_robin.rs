//! Kafka's `roundrobin` assignor.

use std::collections::BTreeMap;

use super::Member;
use crate::offsets::TopicPartition;

/// Every partition of every topic in (topic, partition) order goes to the next member in
/// the circle that subscribes to its topic.
pub(super) fn assign(
    members: &[&Member],
    partition_counts: &BTreeMap<String, i32>,
) -> BTreeMap<String, Vec<TopicPartition>> {
    let mut result: BTreeMap<String, Vec<TopicPartition>> = BTreeMap::new();
    if members.is_empty() {
        return result;
    }
    let mut next = 0usize;
    for (topic, count) in partition_counts {
        if !members.iter().any(|m| m.subscribes(topic)) {
            continue;
        }
        for partition in 0..(*count).max(0) {
            while !members[next % members.len()].subscribes(topic) {
                next += 1;
            }
            let member = members[next % members.len()];
            result
                .entry(member.member_id.clone())
                .or_default()
                .push((topic.clone(), partition));
            next += 1;
        }
    }
    result
}
