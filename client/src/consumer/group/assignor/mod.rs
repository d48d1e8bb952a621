//! Partition assignors: what the group's leader runs to split the subscribed partitions
//! among the members, by the protocol name the coordinator picked from every member's list.
//!
//! The names are Kafka's, so a group can mix this client with Java and librdkafka members:
//! whoever leads runs the same algorithm under the same name, and the others only decode
//! the result.

mod cooperative_sticky;
mod range;
mod round_robin;

use std::cmp::Ordering;
use std::collections::BTreeMap;

use super::protocol::Subscription;
use crate::offsets::TopicPartition;

/// A partition assignment strategy (`partition.assignment.strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Assignor {
    /// `range`: per topic, consecutive partitions to members in order; the first members
    /// get one more when the count does not divide.
    Range,
    /// `roundrobin`: all partitions dealt in turn to the members subscribed to each.
    RoundRobin,
    /// `cooperative-sticky` (KIP-429): balanced, keeps members' partitions where they are,
    /// and moves a partition only by revoking it in one rebalance and assigning it in the
    /// next, so members keep consuming what they retain throughout.
    CooperativeSticky,
}

impl Assignor {
    /// The protocol name in JoinGroup, shared with Kafka's clients.
    pub fn name(self) -> &'static str {
        match self {
            Assignor::Range => "range",
            Assignor::RoundRobin => "roundrobin",
            Assignor::CooperativeSticky => "cooperative-sticky",
        }
    }

    /// Whether the assignor supports KIP-429's incremental rebalancing. The member
    /// rebalances cooperatively only when every configured assignor does, as Kafka's
    /// consumer does (so `[range, cooperative-sticky]` stays eager until `range` is dropped).
    pub fn is_cooperative(self) -> bool {
        matches!(self, Assignor::CooperativeSticky)
    }

    pub fn from_name(name: &str) -> Option<Assignor> {
        [
            Assignor::Range,
            Assignor::RoundRobin,
            Assignor::CooperativeSticky,
        ]
        .into_iter()
        .find(|a| a.name() == name)
    }

    /// Every member's partitions (every member appears, possibly with none).
    /// `partition_counts` holds each subscribed topic that exists; others are skipped.
    pub(crate) fn assign(
        self,
        members: &[Member],
        partition_counts: &BTreeMap<String, i32>,
    ) -> BTreeMap<String, Vec<TopicPartition>> {
        let mut sorted: Vec<&Member> = members.iter().collect();
        sorted.sort_by(|a, b| a.cmp_order(b));
        let mut result = match self {
            Assignor::Range => range::assign(&sorted, partition_counts),
            Assignor::RoundRobin => round_robin::assign(&sorted, partition_counts),
            Assignor::CooperativeSticky => cooperative_sticky::assign(&sorted, partition_counts),
        };
        for member in members {
            let partitions = result.entry(member.member_id.clone()).or_default();
            partitions.sort();
        }
        result
    }
}

/// One member as the leader sees it in the JoinGroup answer.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub subscription: Subscription,
}

impl Member {
    /// Kafka's member order: static members first, by instance id, then dynamic members by
    /// member id. A static member keeps its instance id across restarts, so it keeps its
    /// place (and, with range, its partitions).
    fn cmp_order(&self, other: &Member) -> Ordering {
        match (&self.group_instance_id, &other.group_instance_id) {
            (Some(a), Some(b)) => a.cmp(b),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => self.member_id.cmp(&other.member_id),
        }
    }

    fn subscribes(&self, topic: &str) -> bool {
        self.subscription.topics.iter().any(|t| t == topic)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn member(id: &str, topics: &[&str], owned: &[(&str, i32)], generation: i32) -> Member {
        Member {
            member_id: id.to_string(),
            group_instance_id: None,
            subscription: Subscription {
                topics: topics.iter().map(|t| t.to_string()).collect(),
                owned: owned.iter().map(|(t, p)| (t.to_string(), *p)).collect(),
                generation,
                ..Default::default()
            },
        }
    }

    pub fn counts(topics: &[(&str, i32)]) -> BTreeMap<String, i32> {
        topics.iter().map(|(t, n)| (t.to_string(), *n)).collect()
    }

    #[test]
    fn names_round_trip_and_only_sticky_is_cooperative() {
        for assignor in [
            Assignor::Range,
            Assignor::RoundRobin,
            Assignor::CooperativeSticky,
        ] {
            assert_eq!(Assignor::from_name(assignor.name()), Some(assignor));
        }
        assert_eq!(Assignor::from_name("sticky"), None);
        assert!(Assignor::CooperativeSticky.is_cooperative());
        assert!(!Assignor::Range.is_cooperative());
    }

    #[test]
    fn static_members_sort_first_by_instance_id() {
        let mut a = member("a", &["t"], &[], -1);
        let mut z = member("z", &["t"], &[], -1);
        z.group_instance_id = Some("i1".into());
        a.group_instance_id = None;
        let result = Assignor::Range.assign(&[a, z], &counts(&[("t", 3)]));
        assert_eq!(
            result["z"].len(),
            2,
            "the static member is first: {result:?}"
        );
        assert_eq!(result["a"].len(), 1);
    }

    #[test]
    fn roundrobin_deals_in_turn_skipping_unsubscribed_members() {
        let members = [
            member("a", &["t", "u"], &[], -1),
            member("b", &["t"], &[], -1),
        ];
        let result = Assignor::RoundRobin.assign(&members, &counts(&[("t", 3), ("u", 2)]));
        let tp = |t: &str, p| (t.to_string(), p);
        assert_eq!(
            result["a"],
            vec![tp("t", 0), tp("t", 2), tp("u", 0), tp("u", 1)]
        );
        assert_eq!(result["b"], vec![tp("t", 1)]);
    }
}
