//! Where a new partition's replicas go.
//!
//! Rack-aware striping, as Kafka's rack-aware assignment does it: the brokers are put in a
//! rack-alternating list (one broker of each rack in turn), consecutive partitions take
//! consecutive leaders from that list, and each partition's followers are the brokers after
//! its leader, skipping racks the partition already uses while unused racks remain. So
//! leaders are balanced to within one per broker, and with at least as many racks as
//! replicas, losing a rack loses at most one replica of any partition.
//!
//! This module only places; it does not know which brokers are live or how many replicas
//! each already holds (the controller passes the live brokers and checks the caps).

use std::collections::{BTreeMap, BTreeSet};

use crate::NodeId;

/// A broker that can take new replicas, with its rack if it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacementBroker {
    pub node_id: NodeId,
    pub rack: Option<String>,
}

/// Why replicas cannot be placed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    #[error(
        "replication factor {replication_factor} cannot be reached: only {available} broker(s) are live; start more brokers or lower the replication factor"
    )]
    NotEnoughBrokers {
        replication_factor: usize,
        available: usize,
    },
    #[error("replication factor must be at least 1")]
    ZeroReplicationFactor,
}

/// Replica lists (first = preferred leader) for partitions `first_partition ..
/// first_partition + partition_count`, spread over `brokers` (and their racks), with
/// leaders spread evenly. `rotation` shifts where the first leader lands, so successive
/// topics do not all start on the same broker (the controller passes the number of
/// partitions that exist already).
///
/// A broker listed twice counts once (the first listing's rack wins); brokers without a
/// rack share the rack `""`. A non-positive `partition_count` places nothing. The caller
/// bounds `partition_count` (the result holds one list per partition).
pub fn assign_replicas(
    brokers: &[PlacementBroker],
    first_partition: i32,
    partition_count: i32,
    replication_factor: usize,
    rotation: usize,
) -> Result<Vec<Vec<NodeId>>, PlacementError> {
    if replication_factor == 0 {
        return Err(PlacementError::ZeroReplicationFactor);
    }
    let stripe = rack_alternating(brokers);
    if replication_factor > stripe.len() {
        return Err(PlacementError::NotEnoughBrokers {
            replication_factor,
            available: stripe.len(),
        });
    }
    let broker_count = stripe.len();
    let rack_count = stripe
        .iter()
        .map(|(_, rack)| *rack)
        .collect::<BTreeSet<_>>()
        .len();
    // `first_partition` may be any i32; only its place in the cycle matters.
    let first_offset = i64::from(first_partition).rem_euclid(broker_count as i64) as usize;
    let start = (rotation % broker_count + first_offset) % broker_count;
    let partition_count = usize::try_from(partition_count).unwrap_or(0);
    Ok((0..partition_count)
        .map(|p| {
            let leader_index = (start + p % broker_count) % broker_count;
            replicas_from(&stripe, leader_index, replication_factor, rack_count)
        })
        .collect())
}

/// The brokers in striping order: racks sorted by name, brokers sorted by id within a rack,
/// then the first broker of every rack, the second of every rack, and so on. Neighbours in
/// this list are on different racks for as long as every rack still has brokers left.
fn rack_alternating(brokers: &[PlacementBroker]) -> Vec<(NodeId, &str)> {
    let mut seen = BTreeSet::new();
    let mut by_rack: BTreeMap<&str, Vec<NodeId>> = BTreeMap::new();
    for broker in brokers {
        if seen.insert(broker.node_id) {
            let rack = broker.rack.as_deref().unwrap_or("");
            by_rack.entry(rack).or_default().push(broker.node_id);
        }
    }
    for ids in by_rack.values_mut() {
        ids.sort_unstable();
    }
    let depth = by_rack.values().map(Vec::len).max().unwrap_or(0);
    let mut stripe = Vec::with_capacity(seen.len());
    for round in 0..depth {
        for (rack, ids) in &by_rack {
            if let Some(&id) = ids.get(round) {
                stripe.push((id, *rack));
            }
        }
    }
    stripe
}

