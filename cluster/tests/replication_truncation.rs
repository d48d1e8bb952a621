//! The follower's side of replication, driven step by step over the simulator in
//! `common::sim`: truncation by leader epoch (KIP-101 cases A and B, KIP-279's rounds,
//! KAFKA-7415's epoch start, KAFKA-14704's truncate-first), fencing by leader and broker
//! epoch (KIP-320, KIP-903), late answers, and an unclean election (KIP-704). Each test is
//! named after what it proves; the simulator checks replication-notes §7's invariants after
//! every step as well.
#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::time::Duration;

use common::sim::log::{Batch, MemLog};
use common::sim::{Payload, Sim, SimConfig, config, log, state};
use spate_cluster::{LeaderRecoveryState, NodeId, PartitionState};

/// Steps any scripted scenario may take; exceeding it is a liveness bug.
const STEPS_MAX: u64 = 20_000;

fn logs_equal(sim: &Sim, ids: &[NodeId]) -> bool {
    ids.iter()
        .all(|&id| sim.node(id).log.content() == sim.node(ids[0]).log.content())
}

// ----- the follower: truncation -----

#[test]
fn kip_101_case_a_a_follower_restarting_before_it_learns_the_hw_keeps_what_was_acked() {
    let mut sim = Sim::new(101, config(1).with_nodes(2));
    let first = sim.produce(1).unwrap();
    sim.drive_until("first acked", STEPS_MAX, |s| s.acked.contains(&first));
    let second = sim.produce(1).unwrap();
    sim.drive_until("second acked", STEPS_MAX, |s| s.acked.contains(&second));
    assert!(
        sim.node(1).high_watermark() < 2,
        "the answer carrying HW 2 is still parked"
    );
    // Restart: Kafka before KIP-101 truncated to its HW (1) here and lost `second`.
    let before = sim.node(1).broker_epoch;
    sim.crash(1);
    sim.restart(1);
    assert_eq!(sim.node(1).log.log_end, 2);
    sim.drive_until("node 1 re-registered", STEPS_MAX, |s| {
        s.node(1).broker_epoch > before && s.partition().isr == [0]
    });
    sim.drive_until("node 1 back in the ISR", STEPS_MAX, |s| {
        s.partition().isr == [0, 1]
    });
    sim.crash(0);
    sim.drive_until("node 1 leads", STEPS_MAX, |s| s.node(1).leader().is_some());
    assert_eq!(sim.node(1).log.batch_at(1), Some(&second));
}

#[test]
fn kip_101_case_b_replicas_that_lost_different_unsynced_tails_converge_byte_for_byte() {
    for (first_down, restart_first) in [(1, 0), (1, 1), (0, 0), (0, 1)] {
        let mut sim = Sim::new(
            102,
            SimConfig {
                sync_delay: Duration::from_secs(3600),
                ..config(1).with_nodes(2)
            },
        );
        let committed = sim.produce(1).unwrap();
        sim.sync_now(0);
        sim.drive_until("node 1 has it", STEPS_MAX, |s| s.node(1).log.log_end == 1);
        sim.sync_now(1);
        sim.drive_until("committed", STEPS_MAX, |s| s.acked.contains(&committed));
        // Node 1 syncs the second batch but not the third; node 0 syncs neither.
        sim.produce(1).unwrap();
        sim.drive_until("node 1 has 2", STEPS_MAX, |s| s.node(1).log.log_end == 2);
        sim.sync_now(1);
        sim.produce(1).unwrap();
        sim.drive_until("node 1 has 3", STEPS_MAX, |s| s.node(1).log.log_end == 3);
        let other = 1 - first_down;
        sim.crash(first_down);
        sim.drive_until("fenced", STEPS_MAX, |s| s.partition().isr == [other]);
        sim.crash(other);
        sim.run_for(Duration::from_secs(4));
        sim.config.sync_delay = Duration::from_millis(5);
        sim.restart(restart_first);
        sim.restart(1 - restart_first);
        let after = sim.produce_when_led(1, STEPS_MAX);
        sim.drive_until("converged", STEPS_MAX, Sim::converged);
        assert!(
            logs_equal(&sim, &[0, 1]),
            "case ({first_down}, {restart_first})"
        );
        assert_eq!(sim.node(0).log.batch_at(0), Some(&committed));
        assert!(sim.acked.contains(&after));
        assert_eq!(
            sim.node(0).truncations_below_hw + sim.node(1).truncations_below_hw,
            0
        );
    }
}

