//! `spate consume TOPIC`: print records, one per line.
//!
//! When it stops (the choice `docs/cli.md` documents):
//! - `--count N`: after N records, waiting for them as long as it takes;
//! - `--follow`: never (Ctrl-C ends it cleanly);
//! - neither: it reads up to the end offsets the partitions had when it started and exits,
//!   like `cat`, except when it starts at the end (the default start, as
//!   kafka-console-consumer's), where there is nothing to read up to: then it follows, like
//!   `tail -f`.
//!
//! Records past those end offsets are not printed in the read-to-end mode, so the output
//! is exactly the topic as it was at the start, however fast producers are.

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::time::Duration;

use serde_json::json;

use super::args::{ConsumeArgs, RecordFormat};
use super::error::CliError;
use super::output::{escaped_text, json_bytes};
use super::time::{format_timestamp_ms, parse_timestamp_ms};
use super::topic::describe_one;
use crate::admin::Admin;
use crate::consumer::{Consumer, ConsumerConfig, ConsumerRecord, OffsetReset};
use crate::error::Error;
use crate::offsets::{OffsetSpec, TopicPartition};

/// How long one poll waits before the stop conditions are checked again.
const POLL_WAIT: Duration = Duration::from_millis(200);

/// Where reading starts in each partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    End,
    Beginning,
    Offset(i64),
    Timestamp(i64),
}

fn start_of(args: &ConsumeArgs) -> Result<Start, CliError> {
    if args.from_beginning {
        return Ok(Start::Beginning);
    }
    if let Some(offset) = args.offset {
        if offset < 0 {
            return Err(CliError::Usage(format!(
                "--offset {offset} is negative; use --from-beginning for the start of the log"
            )));
        }
        return Ok(Start::Offset(offset));
    }
    if let Some(text) = &args.from_timestamp {
        return parse_timestamp_ms(text)
            .map(Start::Timestamp)
            .map_err(|e| CliError::Usage(format!("--from-timestamp: {e}")));
    }
    Ok(Start::End)
}

pub async fn run(args: ConsumeArgs) -> Result<(), CliError> {
    if let Some(group) = &args.group {
        return super::consume_group::run(&args, group).await;
    }
    let start = start_of(&args)?;
    let config = ConsumerConfig {
        client: args.connect.client_config(),
        auto_offset_reset: if start == Start::Beginning {
            OffsetReset::Earliest
        } else {
            OffsetReset::Latest
        },
        ..ConsumerConfig::default()
    };
    let consumer = Consumer::new(config).await?;
    let admin = Admin::from_client(consumer.client().clone());
    let topic = args.topic.clone();
    let partitions = chosen_partitions(&admin, &args).await?;
    let follow = args.follow || (args.count.is_none() && start == Start::End);
    let read_to_end = !follow && args.count.is_none();
    let needs_bounds = read_to_end || matches!(start, Start::Offset(_));
    let bounds = if needs_bounds {
        Some(log_bounds(&admin, &topic, &partitions).await?)
    } else {
        None
    };

    consumer.assign(partitions.iter().map(|p| (topic.clone(), *p)));
    for &partition in &partitions {
        match start {
            Start::End => consumer.seek_to_end(&topic, partition)?,
            Start::Beginning => consumer.seek_to_beginning(&topic, partition)?,
            Start::Timestamp(ms) => consumer.seek_to_timestamp(&topic, partition, ms)?,
            Start::Offset(offset) => {
                // Clamped into the log, so an offset past the end waits at the end rather
                // than being reset by the fetcher.
                let (log_start, log_end) = bounds
                    .as_ref()
                    .and_then(|b| b.get(&partition).copied())
                    .unwrap_or((0, offset));
                consumer.seek(&topic, partition, offset.clamp(log_start, log_end))?;
            }
        }
    }
    let stop_at: Option<BTreeMap<i32, i64>> = if read_to_end {
        bounds.map(|b| b.into_iter().map(|(p, (_, end))| (p, end)).collect())
    } else {
        None
    };
    print_loop(&consumer, &args, stop_at).await
}

/// `--partition`, checked against the topic, or every partition.
async fn chosen_partitions(admin: &Admin, args: &ConsumeArgs) -> Result<Vec<i32>, CliError> {
    let info = describe_one(admin, &args.topic, &args.connect).await?;
    let all: Vec<i32> = info.partitions.iter().map(|p| p.partition).collect();
    match args.partition {
        None => Ok(all),
        Some(partition) if all.contains(&partition) => Ok(vec![partition]),
        Some(partition) => Err(CliError::Client(Error::NoSuchPartition {
            topic: args.topic.clone(),
            partition,
            partition_count: all.len(),
        })),
    }
}

/// Each partition's (log start, log end) offsets now.
pub(super) async fn log_bounds(
    admin: &Admin,
    topic: &str,
    partitions: &[i32],
) -> Result<BTreeMap<i32, (i64, i64)>, CliError> {
    let lookup = |spec: OffsetSpec| -> Vec<(TopicPartition, OffsetSpec)> {
        partitions
            .iter()
            .map(|p| ((topic.to_string(), *p), spec))
            .collect()
    };
    let mut starts = admin.list_offsets(&lookup(OffsetSpec::Earliest)).await?;
    let mut ends = admin.list_offsets(&lookup(OffsetSpec::Latest)).await?;
    let mut bounds = BTreeMap::new();
    for &partition in partitions {
        let tp = (topic.to_string(), partition);
        let missing = || Error::Partition {
            topic: topic.to_string(),
            partition,
            code: spate_protocol::ErrorCode::UnknownTopicOrPartition,
        };
        let start = starts.remove(&tp).unwrap_or_else(|| Err(missing()))?;
        let end = ends.remove(&tp).unwrap_or_else(|| Err(missing()))?;
        bounds.insert(partition, (start.offset, end.offset));
    }
    Ok(bounds)
}

