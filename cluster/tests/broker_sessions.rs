//! Broker sessions driven with a fake clock (`start + offsets`): every decision's records
//! are applied to the image, and the tests check the image, not the records.
#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{Cluster, any_configs, check_invariants, register_request, topic_id};
use spate_cluster::controller::sessions::{BrokerSessions, Heartbeat, SessionError};
use spate_cluster::controller::topics::{self, CreateTopic, TopicDefaults};
use spate_cluster::{NO_LEADER, NodeId, RecordBody};

const SESSION_TIMEOUT: Duration = Duration::from_secs(9);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A cluster with brokers `ids` joined through `sessions` at `now`.
fn joined(ids: &[NodeId], now: Instant) -> (Cluster, BrokerSessions) {
    let mut cluster = Cluster::new();
    let mut sessions = BrokerSessions::new(SESSION_TIMEOUT);
    for &id in ids {
        cluster.join(&mut sessions, now, id, &format!("inc-{id}-a"), None);
    }
    (cluster, sessions)
}

fn create(cluster: &mut Cluster, name: &str, partitions: i32, replication_factor: i16, id: u8) {
    let request = CreateTopic {
        name: name.into(),
        partition_count: partitions,
        replication_factor,
        assignments: None,
        configs: BTreeMap::new(),
    };
    let defaults = TopicDefaults {
        partition_count: 1,
        replication_factor: None,
    };
    let records = topics::create_topic(
        &cluster.image,
        &request,
        &defaults,
        topic_id(id),
        &any_configs,
    )
    .unwrap();
    cluster.apply(records).unwrap();
}

/// Heartbeats from every broker in `ids` at `now`, applying what they decide.
fn heartbeat_all(
    cluster: &mut Cluster,
    sessions: &mut BrokerSessions,
    now: Instant,
    ids: &[NodeId],
) {
    for &id in ids {
        let (_, records) = sessions
            .heartbeat(&cluster.image, now, &cluster.heartbeat(id))
            .unwrap();
        cluster.apply(records).unwrap();
    }
}

#[test]
fn a_registered_broker_is_unfenced_once_it_has_applied_its_registration() {
    let start = Instant::now();
    let mut cluster = Cluster::new();
    let mut sessions = BrokerSessions::new(SESSION_TIMEOUT);
    let records = sessions
        .register(&cluster.image, start, &register_request(1, "a", None))
        .unwrap();
    let epoch = cluster.apply(records).unwrap();
    let broker = cluster.image.broker(1).unwrap();
    assert!(broker.fenced);
    assert_eq!(broker.broker_epoch, epoch as i64);

    let behind = Heartbeat {
        node_id: 1,
        broker_epoch: epoch as i64,
        metadata_offset: epoch - 1,
        want_shutdown: false,
    };
    let (reply, records) = sessions
        .heartbeat(&cluster.image, start + ms(10), &behind)
        .unwrap();
    assert!(reply.fenced && !reply.should_shut_down);
    assert!(
        records.is_empty(),
        "unfenced before catching up: {records:?}"
    );

    let caught_up = Heartbeat {
        metadata_offset: epoch,
        ..behind
    };
    let (reply, records) = sessions
        .heartbeat(&cluster.image, start + ms(20), &caught_up)
        .unwrap();
    assert!(
        reply.fenced,
        "the reply describes the image before the records"
    );
    cluster.apply(records).unwrap();
    assert!(!cluster.image.broker(1).unwrap().fenced);

    let (reply, records) = sessions
        .heartbeat(&cluster.image, start + ms(30), &cluster.heartbeat(1))
        .unwrap();
    assert!(!reply.fenced && !reply.in_controlled_shutdown && !reply.should_shut_down);
    assert!(records.is_empty());
}

#[test]
fn a_retried_registration_of_the_same_incarnation_writes_nothing() {
    let start = Instant::now();
    let (cluster, mut sessions) = joined(&[1], start);
    let epoch = cluster.epoch(1);
    let records = sessions
        .register(
            &cluster.image,
            start + ms(5),
            &register_request(1, "inc-1-a", None),
        )
        .unwrap();
    assert!(records.is_empty());
    assert_eq!(cluster.epoch(1), epoch);
}

