//! Max-throughput consume, from the beginning of a pre-filled topic or from its tail.
//!
//! From the beginning: the topic is first filled by a produce run of the same shape (its
//! figure is kept as a note), then every consumer reads its share of the partitions from
//! offset 0 until all acknowledged records are read. The warm-up excluded is the shorter of
//! `--warmup` and one interval, because a cached read is often over in a few seconds.
//! From the tail: consumers wait at the end of the empty topic while producers write at full
//! speed, so reads race writes as in a live pipeline.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use spate_client::{Consumer, ConsumerConfig, OffsetReset};

use crate::BenchError;
use crate::args::{ConsumeFrom, LoadArgs, seconds};
use crate::metrics::{self, Meter, Throughput};
use crate::workload::Topics;
use crate::workload::produce::{self, Failures};

/// How long consumers may take to find their start positions.
const POSITION_TIMEOUT: Duration = Duration::from_secs(30);

/// What a consume run measured.
pub struct ConsumeOutcome {
    pub throughput: Throughput,
    pub errors: u64,
    pub first_error: Option<String>,
    pub consumed_records: u64,
    /// Records there were to read (from the beginning), or that producers wrote (tail).
    pub available_records: u64,
    /// The produce run that filled or fed the topic.
    pub produce: Throughput,
}

pub async fn run(
    bootstrap: &str,
    load: &LoadArgs,
    topics: &Topics,
    from: ConsumeFrom,
) -> Result<ConsumeOutcome, BenchError> {
    match from {
        ConsumeFrom::Beginning => from_beginning(bootstrap, load, topics).await,
        ConsumeFrom::Tail => from_tail(bootstrap, load, topics).await,
    }
}

async fn from_beginning(
    bootstrap: &str,
    load: &LoadArgs,
    topics: &Topics,
) -> Result<ConsumeOutcome, BenchError> {
    let filled = produce::run(bootstrap, load, topics).await?;
    let target = filled.acked_records;
    let consumers = start_consumers(bootstrap, load, topics, ConsumeFrom::Beginning).await?;
    let meter = Arc::new(Meter::default());
    let done = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(Failures::default());
    let interval = seconds(load.interval);
    let warmup = seconds(load.warmup).min(interval);
    // Reading may not take longer than writing did by more than this factor plus a minute.
    let deadline =
        Instant::now() + seconds(load.warmup + load.duration) * 4 + Duration::from_secs(60);
    let start = Instant::now();
    let tasks = spawn_readers(consumers, &meter, &done, &failures, Some(target), deadline);
    let samples =
        metrics::sample_until(meter.clone(), start, interval, deadline, Some(done.clone())).await;
    let throughput = metrics::throughput(&samples, warmup, interval);
    Ok(finish(&done, tasks, &failures, &meter, throughput, filled).await)
}

async fn from_tail(
    bootstrap: &str,
    load: &LoadArgs,
    topics: &Topics,
) -> Result<ConsumeOutcome, BenchError> {
    let consumers = start_consumers(bootstrap, load, topics, ConsumeFrom::Tail).await?;
    let meter = Arc::new(Meter::default());
    let done = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(Failures::default());
    let interval = seconds(load.interval);
    let warmup = seconds(load.warmup);
    let start = Instant::now();
    let stop = start + warmup + seconds(load.duration);
    let tasks = spawn_readers(
        consumers,
        &meter,
        &done,
        &failures,
        None,
        stop + Duration::from_secs(60),
    );
    let producing = {
        let (bootstrap, load, topics) = (bootstrap.to_string(), load.clone(), topics.clone());
        tokio::spawn(async move { produce::run(&bootstrap, &load, &topics).await })
    };
    let samples = metrics::sample_until(meter.clone(), start, interval, stop, None).await;
    let produced = producing
        .await
        .map_err(|e| BenchError::Setup(format!("producer task failed: {e}")))??;
    let throughput = metrics::throughput(&samples, warmup, interval);
    Ok(finish(&done, tasks, &failures, &meter, throughput, produced).await)
}

