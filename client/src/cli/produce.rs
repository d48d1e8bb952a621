//! `spate produce TOPIC`: one record per input line.
//!
//! A thread reads lines (stdin blocks, and a blocked runtime worker would stall the
//! producer's sender), the command sends each as a record, and a collector task awaits the
//! delivery futures in order and counts what was acknowledged. The producer's
//! `buffer.memory` and the two bounded queues keep memory flat however large the input.

use std::io::{BufRead, BufReader, Read};
use std::time::Duration;

use bytes::Bytes;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use spate_protocol::records::Compression;
use tokio::sync::mpsc;

use super::args::{AcksArg, CompressionArg, ProduceArgs};
use super::error::{CliError, key_value};
use crate::error::Error;
use crate::producer::{Acks, DeliveryFuture, Producer, ProducerConfig, ProducerRecord};

/// Lines read ahead of the producer.
const LINE_QUEUE_DEPTH: usize = 1_024;

/// Delivery futures waiting for the collector; the producer's buffer bounds the bytes.
const DELIVERY_QUEUE_DEPTH: usize = 65_536;

/// Kafka's `delivery.timeout.ms` default; raised when `--timeout-ms` needs more.
const DELIVERY_TIMEOUT_MS: u64 = 120_000;

pub async fn run(args: ProduceArgs) -> Result<(), CliError> {
    let headers: Vec<(String, Option<Bytes>)> = args
        .headers
        .iter()
        .map(|h| key_value(h, "--header", "source=cli"))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .map(|(name, value)| (name, Some(Bytes::from(value))))
        .collect();
    let separator = match &args.key_separator {
        Some(sep) if sep.is_empty() => {
            return Err(CliError::Usage("--key-separator must not be empty".into()));
        }
        Some(sep) => Some(sep.as_bytes().to_vec()),
        None => None,
    };
    // Open the input before connecting, so a wrong path fails without touching the cluster.
    let (input, input_bytes): (Box<dyn Read + Send>, Option<u64>) = match &args.file {
        Some(path) => {
            let file = std::fs::File::open(path)
                .map_err(|e| CliError::io(format!("opening {}", path.display()), e))?;
            let length = file.metadata().ok().map(|m| m.len());
            (Box::new(file), length)
        }
        None => (Box::new(std::io::stdin()), None),
    };
    let producer = Producer::new(producer_config(&args)).await?;
    let progress = progress_bar(input_bytes);

    let (line_sender, mut lines) = mpsc::channel(LINE_QUEUE_DEPTH);
    let reader_progress = progress.clone();
    let counts_bytes = input_bytes.is_some();
    std::thread::spawn(move || read_lines(input, line_sender, reader_progress, counts_bytes));

    let (delivery_sender, deliveries) = mpsc::channel(DELIVERY_QUEUE_DEPTH);
    let collector = tokio::spawn(collect(deliveries, progress.clone(), !counts_bytes));

    let mut stopped: Option<String> = None;
    while let Some(line) = lines.recv().await {
        let line = match line {
            Ok(line) => line,
            Err(error) => {
                stopped = Some(format!("reading the input failed: {error}"));
                break;
            }
        };
        let record = record_for(&args, line, separator.as_deref(), &headers);
        match producer.send(record).await {
            Ok(delivery) => {
                if delivery_sender.send(delivery).await.is_err() {
                    break;
                }
            }
            Err(error) => {
                stopped = Some(send_error(&args.topic, error));
                break;
            }
        }
    }
    drop(delivery_sender);
    drop(lines);
    producer.close().await;
    let outcome = collector.await.unwrap_or_else(|join_error| Outcome {
        first_error: Some(format!("the delivery collector failed: {join_error}")),
        ..Outcome::default()
    });
    progress.finish_and_clear();

    let topic = &args.topic;
    let delivered = outcome.delivered;
    let plural = if delivered == 1 { "" } else { "s" };
    match (outcome.first_error, stopped) {
        (None, None) => {
            if !args.quiet {
                eprintln!("produced {delivered} record{plural} to {topic}");
            }
            Ok(())
        }
        (Some(error), _) => Err(CliError::Failed(format!(
            "produced {delivered} record{plural} to {topic}, but {} failed; first failure: \
             {error}",
            outcome.failed.max(1)
        ))),
        (None, Some(reason)) => Err(CliError::Failed(format!(
            "produced {delivered} record{plural} to {topic}, then stopped: {reason}"
        ))),
    }
}