#[test]
fn another_incarnation_is_refused_while_the_first_heartbeats_and_accepted_once_it_is_fenced() {
    let start = Instant::now();
    let (mut cluster, mut sessions) = joined(&[1, 2], start);
    let second = register_request(1, "inc-1-b", None);
    let at = start + SESSION_TIMEOUT - ms(1);
    assert_eq!(
        sessions.register(&cluster.image, at, &second),
        Err(SessionError::DuplicateRegistration(1))
    );
    // Broker 1 goes quiet; 2 keeps heartbeating; 1's session expires and it is fenced.
    heartbeat_all(&mut cluster, &mut sessions, at, &[2]);
    let records = sessions.expire(&cluster.image, start + SESSION_TIMEOUT);
    cluster.apply(records).unwrap();
    assert!(cluster.image.broker(1).unwrap().fenced);

    let records = sessions
        .register(&cluster.image, start + SESSION_TIMEOUT, &second)
        .unwrap();
    let epoch = cluster.apply(records).unwrap();
    let broker = cluster.image.broker(1).unwrap();
    assert_eq!(
        (broker.incarnation_id.as_str(), broker.broker_epoch),
        ("inc-1-b", epoch as i64)
    );
}

#[test]
fn a_new_controller_lets_a_restarted_broker_replace_a_session_it_only_presumed() {
    // The node that was both controller and broker restarts: the new controller (itself)
    // presumes a session for the old incarnation but has never heard from it, so the new
    // incarnation registers at once instead of waiting out a session timeout.
    let start = Instant::now();
    let (mut cluster, _) = joined(&[1, 2], start);
    create(&mut cluster, "orders", 2, 2, 1);
    let mut fresh = BrokerSessions::new(SESSION_TIMEOUT);
    fresh.reset(&cluster.image, start + ms(100));
    let records = fresh
        .register(
            &cluster.image,
            start + ms(101),
            &register_request(1, "inc-1-restarted", None),
        )
        .unwrap();
    cluster.apply(records).unwrap();
    let broker = cluster.image.broker(1).unwrap();
    assert_eq!(broker.incarnation_id, "inc-1-restarted");
    assert!(broker.fenced);
    assert!(
        cluster
            .image
            .topic("orders")
            .unwrap()
            .partitions
            .iter()
            .all(|p| p.leader != 1),
        "the old incarnation's leaderships moved"
    );
}

#[test]
fn another_incarnation_replacing_an_expired_unfenced_broker_moves_its_leaderships() {
    let start = Instant::now();
    let (mut cluster, mut sessions) = joined(&[1, 2, 3], start);
    create(&mut cluster, "orders", 3, 3, 1);
    heartbeat_all(
        &mut cluster,
        &mut sessions,
        start + SESSION_TIMEOUT - ms(1),
        &[2, 3],
    );
    // No expire() ran, but 1's session is over: its new incarnation may register.
    let at = start + SESSION_TIMEOUT;
    let records = sessions
        .register(&cluster.image, at, &register_request(1, "inc-1-b", None))
        .unwrap();
    cluster.apply(records).unwrap();
    check_invariants(&cluster.image).unwrap();
    assert!(cluster.image.broker(1).unwrap().fenced);
    for partition in &cluster.image.topic("orders").unwrap().partitions {
        assert_ne!(
            partition.leader, 1,
            "a fenced registration leads {partition:?}"
        );
        assert!(!partition.isr.contains(&1));
    }
}

#[test]
fn an_expired_session_fences_the_broker_and_re_elects_from_the_isr_with_a_higher_leader_epoch() {
    let start = Instant::now();
    let (mut cluster, mut sessions) = joined(&[1, 2, 3], start);
    create(&mut cluster, "orders", 6, 3, 1);
    let before = cluster.image.topic("orders").unwrap().clone();

    let mut now = start;
    for _ in 0..3 {
        now += ms(3000);
        heartbeat_all(&mut cluster, &mut sessions, now, &[2, 3]);
        cluster.apply(sessions.expire(&cluster.image, now)).unwrap();
    }
    assert!(
        cluster.image.broker(1).unwrap().fenced,
        "1 was not fenced by {now:?}"
    );
    assert!(!cluster.image.broker(2).unwrap().fenced && !cluster.image.broker(3).unwrap().fenced);

    for (old, new) in before
        .partitions
        .iter()
        .zip(&cluster.image.topic("orders").unwrap().partitions)
    {
        assert_eq!(
            new.isr,
            old.isr
                .iter()
                .copied()
                .filter(|&r| r != 1)
                .collect::<Vec<_>>()
        );
        if old.leader == 1 {
            let expected = old.replicas.iter().copied().find(|&r| r != 1).unwrap();
            assert_eq!(
                new.leader, expected,
                "not the next replica in assignment order"
            );
            assert_eq!(new.leader_epoch, old.leader_epoch + 1);
        } else {
            assert_eq!(
                (new.leader, new.leader_epoch),
                (old.leader, old.leader_epoch)
            );
        }
        assert_eq!(new.partition_epoch, old.partition_epoch + 1);
    }
    check_invariants(&cluster.image).unwrap();
}