#[test]
fn kip_279_a_follower_holding_an_epoch_the_leader_never_had_truncates_over_two_rounds() {
    // Leader: e1 [0,3) e2 [3,5) e4 [5,6). Follower: e1 [0,4) (one record more), e3 [4,7).
    let leader = log(&[(1, 3, 1), (2, 2, 2), (4, 1, 3)], 3);
    let follower = log(&[(1, 3, 1), (1, 1, 9), (3, 3, 10)], 3);
    let mut sim = Sim::with_logs(
        279,
        config(1).with_nodes(2),
        vec![leader, follower],
        Some(state(&[0, 1], &[0], 0, 5)),
    );
    sim.drive_until("converged", STEPS_MAX, Sim::converged);
    // Round 1: epoch 3 → the leader's (2, 5); the follower lacks epoch 2 and cuts to its
    // own end of epoch 1 (4). Round 2: epoch 1 → (1, 3); it cuts to 3.
    assert_eq!(sim.stat("diverging answers"), 2);
    assert!(logs_equal(&sim, &[0, 1]));
    assert_eq!(sim.node(1).truncations_below_hw, 0);
}

#[test]
fn kafka_7415_a_new_leader_records_its_epoch_start_so_a_follower_from_a_higher_epoch_truncates_right()
 {
    let e1 = [(1, 4, 1), (1, 4, 2), (1, 2, 3)];
    let leader = log(&e1, 8);
    let follower = log(&[(1, 4, 1), (1, 4, 2), (3, 4, 7)], 8);
    let mut sim = Sim::with_logs(
        7415,
        config(1).with_nodes(2),
        vec![leader, follower],
        Some(state(&[0, 1], &[0], 0, 5)),
    );
    assert_eq!(sim.node(0).log.epochs.entries(), [(1, 0), (5, 10)]);
    sim.drive_until("converged", STEPS_MAX, Sim::converged);
    // The follower asked for epoch 3: (1, 10) means "epoch 1 is the last you share, up to
    // 10", and it cut its epoch 3 at 8. Without (5, 10) the leader's cache ends at epoch 1,
    // epoch 3 is undefined, and the follower would have cut to the leader's end (10),
    // keeping two records of epoch 3 where the leader has epoch 1.
    let mut without = spate_cluster::replication::EpochCache::new();
    without.assign(1, 0);
    assert_eq!(without.end_offset_for(3, 10), None);
    assert_eq!(sim.stat("diverging answers"), 1);
    assert_eq!(sim.stat("out of range answers"), 0);
    assert!(logs_equal(&sim, &[0, 1]));
}

