//! The leader's side of replication, driven step by step over the simulator in
//! `common::sim` (quinn's `Pair` style): the high watermark on durable offsets, the strict
//! min ISR, ISR shrink and expansion (KIP-497, KAFKA-7128), `acks=all`, ListOffsets after a
//! leader change (KIP-207) and AlterPartition faults. Each test scripts one rule of
//! replication-notes §2 and §5 and is named after what it proves; the simulator checks §7's
//! invariants after every step as well. The follower's side is in `replication_truncation.rs`.
#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::time::Duration;

use common::sim::{Payload, Sim, SimConfig, config, log, state};
use spate_cluster::replication::{ListOffsetsRefusal, ProduceRefusal};

/// Steps any scripted scenario may take; exceeding it is a liveness bug.
const STEPS_MAX: u64 = 20_000;
const LAG: Duration = Duration::from_secs(10);

// ----- the leader: HW, durability, ISR -----

#[test]
fn acks_all_waits_until_every_isr_member_has_synced_and_the_sync_is_reported_at_once() {
    let mut sim = Sim::new(
        1,
        SimConfig {
            sync_delay: Duration::from_millis(400),
            fetch_wait: Duration::from_millis(500),
            ..SimConfig::default()
        },
    );
    let batch = sim.produce(3).unwrap();
    sim.sync_now(0);
    sim.run_for(Duration::from_millis(100));
    let followers: Vec<_> = sim.leader(0).followers().collect();
    assert!(
        followers
            .iter()
            .all(|f| f.fetch_offset == Some(3) && f.durable_offset == Some(0)),
        "the followers hold the records but have not synced them: {followers:?}"
    );
    assert_eq!(sim.leader(0).high_watermark(), 0);
    assert!(sim.acked.is_empty());
    // Syncs complete at ~400 ms; each follower reports its durable offset then, without
    // waiting for its parked fetch (500 ms) to come back.
    sim.drive_until("acked", STEPS_MAX, |s| s.acked.contains(&batch));
    assert!(
        sim.elapsed() < Duration::from_millis(450),
        "{:?}",
        sim.elapsed()
    );
    assert_eq!(sim.leader(0).high_watermark(), 3);
    sim.drive_until("converged", STEPS_MAX, Sim::converged);
}

#[test]
fn the_high_watermark_stays_frozen_while_the_isr_is_below_min_insync() {
    let mut sim = Sim::new(2, config(3));
    sim.isolate(2, true);
    let batch = sim.produce(1).unwrap();
    sim.run_for(LAG + Duration::from_secs(2));
    assert_eq!(sim.partition().isr, [0, 1], "node 2 was shrunk out");
    let leader = sim.leader(0);
    let node1 = leader.followers().find(|f| f.node == 1).unwrap();
    assert_eq!(node1.durable_offset, Some(1));
    assert_eq!(sim.node(0).log.flushed, 1);
    // Kafka before 3.7 would commit with the ISR alone (KAFKA-15583): not here.
    assert_eq!(leader.high_watermark(), 0);
    assert_eq!(leader.acks_all_outcome(batch.last_offset()), None);
    assert_eq!(
        leader.check_produce_acks_all(),
        Err(ProduceRefusal::NotEnoughReplicas { isr: 2, min: 3 })
    );
    assert_eq!(sim.produce(1), None, "nothing is appended");
    sim.isolate(2, false);
    sim.drive_until("node 2 rejoins and the batch commits", STEPS_MAX, |s| {
        s.acked.contains(&batch)
    });
    assert_eq!(sim.partition().isr, [0, 1, 2]);
}

#[test]
fn a_follower_that_stops_fetching_leaves_the_isr_at_the_lag_time_and_rejoins_once_caught_up() {
    let mut sim = Sim::new(3, config(2));
    sim.run_for(Duration::from_millis(300));
    sim.isolate(2, true);
    let cut_at = sim.elapsed();
    let batch = sim.produce(1).unwrap();
    sim.run_for(LAG - Duration::from_millis(500));
    assert_eq!(
        sim.partition().isr,
        [0, 1, 2],
        "not yet: the lag time has not passed"
    );
    assert!(
        !sim.acked.contains(&batch),
        "the HW waits for every ISR member"
    );
    sim.drive_until("node 2 leaves the ISR", STEPS_MAX, |s| {
        s.leader(0).isr() == [0, 1]
    });
    let shrunk_after = sim.elapsed() - cut_at;
    assert!(
        shrunk_after < LAG + Duration::from_millis(300),
        "removal takes the lag time, not 1.5×: {shrunk_after:?}"
    );
    sim.drive_until("the smaller ISR commits it", STEPS_MAX, |s| {
        s.acked.contains(&batch)
    });
    sim.produce(2).unwrap();
    sim.isolate(2, false);
    sim.drive_until("node 2 rejoins", STEPS_MAX, Sim::converged);
    assert_eq!(sim.partition().isr, [0, 1, 2]);
}