/// Polls and prints until a stop condition holds or Ctrl-C.
async fn print_loop(
    consumer: &Consumer,
    args: &ConsumeArgs,
    stop_at: Option<BTreeMap<i32, i64>>,
) -> Result<(), CliError> {
    let mut out = BufWriter::new(std::io::stdout());
    let mut printed: u64 = 0;
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        if args.count.is_some_and(|count| printed >= count) {
            break;
        }
        if let Some(stop_at) = &stop_at
            && caught_up(consumer, &args.topic, stop_at)
        {
            break;
        }
        let records = tokio::select! {
            records = consumer.poll(POLL_WAIT) => records?,
            _ = &mut interrupted => break,
        };
        for record in records {
            let past_end = stop_at.as_ref().is_some_and(|s| {
                s.get(&record.partition)
                    .is_none_or(|end| record.offset >= *end)
            });
            if past_end {
                continue;
            }
            write_record(&mut out, &record, args.format)?;
            printed += 1;
            if args.count.is_some_and(|count| printed >= count) {
                break;
            }
        }
        out.flush()
            .map_err(|e| CliError::io("writing to stdout", e))?;
    }
    out.flush()
        .map_err(|e| CliError::io("writing to stdout", e))
}

/// Whether every partition's position reached its end offset from the start.
fn caught_up(consumer: &Consumer, topic: &str, stop_at: &BTreeMap<i32, i64>) -> bool {
    stop_at.iter().all(|(partition, end)| {
        matches!(consumer.position(topic, *partition), Ok(Some(position)) if position >= *end)
    })
}

/// Prints one record in `format`, followed by a newline.
pub(super) fn write_record(
    out: &mut impl Write,
    record: &ConsumerRecord,
    format: RecordFormat,
) -> Result<(), CliError> {
    let result = match format {
        RecordFormat::Raw => out
            .write_all(record.value.as_deref().unwrap_or_default())
            .and_then(|()| out.write_all(b"\n")),
        RecordFormat::Json => writeln!(out, "{}", record_json(record)),
        RecordFormat::Detailed => writeln!(out, "{}", record_detailed(record)),
    };
    result.map_err(|e| CliError::io("writing to stdout", e))
}

/// The JSON form: bytes as strings when UTF-8, `{"base64": …}` otherwise (see
/// [`json_bytes`]); headers in order, as Kafka allows repeated names.
pub fn record_json(record: &ConsumerRecord) -> serde_json::Value {
    json!({
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": record.timestamp_ms,
        "key": json_bytes(record.key.as_deref()),
        "value": json_bytes(record.value.as_deref()),
        "headers": record
            .headers
            .iter()
            .map(|(name, value)| json!({ "key": name, "value": json_bytes(value.as_deref()) }))
            .collect::<Vec<_>>(),
    })
}

/// The one-line human form: `partition=0 offset=5 timestamp=… key=… headers=[a=1, b=2]
/// value=…`, with bytes shown as (escaped) text and absent ones as `(null)`.
pub fn record_detailed(record: &ConsumerRecord) -> String {
    let text = |bytes: Option<&[u8]>| bytes.map_or_else(|| "(null)".to_string(), escaped_text);
    let timestamp = if record.timestamp_ms < 0 {
        "(none)".to_string()
    } else {
        format_timestamp_ms(record.timestamp_ms)
    };
    let headers: Vec<String> = record
        .headers
        .iter()
        .map(|(name, value)| {
            format!(
                "{}={}",
                escaped_text(name.as_bytes()),
                text(value.as_deref())
            )
        })
        .collect();
    format!(
        "partition={} offset={} timestamp={timestamp} key={} headers=[{}] value={}",
        record.partition,
        record.offset,
        text(record.key.as_deref()),
        headers.join(", "),
        text(record.value.as_deref())
    )
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn record() -> ConsumerRecord {
        ConsumerRecord {
            topic: "t".into(),
            partition: 1,
            offset: 7,
            timestamp_ms: 1_700_000_000_123,
            key: Some(Bytes::from_static(b"k")),
            value: Some(Bytes::from_static(b"line\none")),
            headers: vec![
                ("a".into(), Some(Bytes::from_static(&[0xff]))),
                ("b".into(), None),
            ],
        }
    }

    #[test]
    fn every_format_keeps_a_record_on_one_line() {
        let mut raw = Vec::new();
        write_record(&mut raw, &record(), RecordFormat::Raw).unwrap();
        assert_eq!(raw, b"line\none\n", "raw is the value's bytes as they are");

        let json = record_json(&record());
        assert_eq!(json["value"], "line\none");
        assert_eq!(json["headers"][0]["value"]["base64"], "/w==");
        assert!(json["headers"][1]["value"].is_null());
        assert!(!json.to_string().contains('\n'));

        assert_eq!(
            record_detailed(&record()),
            "partition=1 offset=7 timestamp=2023-11-14T22:13:20.123Z key=k \
             headers=[a=\u{fffd}, b=(null)] value=line\\none"
        );
    }
}
