//! Kafka's `range` assignor.

use std::collections::BTreeMap;

use super::Member;
use crate::offsets::TopicPartition;

/// Per topic: the subscribed members in order share the partitions in consecutive runs;
/// the first `count % members` get one extra.
pub(super) fn assign(
    members: &[&Member],
    partition_counts: &BTreeMap<String, i32>,
) -> BTreeMap<String, Vec<TopicPartition>> {
    let mut result: BTreeMap<String, Vec<TopicPartition>> = BTreeMap::new();
    for (topic, count) in partition_counts {
        let subscribed: Vec<&&Member> = members.iter().filter(|m| m.subscribes(topic)).collect();
        if subscribed.is_empty() || *count <= 0 {
            continue;
        }
        let per_member = *count as usize / subscribed.len();
        let extra = *count as usize % subscribed.len();
        let mut next = 0usize;
        for (index, member) in subscribed.iter().enumerate() {
            let length = per_member + usize::from(index < extra);
            let share = result.entry(member.member_id.clone()).or_default();
            share.extend((next..next + length).map(|p| (topic.clone(), p as i32)));
            next += length;
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::super::Assignor;
    use super::super::tests::{counts, member};

    #[test]
    fn first_members_get_the_extra_partition_per_topic() {
        let members = [
            member("c", &["t", "u"], &[], -1),
            member("a", &["t", "u"], &[], -1),
            member("b", &["t"], &[], -1),
        ];
        let result = Assignor::Range.assign(&members, &counts(&[("t", 4), ("u", 3), ("gone", 2)]));
        let tp = |t: &str, p| (t.to_string(), p);
        // t: a, b, c in member-id order share 4 -> 2,1,1; u: a, c share 3 -> 2,1.
        assert_eq!(
            result["a"],
            vec![tp("t", 0), tp("t", 1), tp("u", 0), tp("u", 1)]
        );
        assert_eq!(result["b"], vec![tp("t", 2)]);
        assert_eq!(result["c"], vec![tp("t", 3), tp("u", 2)]);
    }

    #[test]
    fn more_members_than_partitions_leaves_the_last_empty() {
        let members = [member("a", &["t"], &[], -1), member("b", &["t"], &[], -1)];
        let result = Assignor::Range.assign(&members, &counts(&[("t", 1)]));
        assert_eq!(result["a"].len(), 1);
        assert!(result["b"].is_empty(), "every member appears: {result:?}");
    }
}