#[test]
fn a_pending_isr_expansion_counts_in_the_high_watermark_at_once() {
    let mut sim = Sim::new(4, config(2));
    sim.isolate(2, true);
    sim.produce(1).unwrap();
    sim.drive_until("node 2 shrunk", STEPS_MAX, |s| s.partition().isr == [0, 1]);
    sim.isolate(2, false);
    let is_expansion = |s: &Sim| {
        s.net.iter().position(|m| {
            matches!(&m.payload, Payload::AlterPartition { request, .. } if request.isr() == [0, 1, 2])
        })
    };
    sim.drive_until("the leader asks to add node 2", STEPS_MAX, |s| {
        is_expansion(s).is_some()
    });
    // Hold the request at the controller's door past the lag time, and cut node 2 off
    // again: it stops counting as caught up, but a pending member still counts.
    let index = is_expansion(&sim).unwrap();
    sim.delay_message(index, LAG + Duration::from_secs(5));
    sim.isolate(2, true);
    let leader = sim.leader(0);
    assert_eq!(leader.isr(), [0, 1]);
    assert_eq!(leader.maximal_isr(), [0, 1, 2]);
    let node2_durable = leader
        .followers()
        .find(|f| f.node == 2)
        .unwrap()
        .durable_offset;
    let batch = sim.produce(2).unwrap();
    sim.run_for(LAG + Duration::from_secs(1));
    let leader = sim.leader(0);
    let position = |node| leader.followers().find(|f| f.node == node).unwrap();
    assert!(!position(2).caught_up);
    // Nodes 0 and 1 (the committed ISR, at min ISR) hold the batch synced, but node 2 counts.
    assert_eq!(position(1).durable_offset, Some(batch.end()));
    assert_eq!(Some(leader.high_watermark()), node2_durable);
    assert!(!sim.acked.contains(&batch));
    sim.isolate(2, false);
    sim.drive_until("converged", STEPS_MAX, Sim::converged);
    assert!(sim.acked.contains(&batch));
}

#[test]
fn a_follower_joins_the_isr_only_once_it_reaches_the_start_of_the_leaders_epoch() {
    // KAFKA-7128. Node 0 leads epoch 2 from offset 10 with a lagging HW (4, frozen: node 2
    // is in the ISR and cut off). Node 1 is at 7: past the HW, short of the epoch start.
    let e1 = [(1, 4, 1), (1, 3, 2), (1, 3, 3)];
    let logs = vec![log(&e1, 4), log(&e1[..2], 4), log(&e1, 10)];
    let mut sim = Sim::with_logs(
        7128,
        config(2),
        logs,
        Some(state(&[0, 1, 2], &[0, 2], 0, 2)),
    );
    sim.isolate(2, true);
    assert_eq!(sim.leader(0).epoch_start_offset(), 10);
    sim.drive_until("node 0 sees node 1 at 7", STEPS_MAX, |s| {
        s.leader(0)
            .followers()
            .any(|f| f.node == 1 && f.durable_offset == Some(7))
    });
    assert_eq!(sim.leader(0).high_watermark(), 4);
    assert_eq!(
        sim.leader(0).pending_isr_change(),
        None,
        "7 reaches the HW, not the epoch start"
    );
    sim.drive_until("node 1 joins at 10", STEPS_MAX, |s| {
        s.partition().isr.contains(&1)
    });
    assert_eq!(sim.node(1).log.log_end, 10);
    // Had it joined at 7, node 0 dying now would lose what the last leader committed.
    sim.crash(0);
    sim.drive_until("node 1 leads", STEPS_MAX, |s| s.node(1).leader().is_some());
    assert_eq!(sim.node(1).log.content(), sim.node(2).log.content());
}

