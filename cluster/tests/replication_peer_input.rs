//! A follower's fetch fields are peer input to the leader, and the leader's answer is peer
//! input to the follower: arbitrary values must never panic either side, and never move a
//! high watermark past what the replicas have synced, or a truncation past the log.
#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::time::{Duration, Instant};

use common::Cluster;
use proptest::prelude::*;
use spate_cluster::replication::{
    BrokerView, EpochCache, FetchDecision, FollowerAction, FollowerFetch, FollowerReplica,
    LeaderAnswer, LeaderReplica, LeaderStart, LocalOffsets, ReplicaError, ReplicationConfig,
};
use spate_cluster::{NodeId, PartitionState};

fn hostile_offset() -> impl Strategy<Value = i64> {
    prop_oneof![
        3 => 0i64..24,
        1 => prop::sample::select(vec![-1, i64::MIN, i64::MAX, i64::MAX - 1, 1 << 40]),
    ]
}

fn hostile_epoch() -> impl Strategy<Value = i32> {
    prop_oneof![
        4 => 0i32..6,
        1 => prop::sample::select(vec![-1, i32::MIN, i32::MAX]),
    ]
}

#[derive(Debug, Clone)]
enum LeaderStep {
    Append {
        records: i64,
        synced: bool,
    },
    Fetch {
        from: NodeId,
        fetch: FollowerFetch,
        stale_broker: bool,
    },
    Advance {
        millis: u64,
    },
}

fn leader_step() -> impl Strategy<Value = LeaderStep> {
    let fetch = (
        hostile_epoch(),
        hostile_offset(),
        hostile_offset(),
        prop::option::of(hostile_epoch()),
        hostile_offset(),
    )
        .prop_map(
            |(
                current_leader_epoch,
                fetch_offset,
                durable_offset,
                last_fetched_epoch,
                log_start,
            )| {
                FollowerFetch {
                    current_leader_epoch,
                    fetch_offset,
                    durable_offset,
                    last_fetched_epoch,
                    log_start,
                    broker_epoch: 0,
                }
            },
        );
    prop_oneof![
        1 => (1i64..4, any::<bool>()).prop_map(|(records, synced)| LeaderStep::Append { records, synced }),
        4 => (-1i32..5, fetch, prop::bool::weighted(0.1))
            .prop_map(|(from, fetch, stale_broker)| LeaderStep::Fetch { from, fetch, stale_broker }),
        1 => (0u64..20_000).prop_map(|millis| LeaderStep::Advance { millis }),
    ]
}

#[derive(Debug, Clone)]
enum FollowerStep {
    Fetch,
    Answer(LeaderAnswer),
    /// An answer to a fetch this follower never sent.
    Forged(LeaderAnswer, i64, i32),
    Sync,
    Advance {
        millis: u64,
    },
}

fn answer() -> impl Strategy<Value = LeaderAnswer> {
    prop_oneof![
        3 => (hostile_offset(), hostile_offset(), hostile_offset()).prop_map(
            |(high_watermark, log_start, records_end)| LeaderAnswer::Records { high_watermark, log_start, records_end }
        ),
        2 => (hostile_epoch(), hostile_offset())
            .prop_map(|(epoch, end_offset)| LeaderAnswer::Diverging { epoch, end_offset }),
        1 => (hostile_offset(), hostile_offset())
            .prop_map(|(log_start, log_end)| LeaderAnswer::OffsetOutOfRange { log_start, log_end }),
        1 => prop::sample::select(vec![
            ReplicaError::FencedLeaderEpoch { fetched: 1, current: 2 },
            ReplicaError::UnknownLeaderEpoch { fetched: 3 },
            ReplicaError::NotLeaderOrFollower,
            ReplicaError::InvalidRequest("x"),
        ])
        .prop_map(LeaderAnswer::Error),
    ]
}

fn follower_step() -> impl Strategy<Value = FollowerStep> {
    prop_oneof![
        3 => Just(FollowerStep::Fetch),
        4 => answer().prop_map(FollowerStep::Answer),
        1 => (answer(), hostile_offset(), hostile_epoch()).prop_map(|(a, o, e)| FollowerStep::Forged(a, o, e)),
        2 => Just(FollowerStep::Sync),
        1 => (0u64..3_000).prop_map(|millis| FollowerStep::Advance { millis }),
    ]
}

