//! Cooperative-sticky (KIP-429) with librdkafka members in the same group: our subscription
//! and assignment bytes are read by librdkafka and theirs by us, whichever side leads, and
//! a member keeps consuming the partitions it retains through every rebalance.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use common::group::{
    MemberLog, Running, Tp, create_topic, group_broker, member_config, produce, tps, wait_until,
};
use rdkafka::config::ClientConfig as RdConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::Message;
use rdkafka::{ClientContext, TopicPartitionList};
use spate_client::{Assignor, GroupConsumer};
use spate_tests::Broker;

const TOPIC: &str = "coop";

/// What a librdkafka member went through.
#[derive(Default)]
struct RdLog {
    /// Partitions named in each revoke callback.
    revoked: Mutex<Vec<BTreeSet<i32>>>,
    assignment: Mutex<BTreeSet<i32>>,
    records: Mutex<Vec<(i32, i64)>>,
    errors: Mutex<Vec<String>>,
}

struct RdContext(Arc<RdLog>);

impl ClientContext for RdContext {}

fn partitions_of(list: &TopicPartitionList) -> BTreeSet<i32> {
    list.elements().iter().map(|e| e.partition()).collect()
}

impl ConsumerContext for RdContext {
    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance {
            self.0.revoked.lock().unwrap().push(partitions_of(list));
        }
        if let Rebalance::Error(error) = rebalance {
            self.0.errors.lock().unwrap().push(error.to_string());
        }
        *self.0.assignment.lock().unwrap() = consumer
            .assignment()
            .map(|l| partitions_of(&l))
            .unwrap_or_default();
    }
}

/// A librdkafka cooperative-sticky member polling on its own thread until stopped, then
/// closed (which commits and leaves).
struct RdMember {
    log: Arc<RdLog>,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl RdMember {
    fn start(broker: &Broker, group: &str) -> RdMember {
        let mut config = RdConfig::new();
        config
            .set("bootstrap.servers", broker.bootstrap())
            .set("group.id", group)
            .set("partition.assignment.strategy", "cooperative-sticky")
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "100")
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "true")
            .set("auto.commit.interval.ms", "100")
            .set("fetch.wait.max.ms", "100");
        let log = Arc::new(RdLog::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (thread_log, thread_stop) = (log.clone(), stop.clone());
        let thread = thread::spawn(move || {
            let consumer: BaseConsumer<RdContext> = config
                .create_with_context(RdContext(thread_log.clone()))
                .unwrap();
            consumer.subscribe(&[TOPIC]).unwrap();
            while !thread_stop.load(Ordering::Relaxed) {
                match consumer.poll(Duration::from_millis(50)) {
                    Some(Ok(message)) => thread_log
                        .records
                        .lock()
                        .unwrap()
                        .push((message.partition(), message.offset())),
                    Some(Err(error)) => thread_log.errors.lock().unwrap().push(error.to_string()),
                    None => {}
                }
            }
        });
        RdMember { log, stop, thread }
    }

    fn assignment(&self) -> BTreeSet<Tp> {
        tps(TOPIC, self.log.assignment.lock().unwrap().iter().copied())
    }

    async fn close(self) -> Arc<RdLog> {
        self.stop.store(true, Ordering::Relaxed);
        tokio::task::spawn_blocking(move || self.thread.join().unwrap())
            .await
            .unwrap();
        self.log
    }
}

async fn spate_member(broker: &Broker, group: &str) -> Running {
    let config = member_config(broker, group, &[Assignor::CooperativeSticky]);
    let consumer = GroupConsumer::new(config).await.unwrap();
    consumer.subscribe(&[TOPIC]);
    Running::start(consumer)
}

/// From the first sample holding all of `final_share`, every later sample holds it too:
/// the member never gave up a partition it ended with.
fn never_revoked(log: &MemberLog, final_share: &BTreeSet<Tp>) {
    let samples = log.assignments.lock().unwrap().clone();
    let first = samples
        .iter()
        .position(|s| s.is_superset(final_share))
        .unwrap();
    for sample in &samples[first..] {
        assert!(
            sample.is_superset(final_share),
            "kept partitions {final_share:?} were revoked on the way: {samples:?}"
        );
    }
}

fn exactly_once(ours: &MemberLog, theirs: &[&RdLog], total: usize) {
    let mut all: Vec<(i32, i64)> = ours
        .records
        .lock()
        .unwrap()
        .iter()
        .map(|(_, p, o)| (*p, *o))
        .collect();
    for log in theirs {
        all.extend(log.records.lock().unwrap().iter().copied());
    }
    let distinct: BTreeSet<(i32, i64)> = all.iter().copied().collect();
    assert_eq!(distinct.len(), total, "every record consumed");
    assert_eq!(all.len(), total, "no record consumed twice");
}