#[test]
fn the_sole_isr_member_leaves_its_partition_leaderless_and_is_re_elected_when_it_returns() {
    let start = Instant::now();
    let (mut cluster, mut sessions) = joined(&[1, 2], start);
    create(&mut cluster, "solo", 2, 1, 1);
    let led_by_1 = (0..2)
        .find(|&p| cluster.partition("solo", p).leader == 1)
        .unwrap();

    let at = start + SESSION_TIMEOUT;
    heartbeat_all(&mut cluster, &mut sessions, at - ms(1), &[2]);
    cluster.apply(sessions.expire(&cluster.image, at)).unwrap();
    let offline = cluster.partition("solo", led_by_1);
    assert_eq!(
        (offline.leader, offline.isr.as_slice()),
        (NO_LEADER, &[1][..])
    );
    assert_eq!(offline.leader_epoch, 1);

    // Its old epoch is gone once it registers again.
    let old = cluster.heartbeat(1);
    let records = sessions
        .register(
            &cluster.image,
            at + ms(10),
            &register_request(1, "inc-1-b", None),
        )
        .unwrap();
    cluster.apply(records).unwrap();
    assert!(matches!(
        sessions.heartbeat(&cluster.image, at + ms(20), &old),
        Err(SessionError::StaleBrokerEpoch { node_id: 1, .. })
    ));
    let (_, records) = sessions
        .heartbeat(&cluster.image, at + ms(30), &cluster.heartbeat(1))
        .unwrap();
    cluster.apply(records).unwrap();
    let back = cluster.partition("solo", led_by_1);
    assert_eq!((back.leader, back.isr.as_slice()), (1, &[1][..]));
    assert_eq!(back.leader_epoch, 2);
}

#[test]
fn controlled_shutdown_moves_every_leadership_it_can_then_lets_the_broker_go() {
    let start = Instant::now();
    let (mut cluster, mut sessions) = joined(&[1, 2, 3], start);
    create(&mut cluster, "orders", 6, 3, 1);
    create(&mut cluster, "solo", 3, 1, 2);
    let solo_on_1 = (0..3)
        .find(|&p| cluster.partition("solo", p).leader == 1)
        .unwrap();

    let asking = Heartbeat {
        want_shutdown: true,
        ..cluster.heartbeat(1)
    };
    let (reply, records) = sessions
        .heartbeat(&cluster.image, start + ms(10), &asking)
        .unwrap();
    assert!(!reply.in_controlled_shutdown && !reply.should_shut_down);
    cluster.apply(records).unwrap();
    let broker = cluster.image.broker(1).unwrap();
    assert!(broker.in_controlled_shutdown && !broker.fenced);
    assert_eq!(cluster.leader_counts().get(&1), None, "1 still leads");
    for partition in &cluster.image.topic("orders").unwrap().partitions {
        assert!(!partition.isr.contains(&1) && partition.leader != NO_LEADER);
    }
    // The partition only 1 holds cannot move: it goes offline, 1 stays its ISR.
    let solo = cluster.partition("solo", solo_on_1);
    assert_eq!((solo.leader, solo.isr.as_slice()), (NO_LEADER, &[1][..]));

    let (reply, records) = sessions
        .heartbeat(&cluster.image, start + ms(20), &asking)
        .unwrap();
    assert!(reply.in_controlled_shutdown && reply.should_shut_down && !reply.fenced);
    cluster.apply(records).unwrap();
    assert!(cluster.image.broker(1).unwrap().fenced);

    let (reply, records) = sessions
        .heartbeat(&cluster.image, start + ms(30), &asking)
        .unwrap();
    assert!(reply.should_shut_down && reply.fenced);
    assert!(records.is_empty(), "fenced twice: {records:?}");
    check_invariants(&cluster.image).unwrap();
}

#[test]
fn should_shut_down_waits_until_the_broker_leads_nothing() {
    let start = Instant::now();
    let (mut cluster, mut sessions) = joined(&[1, 2], start);
    create(&mut cluster, "orders", 4, 2, 1);
    // Controlled shutdown recorded without its leadership moves (say, by a controller that
    // failed over mid-decision): the broker must not be let go yet.
    cluster
        .apply(vec![RecordBody::BrokerChange {
            node_id: 1,
            broker_epoch: cluster.epoch(1),
            fenced: None,
            in_controlled_shutdown: Some(true),
        }])
        .unwrap();
    assert!(cluster.leader_counts().contains_key(&1));
    let (reply, records) = sessions
        .heartbeat(&cluster.image, start + ms(10), &cluster.heartbeat(1))
        .unwrap();
    assert!(reply.in_controlled_shutdown && !reply.should_shut_down);
    cluster.apply(records).unwrap();
    assert_eq!(cluster.leader_counts().get(&1), None);
    let (reply, _) = sessions
        .heartbeat(&cluster.image, start + ms(20), &cluster.heartbeat(1))
        .unwrap();
    assert!(reply.should_shut_down);
}