/// Stops the readers and puts their figures next to the produce run that filled or fed the
/// topic: its acknowledged records are what there was to read.
async fn finish(
    done: &AtomicBool,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    failures: &Failures,
    meter: &Meter,
    throughput: Throughput,
    produced: produce::ProduceOutcome,
) -> ConsumeOutcome {
    done.store(true, Ordering::Release);
    for task in tasks {
        let _ = task.await;
    }
    let (errors, first_error) = failures.summary();
    ConsumeOutcome {
        throughput,
        errors: errors + produced.errors,
        first_error: first_error.or(produced.first_error),
        consumed_records: meter.snapshot().1,
        available_records: produced.acked_records,
        produce: produced.throughput,
    }
}

/// Consumer settings for reading at full speed: large fetches, no long waits.
pub fn consumer_config(bootstrap: &str, load: &LoadArgs) -> ConsumerConfig {
    let mut config = ConsumerConfig::new(bootstrap);
    config.auto_offset_reset = OffsetReset::Earliest;
    config.max_partition_fetch_bytes = config.max_partition_fetch_bytes.max(load.batch_size * 2);
    config.max_poll_records = 10_000;
    config
}

/// Creates `load.consumers` consumers, deals the partitions out round-robin, seeks each to
/// its start, and waits until every position is known (so a tail read misses nothing).
pub async fn start_consumers(
    bootstrap: &str,
    load: &LoadArgs,
    topics: &Topics,
    from: ConsumeFrom,
) -> Result<Vec<Consumer>, BenchError> {
    let count = load.consumers.max(1) as usize;
    let mut shares: Vec<Vec<(String, i32)>> = vec![Vec::new(); count];
    for (index, partition) in topics.partitions().into_iter().enumerate() {
        shares[index % count].push(partition);
    }
    let mut consumers = Vec::new();
    for share in shares.into_iter().filter(|s| !s.is_empty()) {
        let consumer = Consumer::new(consumer_config(bootstrap, load)).await?;
        consumer.assign(share.clone());
        for (topic, partition) in &share {
            match from {
                ConsumeFrom::Beginning => consumer.seek_to_beginning(topic, *partition)?,
                ConsumeFrom::Tail => consumer.seek_to_end(topic, *partition)?,
            }
        }
        let deadline = Instant::now() + POSITION_TIMEOUT;
        while from == ConsumeFrom::Tail
            && share
                .iter()
                .any(|(t, p)| !matches!(consumer.position(t, *p), Ok(Some(_))))
        {
            if Instant::now() >= deadline {
                return Err(BenchError::Setup(format!(
                    "consumer positions unknown after {POSITION_TIMEOUT:?}"
                )));
            }
            // Nothing is produced yet on the tail path, so this returns no records.
            let early = consumer.poll(Duration::from_millis(10)).await?;
            if !early.is_empty() {
                return Err(BenchError::Setup(
                    "records arrived before the positions were set".into(),
                ));
            }
        }
        consumers.push(consumer);
    }
    Ok(consumers)
}

/// One task per consumer, counting records until `done`, `target` records in all, or
/// `deadline`.
fn spawn_readers(
    consumers: Vec<Consumer>,
    meter: &Arc<Meter>,
    done: &Arc<AtomicBool>,
    failures: &Arc<Failures>,
    target: Option<u64>,
    deadline: Instant,
) -> Vec<tokio::task::JoinHandle<()>> {
    consumers
        .into_iter()
        .map(|consumer| {
            let (meter, done, failures) = (meter.clone(), done.clone(), failures.clone());
            tokio::spawn(async move {
                while !done.load(Ordering::Acquire) && Instant::now() < deadline {
                    match consumer.poll(Duration::from_millis(50)).await {
                        Ok(records) => {
                            let bytes: usize = records
                                .iter()
                                .map(|r| {
                                    r.key.as_ref().map_or(0, |k| k.len())
                                        + r.value.as_ref().map_or(0, |v| v.len())
                                })
                                .sum();
                            meter.add(bytes as u64, records.len() as u64);
                        }
                        Err(e) => {
                            failures.note(e);
                            return;
                        }
                    }
                    if target.is_some_and(|t| meter.snapshot().1 >= t) {
                        done.store(true, Ordering::Release);
                    }
                }
            })
        })
        .collect()
}