/// Brokers 0, 1, 2 live; the partition led by 0 at leader epoch 3, ISR all three.
fn three_brokers() -> (Cluster, PartitionState) {
    let mut cluster = Cluster::new();
    for id in 0..3 {
        cluster.add_live_broker(id, None);
    }
    (
        cluster,
        PartitionState::new(vec![0, 1, 2], vec![0, 1, 2], 0, 3, 4),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn hostile_fetches_never_panic_and_the_high_watermark_stays_within_what_the_isr_synced(
        steps in prop::collection::vec(leader_step(), 1..60),
        min_insync in 1usize..4,
    ) {
        let (cluster, state) = three_brokers();
        let mut now = Instant::now();
        let mut cache = EpochCache::new();
        cache.assign(1, 0);
        cache.assign(3, 10);
        let mut local = LocalOffsets { log_start: 0, log_end: 10, stable_end: 10 };
        let start = LeaderStart { local, high_watermark: 4, epoch_start_offset: 10, min_insync_replicas: min_insync };
        let config = ReplicationConfig::default();
        let mut leader = LeaderReplica::new(now, 0, &state, start, &config, &cache.view(10)).unwrap();
        let mut high_watermark = leader.high_watermark();
        for step in steps {
            match step {
                LeaderStep::Append { records, synced } => {
                    local.log_end += records;
                    if synced {
                        local.stable_end = local.log_end;
                    }
                    leader.on_local(now, local);
                }
                LeaderStep::Fetch { from, mut fetch, stale_broker } => {
                    let current = cluster.image.broker_epoch(from).unwrap_or(0);
                    fetch.broker_epoch = if stale_broker { current - 1 } else { current };
                    let decision = leader.on_fetch(now, from, &fetch, &cache.view(local.log_end), &cluster.image);
                    if let FetchDecision::Read { from: offset, .. } = decision {
                        prop_assert!([1, 2].contains(&from), "read for {}", from);
                        prop_assert_eq!(fetch.current_leader_epoch, 3);
                        prop_assert!(!stale_broker);
                        prop_assert!(0 <= fetch.log_start && fetch.log_start <= fetch.durable_offset.max(fetch.log_start));
                        prop_assert!(fetch.durable_offset <= fetch.fetch_offset);
                        prop_assert!(offset == fetch.fetch_offset && offset <= local.log_end);
                    }
                    if let Some(request) = leader.poll_isr_change(now, &cluster.image) {
                        let isr = request.isr();
                        prop_assert!(isr.contains(&0), "{:?}", isr);
                        prop_assert!(isr.iter().all(|m| state.replicas.contains(m)));
                        prop_assert!(isr.iter().enumerate().all(|(i, m)| !isr[..i].contains(m)));
                    }
                }
                LeaderStep::Advance { millis } => {
                    now += Duration::from_millis(millis);
                    leader.poll_isr_change(now, &cluster.image);
                }
            }
            let hw = leader.high_watermark();
            prop_assert!(hw >= high_watermark, "the HW went down");
            prop_assert!(hw <= local.stable_end, "HW {} above the leader's synced {}", hw, local.stable_end);
            if hw > high_watermark {
                let maximal = leader.maximal_isr();
                prop_assert!(leader.isr().len() >= min_insync.min(3), "the HW moved below min ISR");
                for follower in leader.followers().filter(|f| maximal.contains(&f.node)) {
                    prop_assert!(follower.durable_offset.is_some_and(|d| d >= hw), "{:?} below HW {}", follower, hw);
                }
            }
            high_watermark = hw;
        }
    }

    #[test]
    fn hostile_answers_never_panic_truncate_past_the_log_or_raise_the_hw_past_what_is_synced(
        steps in prop::collection::vec(follower_step(), 1..60),
    ) {
        let config = ReplicationConfig::default();
        let state = PartitionState::new(vec![0, 1], vec![0, 1], 0, 4, 2);
        let mut cache = EpochCache::new();
        cache.assign(1, 0);
        cache.assign(2, 6);
        let mut local = LocalOffsets { log_start: 0, log_end: 12, stable_end: 9 };
        let mut follower = FollowerReplica::new(1, 7, &state, local, 8, &config).unwrap();
        let mut now = Instant::now();
        let mut sent = None;
        for step in steps {
            let (fetch, answer) = match step {
                FollowerStep::Fetch => {
                    sent = follower.next_fetch(now, local, &cache.view(local.log_end)).or(sent);
                    continue;
                }
                FollowerStep::Sync => {
                    local.stable_end = local.log_end;
                    follower.on_local(local);
                    continue;
                }
                FollowerStep::Advance { millis } => {
                    now += Duration::from_millis(millis);
                    continue;
                }
                FollowerStep::Answer(answer) => match sent {
                    Some(fetch) => (fetch, answer),
                    None => continue,
                },
                FollowerStep::Forged(answer, fetch_offset, current_leader_epoch) => {
                    let fetch = FollowerFetch {
                        current_leader_epoch,
                        fetch_offset,
                        durable_offset: 0,
                        last_fetched_epoch: None,
                        log_start: 0,
                        broker_epoch: 7,
                    };
                    (fetch, answer)
                }
            };
            let before = local;
            let actions = follower.on_answer(now, &fetch, answer, local, &cache.view(local.log_end));
            for action in actions {
                match action {
                    FollowerAction::Truncate { to, .. } => {
                        prop_assert!(before.log_start <= to && to <= before.log_end, "truncate to {} of {:?}", to, before);
                        local.log_end = to;
                        local.stable_end = local.stable_end.min(to);
                        cache.truncate_from_end(to);
                    }
                    FollowerAction::StartAt { offset } => {
                        prop_assert!(offset >= 0);
                        local = LocalOffsets::at(offset);
                        cache = EpochCache::new();
                    }
                    FollowerAction::Append { from, to } => {
                        prop_assert_eq!(from, local.log_end);
                        prop_assert!(to > from);
                        cache.assign(4, from);
                        local.log_end = to;
                    }
                    FollowerAction::AdvanceLogStart { offset } => {
                        prop_assert!(offset > local.log_start && offset <= follower.high_watermark());
                        local.log_start = offset;
                    }
                    FollowerAction::SetHighWatermark { offset } => {
                        prop_assert_eq!(offset, follower.high_watermark());
                    }
                }
            }
            follower.on_local(local);
            prop_assert!(
                follower.high_watermark() <= local.durable().max(local.log_start),
                "HW {} above the synced {:?}", follower.high_watermark(), local
            );
        }
    }
}