#[test]
fn a_new_leaders_high_watermark_is_frozen_until_its_isr_fetches_and_list_offsets_says_not_available()
 {
    // KIP-207: node 1 takes over with its follower HW (4), below its epoch start (10).
    let e1 = [(1, 4, 1), (1, 6, 2)];
    let logs = vec![log(&e1, 10), log(&e1, 4), log(&e1, 10)];
    let mut sim = Sim::with_logs(
        207,
        config(2),
        logs,
        Some(state(&[0, 1, 2], &[0, 1, 2], 1, 2)),
    );
    sim.isolate(0, true);
    sim.run_for(Duration::from_secs(1));
    let leader = sim.leader(1);
    assert!(
        leader
            .followers()
            .any(|f| f.node == 2 && f.durable_offset == Some(10))
    );
    assert_eq!(
        leader.high_watermark(),
        4,
        "node 0 has not fetched in epoch 2"
    );
    assert_eq!(
        leader.latest_offset(),
        Err(ListOffsetsRefusal::OffsetNotAvailable {
            high_watermark: 4,
            epoch_start_offset: 10
        })
    );
    // OffsetsForLeaderEpoch answers exact ends (KIP-320): epoch 1 ends where 2 starts.
    let cache = &sim.node(1).log.epochs;
    assert_eq!(cache.end_offset_for(1, 10), Some((1, 10)));
    assert_eq!(cache.end_offset_for(2, 10), Some((2, 10)));
    sim.isolate(0, false);
    sim.drive_until("the HW moves", STEPS_MAX, |s| {
        s.leader(1).high_watermark() == 10
    });
    assert_eq!(sim.leader(1).latest_offset(), Ok(10));
}

#[test]
fn acks_all_in_flight_when_the_isr_shrinks_below_min_insync_never_completes_or_fails_after_append()
{
    let mut sim = Sim::new(5, config(3));
    // C commits while all three are in sync, but its producer has not been answered.
    let committed = sim.produce(1).unwrap();
    sim.pending_acks.clear();
    sim.drive_until("C is under the HW", STEPS_MAX, |s| {
        s.leader(0).high_watermark() > committed.last_offset()
    });
    sim.isolate(2, true);
    let waiting = sim.produce(1).unwrap();
    sim.pending_acks.clear();
    sim.drive_until("node 2 shrunk", STEPS_MAX, |s| s.leader(0).isr() == [0, 1]);
    let leader = sim.leader(0);
    // The HW is frozen below min ISR: this one waits until the request times out.
    assert_eq!(leader.acks_all_outcome(waiting.last_offset()), None);
    // Committed, but answered with the ambiguous error (Partition.checkEnoughReplicasReachOffset).
    assert_eq!(
        leader.acks_all_outcome(committed.last_offset()),
        Some(Err(ProduceRefusal::NotEnoughReplicasAfterAppend {
            isr: 2,
            min: 3
        }))
    );
}

#[test]
fn a_lost_alter_partition_answer_is_retried_refused_as_stale_and_resolved_by_metadata() {
    let mut sim = Sim::new(6, config(2));
    sim.isolate(2, true);
    sim.produce(1).unwrap();
    let answer = |s: &Sim| {
        s.net
            .iter()
            .position(|m| matches!(m.payload, Payload::AlterPartitionAnswer { .. }))
    };
    sim.drive_until("the shrink is applied and answered", STEPS_MAX, |s| {
        answer(s).is_some()
    });
    assert_eq!(sim.partition().isr, [0, 1]);
    sim.hold_metadata(0, Duration::from_secs(1));
    let index = answer(&sim).unwrap();
    sim.drop_message(index);
    sim.run_for(Duration::from_millis(900));
    // Timed out, sent again at the old partition epoch, refused, and waiting for metadata.
    assert_eq!(sim.stat("alter: invalid update version"), 1);
    assert_eq!(sim.leader(0).isr(), [0, 1, 2]);
    assert!(sim.leader(0).pending_isr_change().is_some());
    sim.drive_until("the metadata commits it", STEPS_MAX, |s| {
        s.leader(0).isr() == [0, 1] && s.leader(0).pending_isr_change().is_none()
    });
}