fn producer_config(args: &ProduceArgs) -> ProducerConfig {
    let client = args.connect.client_config();
    let linger = Duration::from_millis(args.linger_ms);
    let delivery_timeout =
        Duration::from_millis(DELIVERY_TIMEOUT_MS).max(linger + client.request_timeout);
    let acks = match args.acks {
        AcksArg::All => Acks::All,
        AcksArg::Leader => Acks::Leader,
        AcksArg::None => Acks::None,
    };
    ProducerConfig {
        max_block: client.request_timeout,
        client,
        acks,
        // Idempotence needs acks=all; with weaker acks the user chose speed over it.
        enable_idempotence: acks == Acks::All,
        linger,
        compression: match args.compression {
            CompressionArg::None => Compression::None,
            CompressionArg::Gzip => Compression::Gzip,
            CompressionArg::Snappy => Compression::Snappy,
            CompressionArg::Lz4 => Compression::Lz4,
            CompressionArg::Zstd => Compression::Zstd,
        },
        delivery_timeout,
        ..ProducerConfig::default()
    }
}

/// What to tell the user when `send` itself refused a record.
fn send_error(topic: &str, error: Error) -> String {
    match error {
        Error::Topic {
            code: spate_protocol::ErrorCode::UnknownTopicOrPartition,
            ..
        } => {
            format!(
                "topic {topic} does not exist and the broker does not create topics on \
                 demand; create it with `spate topic create {topic}`"
            )
        }
        other => other.to_string(),
    }
}

fn record_for(
    args: &ProduceArgs,
    line: Vec<u8>,
    separator: Option<&[u8]>,
    headers: &[(String, Option<Bytes>)],
) -> ProducerRecord {
    let (key, value) = match separator.and_then(|sep| split_at_separator(&line, sep)) {
        Some((key, value)) => (
            Some(Bytes::copy_from_slice(key)),
            Bytes::copy_from_slice(value),
        ),
        None => (None, Bytes::from(line)),
    };
    ProducerRecord {
        topic: args.topic.clone(),
        partition: args.partition,
        key,
        value: Some(value),
        headers: headers.to_vec(),
        timestamp_ms: None,
    }
}

/// `line` split around the first `separator`, or `None` when it has none.
fn split_at_separator<'a>(line: &'a [u8], separator: &[u8]) -> Option<(&'a [u8], &'a [u8])> {
    let at = line
        .windows(separator.len())
        .position(|window| window == separator)?;
    Some((&line[..at], &line[at + separator.len()..]))
}

/// Reads lines until the input ends or the command stops listening. A line is what comes
/// before `\n`, without a `\r` just before it (as Kafka's console producer reads lines); a
/// last line without `\n` counts too.
fn read_lines(
    input: Box<dyn Read + Send>,
    lines: mpsc::Sender<std::io::Result<Vec<u8>>>,
    progress: ProgressBar,
    counts_bytes: bool,
) {
    let mut reader = BufReader::new(input);
    loop {
        let mut line = Vec::new();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) => return,
            Ok(read) => {
                if counts_bytes {
                    progress.inc(read as u64);
                }
                if line.last() == Some(&b'\n') {
                    line.pop();
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                }
                if lines.blocking_send(Ok(line)).is_err() {
                    return;
                }
            }
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => {
                let _ = lines.blocking_send(Err(error));
                return;
            }
        }
    }
}

#[derive(Debug, Default)]
struct Outcome {
    delivered: u64,
    failed: u64,
    first_error: Option<String>,
}

async fn collect(
    mut deliveries: mpsc::Receiver<DeliveryFuture>,
    progress: ProgressBar,
    counts_records: bool,
) -> Outcome {
    let mut outcome = Outcome::default();
    while let Some(delivery) = deliveries.recv().await {
        match delivery.await {
            Ok(_) => {
                outcome.delivered += 1;
                if counts_records {
                    progress.inc(1);
                }
            }
            Err(error) => {
                outcome.failed += 1;
                outcome.first_error.get_or_insert_with(|| error.to_string());
            }
        }
    }
    outcome
}

/// A byte bar for a file, a record counter for stdin; drawn only when stderr is a
/// terminal, so pipes and logs get nothing but the summary.
fn progress_bar(input_bytes: Option<u64>) -> ProgressBar {
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return ProgressBar::hidden();
    }
    let (bar, template) = match input_bytes {
        Some(total) => (
            ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr()),
            "{bar:40} {bytes}/{total_bytes} ({bytes_per_sec}, {eta} left)",
        ),
        None => (
            ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
            "{spinner} {human_pos} records delivered in {elapsed}",
        ),
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_splits_at_the_first_separator_only() {
        assert_eq!(
            split_at_separator(b"k:v:w", b":"),
            Some((&b"k"[..], &b"v:w"[..]))
        );
        assert_eq!(
            split_at_separator(b"key::value", b"::"),
            Some((&b"key"[..], &b"value"[..]))
        );
        assert_eq!(split_at_separator(b"no separator", b":"), None);
        assert_eq!(split_at_separator(b":v", b":"), Some((&b""[..], &b"v"[..])));
    }
}
