//! `spate consume TOPIC --group G`: consuming as a member of a consumer group.
//!
//! The group decides the partitions and where each starts (its committed offset, or the
//! beginning with `--from-beginning` / the end otherwise where it has none). The stop rule
//! is the one without a group: `--count N`, `--follow`, or else up to the end offsets taken
//! at the start, except when the group has nothing committed for the topic and starts at
//! the end, where it follows.
//!
//! Commits are exact: the command commits the offset after the last record it *printed*
//! per partition (every few seconds, and on the way out, Ctrl-C included), not the
//! consumer's position, which may be past records fetched but not printed (`--count`).
//! The next run of the same group starts right after the last line this one printed.

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::time::{Duration, Instant};

use super::args::ConsumeArgs;
use super::consume::{log_bounds, write_record};
use super::error::CliError;
use super::topic::describe_one;
use crate::admin::Admin;
use crate::consumer::OffsetReset;
use crate::consumer::group::{GroupConsumer, GroupConsumerConfig};
use crate::offsets::TopicPartition;

/// How long one poll waits before the stop conditions are checked again.
const POLL_WAIT: Duration = Duration::from_millis(200);

/// How often printed progress is committed while running (Kafka's auto-commit interval).
const COMMIT_INTERVAL: Duration = Duration::from_secs(5);

pub async fn run(args: &ConsumeArgs, group: &str) -> Result<(), CliError> {
    let mut config = GroupConsumerConfig::new(args.connect.bootstrap.clone(), group);
    config.consumer.client = args.connect.client_config();
    config.consumer.auto_offset_reset = if args.from_beginning {
        OffsetReset::Earliest
    } else {
        OffsetReset::Latest
    };
    // The command commits what it printed itself; see the module doc.
    config.enable_auto_commit = false;
    let consumer = GroupConsumer::new(config).await?;
    let admin = Admin::from_client(consumer.consumer().client().clone());
    let topic = args.topic.clone();
    let info = describe_one(&admin, &topic, &args.connect).await?;
    let partitions: Vec<i32> = info.partitions.iter().map(|p| p.partition).collect();
    let tps: Vec<TopicPartition> = partitions.iter().map(|p| (topic.clone(), *p)).collect();
    let committed = admin.list_committed_offsets(group, Some(&tps)).await?;
    let starts_at_end = committed.is_empty() && !args.from_beginning;
    let follow = args.follow || (args.count.is_none() && starts_at_end);
    let stop_at = if !follow && args.count.is_none() {
        Some(
            log_bounds(&admin, &topic, &partitions)
                .await?
                .into_iter()
                .map(|(p, (_, end))| (p, end))
                .collect::<BTreeMap<i32, i64>>(),
        )
    } else {
        None
    };
    consumer.subscribe(&[topic.as_str()]);

    let outcome = print_loop(&consumer, args, stop_at.as_ref()).await;
    let printed_up_to = match &outcome {
        Ok(next) => next.clone(),
        Err((_, next)) => next.clone(),
    };
    let committed = commit_printed(&consumer, &printed_up_to).await;
    let closed = consumer.close().await;
    outcome.map_err(|(error, _)| error)?;
    committed?;
    closed.map_err(CliError::from)
}

/// Per partition that `poll` returned records of: the offset after the last one printed
/// (or, if none was printed, of the first one not printed).
type Printed = BTreeMap<TopicPartition, i64>;

async fn print_loop(
    consumer: &GroupConsumer,
    args: &ConsumeArgs,
    stop_at: Option<&BTreeMap<i32, i64>>,
) -> Result<Printed, (CliError, Printed)> {
    let mut out = BufWriter::new(std::io::stdout());
    let mut next: Printed = BTreeMap::new();
    let mut printed: u64 = 0;
    let mut next_commit = Instant::now() + COMMIT_INTERVAL;
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        if args.count.is_some_and(|count| printed >= count) {
            break;
        }
        if let Some(stop_at) = stop_at
            && caught_up(consumer, &args.topic, stop_at)
        {
            break;
        }
        if Instant::now() >= next_commit {
            next_commit = Instant::now() + COMMIT_INTERVAL;
            if let Err(error) = commit_printed(consumer, &next).await {
                return Err((error, next));
            }
        }
        let records = tokio::select! {
            records = consumer.poll(POLL_WAIT) => match records {
                Ok(records) => records,
                Err(error) => return Err((error.into(), next)),
            },
            _ = &mut interrupted => break,
        };
        for record in records {
            let tp = (record.topic.clone(), record.partition);
            let past_end = stop_at.is_some_and(|s| {
                s.get(&record.partition)
                    .is_none_or(|end| record.offset >= *end)
            });
            if past_end || args.count.is_some_and(|count| printed >= count) {
                // Not printed, so not committed: the group's next reader gets it.
                next.entry(tp).or_insert(record.offset);
                continue;
            }
            if let Err(error) = write_record(&mut out, &record, args.format) {
                return Err((error, next));
            }
            next.insert(tp, record.offset + 1);
            printed += 1;
        }
        if let Err(error) = out.flush() {
            return Err((CliError::io("writing to stdout", error), next));
        }
    }
    match out.flush() {
        Ok(()) => Ok(next),
        Err(error) => Err((CliError::io("writing to stdout", error), next)),
    }
}

/// Whether the member is in a settled generation and each partition it owns has reached
/// its end offset from the start (vacuously, when the group gave it none).
fn caught_up(consumer: &GroupConsumer, topic: &str, stop_at: &BTreeMap<i32, i64>) -> bool {
    if consumer.generation().is_none() {
        return false;
    }
    consumer
        .assignment()
        .iter()
        .filter(|(t, _)| t == topic)
        .all(|(_, partition)| {
            let end = stop_at.get(partition).copied().unwrap_or(0);
            matches!(
                consumer.consumer().position(topic, *partition),
                Ok(Some(position)) if position >= end
            )
        })
}

/// Commits the printed progress of the partitions this member still owns (another member
/// may already be reading one it lost, and must not be overwritten). An owned partition
/// that returned nothing yet is committed at its position, which is then where it started
/// (as Kafka's consumer commits every assigned partition), so `group describe` shows its
/// lag too.
async fn commit_printed(consumer: &GroupConsumer, printed: &Printed) -> Result<(), CliError> {
    let offsets: BTreeMap<TopicPartition, i64> = consumer
        .assignment()
        .into_iter()
        .filter_map(|tp| {
            let offset = match printed.get(&tp) {
                Some(offset) => Some(*offset),
                None => consumer.consumer().position(&tp.0, tp.1).ok().flatten(),
            };
            offset.map(|offset| (tp, offset))
        })
        .collect();
    if offsets.is_empty() {
        return Ok(());
    }
    Ok(consumer.commit_offsets_sync(offsets).await?)
}
