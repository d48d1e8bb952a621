//! The workload of a trial: producers and a consumer group member running as
//! `tests/python/nemesis_client.py` processes, each writing its part of the history, then a
//! final full read; [`Workload::finish`] merges the parts into one history ordered by time.
//!
//! Clients run in the root namespace and reach the nodes through the bridge, so the faults
//! (which sit between nodes) never cut a client off: what the history shows is the cluster's
//! behaviour, not the client's connectivity. They are Python confluent-kafka (librdkafka), the
//! client Jepsen's Kafka workload found most revealing, with `acks=all`.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::HarnessError;
use crate::replication::BackgroundClient;

const SCRIPT: &str = "nemesis_client.py";
/// A producer's flush (30 s in the script) plus Python's start and the last reports.
const PRODUCER_STOP_TIMEOUT: Duration = Duration::from_secs(60);
const CONSUMER_STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// The final read's own deadline is 90 s.
const FINAL_READ_TIMEOUT: Duration = Duration::from_secs(120);

/// Who writes the history, and how.
#[derive(Debug, Clone)]
pub struct WorkloadOptions {
    pub topic: String,
    pub partitions: i32,
    /// (process name, idempotent?) of each producer.
    pub producers: Vec<(String, bool)>,
    /// Records a second per producer.
    pub rate_per_s: u32,
    /// The consumer group the consumer `c1` joins.
    pub group: String,
}

impl WorkloadOptions {
    /// Two idempotent producers and a plain one, 40 records/s each, and one group member: enough
    /// traffic in flight at every fault without saturating three debug nodes on two cores.
    pub fn standard(topic: &str, partitions: i32) -> WorkloadOptions {
        WorkloadOptions {
            topic: topic.to_string(),
            partitions,
            producers: vec![
                ("p1".into(), true),
                ("p2".into(), true),
                ("p3".into(), false),
            ],
            rate_per_s: 40,
            group: "g".into(),
        }
    }
}

/// The running clients.
pub struct Workload {
    options: WorkloadOptions,
    bootstrap: String,
    epoch_ms: f64,
    producers: Vec<BackgroundClient>,
    consumer: Option<BackgroundClient>,
    /// The history files of clients that have finished.
    parts: Vec<PathBuf>,
    /// Kept here so the folders (and the history parts) live until the merge.
    finished: Vec<BackgroundClient>,
}

impl Workload {
    /// Starts every client against `bootstrap`.
    pub fn start(options: WorkloadOptions, bootstrap: &str) -> Result<Workload, HarnessError> {
        let epoch_ms = now_unix_ms();
        let epoch = format!("{epoch_ms:.0}");
        let partitions = options.partitions.to_string();
        let rate = options.rate_per_s.to_string();
        let mut producers = Vec::new();
        for (process, idempotent) in &options.producers {
            let mode = if *idempotent { "idempotent" } else { "plain" };
            producers.push(BackgroundClient::spawn(
                SCRIPT,
                &[
                    "produce",
                    bootstrap,
                    &options.topic,
                    &partitions,
                    &epoch,
                    process,
                    mode,
                    &rate,
                ],
            )?);
        }
        let consumer = BackgroundClient::spawn(
            SCRIPT,
            &[
                "consume",
                bootstrap,
                &options.topic,
                &partitions,
                &epoch,
                "c1",
                &options.group,
            ],
        )?;
        Ok(Workload {
            options,
            bootstrap: bootstrap.to_string(),
            epoch_ms: epoch_ms.round(),
            producers,
            consumer: Some(consumer),
            parts: Vec::new(),
            finished: Vec::new(),
        })
    }

    /// Milliseconds since the history's origin, on the clients' clock.
    pub fn now_ms(&self) -> f64 {
        now_unix_ms() - self.epoch_ms
    }

    /// Whether every client still runs (a crashed client makes the history incomplete).
    pub fn crashed_clients(&mut self) -> Vec<String> {
        let mut crashed = Vec::new();
        for client in self.producers.iter_mut().chain(self.consumer.iter_mut()) {
            if !client.is_running() {
                crashed.push(client.output_tail());
            }
        }
        crashed
    }

    /// Stops the producers (they flush, and report what stays unknown as `info`) and the
    /// consumer, then runs the final read through `bootstrap` and writes the merged history
    /// to `out`. Returns the number of events.
    pub fn finish(mut self, bootstrap: &str, out: &Path) -> Result<usize, HarnessError> {
        for producer in &self.producers {
            stop(producer)?;
        }
        for mut producer in std::mem::take(&mut self.producers) {
            producer.wait(PRODUCER_STOP_TIMEOUT)?;
            self.parts.push(producer.dir().join("history.jsonl"));
            self.finished.push(producer);
        }
        if let Some(mut consumer) = self.consumer.take() {
            stop(&consumer)?;
            consumer.wait(CONSUMER_STOP_TIMEOUT)?;
            self.parts.push(consumer.dir().join("history.jsonl"));
            self.finished.push(consumer);
        }
        let bootstrap = if bootstrap.is_empty() {
            self.bootstrap.clone()
        } else {
            bootstrap.to_string()
        };
        let epoch = format!("{:.0}", self.epoch_ms);
        let partitions = self.options.partitions.to_string();
        let mut reader = BackgroundClient::spawn(
            SCRIPT,
            &[
                "final",
                &bootstrap,
                &self.options.topic,
                &partitions,
                &epoch,
                "final",
            ],
        )?;
        let output = reader.wait(FINAL_READ_TIMEOUT)?;
        if !output.status.success() {
            return Err(HarnessError::CommandFailed {
                command: "nemesis_client.py final".into(),
                output: reader.output_tail(),
            });
        }
        self.parts.push(reader.dir().join("history.jsonl"));
        self.finished.push(reader);
        merge(&self.parts, out)
    }
}

fn stop(client: &BackgroundClient) -> Result<(), HarnessError> {
    std::fs::write(client.dir().join("stop"), b"")
        .map_err(|e| HarnessError::io("write a client's stop file", e))
}

/// Concatenates the parts and sorts the lines by `time_ms` (stable: a client's own order is
/// kept among equal times), so the history reads in real-time order.
fn merge(parts: &[PathBuf], out: &Path) -> Result<usize, HarnessError> {
    let mut lines: Vec<(f64, String)> = Vec::new();
    for part in parts {
        let text = match std::fs::read_to_string(part) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(HarnessError::io(format!("read {}", part.display()), e)),
        };
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let time_ms = serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .and_then(|v| v["time_ms"].as_f64())
                .unwrap_or(f64::MAX);
            lines.push((time_ms, line.to_string()));
        }
    }
    lines.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut text = String::with_capacity(lines.iter().map(|(_, l)| l.len() + 1).sum());
    for (_, line) in &lines {
        text.push_str(line);
        text.push('\n');
    }
    std::fs::write(out, text)
        .map_err(|e| HarnessError::io(format!("write {}", out.display()), e))?;
    Ok(lines.len())
}

fn now_unix_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}