#[test]
fn kafka_7415_a_leader_that_crashed_before_its_first_append_drops_its_empty_epoch_and_can_lead_again()
 {
    let e1 = [(1, 4, 1), (1, 4, 2), (1, 2, 3)];
    let logs = vec![
        log(&e1, 8),
        log(&[(1, 4, 1), (1, 4, 2), (3, 4, 7)], 8),
        log(&e1, 8),
    ];
    let mut sim = Sim::with_logs(
        7416,
        config(2),
        logs,
        Some(state(&[0, 1, 2], &[0, 2], 0, 5)),
    );
    sim.isolate(1, true);
    sim.crash(0);
    assert_eq!(
        sim.node(0).log.epochs.entries(),
        [(1, 0), (5, 10)],
        "the assign was synced"
    );
    sim.drive_until("node 2 leads", STEPS_MAX, |s| s.node(2).leader().is_some());
    sim.restart(0);
    // Node 0 asks with epoch 5, which nobody else has: it truncates to 10 (its end) and
    // drops the empty tenure, instead of asking forever.
    sim.drive_until("node 0 rejoins", STEPS_MAX, |s| {
        s.partition().isr.contains(&0)
    });
    assert_eq!(sim.node(0).log.epochs.entries(), [(1, 0)]);
    assert_eq!(
        sim.elect(spate_cluster::controller::ElectionKind::Preferred),
        Some(0)
    );
    sim.drive_until("node 0 leads again", STEPS_MAX, |s| {
        s.node(0).leader().is_some()
    });
    let epoch = sim.leader(0).leader_epoch();
    assert_eq!(sim.node(0).log.epochs.entries(), [(1, 0), (epoch, 10)]);
    sim.isolate(1, false);
    sim.drive_until("converged", STEPS_MAX, Sim::converged);
    assert!(logs_equal(&sim, &[0, 1, 2]));
    assert_eq!(sim.node(1).truncations_below_hw, 0);
}

#[test]
fn kafka_14704_a_diverging_answer_truncates_before_any_high_watermark_is_applied() {
    // Node 0 led epoch 1 and holds [5, 8) uncommitted; node 1 leads epoch 3 with other
    // records there, committed up to 9.
    let stale = log(&[(1, 5, 1), (1, 3, 2)], 5);
    let current = [(1, 5, 1), (2, 4, 3)];
    let logs = vec![stale, log(&current, 5), log(&current, 5)];
    let mut sim = Sim::with_logs(
        14704,
        config(2),
        logs,
        Some(state(&[0, 1, 2], &[1, 2], 1, 3)),
    );
    sim.isolate(0, true);
    sim.drive_until("node 1 commits up to 9", STEPS_MAX, |s| {
        s.leader(1).high_watermark() == 9
    });
    sim.isolate(0, false);
    // A consumer of node 0 sees only records node 1 has, at every step.
    for _ in 0..STEPS_MAX {
        let node0 = sim.node(0);
        let exposed: Vec<&Batch> = node0
            .log
            .batches
            .iter()
            .filter(|b| b.end() <= node0.high_watermark())
            .collect();
        for batch in exposed {
            assert_eq!(
                sim.node(1).log.batch_at(batch.base),
                Some(batch),
                "exposed {batch:?}"
            );
        }
        if sim.converged() {
            break;
        }
        sim.step();
    }
    assert!(sim.converged());
    assert_eq!(sim.stat("diverging answers"), 1);
}

// ----- epochs, fencing, late answers -----

#[test]
fn a_follower_behind_on_metadata_is_fenced_and_waits_and_a_leader_behind_makes_it_retry() {
    for (behind, answer) in [(1, "fenced answers"), (0, "unknown epoch answers")] {
        let mut sim = Sim::new(320, config(2));
        sim.drive_until("replicating", STEPS_MAX, Sim::converged);
        sim.hold_metadata(behind, Duration::from_secs(2));
        // Removing node 2 bumps the leader epoch; node 0 keeps leading.
        assert!(sim.reassign(Some(vec![0, 1])));
        assert_eq!(sim.partition().leader, 0);
        sim.run_for(Duration::from_secs(1));
        assert!(sim.stat(answer) > 0, "{answer}: {:?}", sim.stats);
        if behind == 1 {
            assert!(sim.node(1).follower().unwrap().is_awaiting_metadata());
        }
        sim.run_for(Duration::from_secs(1));
        let batch = sim.produce_when_led(1, STEPS_MAX);
        sim.drive_until("converged", STEPS_MAX, Sim::converged);
        assert!(sim.acked.contains(&batch));
        assert!(sim.node(2).follower().is_none() && sim.node(2).leader().is_none());
    }
}

