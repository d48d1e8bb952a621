//! Leader election and ISR changes for one partition, as Kafka's `PartitionChangeBuilder`
//! decides them (clean elections only: `unclean.leader.election.enable=false`).
//!
//! A leader is only ever taken from the ISR: a replica outside it may lack committed
//! records, and electing it would lose them. When no ISR member is live the partition stays
//! leaderless and keeps its last ISR, so the broker that holds the committed data leads
//! again when it comes back. These functions decide; [`change_record`] turns a decision into
//! the one record that applies it.

use crate::bugs::{self, Bug};
use crate::image::PartitionState;
use crate::records::RecordBody;
use crate::topic_id::TopicId;
use crate::{NO_LEADER, NodeId};

/// The leader and ISR a partition should move to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionTarget {
    pub leader: NodeId,
    pub isr: Vec<NodeId>,
}

impl PartitionTarget {
    /// The target that changes nothing.
    pub fn unchanged(partition: &PartitionState) -> Self {
        Self {
            leader: partition.leader,
            isr: partition.isr.clone(),
        }
    }
}

/// What `partition` becomes when `node` leaves service (fenced, or in controlled shutdown):
/// it leaves the ISR unless it is the last member, and if it led, the first replica in
/// assignment order that is in the new ISR and `is_live` leads (or nobody).
///
/// A current leader other than `node` that is live and stays in the ISR keeps leading
/// (a leadership change costs every client a metadata refresh). `node` itself never counts
/// as live here, whatever `is_live` says.
pub fn without_node(
    partition: &PartitionState,
    node: NodeId,
    is_live: &dyn Fn(NodeId) -> bool,
) -> PartitionTarget {
    let shrunk: Vec<NodeId> = partition
        .isr
        .iter()
        .copied()
        .filter(|&member| member != node)
        .collect();
    // The last in-sync replica stays in the ISR: it alone is known to hold every committed
    // record, so it must be the one to lead when it returns.
    let isr = if shrunk.is_empty() {
        partition.isr.clone()
    } else {
        shrunk
    };
    let unclean = bugs::enabled(Bug::UncleanElection);
    let can_lead = |candidate: NodeId| {
        candidate != node && (unclean || isr.contains(&candidate)) && is_live(candidate)
    };
    let leader = if partition.leader != NO_LEADER && can_lead(partition.leader) {
        partition.leader
    } else {
        first_in_assignment_order(partition, &can_lead)
    };
    with_leader_in_isr(PartitionTarget { leader, isr })
}

/// What a leaderless `partition` becomes now that the brokers `is_live` says are live are
/// back: the first ISR member in assignment order that is live leads. A partition that has
/// a leader is left as it is.
pub fn elect_if_leaderless(
    partition: &PartitionState,
    is_live: &dyn Fn(NodeId) -> bool,
) -> PartitionTarget {
    if partition.leader != NO_LEADER {
        return PartitionTarget::unchanged(partition);
    }
    let unclean = bugs::enabled(Bug::UncleanElection);
    let can_lead =
        |candidate: NodeId| (unclean || partition.isr.contains(&candidate)) && is_live(candidate);
    with_leader_in_isr(PartitionTarget {
        leader: first_in_assignment_order(partition, &can_lead),
        isr: partition.isr.clone(),
    })
}

/// The target as decided; with the injected `unclean-election` bug (tests only), a leader
/// taken from outside the ISR is added to it, as the image requires.
fn with_leader_in_isr(mut target: PartitionTarget) -> PartitionTarget {
    if target.leader != NO_LEADER && !target.isr.contains(&target.leader) {
        target.isr.push(target.leader);
    }
    target
}

/// The first replica (the preferred leader first) that `can_lead`, or [`NO_LEADER`].
fn first_in_assignment_order(
    partition: &PartitionState,
    can_lead: &dyn Fn(NodeId) -> bool,
) -> NodeId {
    partition
        .replicas
        .iter()
        .copied()
        .find(|&replica| can_lead(replica))
        .unwrap_or(NO_LEADER)
}

