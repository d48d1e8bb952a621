//! Part of `consumer_groups_librdkafka.rs`: the cooperative-sticky rebalance, incremental and complete.

use super::*;

#[test]
fn cooperative_sticky_rebalance_moves_only_the_partitions_that_change_owner() {
    const TOPIC: &str = "coop";
    const GROUP: &str = "coop-group";
    let broker = start_broker();
    let bootstrap = broker.bootstrap();
    create_topic(&broker, TOPIC, 6);
    let all = all_partitions(6);
    let stop_producing = Arc::new(AtomicBool::new(false));
    let producer = spawn_producer(&bootstrap, TOPIC, 6, stop_producing.clone());

    let config = |id| member_config(&bootstrap, GROUP, id, "cooperative-sticky");
    let a = Member::spawn(config("member-a"), TOPIC);
    wait_until(
        &broker,
        "A alone to own and read all 6 partitions",
        SETTLE_TIMEOUT,
        || {
            let read: BTreeSet<i32> = a.log.consumed().iter().map(|r| r.0).collect();
            a.log.assignment() == all && read == all
        },
        || a.log.summary(),
    );

    let b_joined_at = Instant::now();
    let b = Member::spawn(config("member-b"), TOPIC);
    let describe = || format!("A: {}\nB: {}", a.log.summary(), b.log.summary());
    wait_until(
        &broker,
        "A and B to split the partitions 3/3",
        SETTLE_TIMEOUT,
        || {
            let (held_a, held_b) = (a.log.assignment(), b.log.assignment());
            held_a.len() == 3 && held_b.len() == 3 && held_a.union(&held_b).count() == 6
        },
        describe,
    );
    let kept = a.log.assignment();
    let moved = b.log.assignment();
    assert!(kept.is_disjoint(&moved), "{}", describe());

    let a_events: Vec<_> = a.log.events();
    let (before_b, during_b): (Vec<_>, Vec<_>) = a_events.iter().partition(|e| e.at < b_joined_at);
    assert_eq!(before_b.last().unwrap().assignment_after, all);
    let mut revoked = BTreeSet::new();
    for event in &during_b {
        assert!(
            event.cooperative,
            "A's rebalance protocol is not COOPERATIVE: {event:?}"
        );
        assert!(!matches!(event.change, Change::Error(_)), "{event:?}");
        assert!(
            event.assignment_before.is_superset(&kept) && event.assignment_after.is_superset(&kept),
            "A lost a partition it kept (an assignment gap): {event:?}"
        );
        if event.change == Change::Revoke {
            assert!(
                !event.partitions.is_empty() && event.partitions.len() < 6,
                "A's revocation must be a strict subset of its 6 partitions: {event:?}"
            );
            revoked.extend(event.partitions.iter().copied());
        }
    }
    assert_eq!(revoked, moved, "A revoked exactly the partitions B took");
    for event in b.log.events() {
        assert!(event.cooperative, "B's rebalance protocol: {event:?}");
        assert_eq!(
            event.change,
            Change::Assign,
            "B only gains partitions: {event:?}"
        );
    }
    // A still reads its kept partitions after the rebalance, B reads the moved ones.
    let settled_at = Instant::now();
    wait_until(
        &broker,
        "fresh records on every partition after the split",
        SETTLE_TIMEOUT,
        || {
            let fresh = |log: &MemberLog| -> BTreeSet<i32> {
                let consumed = log.consumed();
                consumed
                    .iter()
                    .filter(|r| r.2 > settled_at)
                    .map(|r| r.0)
                    .collect()
            };
            fresh(&a.log) == kept && fresh(&b.log) == moved
        },
        describe,
    );

    // B leaves cleanly: A must get B's partitions back by an incremental assign, long before a
    // session timeout could have expired B.
    let b_left_at = Instant::now();
    let b_log = b.log.clone();
    b.close();
    wait_until(
        &broker,
        "A to get B's partitions back",
        SETTLE_TIMEOUT,
        || a.log.assignment() == all,
        || format!("A: {}\nB: {}", a.log.summary(), b_log.summary()),
    );
    let after_leave: Vec<_> = a
        .log
        .events()
        .into_iter()
        .filter(|e| e.at > b_left_at)
        .collect();
    let regained = after_leave
        .iter()
        .find(|e| e.assignment_after == all)
        .unwrap();
    let handover = regained.at.duration_since(b_left_at);
    eprintln!("B left; A owned all 6 partitions again after {handover:?}");
    assert!(
        handover < Duration::from_millis(SESSION_TIMEOUT_MS / 2),
        "A waited {handover:?} for B's partitions: LeaveGroup did not trigger a rebalance"
    );
    let mut gained = BTreeSet::new();
    for event in &after_leave {
        assert!(event.cooperative, "{event:?}");
        assert_eq!(
            event.change,
            Change::Assign,
            "A gives nothing up when B leaves: {event:?}"
        );
        gained.extend(event.partitions.iter().copied());
    }
    assert_eq!(gained, moved, "A is assigned exactly B's partitions");

    stop_producing.store(true, Ordering::Relaxed);
    let acked = producer.join().unwrap();
    wait_until(
        &broker,
        "every acknowledged record to be consumed by A or B",
        SETTLE_TIMEOUT,
        || {
            let mut seen: BTreeSet<(i32, i64)> =
                b_log.consumed().iter().map(|r| (r.0, r.1)).collect();
            seen.extend(a.log.consumed().iter().map(|r| (r.0, r.1)));
            acked.is_subset(&seen)
        },
        || format!("{} acked; A: {}", acked.len(), a.log.summary()),
    );
    eprintln!(
        "{} records produced during the test, all consumed",
        acked.len()
    );
    // A never lost a kept partition, so it read each one exactly once, in order, from offset 0:
    // a revoke-and-reassign would have re-read from the last committed offset.
    let a_consumed = a.log.consumed();
    for partition in &kept {
        let offsets: Vec<i64> = a_consumed
            .iter()
            .filter(|r| r.0 == *partition)
            .map(|r| r.1)
            .collect();
        let expected: Vec<i64> = (0..offsets.len() as i64).collect();
        assert_eq!(offsets, expected, "A's reads of kept partition {partition}");
    }
    a.close();
}