/// One partition's replicas: the leader at `leader_index`, then the brokers after it in the
/// stripe, first only those on racks this partition does not use yet (while there are
/// such racks), then any not yet chosen.
fn replicas_from(
    stripe: &[(NodeId, &str)],
    leader_index: usize,
    replication_factor: usize,
    rack_count: usize,
) -> Vec<NodeId> {
    let broker_count = stripe.len();
    let (leader, leader_rack) = stripe[leader_index % broker_count];
    let mut replicas = Vec::with_capacity(replication_factor);
    replicas.push(leader);
    let mut racks_used = BTreeSet::from([leader_rack]);
    let after_leader =
        || (1..broker_count).map(|step| stripe[(leader_index + step) % broker_count]);
    for (id, rack) in after_leader() {
        if replicas.len() == replication_factor || racks_used.len() == rack_count {
            break;
        }
        if racks_used.insert(rack) {
            replicas.push(id);
        }
    }
    for (id, _) in after_leader() {
        if replicas.len() == replication_factor {
            break;
        }
        if !replicas.contains(&id) {
            replicas.push(id);
        }
    }
    replicas
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    fn brokers(racks: &[(NodeId, Option<&str>)]) -> Vec<PlacementBroker> {
        racks
            .iter()
            .map(|&(node_id, rack)| PlacementBroker {
                node_id,
                rack: rack.map(str::to_owned),
            })
            .collect()
    }

    fn plain(ids: impl IntoIterator<Item = NodeId>) -> Vec<PlacementBroker> {
        ids.into_iter()
            .map(|node_id| PlacementBroker {
                node_id,
                rack: None,
            })
            .collect()
    }

    #[test]
    fn three_brokers_six_partitions_stripe_leaders_and_followers() {
        let placed = assign_replicas(&plain([3, 1, 2]), 0, 6, 3, 0).unwrap();
        assert_eq!(
            placed,
            vec![
                vec![1, 2, 3],
                vec![2, 3, 1],
                vec![3, 1, 2],
                vec![1, 2, 3],
                vec![2, 3, 1],
                vec![3, 1, 2],
            ]
        );
    }

    #[test]
    fn rotation_and_first_partition_shift_the_first_leader() {
        let all = plain([1, 2, 3]);
        assert_eq!(assign_replicas(&all, 0, 1, 1, 1).unwrap(), vec![vec![2]]);
        assert_eq!(assign_replicas(&all, 2, 1, 1, 0).unwrap(), vec![vec![3]]);
        assert_eq!(assign_replicas(&all, 2, 1, 1, 2).unwrap(), vec![vec![2]]);
        assert_eq!(assign_replicas(&all, -1, 1, 1, 0).unwrap(), vec![vec![3]]);
        assert_eq!(
            assign_replicas(&all, i32::MAX, 1, 1, usize::MAX)
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn racks_alternate_and_followers_avoid_the_leaders_rack() {
        // Rack a has 1, 2; rack b has 3, 4: the stripe is 1 (a), 3 (b), 2 (a), 4 (b).
        let all = brokers(&[
            (1, Some("a")),
            (2, Some("a")),
            (3, Some("b")),
            (4, Some("b")),
        ]);
        let placed = assign_replicas(&all, 0, 4, 2, 0).unwrap();
        assert_eq!(placed, vec![vec![1, 3], vec![3, 2], vec![2, 4], vec![4, 1]]);
    }

    #[test]
    fn a_lone_rack_gets_a_replica_of_every_partition_when_it_can() {
        // Rack a: 1, 2, 3, 4; rack b: 5. Every partition keeps one replica in rack b.
        let all = brokers(&[
            (1, Some("a")),
            (2, Some("a")),
            (3, Some("a")),
            (4, Some("a")),
            (5, Some("b")),
        ]);
        for replicas in assign_replicas(&all, 0, 10, 2, 0).unwrap() {
            assert!(replicas.contains(&5), "{replicas:?}");
        }
    }

    #[test]
    fn too_few_brokers_or_zero_replicas_are_refused() {
        assert_eq!(
            assign_replicas(&plain([1, 2]), 0, 1, 3, 0),
            Err(PlacementError::NotEnoughBrokers {
                replication_factor: 3,
                available: 2
            })
        );
        assert_eq!(
            assign_replicas(&plain([1, 2]), 0, 1, 0, 0),
            Err(PlacementError::ZeroReplicationFactor)
        );
        assert_eq!(
            assign_replicas(&[], 0, 1, 1, 0),
            Err(PlacementError::NotEnoughBrokers {
                replication_factor: 1,
                available: 0
            })
        );
        // A broker listed twice is one broker.
        assert!(assign_replicas(&plain([1, 1]), 0, 1, 2, 0).is_err());
    }

    #[test]
    fn no_partitions_place_nothing() {
        assert_eq!(assign_replicas(&plain([1]), 0, 0, 1, 0), Ok(vec![]));
        assert_eq!(assign_replicas(&plain([1]), 0, -5, 1, 0), Ok(vec![]));
    }

    /// Brokers with ids 0..count, on `rack_count` racks of equal size (or no rack when 0).
    fn even_racks(count: usize, rack_count: usize) -> Vec<PlacementBroker> {
        (0..count)
            .map(|i| PlacementBroker {
                node_id: i as NodeId * 7 + 1,
                rack: (rack_count > 0).then(|| format!("r{}", i % rack_count)),
            })
            .collect()
    }

    fn counts(lists: impl IntoIterator<Item = NodeId>) -> BTreeMap<NodeId, usize> {
        let mut counts = BTreeMap::new();
        for id in lists {
            *counts.entry(id).or_insert(0) += 1;
        }
        counts
    }

    fn arbitrary_brokers() -> impl Strategy<Value = Vec<PlacementBroker>> {
        prop::collection::vec(
            (
                0..40i32,
                prop::option::of(prop::sample::select(vec!["a", "b", "c", "d"])),
            ),
            1..16,
        )
        .prop_map(|pairs| {
            pairs
                .into_iter()
                .map(|(node_id, rack)| PlacementBroker {
                    node_id,
                    rack: rack.map(str::to_owned),
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn replicas_are_distinct_and_from_the_given_brokers(
            all in arbitrary_brokers(),
            first in -100i32..100,
            count in 0i32..64,
            rf in 1usize..6,
            rotation in any::<usize>(),
        ) {
            let distinct: BTreeSet<NodeId> = all.iter().map(|b| b.node_id).collect();
            match assign_replicas(&all, first, count, rf, rotation) {
                Ok(placed) => {
                    prop_assert_eq!(placed.len(), count as usize);
                    for replicas in placed {
                        prop_assert_eq!(replicas.len(), rf);
                        let set: BTreeSet<NodeId> = replicas.iter().copied().collect();
                        prop_assert_eq!(set.len(), rf, "duplicate replica in {:?}", replicas);
                        prop_assert!(set.is_subset(&distinct));
                    }
                }
                Err(PlacementError::NotEnoughBrokers { available, .. }) => {
                    prop_assert!(rf > distinct.len());
                    prop_assert_eq!(available, distinct.len());
                }
                Err(e) => prop_assert!(false, "{}", e),
            }
        }

        #[test]
        fn leaders_are_balanced_within_one(
            all in arbitrary_brokers(),
            count in 0i32..200,
            rotation in 0usize..1000,
        ) {
            let distinct: BTreeSet<NodeId> = all.iter().map(|b| b.node_id).collect();
            let placed = assign_replicas(&all, 0, count, 1, rotation).unwrap();
            let leaders = counts(placed.iter().map(|r| r[0]));
            if count as usize >= distinct.len() {
                prop_assert_eq!(leaders.len(), distinct.len(), "a broker leads nothing");
            }
            let max = leaders.values().max().copied().unwrap_or(0);
            let min = if leaders.len() == distinct.len() {
                leaders.values().min().copied().unwrap_or(0)
            } else {
                0
            };
            prop_assert!(max - min <= 1, "leaders {:?}", leaders);
        }

        #[test]
        fn with_enough_racks_each_partition_spans_rf_racks(
            all in arbitrary_brokers(),
            count in 1i32..50,
            rf in 1usize..5,
            rotation in 0usize..100,
        ) {
            let mut rack_of = BTreeMap::new();
            for b in &all {
                rack_of.entry(b.node_id).or_insert_with(|| b.rack.clone().unwrap_or_default());
            }
            let racks: BTreeSet<&String> = rack_of.values().collect();
            prop_assume!(racks.len() >= rf && rack_of.len() >= rf);
            for replicas in assign_replicas(&all, 0, count, rf, rotation).unwrap() {
                let used: BTreeSet<&String> = replicas.iter().map(|id| &rack_of[id]).collect();
                prop_assert_eq!(used.len(), rf, "{:?} shares a rack", replicas);
            }
        }

        #[test]
        fn replica_counts_are_balanced_over_even_racks(
            broker_count in 1usize..13,
            rack_count in 0usize..4,
            rounds in 1i32..6,
            extra in 0i32..13,
            rf in 1usize..4,
            rotation in 0usize..100,
        ) {
            prop_assume!(rf <= broker_count);
            prop_assume!(rack_count == 0 || broker_count % rack_count == 0);
            let all = even_racks(broker_count, rack_count);
            let extra = extra % broker_count as i32;
            let count = rounds * broker_count as i32 + extra;
            let placed = assign_replicas(&all, 0, count, rf, rotation).unwrap();
            let held = counts(placed.iter().flatten().copied());
            prop_assert_eq!(held.len(), broker_count, "a broker holds nothing");
            let max = held.values().max().copied().unwrap_or(0);
            let min = held.values().min().copied().unwrap_or(0);
            if extra == 0 {
                prop_assert_eq!(max, min, "{:?}", held);
            } else {
                prop_assert!(max - min <= rf, "{:?}", held);
            }
        }

        #[test]
        fn placement_is_deterministic_and_ignores_input_order(
            all in arbitrary_brokers(),
            count in 0i32..40,
            rf in 1usize..4,
            rotation in 0usize..100,
        ) {
            let once = assign_replicas(&all, 3, count, rf, rotation);
            prop_assert_eq!(&once, &assign_replicas(&all, 3, count, rf, rotation));
            // Reordering changes nothing when every broker is listed once.
            let mut unique = Vec::new();
            for b in &all {
                if !unique.iter().any(|u: &PlacementBroker| u.node_id == b.node_id) {
                    unique.push(b.clone());
                }
            }
            let mut reversed = unique.clone();
            reversed.reverse();
            prop_assert_eq!(
                assign_replicas(&unique, 3, count, rf, rotation),
                assign_replicas(&reversed, 3, count, rf, rotation)
            );
        }
    }
}