/// The record that moves `current` to `target`, or `None` if nothing changes. It sets only
/// the fields that change and expects `current`'s partition epoch, so it is refused if the
/// partition changed after the decision was made.
pub fn change_record(
    topic_id: TopicId,
    partition: i32,
    current: &PartitionState,
    target: &PartitionTarget,
) -> Option<RecordBody> {
    let leader = (target.leader != current.leader).then_some(target.leader);
    let isr = (target.isr != current.isr).then(|| target.isr.clone());
    if leader.is_none() && isr.is_none() {
        return None;
    }
    Some(RecordBody::PartitionChange {
        topic_id,
        partition,
        expected_partition_epoch: current.partition_epoch,
        leader,
        isr,
        replicas: None,
        adding_replicas: None,
        removing_replicas: None,
        leader_recovery_state: None,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    fn state(replicas: &[NodeId], isr: &[NodeId], leader: NodeId) -> PartitionState {
        PartitionState::new(replicas.to_vec(), isr.to_vec(), leader, 4, 9)
    }

    fn live(ids: &'static [NodeId]) -> impl Fn(NodeId) -> bool {
        move |id| ids.contains(&id)
    }

    #[test]
    fn a_fenced_leader_is_replaced_by_the_first_live_isr_member_in_assignment_order() {
        // Assignment order is 1, 3, 2; the ISR lists 2 before 3, but 3 comes first.
        let p = state(&[1, 3, 2], &[1, 2, 3], 1);
        let target = without_node(&p, 1, &live(&[2, 3]));
        assert_eq!(
            target,
            PartitionTarget {
                leader: 3,
                isr: vec![2, 3]
            }
        );
    }

    #[test]
    fn a_fenced_follower_leaves_the_isr_and_the_leader_stays() {
        let p = state(&[1, 2, 3], &[1, 2, 3], 1);
        let target = without_node(&p, 2, &live(&[1, 3]));
        assert_eq!(
            target,
            PartitionTarget {
                leader: 1,
                isr: vec![1, 3]
            }
        );
    }

    #[test]
    fn the_last_isr_member_stays_in_the_isr_and_the_partition_goes_leaderless() {
        let p = state(&[1, 2, 3], &[2], 2);
        let target = without_node(&p, 2, &live(&[1, 3]));
        assert_eq!(
            target,
            PartitionTarget {
                leader: NO_LEADER,
                isr: vec![2]
            }
        );
    }

    #[test]
    fn replicas_outside_the_isr_are_never_elected() {
        let p = state(&[1, 2, 3], &[1, 2], 1);
        // 2 is in the ISR but not live; 3 is live but not in the ISR.
        let target = without_node(&p, 1, &live(&[3]));
        assert_eq!(
            target,
            PartitionTarget {
                leader: NO_LEADER,
                isr: vec![2]
            }
        );
    }

    #[test]
    fn the_leaving_node_is_never_elected_even_if_called_live() {
        let p = state(&[1, 2], &[1, 2], 1);
        let target = without_node(&p, 1, &live(&[1]));
        assert_eq!(
            target,
            PartitionTarget {
                leader: NO_LEADER,
                isr: vec![2]
            }
        );
    }

    #[test]
    fn a_leaderless_partition_elects_when_a_node_leaves_and_another_is_live() {
        let p = state(&[1, 2, 3], &[1, 2], NO_LEADER);
        let target = without_node(&p, 3, &live(&[2]));
        assert_eq!(
            target,
            PartitionTarget {
                leader: 2,
                isr: vec![1, 2]
            }
        );
    }

    #[test]
    fn a_node_outside_the_isr_leaving_changes_nothing() {
        let p = state(&[1, 2, 3], &[1, 2], 1);
        let target = without_node(&p, 3, &live(&[1, 2]));
        assert_eq!(target, PartitionTarget::unchanged(&p));
        assert_eq!(change_record(TopicId([1; 16]), 0, &p, &target), None);
    }

    #[test]
    fn a_returning_isr_member_is_elected_for_a_leaderless_partition() {
        let p = state(&[1, 2, 3], &[2, 3], NO_LEADER);
        assert_eq!(
            elect_if_leaderless(&p, &live(&[3, 1])),
            PartitionTarget {
                leader: 3,
                isr: vec![2, 3]
            }
        );
        assert_eq!(
            elect_if_leaderless(&p, &live(&[1])),
            PartitionTarget {
                leader: NO_LEADER,
                isr: vec![2, 3]
            }
        );
    }

    #[test]
    fn a_partition_with_a_leader_is_not_re_elected() {
        let p = state(&[1, 2, 3], &[1, 2, 3], 2);
        assert_eq!(
            elect_if_leaderless(&p, &live(&[1])),
            PartitionTarget::unchanged(&p)
        );
    }

    #[test]
    fn change_records_carry_only_what_changed_and_the_expected_epoch() {
        let id = TopicId([7; 16]);
        let p = state(&[1, 2, 3], &[1, 2, 3], 1);
        let isr_only = PartitionTarget {
            leader: 1,
            isr: vec![1, 3],
        };
        assert_eq!(
            change_record(id, 5, &p, &isr_only),
            Some(RecordBody::PartitionChange {
                topic_id: id,
                partition: 5,
                expected_partition_epoch: 9,
                leader: None,
                isr: Some(vec![1, 3]),
                replicas: None,
                adding_replicas: None,
                removing_replicas: None,
                leader_recovery_state: None,
            })
        );
        let leader_only = PartitionTarget {
            leader: 2,
            isr: vec![1, 2, 3],
        };
        assert_eq!(
            change_record(id, 5, &p, &leader_only),
            Some(RecordBody::PartitionChange {
                topic_id: id,
                partition: 5,
                expected_partition_epoch: 9,
                leader: Some(2),
                isr: None,
                replicas: None,
                adding_replicas: None,
                removing_replicas: None,
                leader_recovery_state: None,
            })
        );
    }

    fn arbitrary_partition() -> impl Strategy<Value = PartitionState> {
        (
            Just((0..6).collect::<Vec<NodeId>>()).prop_shuffle(),
            1usize..7,
            prop::collection::vec(any::<bool>(), 6),
            any::<prop::sample::Index>(),
        )
            .prop_filter_map("ISR must be non-empty", |(all, rf, in_isr, leader)| {
                let replicas: Vec<NodeId> = all.into_iter().take(rf).collect();
                let isr: Vec<NodeId> = replicas
                    .iter()
                    .zip(&in_isr)
                    .filter(|(_, keep)| **keep)
                    .map(|(id, _)| *id)
                    .collect();
                if isr.is_empty() {
                    return None;
                }
                let leader = if leader.index(3) == 0 {
                    NO_LEADER
                } else {
                    *leader.get(&isr)
                };
                Some(state(&replicas, &isr, leader))
            })
    }

    proptest! {
        #[test]
        fn without_node_keeps_the_partition_valid_and_elects_only_live_isr_members(
            p in arbitrary_partition(),
            node in 0..7i32,
            live_set in prop::collection::btree_set(0..6i32, 0..6),
        ) {
            let is_live = |id: NodeId| live_set.contains(&id);
            let target = without_node(&p, node, &is_live);
            prop_assert!(!target.isr.is_empty());
            let isr: BTreeSet<NodeId> = target.isr.iter().copied().collect();
            prop_assert!(isr.iter().all(|m| p.isr.contains(m)), "ISR grew");
            if p.isr != [node] {
                prop_assert!(!isr.contains(&node), "{} stayed in the ISR", node);
            }
            if target.leader != NO_LEADER {
                prop_assert!(isr.contains(&target.leader));
                prop_assert!(live_set.contains(&target.leader));
                prop_assert_ne!(target.leader, node);
            } else {
                prop_assert!(
                    !target.isr.iter().any(|&m| m != node && live_set.contains(&m)),
                    "a live ISR member was left without leadership"
                );
            }
            if p.leader != node && p.leader != NO_LEADER && live_set.contains(&p.leader) {
                prop_assert_eq!(target.leader, p.leader, "a healthy leader was moved");
            }
            // The record applies to an image the same way.
            if let Some(RecordBody::PartitionChange { leader, isr, .. }) =
                change_record(TopicId([1; 16]), 0, &p, &target)
            {
                prop_assert_eq!(leader.unwrap_or(p.leader), target.leader);
                prop_assert_eq!(isr.unwrap_or_else(|| p.isr.clone()), target.isr);
            } else {
                prop_assert_eq!(target, PartitionTarget::unchanged(&p));
            }
        }

        #[test]
        fn elect_if_leaderless_never_leaves_the_isr(
            p in arbitrary_partition(),
            live_set in prop::collection::btree_set(0..6i32, 0..6),
        ) {
            let target = elect_if_leaderless(&p, &|id| live_set.contains(&id));
            prop_assert_eq!(&target.isr, &p.isr);
            if p.leader != NO_LEADER {
                prop_assert_eq!(target.leader, p.leader);
            } else if target.leader != NO_LEADER {
                prop_assert!(p.isr.contains(&target.leader) && live_set.contains(&target.leader));
                let first = p.replicas.iter().find(|r| p.isr.contains(r) && live_set.contains(r));
                prop_assert_eq!(Some(&target.leader), first);
            }
        }
    }
}
