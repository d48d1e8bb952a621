//! Set-up for the group consumer tests: a broker that rebalances without delay, topics with
//! known records, and members polling in the background while the test watches them.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use spate_client::{
    Admin, Assignor, ClientConfig, GroupConsumer, GroupConsumerConfig, NewTopic, OffsetReset,
    Producer, ProducerConfig, ProducerRecord,
};
use spate_tests::{Broker, BrokerOptions};
use tokio::task::JoinHandle;

pub type Tp = (String, i32);

/// How long a group may take to settle on a loaded 2-core machine.
pub const SETTLE: Duration = Duration::from_secs(20);

/// A broker that starts rebalances at once and accepts short session timeouts.
pub fn group_broker() -> Broker {
    Broker::start_with(BrokerOptions {
        num_partitions: Some(4),
        extra_args: [
            "--group-initial-rebalance-delay-ms",
            "0",
            "--group-min-session-timeout-ms",
            "1000",
        ]
        .map(String::from)
        .to_vec(),
        ..Default::default()
    })
    .expect("broker starts")
}

/// A member that heartbeats every 100 ms and starts partitions without a committed offset
/// at the beginning.
pub fn member_config(broker: &Broker, group: &str, assignors: &[Assignor]) -> GroupConsumerConfig {
    let mut config = GroupConsumerConfig::new(broker.bootstrap(), group);
    config.consumer.auto_offset_reset = OffsetReset::Earliest;
    config.consumer.fetch_max_wait = Duration::from_millis(100);
    config.session_timeout = Duration::from_secs(6);
    config.heartbeat_interval = Duration::from_millis(100);
    config.assignors = assignors.to_vec();
    config
}

pub async fn create_topic(broker: &Broker, topic: &str, partitions: i32) {
    let admin = Admin::new(ClientConfig::new(broker.bootstrap()))
        .await
        .unwrap();
    admin
        .create_topic(NewTopic::new(topic, partitions))
        .await
        .unwrap();
    admin
        .wait_for_topic(topic, Duration::from_secs(10))
        .await
        .unwrap();
}

/// Writes `per_partition` records to each partition; values are `p{partition}-{index}`.
pub async fn produce(broker: &Broker, topic: &str, partitions: i32, per_partition: usize) {
    let producer = Producer::new(ProducerConfig::new(broker.bootstrap()))
        .await
        .unwrap();
    let mut deliveries = Vec::new();
    for index in 0..per_partition {
        for partition in 0..partitions {
            let record =
                ProducerRecord::new(topic, format!("p{partition}-{index}")).partition(partition);
            deliveries.push(producer.send(record).await.unwrap());
        }
    }
    producer.flush().await;
    for delivery in deliveries {
        delivery.await.unwrap();
    }
}

/// What a running member saw.
#[derive(Default)]
pub struct MemberLog {
    /// (topic, partition, offset) of every record polled, in order.
    pub records: Mutex<Vec<(String, i32, i64)>>,
    /// Every distinct assignment the member had, sampled every 2 ms.
    pub assignments: Mutex<Vec<BTreeSet<Tp>>>,
    pub errors: Mutex<Vec<String>>,
}

impl MemberLog {
    pub fn assignment(&self) -> BTreeSet<Tp> {
        self.assignments
            .lock()
            .unwrap()
            .last()
            .cloned()
            .unwrap_or_default()
    }

    pub fn record_count(&self) -> usize {
        self.records.lock().unwrap().len()
    }
}

/// A member polling every 50 ms in the background until stopped.
pub struct Running {
    pub log: Arc<MemberLog>,
    pub consumer: Arc<GroupConsumer>,
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    pub fn start(consumer: GroupConsumer) -> Running {
        let consumer = Arc::new(consumer);
        let log = Arc::new(MemberLog::default());
        let stop = Arc::new(AtomicBool::new(false));
        let poller = {
            let (consumer, log, stop) = (consumer.clone(), log.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    match consumer.poll(Duration::from_millis(50)).await {
                        Ok(records) => log.records.lock().unwrap().extend(
                            records
                                .into_iter()
                                .map(|r| (r.topic, r.partition, r.offset)),
                        ),
                        Err(error) => {
                            log.errors.lock().unwrap().push(error.to_string());
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
            })
        };
        let sampler = {
            let (consumer, log, stop) = (consumer.clone(), log.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let now: BTreeSet<Tp> = consumer.assignment().into_iter().collect();
                    {
                        let mut seen = log.assignments.lock().unwrap();
                        if seen.last() != Some(&now) {
                            seen.push(now);
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            })
        };
        Running {
            log,
            consumer,
            stop,
            tasks: vec![poller, sampler],
        }
    }

    /// Stops polling and hands the consumer back (to close it).
    pub async fn stop(self) -> (GroupConsumer, Arc<MemberLog>) {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.unwrap();
        }
        let consumer = Arc::try_unwrap(self.consumer)
            .ok()
            .expect("no task holds the consumer");
        (consumer, self.log)
    }
}

/// Polls `condition` every 20 ms until it holds; panics with `what` and `context()` after
/// [`SETTLE`].
pub async fn wait_until(
    what: &str,
    mut condition: impl FnMut() -> bool,
    context: impl Fn() -> String,
) {
    let deadline = Instant::now() + SETTLE;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "{what} never happened: {}",
            context()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn tps(topic: &str, partitions: impl IntoIterator<Item = i32>) -> BTreeSet<Tp> {
    partitions
        .into_iter()
        .map(|p| (topic.to_string(), p))
        .collect()
}
