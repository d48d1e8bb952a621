//! `spate topic elect-leaders|reassign|reassignments`: who leads a topic's partitions and on
//! which brokers they live, after `kafka-leader-election` and `kafka-reassign-partitions`.

use serde_json::{Value, json};
use spate_protocol::ErrorCode;

use super::args::{OutputFormat, TopicElectLeadersArgs, TopicReassignArgs, TopicReassignmentsArgs};
use super::error::CliError;
use super::output::{Align, Table, print_json, print_stdout};
use super::topic::{admin, describe_one, node_list};
use crate::admin::{ElectionType, OngoingReassignment};
use crate::error::Error;
use crate::offsets::TopicPartition;

/// `spate topic elect-leaders NAME [--partition N]… [--unclean]`. A partition that already
/// has the leader asked for is not a failure; any other refusal is, after every result has
/// been printed.
pub async fn elect_leaders(args: TopicElectLeadersArgs) -> Result<(), CliError> {
    let admin = admin(&args.connect).await?;
    let info = describe_one(&admin, &args.name, &args.connect).await?;
    let partitions: Vec<TopicPartition> = if args.partitions.is_empty() {
        info.partitions
            .iter()
            .map(|p| (args.name.clone(), p.partition))
            .collect()
    } else {
        args.partitions
            .iter()
            .map(|p| (args.name.clone(), *p))
            .collect()
    };
    let (election, label) = if args.unclean {
        (ElectionType::Unclean, "unclean")
    } else {
        (ElectionType::Preferred, "preferred")
    };
    let mut results = admin.elect_leaders(election, Some(&partitions)).await?;
    results.sort_by_key(|((_, partition), _)| *partition);
    // The node that answered waited for the new leaders before answering; ask it again.
    let leaders = admin.describe_topics(&[args.name.as_str()]).await.ok();
    let leader_of = |partition: i32| {
        leaders
            .as_ref()
            .and_then(|infos| infos.first())
            .and_then(|info| info.partition(partition))
            .map(|p| p.leader_id)
    };
    let failed: Vec<String> = results
        .iter()
        .filter_map(|(_, result)| match result {
            Err(error) if !not_needed(error) => Some(error.to_string()),
            _ => None,
        })
        .collect();
    match args.output {
        OutputFormat::Json => print_json(&Value::Array(
            results
                .iter()
                .map(|((topic, partition), result)| {
                    json!({
                        "topic": topic,
                        "partition": partition,
                        "election": label,
                        "result": outcome_word(result),
                        "error": result.as_ref().err().map(ToString::to_string),
                        "leader": leader_of(*partition),
                    })
                })
                .collect(),
        ))?,
        OutputFormat::Table => {
            let mut table = Table::new(&[
                ("PARTITION", Align::Right),
                ("RESULT", Align::Left),
                ("LEADER", Align::Right),
            ]);
            for ((_, partition), result) in &results {
                table.row(vec![
                    partition.to_string(),
                    outcome_word(result).to_owned(),
                    leader_of(*partition).map_or_else(|| "-".to_owned(), |l| l.to_string()),
                ]);
            }
            print_stdout(&format!(
                "topic {}: {label} leader election\n\n{}",
                args.name,
                table.render()
            ))?;
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(CliError::Failed(format!(
            "{} of {} partition{} could not be elected:\n  {}",
            failed.len(),
            results.len(),
            if results.len() == 1 { "" } else { "s" },
            failed.join("\n  ")
        )))
    }
}

fn not_needed(error: &Error) -> bool {
    matches!(
        error,
        Error::Broker {
            code: ErrorCode::ElectionNotNeeded,
            ..
        }
    )
}

fn outcome_word(result: &Result<(), Error>) -> &'static str {
    match result {
        Ok(()) => "elected",
        Err(error) if not_needed(error) => "not needed",
        Err(_) => "failed",
    }
}

/// `spate topic reassign NAME --partition N… (--replicas A,B,C | --cancel)`.
pub async fn reassign(args: TopicReassignArgs) -> Result<(), CliError> {
    let target = if args.cancel {
        None
    } else if args.replicas.is_empty() {
        return Err(CliError::Usage(
            "give the new replicas (--replicas 1,2,4) or --cancel".into(),
        ));
    } else {
        Some(args.replicas.clone())
    };
    let admin = admin(&args.connect).await?;
    describe_one(&admin, &args.name, &args.connect).await?;
    let changes: Vec<(TopicPartition, Option<Vec<i32>>)> = args
        .partitions
        .iter()
        .map(|p| ((args.name.clone(), *p), target.clone()))
        .collect();
    let results = admin.alter_partition_reassignments(&changes).await?;
    let mut done = Vec::new();
    let mut failed = Vec::new();
    for ((topic, partition), result) in results {
        match result {
            Ok(()) => done.push(format!("{topic}-{partition}")),
            Err(error) => failed.push(error.to_string()),
        }
    }
    if !done.is_empty() {
        let text = match &target {
            Some(replicas) => format!(
                "reassignment of {} to replicas {} started; `spate topic reassignments {}` \
                 shows it until it completes\n",
                done.join(", "),
                node_list(replicas),
                args.name
            ),
            None => format!("reassignment of {} cancelled\n", done.join(", ")),
        };
        print_stdout(&text)?;
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(CliError::Failed(failed.join("\n")))
    }
}

/// `spate topic reassignments [NAME]`.
pub async fn reassignments(args: TopicReassignmentsArgs) -> Result<(), CliError> {
    let admin = admin(&args.connect).await?;
    let ongoing = match &args.name {
        None => admin.list_partition_reassignments(None).await?,
        Some(name) => {
            let info = describe_one(&admin, name, &args.connect).await?;
            let partitions: Vec<TopicPartition> = info
                .partitions
                .iter()
                .map(|p| (name.clone(), p.partition))
                .collect();
            admin
                .list_partition_reassignments(Some(&partitions))
                .await?
        }
    };
    match args.output {
        OutputFormat::Json => print_json(&Value::Array(ongoing.iter().map(to_json).collect())),
        OutputFormat::Table => {
            if ongoing.is_empty() {
                return print_stdout("no reassignments in progress\n");
            }
            let mut table = Table::new(&[
                ("TOPIC", Align::Left),
                ("PARTITION", Align::Right),
                ("REPLICAS", Align::Left),
                ("ADDING", Align::Left),
                ("REMOVING", Align::Left),
            ]);
            for r in &ongoing {
                table.row(vec![
                    r.topic.clone(),
                    r.partition.to_string(),
                    node_list(&r.replicas),
                    node_list(&r.adding_replicas),
                    node_list(&r.removing_replicas),
                ]);
            }
            print_stdout(&table.render())
        }
    }
}

fn to_json(r: &OngoingReassignment) -> Value {
    json!({
        "topic": r.topic,
        "partition": r.partition,
        "replicas": r.replicas,
        "adding_replicas": r.adding_replicas,
        "removing_replicas": r.removing_replicas,
    })
}
