//! Counters sampled over time, and latency histograms.
//!
//! Throughput is reported as the median of per-interval rates with the warm-up excluded: a
//! median shrugs off the one interval a neighbour's build stole, where a mean over the run
//! would not. Latency goes into an HdrHistogram (3 significant digits) in nanoseconds.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Serializer, V2Serializer};
use serde::Serialize;

/// Longest latency a histogram holds: anything slower is clamped to it and shows as max.
pub const LATENCY_MAX_NS: u64 = 120_000_000_000;

/// Bytes and records completed so far (acknowledged, or consumed).
#[derive(Debug, Default)]
pub struct Meter {
    bytes: AtomicU64,
    records: AtomicU64,
}

impl Meter {
    pub fn add(&self, bytes: u64, records: u64) {
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.records.fetch_add(records, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> (u64, u64) {
        (
            self.bytes.load(Ordering::Relaxed),
            self.records.load(Ordering::Relaxed),
        )
    }
}

/// One sample of a [`Meter`], `at` after the run's start.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub at: Duration,
    pub bytes: u64,
    pub records: u64,
}

/// Samples `meter` every `interval` from `start` until `stop`, or until `done` is set (then
/// one last sample is taken at that moment).
pub async fn sample_until(
    meter: Arc<Meter>,
    start: Instant,
    interval: Duration,
    stop: Instant,
    done: Option<Arc<AtomicBool>>,
) -> Vec<Sample> {
    let interval = interval.max(Duration::from_millis(10));
    let take = |at: Instant| {
        let (bytes, records) = meter.snapshot();
        Sample {
            at: at.saturating_duration_since(start),
            bytes,
            records,
        }
    };
    let mut samples = Vec::new();
    let mut next = start;
    loop {
        let wake = next.min(Instant::now() + DONE_POLL_INTERVAL);
        tokio::time::sleep_until(wake.into()).await;
        if done.as_ref().is_some_and(|d| d.load(Ordering::Acquire)) {
            samples.push(take(Instant::now()));
            return samples;
        }
        if Instant::now() < next {
            continue;
        }
        samples.push(take(next));
        if next >= stop {
            return samples;
        }
        next = (next + interval).min(stop);
    }
}

/// How often a sampler looks whether its workload is done.
const DONE_POLL_INTERVAL: Duration = Duration::from_millis(20);

/// One interval's rate, for the JSON and the throughput plot.
#[derive(Debug, Clone, Serialize)]
pub struct IntervalRate {
    pub end_s: f64,
    pub mb_per_s: f64,
    pub records_per_s: f64,
    /// False for warm-up intervals, which the median leaves out.
    pub measured: bool,
}

/// Throughput of one run.
#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    /// Median over the measured intervals (10^6 bytes of keys and values per second).
    pub mb_per_s: f64,
    pub records_per_s: f64,
    /// How the figure was formed, e.g. "median of 10 intervals of 1.0 s".
    pub basis: String,
    pub measured_bytes: u64,
    pub measured_records: u64,
    pub intervals: Vec<IntervalRate>,
}

/// Per-interval rates from `samples`; intervals ending at or before `warmup` are not measured.
pub fn throughput(samples: &[Sample], warmup: Duration, interval: Duration) -> Throughput {
    let mut intervals = Vec::new();
    for pair in samples.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        let seconds = (b.at - a.at).as_secs_f64();
        if seconds <= 0.0 {
            continue;
        }
        intervals.push(IntervalRate {
            end_s: b.at.as_secs_f64(),
            mb_per_s: (b.bytes - a.bytes) as f64 / seconds / 1e6,
            records_per_s: (b.records - a.records) as f64 / seconds,
            // A closing stub shorter than half an interval is noise, not a rate.
            measured: a.at >= warmup && seconds * 2.0 >= interval.as_secs_f64(),
        });
    }
    let measured: Vec<&IntervalRate> = intervals.iter().filter(|i| i.measured).collect();
    if measured.is_empty() {
        return whole_run(samples, intervals);
    }
    let first = samples.iter().find(|s| s.at >= warmup);
    let last = samples.last();
    let (measured_bytes, measured_records) = match (first, last) {
        (Some(a), Some(b)) => (b.bytes - a.bytes, b.records - a.records),
        _ => (0, 0),
    };
    Throughput {
        mb_per_s: median(measured.iter().map(|i| i.mb_per_s)),
        records_per_s: median(measured.iter().map(|i| i.records_per_s)),
        basis: format!(
            "median of {} intervals of {:.2} s after {:.1} s warm-up",
            measured.len(),
            interval.as_secs_f64(),
            warmup.as_secs_f64()
        ),
        measured_bytes,
        measured_records,
        intervals,
    }
}

