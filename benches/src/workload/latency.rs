//! End-to-end latency at a fixed rate: open loop, coordinated omission corrected.
//!
//! Send `i` of a producer is *scheduled* at `start + i / rate`. Its value carries that
//! scheduled time (nanoseconds since an epoch this process took), and the consumer records
//! `receipt − scheduled`. So when the broker stalls and sends fall behind, the records that
//! wait behind the stall are charged for it, as a real client's would be; timing from the
//! actual send would hide exactly those (coordinated omission).
//!
//! The tokio timer has millisecond granularity, so the sender sleeps until shortly before
//! each slot and yields the rest of the way: the schedule, not the timer, decides latency.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use spate_client::{Consumer, DeliveryFuture, Producer};
use tokio::sync::mpsc;

use crate::BenchError;
use crate::args::{ConsumeFrom, LoadArgs, seconds};
use crate::metrics::{self, Meter, Throughput};
use crate::workload::consume::start_consumers;
use crate::workload::produce::Failures;
use crate::workload::{RecordSource, Topics, producer_config, read_stamp};

/// Sleep on the timer only when the next slot is further than this away.
const SPIN_WINDOW: Duration = Duration::from_micros(1_500);

/// How long consumers may keep reading after the last scheduled send.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Deliveries awaited per producer at most.
const IN_FLIGHT_RECORDS_MAX: usize = 1 << 16;

pub struct LatencyOutcome {
    /// Nanoseconds, records scheduled after the warm-up only.
    pub histogram: Histogram<u64>,
    /// Scheduled send to acknowledgement, nanoseconds, same records.
    pub ack_histogram: Histogram<u64>,
    /// Consumed throughput over time.
    pub throughput: Throughput,
    pub sent: u64,
    pub received: u64,
    pub errors: u64,
    pub first_error: Option<String>,
}