#[test]
fn an_answer_from_before_a_leader_epoch_bump_is_dropped_even_from_the_same_leader() {
    use spate_cluster::replication::{
        FollowerReplica, LeaderAnswer, ReplicationConfig, Transition,
    };
    let config = ReplicationConfig::default();
    let log = MemLog::with_batches(&[(1, 5, 1)]);
    let (local, view) = (log.local(), log.view());
    let now = std::time::Instant::now();
    let mut follower =
        FollowerReplica::new(1, 7, &state(&[0, 1], &[0, 1], 0, 1), local, 5, &config).unwrap();
    let old = follower.next_fetch(now, local, &view).unwrap();
    assert_eq!(old.current_leader_epoch, 1);
    let bumped = PartitionState {
        partition_epoch: 1,
        ..state(&[0, 1], &[0, 1], 0, 2)
    };
    assert_eq!(follower.on_partition_state(&bumped), Transition::Restarted);
    // A new fetch from the same offset is in flight when the old answer arrives.
    let new = follower.next_fetch(now, local, &view).unwrap();
    assert_eq!((new.current_leader_epoch, new.fetch_offset), (2, 5));
    let answer = LeaderAnswer::Records {
        high_watermark: 9,
        log_start: 0,
        records_end: 9,
    };
    assert!(
        follower
            .on_answer(now, &old, answer, local, &view)
            .is_empty()
    );
    assert_eq!(follower.late_answers(), 1);
    assert!(follower.is_fetching(), "the new fetch is still outstanding");
    let actions = follower.on_answer(now, &new, answer, local, &view);
    assert!(
        !actions.is_empty(),
        "the answer to the new fetch is applied"
    );
}

/// Found by the simulator (seed 1537744114, a duplicated fetch): answers were matched to
/// the fetch outstanding by leader epoch and fetch offset only. A follower that truncated
/// and fetched its way back to the same offset then took a late `DivergingEpoch`, meant for
/// the log it had before, as the answer to its new fetch, and cut records below its HW.
#[test]
fn a_late_diverging_answer_meant_for_a_log_since_truncated_and_refilled_is_dropped() {
    use spate_cluster::replication::{
        FollowerAction, FollowerReplica, LeaderAnswer, ReplicationConfig,
    };
    let config = ReplicationConfig::default();
    let now = std::time::Instant::now();
    // Node 1 holds epoch 1 up to 8, then [8, 12) of epoch 2, which epoch 3's leader lacks.
    let before = MemLog::with_batches(&[(1, 8, 1), (2, 4, 9)]);
    let partition = state(&[0, 1], &[0, 1], 0, 3);
    let mut follower = FollowerReplica::new(1, 7, &partition, before.local(), 8, &config).unwrap();
    let first = follower
        .next_fetch(now, before.local(), &before.view())
        .unwrap();
    assert_eq!(
        (first.fetch_offset, first.last_fetched_epoch),
        (12, Some(2))
    );
    let diverging = LeaderAnswer::Diverging {
        epoch: 1,
        end_offset: 8,
    };
    assert_eq!(
        follower.on_answer(now, &first, diverging, before.local(), &before.view()),
        [FollowerAction::Truncate {
            to: 8,
            below_high_watermark: false
        }]
    );
    // It truncates, fetches epoch 3's [8, 12), syncs it and takes the leader's HW (12).
    let truncated = MemLog::with_batches(&[(1, 8, 1)]);
    let second = follower
        .next_fetch(now, truncated.local(), &truncated.view())
        .unwrap();
    let records = LeaderAnswer::Records {
        high_watermark: 12,
        log_start: 0,
        records_end: 12,
    };
    let actions = follower.on_answer(now, &second, records, truncated.local(), &truncated.view());
    assert_eq!(actions[0], FollowerAction::Append { from: 8, to: 12 });
    let refilled = MemLog::with_batches(&[(1, 8, 1), (3, 4, 10)]);
    assert_eq!(follower.on_local(refilled.local()), Some(12));
    let third = follower
        .next_fetch(now, refilled.local(), &refilled.view())
        .unwrap();
    assert_eq!(
        (third.fetch_offset, third.last_fetched_epoch),
        (12, Some(3))
    );
    // The first fetch's answer again (a duplicate, or a retry's): same epoch, same offset,
    // but it was about the old log.
    let late = follower.on_answer(now, &first, diverging, refilled.local(), &refilled.view());
    assert!(late.is_empty(), "{late:?}");
    assert_eq!(follower.late_answers(), 1);
    assert_eq!(follower.high_watermark(), 12);
    assert!(
        follower.is_fetching(),
        "the third fetch is still outstanding"
    );
}