/// Our member leads: librdkafka reads our assignment, we keep two partitions throughout,
/// and the two we hand over are resumed by librdkafka at the offsets we committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spate_leads_and_librdkafka_follows() {
    let broker = group_broker();
    create_topic(&broker, TOPIC, 4).await;
    produce(&broker, TOPIC, 4, 10).await;
    let ours = spate_member(&broker, "coop-ours").await;
    wait_until(
        "our member owning all four and consuming everything",
        || ours.log.assignment() == tps(TOPIC, 0..4) && ours.log.record_count() == 40,
        || format!("{:?}", ours.log.assignments.lock().unwrap()),
    )
    .await;
    let (generation, member) = ours.consumer.generation().unwrap();

    let theirs = RdMember::start(&broker, "coop-ours");
    wait_until(
        "a 2/2 split",
        || {
            let (a, b) = (ours.log.assignment(), theirs.assignment());
            a.len() == 2 && b.len() == 2 && a.is_disjoint(&b)
        },
        || {
            format!(
                "ours {:?}\ntheirs {:?} {:?}",
                ours.log.assignments.lock().unwrap(),
                theirs.log.assignment.lock().unwrap(),
                theirs.log.errors.lock().unwrap()
            )
        },
    )
    .await;
    let (later_generation, same_member) = ours.consumer.generation().unwrap();
    assert!(later_generation > generation);
    assert_eq!(same_member, member, "our member kept its id");
    never_revoked(&ours.log, &ours.log.assignment());

    produce(&broker, TOPIC, 4, 10).await;
    wait_until(
        "all 80 records consumed",
        || ours.log.record_count() + theirs.log.records.lock().unwrap().len() >= 80,
        || {
            format!(
                "ours {} theirs {}",
                ours.log.record_count(),
                theirs.log.records.lock().unwrap().len()
            )
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (consumer, ours_log) = ours.stop().await;
    consumer.close().await.unwrap();
    let theirs_log = theirs.close().await;
    exactly_once(&ours_log, &[&theirs_log], 80);
    assert!(
        theirs_log.errors.lock().unwrap().is_empty(),
        "{:?}",
        theirs_log.errors.lock().unwrap()
    );
}

/// librdkafka leads: it reads our subscription (with the partitions we own) and we read
/// its assignments; when a third member arrives, we keep what we retain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librdkafka_leads_and_spate_follows() {
    let broker = group_broker();
    create_topic(&broker, TOPIC, 4).await;
    produce(&broker, TOPIC, 4, 10).await;
    let theirs = RdMember::start(&broker, "coop-theirs");
    wait_until(
        "librdkafka owning all four and consuming everything",
        || {
            theirs.assignment() == tps(TOPIC, 0..4)
                && theirs.log.records.lock().unwrap().len() == 40
        },
        || format!("{:?}", theirs.log.assignment.lock().unwrap()),
    )
    .await;

    let ours = spate_member(&broker, "coop-theirs").await;
    wait_until(
        "a 2/2 split",
        || {
            let (a, b) = (ours.log.assignment(), theirs.assignment());
            a.len() == 2 && b.len() == 2 && a.is_disjoint(&b)
        },
        || {
            format!(
                "ours {:?} {:?}\ntheirs {:?}",
                ours.log.assignments.lock().unwrap(),
                ours.log.errors.lock().unwrap(),
                theirs.log.assignment.lock().unwrap()
            )
        },
    )
    .await;
    let kept_by_theirs: BTreeSet<i32> = theirs.log.assignment.lock().unwrap().clone();
    for revoked in theirs.log.revoked.lock().unwrap().iter() {
        assert!(
            revoked.is_disjoint(&kept_by_theirs),
            "librdkafka revoked {revoked:?} though it kept {kept_by_theirs:?}"
        );
    }
    produce(&broker, TOPIC, 4, 10).await;
    wait_until(
        "all 80 records consumed",
        || ours.log.record_count() + theirs.log.records.lock().unwrap().len() >= 80,
        || {
            format!(
                "ours {} theirs {}",
                ours.log.record_count(),
                theirs.log.records.lock().unwrap().len()
            )
        },
    )
    .await;

    // A third member: the leader (librdkafka) must see what we own and leave it with us.
    let ours_before = ours.log.assignment();
    let third = RdMember::start(&broker, "coop-theirs");
    wait_until(
        "a 2/1/1 spread",
        || {
            let (a, b, c) = (
                ours.log.assignment(),
                theirs.assignment(),
                third.assignment(),
            );
            let mut sizes = [a.len(), b.len(), c.len()];
            sizes.sort();
            sizes == [1, 1, 2] && a.is_disjoint(&b) && a.is_disjoint(&c) && b.is_disjoint(&c)
        },
        || {
            format!(
                "ours {:?}\ntheirs {:?}\nthird {:?}",
                ours.log.assignments.lock().unwrap(),
                theirs.log.assignment.lock().unwrap(),
                third.log.assignment.lock().unwrap()
            )
        },
    )
    .await;
    let ours_after = ours.log.assignment();
    assert!(
        ours_after.is_subset(&ours_before),
        "{ours_before:?} -> {ours_after:?}"
    );
    never_revoked(&ours.log, &ours_after);

    tokio::time::sleep(Duration::from_millis(300)).await;
    let (consumer, ours_log) = ours.stop().await;
    consumer.close().await.unwrap();
    let third_log = third.close().await;
    let theirs_log = theirs.close().await;
    exactly_once(&ours_log, &[&theirs_log, &third_log], 80);
    assert!(ours_log.errors.lock().unwrap().is_empty());
}