#[test]
fn a_fenced_broker_asking_to_shut_down_may_go_at_once() {
    let start = Instant::now();
    let mut cluster = Cluster::new();
    let mut sessions = BrokerSessions::new(SESSION_TIMEOUT);
    let records = sessions
        .register(&cluster.image, start, &register_request(1, "a", None))
        .unwrap();
    cluster.apply(records).unwrap();
    let asking = Heartbeat {
        want_shutdown: true,
        ..cluster.heartbeat(1)
    };
    let (reply, records) = sessions.heartbeat(&cluster.image, start, &asking).unwrap();
    assert!(reply.fenced && reply.should_shut_down);
    assert!(records.is_empty(), "{records:?}");
}

#[test]
fn unknown_brokers_and_stale_epochs_are_refused() {
    let start = Instant::now();
    let (cluster, mut sessions) = joined(&[1], start);
    let unknown = Heartbeat {
        node_id: 7,
        ..cluster.heartbeat(1)
    };
    assert_eq!(
        sessions.heartbeat(&cluster.image, start, &unknown),
        Err(SessionError::UnknownBroker(7))
    );
    let stale = Heartbeat {
        broker_epoch: cluster.epoch(1) - 1,
        ..cluster.heartbeat(1)
    };
    assert_eq!(
        sessions.heartbeat(&cluster.image, start, &stale),
        Err(SessionError::StaleBrokerEpoch {
            node_id: 1,
            current: cluster.epoch(1),
            found: cluster.epoch(1) - 1,
        })
    );
}

#[test]
fn malformed_registrations_are_refused_before_any_record() {
    let cluster = Cluster::new();
    let mut sessions = BrokerSessions::new(SESSION_TIMEOUT);
    let good = register_request(1, "a", Some("rack-a"));
    let mut bad = vec![
        register_request(-1, "a", None),
        register_request(1, "", None),
        register_request(1, "a", Some("")),
        register_request(1, &"x".repeat(256), None),
    ];
    let mut no_host = good.clone();
    no_host.kafka.host.clear();
    let mut no_port = good.clone();
    no_port.kafka.port = 0;
    let mut no_cluster_addr = good.clone();
    no_cluster_addr.cluster_addr.clear();
    bad.extend([no_host, no_port, no_cluster_addr]);
    for request in bad {
        let outcome = sessions.register(&cluster.image, Instant::now(), &request);
        assert!(
            matches!(outcome, Err(SessionError::Invalid(_))),
            "{request:?}: {outcome:?}"
        );
    }
    assert!(
        sessions
            .register(&cluster.image, Instant::now(), &good)
            .is_ok()
    );
}

#[test]
fn brokers_expiring_together_make_one_applicable_change_per_partition() {
    let start = Instant::now();
    let (mut cluster, mut sessions) = joined(&[1, 2, 3], start);
    create(&mut cluster, "orders", 9, 3, 1);
    heartbeat_all(&mut cluster, &mut sessions, start + ms(5000), &[3]);
    let records = sessions.expire(&cluster.image, start + SESSION_TIMEOUT);
    let changes = records
        .iter()
        .filter(|r| matches!(r, RecordBody::PartitionChange { .. }))
        .count();
    assert_eq!(changes, 9);
    cluster.apply(records).unwrap();
    for partition in &cluster.image.topic("orders").unwrap().partitions {
        assert_eq!((partition.leader, partition.isr.as_slice()), (3, &[3][..]));
    }
}

#[test]
fn a_new_controller_gives_every_broker_a_full_session() {
    let start = Instant::now();
    let (mut cluster, _) = joined(&[1, 2], start);
    let mut successor = BrokerSessions::new(SESSION_TIMEOUT);
    let took_over = start + ms(60_000);
    successor.reset(&cluster.image, took_over);
    assert_eq!(successor.next_expiry(), Some(took_over + SESSION_TIMEOUT));
    assert!(
        successor
            .expire(&cluster.image, took_over + SESSION_TIMEOUT - ms(1))
            .is_empty()
    );
    heartbeat_all(&mut cluster, &mut successor, took_over + ms(100), &[2]);
    let records = successor.expire(&cluster.image, took_over + SESSION_TIMEOUT);
    cluster.apply(records).unwrap();
    assert!(cluster.image.broker(1).unwrap().fenced);
    assert!(!cluster.image.broker(2).unwrap().fenced);
}