/// The rate over all samples, for runs too short for a measured interval.
fn whole_run(samples: &[Sample], intervals: Vec<IntervalRate>) -> Throughput {
    let (bytes, records, seconds) = match (samples.first(), samples.last()) {
        (Some(a), Some(b)) => (
            b.bytes - a.bytes,
            b.records - a.records,
            (b.at - a.at).as_secs_f64(),
        ),
        _ => (0, 0, 0.0),
    };
    let seconds = seconds.max(1e-9);
    Throughput {
        mb_per_s: bytes as f64 / seconds / 1e6,
        records_per_s: records as f64 / seconds,
        basis: format!("whole run of {seconds:.2} s, warm-up included (too short for intervals)"),
        measured_bytes: bytes,
        measured_records: records,
        intervals,
    }
}

/// The median; 0 for no values.
pub fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.filter(|v| v.is_finite()).collect();
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    if values.len() % 2 == 1 {
        values[middle]
    } else {
        (values[middle - 1] + values[middle]) / 2.0
    }
}

/// A latency histogram in nanoseconds, 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    match Histogram::new_with_bounds(1, LATENCY_MAX_NS, 3) {
        Ok(histogram) => histogram,
        // The bounds are constants that the crate accepts; reaching this is a programming error.
        Err(e) => unreachable!("histogram bounds rejected: {e}"),
    }
}

/// Records `value_ns`, clamped into the histogram's range.
pub fn record(histogram: &mut Histogram<u64>, value_ns: u64) {
    histogram.saturating_record(value_ns.clamp(1, LATENCY_MAX_NS));
}

/// Latency percentiles, in microseconds, and the raw histogram.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub unit: &'static str,
    pub count: u64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p99_9: f64,
    pub p99_99: f64,
    pub max: f64,
    /// The histogram in HdrHistogram's V2 format (values in nanoseconds), base64.
    pub histogram_v2_base64: String,
    /// (percentile, µs) points for the percentile plot.
    pub percentile_curve: Vec<(f64, f64)>,
}

/// Summarises `histogram` (nanoseconds) into [`Latency`] in microseconds.
pub fn latency(histogram: &Histogram<u64>) -> Latency {
    let us = |q: f64| histogram.value_at_quantile(q) as f64 / 1_000.0;
    let mut encoded = Vec::new();
    let histogram_v2_base64 = match V2Serializer::new().serialize(histogram, &mut encoded) {
        Ok(_) => base64::engine::general_purpose::STANDARD.encode(&encoded),
        Err(e) => format!("unserializable: {e:?}"),
    };
    let percentile_curve = [
        0.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99, 99.999, 100.0,
    ]
    .iter()
    .map(|p| (*p, us(p / 100.0)))
    .collect();
    Latency {
        unit: "us",
        count: histogram.len(),
        p50: us(0.5),
        p90: us(0.9),
        p99: us(0.99),
        p99_9: us(0.999),
        p99_99: us(0.9999),
        max: histogram.max() as f64 / 1_000.0,
        histogram_v2_base64,
        percentile_curve,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at_ms: u64, bytes: u64) -> Sample {
        Sample {
            at: Duration::from_millis(at_ms),
            bytes,
            records: bytes / 10,
        }
    }

    #[test]
    fn warmup_intervals_are_left_out_of_the_median() {
        // A fast warm-up (10 MB in the first second) must not lift the figure.
        let samples = [
            sample(0, 0),
            sample(1000, 10_000_000),
            sample(2000, 11_000_000),
            sample(3000, 13_000_000),
            sample(4000, 14_000_000),
        ];
        let result = throughput(&samples, Duration::from_secs(1), Duration::from_secs(1));
        assert_eq!(result.intervals.len(), 4);
        assert!(!result.intervals[0].measured);
        assert!((result.mb_per_s - 1.0).abs() < 1e-9, "{}", result.mb_per_s);
        assert_eq!(result.measured_bytes, 4_000_000);
    }

    #[test]
    fn median_of_even_count_averages_the_middle() {
        assert_eq!(median([4.0, 1.0, 3.0, 2.0].into_iter()), 2.5);
        assert_eq!(median(std::iter::empty()), 0.0);
    }

    #[test]
    fn latency_percentiles_are_monotonic_and_the_histogram_decodes() {
        let mut histogram = new_histogram();
        for i in 1..=10_000u64 {
            record(&mut histogram, i * 1_000);
        }
        let summary = latency(&histogram);
        let ordered = [
            summary.p50,
            summary.p90,
            summary.p99,
            summary.p99_9,
            summary.p99_99,
            summary.max,
        ];
        assert!(ordered.windows(2).all(|w| w[0] <= w[1]), "{ordered:?}");
        assert!((summary.p50 - 5_000.0).abs() / 5_000.0 < 0.01);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&summary.histogram_v2_base64)
            .unwrap();
        let decoded: Histogram<u64> = hdrhistogram::serialization::Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .unwrap();
        assert_eq!(decoded.len(), 10_000);
    }
}
