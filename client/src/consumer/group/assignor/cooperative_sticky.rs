//! Kafka's `cooperative-sticky` assignor (KIP-429 on top of KIP-54's sticky assignor).
//!
//! Three steps. Members keep what they validly own (the claim from the newest generation,
//! on a topic they still subscribe to). Partitions nobody keeps go one by one to the least
//! loaded member that subscribes to them. Then, while some member holds two or more than
//! another that could take one of its partitions, one moves; each move shrinks the spread,
//! so this ends, and nothing moves that balance does not need.
//!
//! The cooperative rule: a partition that changes owner is left out of the new owner's
//! share in this generation. The old owner, not finding it in its own share, revokes it and
//! rejoins; the next rebalance finds it unowned and hands it over. So no partition is ever
//! owned by two members at once, and members keep consuming everything they retain.

use std::collections::{BTreeMap, BTreeSet};

use super::Member;
use crate::offsets::TopicPartition;

/// Who may keep a partition: one member, or nobody when two members claim it from the
/// same generation (both will revoke it, and the next rebalance places it).
#[derive(Clone, Copy)]
struct Claim<'a> {
    generation: i32,
    owner: Option<&'a str>,
}

pub(super) fn assign(
    members: &[&Member],
    partition_counts: &BTreeMap<String, i32>,
) -> BTreeMap<String, Vec<TopicPartition>> {
    let exists = |(topic, partition): &TopicPartition| {
        partition_counts
            .get(topic)
            .is_some_and(|count| *partition >= 0 && partition < count)
    };
    let mut claims: BTreeMap<TopicPartition, Claim<'_>> = BTreeMap::new();
    for member in members {
        let owned: BTreeSet<&TopicPartition> = member.subscription.owned.iter().collect();
        for tp in owned {
            if !exists(tp) || !member.subscribes(&tp.0) {
                continue;
            }
            let generation = member.subscription.generation;
            let claim = Claim {
                generation,
                owner: Some(member.member_id.as_str()),
            };
            match claims.get_mut(tp) {
                None => {
                    claims.insert(tp.clone(), claim);
                }
                Some(existing) if generation > existing.generation => *existing = claim,
                Some(existing) if generation == existing.generation => existing.owner = None,
                Some(_) => {}
            }
        }
    }

    let order: Vec<&str> = members.iter().map(|m| m.member_id.as_str()).collect();
    let mut shares: BTreeMap<&str, BTreeSet<TopicPartition>> =
        order.iter().map(|id| (*id, BTreeSet::new())).collect();
    for (tp, claim) in &claims {
        if let Some(owner) = claim.owner
            && let Some(share) = shares.get_mut(owner)
        {
            share.insert(tp.clone());
        }
    }

    // Partitions nobody keeps, to the least loaded subscriber (ties: member order).
    for (topic, count) in partition_counts {
        for partition in 0..(*count).max(0) {
            let tp = (topic.clone(), partition);
            if claims.get(&tp).is_some_and(|c| c.owner.is_some()) {
                continue;
            }
            let lightest = members
                .iter()
                .filter(|m| m.subscribes(topic))
                .min_by_key(|m| shares.get(m.member_id.as_str()).map_or(0, BTreeSet::len));
            if let Some(member) = lightest
                && let Some(share) = shares.get_mut(member.member_id.as_str())
            {
                share.insert(tp);
            }
        }
    }

    // Balance: move one partition at a time from a heavier member to one that holds at
    // least two fewer and subscribes to its topic.
    while let Some((from, to, tp)) = next_move(members, &shares) {
        if let Some(share) = shares.get_mut(from) {
            share.remove(&tp);
        }
        if let Some(share) = shares.get_mut(to) {
            share.insert(tp);
        }
    }

    shares
        .into_iter()
        .map(|(member, share)| {
            let kept: Vec<TopicPartition> = share
                .into_iter()
                .filter(|tp| match claims.get(tp) {
                    Some(Claim { owner: None, .. }) => false,
                    Some(Claim {
                        owner: Some(owner), ..
                    }) => *owner == member,
                    None => true,
                })
                .collect();
            (member.to_string(), kept)
        })
        .collect()
}