#[test]
fn a_broker_first_seen_in_expire_gets_a_full_session_rather_than_being_fenced() {
    let start = Instant::now();
    let mut cluster = Cluster::new();
    cluster.add_live_broker(1, None);
    let mut sessions = BrokerSessions::new(SESSION_TIMEOUT);
    assert_eq!(sessions.next_expiry(), None);
    let first_sight = start + ms(3_600_000);
    assert!(sessions.expire(&cluster.image, first_sight).is_empty());
    assert_eq!(sessions.next_expiry(), Some(first_sight + SESSION_TIMEOUT));
    cluster
        .apply(sessions.expire(&cluster.image, first_sight + SESSION_TIMEOUT))
        .unwrap();
    assert!(cluster.image.broker(1).unwrap().fenced);
    assert_eq!(
        sessions.next_expiry(),
        None,
        "a fenced broker has no deadline"
    );
}

#[test]
fn next_expiry_follows_the_earliest_unfenced_session() {
    let start = Instant::now();
    let (mut cluster, mut sessions) = joined(&[1, 2], start);
    assert_eq!(sessions.next_expiry(), Some(start + SESSION_TIMEOUT));
    heartbeat_all(&mut cluster, &mut sessions, start + ms(500), &[1]);
    assert_eq!(sessions.next_expiry(), Some(start + SESSION_TIMEOUT));
    heartbeat_all(&mut cluster, &mut sessions, start + ms(700), &[2]);
    assert_eq!(
        sessions.next_expiry(),
        Some(start + ms(500) + SESSION_TIMEOUT)
    );
    // A registered but fenced broker has no deadline until it is unfenced.
    let records = sessions
        .register(
            &cluster.image,
            start + ms(800),
            &register_request(3, "c", None),
        )
        .unwrap();
    cluster.apply(records).unwrap();
    assert_eq!(
        sessions.next_expiry(),
        Some(start + ms(500) + SESSION_TIMEOUT)
    );
}

#[test]
fn sessions_of_brokers_no_longer_registered_are_forgotten() {
    let start = Instant::now();
    let (cluster, mut sessions) = joined(&[1], start);
    // A fresh cluster without broker 1 (e.g. a snapshot from before it joined).
    let empty = Cluster::new();
    assert!(sessions.expire(&empty.image, start + ms(1)).is_empty());
    assert_eq!(sessions.next_expiry(), None);
    assert!(sessions.expire(&cluster.image, start + ms(2)).is_empty());
    assert_eq!(
        sessions.next_expiry(),
        Some(start + ms(2) + SESSION_TIMEOUT)
    );
}

mod random_sequences {
    use proptest::prelude::*;

    use super::common::check_invariants;
    use super::common::driver::{Driver, decision};
    use spate_cluster::NO_LEADER;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// Whatever the order of registrations, heartbeats, expiries, failovers and topic
        /// changes: every decision applies, only live brokers lead, a partition is
        /// leaderless only when no ISR member is live, and a broker out of service stays in
        /// an ISR only as its last member.
        #[test]
        fn decisions_always_apply_and_only_live_brokers_lead(
            ops in prop::collection::vec(decision(), 0..120),
        ) {
            let mut driver = Driver::new();
            for op in &ops {
                driver.step(op).map_err(TestCaseError::fail)?;
                let image = &driver.cluster.image;
                prop_assert!(check_invariants(image).is_ok(), "{:?}", check_invariants(image));
                let live = |id| image.broker(id).is_some_and(|b| b.is_live());
                for topic in image.topics() {
                    for (index, p) in topic.partitions.iter().enumerate() {
                        prop_assert!(
                            p.isr.len() == 1 || p.isr.iter().all(|&m| live(m)),
                            "{}-{} keeps a non-live broker in its ISR after {:?}: {:?}",
                            topic.name, index, op, p
                        );
                        if p.leader == NO_LEADER {
                            prop_assert!(
                                !p.isr.iter().any(|&m| live(m)),
                                "{}-{} is leaderless with a live ISR member after {:?}: {:?}",
                                topic.name, index, op, p
                            );
                        } else {
                            prop_assert!(live(p.leader), "{}-{} led by non-live {} after {:?}", topic.name, index, p.leader, op);
                        }
                    }
                }
            }
        }
    }
}