pub async fn run(
    bootstrap: &str,
    load: &LoadArgs,
    topics: &Topics,
) -> Result<LatencyOutcome, BenchError> {
    if !(load.rate.is_finite() && load.rate > 0.0) {
        return Err(BenchError::Setup("--rate must be a positive number".into()));
    }
    let consumers = start_consumers(bootstrap, load, topics, ConsumeFrom::Tail).await?;
    let mut producers = Vec::new();
    for _ in 0..load.producers.max(1) {
        producers.push(Producer::new(producer_config(bootstrap, load)).await?);
    }
    let epoch = Instant::now();
    let warmup = seconds(load.warmup);
    let warmup_ns = warmup.as_nanos() as u64;
    // Start on a clean slot a little ahead, so no producer begins behind its schedule.
    let start = epoch + Duration::from_millis(10);
    let stop = start + warmup + seconds(load.duration);
    let sent = Arc::new(AtomicU64::new(0));
    let received = Arc::new(AtomicU64::new(0));
    let sending_done = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(Failures::default());
    let meter = Arc::new(Meter::default());

    let readers: Vec<_> = consumers
        .into_iter()
        .map(|consumer| {
            tokio::spawn(read(
                consumer,
                epoch,
                warmup_ns + (start - epoch).as_nanos() as u64,
                meter.clone(),
                received.clone(),
                sent.clone(),
                sending_done.clone(),
                failures.clone(),
            ))
        })
        .collect();

    let producer_count = producers.len() as f64;
    let period = Duration::from_secs_f64(producer_count / load.rate);
    let mut senders = Vec::new();
    let mut ackers = Vec::new();
    for (index, producer) in producers.iter().enumerate() {
        let (tx, rx) = mpsc::channel(IN_FLIGHT_RECORDS_MAX);
        ackers.push(tokio::spawn(time_acks(
            rx,
            epoch,
            warmup_ns + (start - epoch).as_nanos() as u64,
            failures.clone(),
        )));
        let producer = producer.clone();
        let names = topics.names.clone();
        let mut source = RecordSource::new(load.record_size, load.keys, index as u64 + 1);
        let (sent, failures) = (sent.clone(), failures.clone());
        // Producers interleave: producer k's slots are offset by k / rate.
        let offset = Duration::from_secs_f64(index as f64 / load.rate);
        senders.push(tokio::spawn(async move {
            let mut slot = 0u64;
            loop {
                let scheduled = start + offset + period.mul_f64(slot as f64);
                if scheduled >= stop {
                    return;
                }
                wait_until(scheduled).await;
                let stamp_ns = (scheduled - epoch).as_nanos() as u64;
                let topic = &names[slot as usize % names.len()];
                let (record, _) = source.next_stamped(topic, stamp_ns);
                slot += 1;
                match producer.send(record).await {
                    Ok(delivery) => {
                        sent.fetch_add(1, Ordering::AcqRel);
                        if tx.send((delivery, stamp_ns)).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => failures.note(e),
                }
            }
        }));
    }
    let interval = seconds(load.interval);
    let sampler = tokio::spawn(metrics::sample_until(
        meter.clone(),
        start,
        interval,
        stop,
        None,
    ));
    // Senders end at `stop`; only then close (a send racing `close` fails), which
    // flushes what lingers.
    let mut ack_histogram = metrics::new_histogram();
    let drain = async {
        for task in senders {
            let _ = task.await;
        }
        for producer in &producers {
            producer.close().await;
        }
        for task in ackers {
            if let Ok(part) = task.await {
                let _ = ack_histogram.add(&part);
            }
        }
    };
    if tokio::time::timeout_at((stop + DRAIN_TIMEOUT).into(), drain)
        .await
        .is_err()
    {
        failures.note(format!("producers did not drain within {DRAIN_TIMEOUT:?}"));
    }
    sending_done.store(true, Ordering::Release);
    let mut histogram = metrics::new_histogram();
    for reader in readers {
        if let Ok(part) = reader.await {
            let _ = histogram.add(&part);
        }
    }
    let samples = sampler
        .await
        .map_err(|e| BenchError::Setup(format!("sampler failed: {e}")))?;
    let (errors, first_error) = failures.summary();
    Ok(LatencyOutcome {
        histogram,
        ack_histogram,
        throughput: metrics::throughput(&samples, warmup, interval),
        sent: sent.load(Ordering::Acquire),
        received: received.load(Ordering::Acquire),
        errors,
        first_error,
    })
}

/// Awaits each delivery in send order and records `ack − scheduled` for the records
/// scheduled from `measured_from_ns` on.
async fn time_acks(
    mut deliveries: mpsc::Receiver<(DeliveryFuture, u64)>,
    epoch: Instant,
    measured_from_ns: u64,
    failures: Arc<Failures>,
) -> Histogram<u64> {
    let mut histogram = metrics::new_histogram();
    while let Some((delivery, stamp_ns)) = deliveries.recv().await {
        match delivery.await {
            Ok(_) if stamp_ns >= measured_from_ns => {
                let now_ns = epoch.elapsed().as_nanos() as u64;
                metrics::record(&mut histogram, now_ns.saturating_sub(stamp_ns));
            }
            Ok(_) => {}
            Err(e) => failures.note(e),
        }
    }
    histogram
}

/// Waits until `at`: on the timer while far, then by yielding, so the wake-up is within a
/// few microseconds of the slot rather than up to a millisecond after it.
async fn wait_until(at: Instant) {
    loop {
        let now = Instant::now();
        if now >= at {
            return;
        }
        let left = at - now;
        if left > SPIN_WINDOW {
            tokio::time::sleep(left - SPIN_WINDOW + Duration::from_micros(200)).await;
        } else {
            tokio::task::yield_now().await;
        }
    }
}

/// Reads until every sent record has arrived (after sending ended) or the drain timeout,
/// recording latencies of records scheduled after `measured_from_ns`.
#[allow(clippy::too_many_arguments)] // one reader's whole context, passed once
async fn read(
    consumer: Consumer,
    epoch: Instant,
    measured_from_ns: u64,
    meter: Arc<Meter>,
    received: Arc<AtomicU64>,
    sent: Arc<AtomicU64>,
    sending_done: Arc<AtomicBool>,
    failures: Arc<Failures>,
) -> Histogram<u64> {
    let mut histogram = metrics::new_histogram();
    let mut drain_deadline: Option<Instant> = None;
    loop {
        if sending_done.load(Ordering::Acquire) {
            let deadline = *drain_deadline.get_or_insert_with(|| Instant::now() + DRAIN_TIMEOUT);
            if received.load(Ordering::Acquire) >= sent.load(Ordering::Acquire)
                || Instant::now() >= deadline
            {
                return histogram;
            }
        }
        let records = match consumer.poll(Duration::from_millis(20)).await {
            Ok(records) => records,
            Err(e) => {
                failures.note(e);
                return histogram;
            }
        };
        let now_ns = epoch.elapsed().as_nanos() as u64;
        let mut bytes = 0usize;
        for record in &records {
            let Some(value) = record.value.as_deref() else {
                continue;
            };
            bytes += value.len() + record.key.as_ref().map_or(0, |k| k.len());
            if let Some(stamp_ns) = read_stamp(value)
                && stamp_ns >= measured_from_ns
            {
                metrics::record(&mut histogram, now_ns.saturating_sub(stamp_ns));
            }
        }
        received.fetch_add(records.len() as u64, Ordering::AcqRel);
        meter.add(bytes as u64, records.len() as u64);
    }
}
