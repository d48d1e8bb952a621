//! Max-throughput produce: every producer sends as fast as `buffer.memory` lets it.
//!
//! A record counts when the broker acknowledges it, never when it is queued, so the figure
//! is what the broker took (at the given acks), not what the client buffered.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use spate_client::{DeliveryFuture, Producer};
use tokio::sync::mpsc;

use crate::BenchError;
use crate::args::{LoadArgs, seconds};
use crate::metrics::{self, Meter, Throughput};
use crate::workload::{RecordSource, Topics, producer_config};

/// Deliveries awaited per producer at most; beyond it the sender waits for acks.
const IN_FLIGHT_RECORDS_MAX: usize = 1 << 16;

/// How long closing the producers may take after the measured window.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(60);

/// Errors seen by the producers.
#[derive(Debug, Default)]
pub struct Failures {
    pub count: AtomicU64,
    pub first: std::sync::Mutex<Option<String>>,
}

impl Failures {
    pub fn note(&self, error: impl std::fmt::Display) {
        if self.count.fetch_add(1, Ordering::Relaxed) == 0
            && let Ok(mut first) = self.first.lock()
        {
            *first = Some(error.to_string());
        }
    }

    pub fn summary(&self) -> (u64, Option<String>) {
        let first = self.first.lock().ok().and_then(|f| f.clone());
        (self.count.load(Ordering::Relaxed), first)
    }
}

/// What a produce run measured.
pub struct ProduceOutcome {
    pub throughput: Throughput,
    pub errors: u64,
    pub first_error: Option<String>,
    /// Records acknowledged in all, warm-up and closing included.
    pub acked_records: u64,
}

/// Produces at full speed to `topics` for warm-up plus duration.
pub async fn run(
    bootstrap: &str,
    load: &LoadArgs,
    topics: &Topics,
) -> Result<ProduceOutcome, BenchError> {
    let meter = Arc::new(Meter::default());
    let failures = Arc::new(Failures::default());
    let mut producers = Vec::new();
    for _ in 0..load.producers.max(1) {
        producers.push(Producer::new(producer_config(bootstrap, load)).await?);
    }
    let warmup = seconds(load.warmup);
    let start = Instant::now();
    let stop = start + warmup + seconds(load.duration);
    let mut ackers = Vec::new();
    let mut senders = Vec::new();
    for (index, producer) in producers.iter().enumerate() {
        let (tx, rx) = mpsc::channel(IN_FLIGHT_RECORDS_MAX);
        ackers.push(tokio::spawn(count_acks(
            rx,
            meter.clone(),
            failures.clone(),
        )));
        let producer = producer.clone();
        let names = topics.names.clone();
        let mut source = RecordSource::new(load.record_size, load.keys, index as u64 + 1);
        let failures = failures.clone();
        senders.push(tokio::spawn(async move {
            let mut sent = 0usize;
            while Instant::now() < stop {
                let topic = &names[sent % names.len()];
                sent += 1;
                let (record, bytes) = source.next(topic);
                match producer.send(record).await {
                    Ok(delivery) => {
                        if tx.send((delivery, bytes)).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => failures.note(e),
                }
            }
        }));
    }
    let interval = seconds(load.interval);
    let samples = metrics::sample_until(meter.clone(), start, interval, stop, None).await;
    let close = async {
        // Senders first: a send racing `close` would fail with "closed", which is not an
        // error of the broker's.
        for task in senders {
            let _ = task.await;
        }
        for producer in &producers {
            producer.close().await;
        }
        for task in ackers {
            let _ = task.await;
        }
    };
    if tokio::time::timeout(CLOSE_TIMEOUT, close).await.is_err() {
        failures.note(format!(
            "producers did not drain within {CLOSE_TIMEOUT:?} after the run"
        ));
    }
    let (errors, first_error) = failures.summary();
    Ok(ProduceOutcome {
        throughput: metrics::throughput(&samples, warmup, interval),
        errors,
        first_error,
        acked_records: meter.snapshot().1,
    })
}

/// Awaits deliveries in send order and counts what was acknowledged.
pub async fn count_acks(
    mut deliveries: mpsc::Receiver<(DeliveryFuture, u64)>,
    meter: Arc<Meter>,
    failures: Arc<Failures>,
) {
    while let Some((delivery, bytes)) = deliveries.recv().await {
        match delivery.await {
            Ok(_) => meter.add(bytes, 1),
            Err(e) => failures.note(e),
        }
    }
}