/// The move that most narrows the spread: from the heaviest member that has a partition a
/// member with at least two fewer can take.
fn next_move<'a>(
    members: &[&'a Member],
    shares: &BTreeMap<&'a str, BTreeSet<TopicPartition>>,
) -> Option<(&'a str, &'a str, TopicPartition)> {
    let load = |id: &str| shares.get(id).map_or(0, BTreeSet::len);
    let mut heaviest: Vec<&&Member> = members.iter().collect();
    heaviest.sort_by_key(|m| std::cmp::Reverse(load(&m.member_id)));
    let mut lightest: Vec<&&Member> = members.iter().collect();
    lightest.sort_by_key(|m| load(&m.member_id));
    for from in &heaviest {
        for to in &lightest {
            if load(&from.member_id) <= load(&to.member_id) + 1 {
                break;
            }
            let share = shares.get(from.member_id.as_str())?;
            if let Some(tp) = share.iter().rev().find(|tp| to.subscribes(&tp.0)) {
                return Some((from.member_id.as_str(), to.member_id.as_str(), tp.clone()));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::super::Assignor;
    use super::super::tests::{counts, member};
    use crate::offsets::TopicPartition;

    fn sizes(result: &BTreeMap<String, Vec<TopicPartition>>) -> Vec<usize> {
        result.values().map(Vec::len).collect()
    }

    #[test]
    fn a_new_member_takes_only_what_balance_needs_one_rebalance_later() {
        let owned: Vec<(&str, i32)> = (0..4).map(|p| ("t", p)).collect();
        let members = [member("a", &["t"], &owned, 3), member("b", &["t"], &[], -1)];
        let first = Assignor::CooperativeSticky.assign(&members, &counts(&[("t", 4)]));
        // a keeps two, gives up two; b gets nothing yet: the two are in flight.
        assert_eq!(first["a"].len(), 2, "{first:?}");
        assert!(first["b"].is_empty(), "{first:?}");
        let kept: Vec<(&str, i32)> = first["a"].iter().map(|(t, p)| (t.as_str(), *p)).collect();
        let members = [member("a", &["t"], &kept, 4), member("b", &["t"], &[], 4)];
        let second = Assignor::CooperativeSticky.assign(&members, &counts(&[("t", 4)]));
        assert_eq!(second["a"], first["a"], "a keeps what it kept");
        assert_eq!(sizes(&second), vec![2, 2]);
    }

    #[test]
    fn a_departed_members_partitions_go_to_the_others_at_once() {
        let members = [
            member("a", &["t"], &[("t", 0), ("t", 1)], 5),
            member("c", &["t"], &[("t", 4), ("t", 5)], 5),
        ];
        let result = Assignor::CooperativeSticky.assign(&members, &counts(&[("t", 6)]));
        assert_eq!(sizes(&result), vec![3, 3]);
        assert!(result["a"].contains(&("t".into(), 0)) && result["a"].contains(&("t".into(), 1)));
        assert!(result["c"].contains(&("t".into(), 4)) && result["c"].contains(&("t".into(), 5)));
    }

    #[test]
    fn stale_and_conflicting_claims() {
        // b's claim on t-0 is from an older generation than a's: a keeps it.
        let members = [
            member("a", &["t"], &[("t", 0)], 7),
            member("b", &["t"], &[("t", 0), ("t", 1)], 6),
        ];
        let result = Assignor::CooperativeSticky.assign(&members, &counts(&[("t", 2)]));
        assert_eq!(result["a"], vec![("t".to_string(), 0)]);
        assert_eq!(result["b"], vec![("t".to_string(), 1)]);
        // Both claim t-0 from the same generation: nobody gets it this time.
        let members = [
            member("a", &["t"], &[("t", 0)], 7),
            member("b", &["t"], &[("t", 0)], 7),
        ];
        let result = Assignor::CooperativeSticky.assign(&members, &counts(&[("t", 2)]));
        assert!(result.values().all(|s| !s.contains(&("t".to_string(), 0))));
        // A claim on a topic no longer subscribed (or a partition gone) is void.
        let members = [member("a", &["u"], &[("t", 0), ("u", 9)], 7)];
        let result = Assignor::CooperativeSticky.assign(&members, &counts(&[("u", 1)]));
        assert_eq!(result["a"], vec![("u".to_string(), 0)]);
    }

    proptest! {
        /// Whatever members owned: every partition goes to at most one member, only to
        /// subscribers, no member gets a partition another validly owns, uniform groups end
        /// within one partition of each other once moves settle, and a member keeps every
        /// owned partition it does not have to give up for balance.
        #[test]
        fn balanced_sticky_and_never_shared(
            partitions in 1i32..12,
            member_count in 1usize..5,
            owners in proptest::collection::vec(0usize..6, 12),
        ) {
            let ids: Vec<String> = (0..member_count).map(|i| format!("m{i}")).collect();
            let mut owned: Vec<Vec<(&str, i32)>> = vec![Vec::new(); member_count];
            for p in 0..partitions {
                if let Some(list) = owned.get_mut(owners[p as usize]) {
                    list.push(("t", p));
                }
            }
            let members: Vec<_> = ids
                .iter()
                .zip(&owned)
                .map(|(id, owned)| member(id, &["t"], owned, 1))
                .collect();
            let topic_counts = counts(&[("t", partitions)]);
            let result = Assignor::CooperativeSticky.assign(&members, &topic_counts);
            let mut seen = std::collections::BTreeSet::new();
            for (id, share) in &result {
                for tp in share {
                    prop_assert!(seen.insert(tp.clone()), "{tp:?} given twice");
                    let owner = members.iter().find(|m| m.subscription.owned.contains(tp));
                    prop_assert!(owner.is_none_or(|m| &m.member_id == id), "{tp:?} taken from its owner");
                }
            }
            let min_share = partitions as usize / member_count;
            for (m, list) in members.iter().zip(&owned) {
                let kept = list
                    .iter()
                    .filter(|(t, p)| result[&m.member_id].contains(&(t.to_string(), *p)))
                    .count();
                prop_assert!(
                    kept >= list.len().min(min_share),
                    "member {} kept {kept} of {}: {result:?}", m.member_id, list.len()
                );
            }
            // A second round, with the shares as owned, must settle balanced.
            let members: Vec<_> = ids
                .iter()
                .map(|id| {
                    let share: Vec<(&str, i32)> = result[id].iter().map(|(t, p)| (t.as_str(), *p)).collect();
                    member(id, &["t"], &share, 2)
                })
                .collect();
            let second = Assignor::CooperativeSticky.assign(&members, &topic_counts);
            let total: usize = second.values().map(Vec::len).sum();
            prop_assert_eq!(total, partitions as usize);
            let (lo, hi) = (second.values().map(Vec::len).min(), second.values().map(Vec::len).max());
            prop_assert!(hi.unwrap_or(0) - lo.unwrap_or(0) <= 1, "{second:?}");
            for (id, share) in &result {
                for tp in share {
                    prop_assert!(second[id].contains(tp), "{id} lost {tp:?} it was given");
                }
            }
        }
    }
}