#[test]
fn a_fetch_sent_before_the_follower_restarted_is_refused_by_its_broker_epoch() {
    use spate_cluster::replication::{FetchDecision, ReplicaError};
    let mut sim = Sim::new(903, config(2));
    sim.drive_until("node 1 fetching", STEPS_MAX, |s| {
        s.net
            .iter()
            .any(|m| m.from == 1 && matches!(m.payload, Payload::Fetch { .. }))
    });
    let old = sim
        .net
        .iter()
        .find_map(|m| match &m.payload {
            Payload::Fetch { fetch, .. } if m.from == 1 => Some(*fetch),
            _ => None,
        })
        .unwrap();
    sim.crash(1);
    sim.restart(1);
    sim.drive_until("node 0 knows node 1's new registration", STEPS_MAX, |s| {
        s.node(0).image.broker(1).unwrap().broker_epoch > old.broker_epoch
    });
    let now = sim.now;
    let node = sim.node_mut(0);
    let common::sim::node::Replica::Leader(leader) = &mut node.replica else {
        panic!("node 0 leads")
    };
    let decision = leader.on_fetch(now, 1, &old, &node.log.view(), &*node.image);
    assert!(matches!(
        decision,
        FetchDecision::Error(ReplicaError::StaleBrokerEpoch { fetched, .. }) if fetched == old.broker_epoch
    ));
}

// ----- unclean election -----

#[test]
fn an_unclean_election_truncates_acked_records_and_counts_it() {
    let mut sim = Sim::new(704, config(1));
    sim.isolate(1, true);
    sim.isolate(2, true);
    let first = sim.produce(1).unwrap();
    sim.drive_until("the ISR is node 0 alone and it commits", STEPS_MAX, |s| {
        s.acked.contains(&first)
    });
    let second = sim.produce(2).unwrap();
    sim.drive_until("acked", STEPS_MAX, |s| s.acked.contains(&second));
    sim.crash(0);
    sim.isolate(1, false);
    sim.isolate(2, false);
    sim.drive_until("leaderless", STEPS_MAX, |s| {
        s.partition().leader == spate_cluster::NO_LEADER
    });
    assert_eq!(
        sim.elect(spate_cluster::controller::ElectionKind::Unclean),
        Some(1)
    );
    assert_eq!(sim.partition().isr, [1]);
    assert_eq!(
        sim.partition().leader_recovery_state,
        LeaderRecoveryState::Recovering
    );
    let replacement = sim.produce_when_led(1, STEPS_MAX);
    assert_eq!(replacement.base, 0, "the lost offsets are reused");
    sim.restart(0);
    sim.drive_until("converged", STEPS_MAX, Sim::converged);
    assert!(
        sim.node(0).truncations_below_hw > 0,
        "node 0 cut records it had exposed"
    );
    for lost in [first, second] {
        assert!(
            sim.nodes
                .iter()
                .all(|n| n.log.batch_at(lost.base) != Some(&lost))
        );
    }
    assert_eq!(
        sim.partition().leader_recovery_state,
        LeaderRecoveryState::Recovered
    );
}
