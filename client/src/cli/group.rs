//! `spate group list|describe|delete|reset-offsets`, after kafka-consumer-groups.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};
use spate_protocol::ErrorCode;

use super::args::{
    ConnectArgs, GroupArgs, GroupCommand, GroupDeleteArgs, GroupDescribeArgs, GroupListArgs,
    GroupResetArgs, OutputFormat,
};
use super::consume::log_bounds;
use super::error::CliError;
use super::output::{Align, Table, print_json, print_stdout};
use super::time::parse_timestamp_ms;
use super::topic::{admin, describe_one};
use crate::admin::{Admin, GroupDescription, GroupMember};
use crate::error::Error;
use crate::offsets::{OffsetSpec, TopicPartition};

pub async fn run(args: GroupArgs) -> Result<(), CliError> {
    match args.command {
        GroupCommand::List(args) => list(args).await,
        GroupCommand::Describe(args) => describe(args).await,
        GroupCommand::Delete(args) => delete(args).await,
        GroupCommand::ResetOffsets(args) => reset_offsets(args).await,
    }
}

fn unknown_group(group: &str, connect: &ConnectArgs) -> CliError {
    CliError::Failed(format!(
        "group {group} does not exist on the cluster at {}; `spate group list` shows the \
         groups there are",
        connect.bootstrap
    ))
}

fn is_group_not_found(error: &Error) -> bool {
    matches!(
        error,
        Error::Broker {
            code: ErrorCode::GroupIdNotFound,
            ..
        }
    )
}

/// The group as DescribeGroups reports it; `None` when the coordinator does not know it
/// (Kafka says so with GROUP_ID_NOT_FOUND from v6, and with the state `Dead` before).
async fn describe_known(admin: &Admin, group: &str) -> Result<Option<GroupDescription>, CliError> {
    match admin.describe_group(group).await {
        Ok(description) if description.state == "Dead" => Ok(None),
        Ok(description) => Ok(Some(description)),
        Err(error) if is_group_not_found(&error) => Ok(None),
        Err(error) => Err(error.into()),
    }
}

async fn list(args: GroupListArgs) -> Result<(), CliError> {
    let admin = admin(&args.connect).await?;
    let groups = admin.list_groups().await?;
    match args.output {
        OutputFormat::Json => print_json(&Value::Array(
            groups
                .iter()
                .map(|g| {
                    json!({
                        "group": g.group_id,
                        "state": g.state,
                        "protocol_type": g.protocol_type,
                    })
                })
                .collect(),
        )),
        OutputFormat::Table => {
            if groups.is_empty() {
                return print_stdout("no groups\n");
            }
            let mut table = Table::new(&[
                ("GROUP", Align::Left),
                ("STATE", Align::Left),
                ("PROTOCOL-TYPE", Align::Left),
            ]);
            for g in &groups {
                table.row(vec![
                    g.group_id.clone(),
                    g.state.clone(),
                    g.protocol_type.clone(),
                ]);
            }
            print_stdout(&table.render())
        }
    }
}

/// One partition's line in `group describe`.
struct OffsetRow {
    tp: TopicPartition,
    committed: Option<i64>,
    log_end: Option<i64>,
    owner: Option<GroupMember>,
}

impl OffsetRow {
    fn lag(&self) -> Option<i64> {
        Some((self.log_end? - self.committed?).max(0))
    }
}

async fn describe(args: GroupDescribeArgs) -> Result<(), CliError> {
    let admin = admin(&args.connect).await?;
    let group = &args.group;
    let description = describe_known(&admin, group).await?;
    let committed = admin.list_committed_offsets(group, None).await?;
    let Some(description) = description.or_else(|| {
        // A group with offsets but no live state (every member gone long ago) is still
        // worth describing: its lag is what an operator asks about.
        (!committed.is_empty()).then(|| GroupDescription {
            group_id: group.clone(),
            state: "Empty".into(),
            protocol_type: String::new(),
            protocol: String::new(),
            members: Vec::new(),
        })
    }) else {
        return Err(unknown_group(group, &args.connect));
    };
    let mut owners: BTreeMap<TopicPartition, &GroupMember> = BTreeMap::new();
    for member in &description.members {
        for tp in &member.assignment {
            owners.insert(tp.clone(), member);
        }
    }
    let partitions: BTreeSet<TopicPartition> =
        committed.keys().chain(owners.keys()).cloned().collect();
    let lookups: Vec<(TopicPartition, OffsetSpec)> = partitions
        .iter()
        .map(|tp| (tp.clone(), OffsetSpec::Latest))
        .collect();
    let ends = admin.list_offsets(&lookups).await?;
    let rows: Vec<OffsetRow> = partitions
        .into_iter()
        .map(|tp| OffsetRow {
            committed: committed.get(&tp).copied(),
            log_end: ends
                .get(&tp)
                .and_then(|r| r.as_ref().ok())
                .map(|l| l.offset),
            owner: owners.get(&tp).map(|m| (*m).clone()),
            tp,
        })
        .collect();
    match args.output {
        OutputFormat::Json => print_json(&describe_json(&description, &rows)),
        OutputFormat::Table => print_stdout(&describe_table(&description, &rows)),
    }
}

fn describe_json(description: &GroupDescription, rows: &[OffsetRow]) -> Value {
    let members: Vec<Value> = description
        .members
        .iter()
        .map(|m| {
            json!({
                "member_id": m.member_id,
                "group_instance_id": m.group_instance_id,
                "client_id": m.client_id,
                "host": m.client_host,
                "assignment": m
                    .assignment
                    .iter()
                    .map(|(topic, partition)| json!({ "topic": topic, "partition": partition }))
                    .collect::<Vec<_>>(),
            })
        })
        .collect();
    let offsets: Vec<Value> = rows
        .iter()
        .map(|row| {
            json!({
                "topic": row.tp.0,
                "partition": row.tp.1,
                "committed_offset": row.committed,
                "log_end_offset": row.log_end,
                "lag": row.lag(),
                "member_id": row.owner.as_ref().map(|m| m.member_id.clone()),
                "client_id": row.owner.as_ref().map(|m| m.client_id.clone()),
            })
        })
        .collect();
    json!({
        "group": description.group_id,
        "state": description.state,
        "protocol_type": description.protocol_type,
        "protocol": description.protocol,
        "members": members,
        "offsets": offsets,
        "total_lag": rows.iter().filter_map(OffsetRow::lag).sum::<i64>(),
    })
}

/// `orders: 0,1  payments: 2` for a member's assignment.
fn assignment_text(assignment: &[TopicPartition]) -> String {
    let mut by_topic: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (topic, partition) in assignment {
        by_topic
            .entry(topic)
            .or_default()
            .push(partition.to_string());
    }
    if by_topic.is_empty() {
        return "-".into();
    }
    by_topic
        .into_iter()
        .map(|(topic, partitions)| format!("{topic}: {}", partitions.join(",")))
        .collect::<Vec<_>>()
        .join("  ")
}

fn describe_table(description: &GroupDescription, rows: &[OffsetRow]) -> String {
    let dash = |v: Option<i64>| v.map_or_else(|| "-".to_string(), |v| v.to_string());
    let protocol = match (
        description.protocol_type.as_str(),
        description.protocol.as_str(),
    ) {
        ("", "") => "-".to_string(),
        (kind, "") => kind.to_string(),
        (kind, assignor) => format!("{kind}/{assignor}"),
    };
    let member_count = description.members.len();
    let mut out = format!(
        "group {}  state {}  protocol {protocol}  {member_count} member{}\n",
        description.group_id,
        description.state,
        if member_count == 1 { "" } else { "s" }
    );
    if member_count > 0 {
        let mut members = Table::new(&[
            ("MEMBER-ID", Align::Left),
            ("CLIENT-ID", Align::Left),
            ("HOST", Align::Left),
            ("ASSIGNMENT", Align::Left),
        ]);
        for m in &description.members {
            members.row(vec![
                m.member_id.clone(),
                m.client_id.clone(),
                m.client_host.clone(),
                assignment_text(&m.assignment),
            ]);
        }
        out.push('\n');
        out.push_str(&members.render());
    }
    out.push('\n');
    if rows.is_empty() {
        out.push_str("no committed offsets and no assigned partitions\n");
        return out;
    }
    // Kafka's kafka-consumer-groups columns, GROUP first, so its readers feel at home.
    let mut offsets = Table::new(&[
        ("GROUP", Align::Left),
        ("TOPIC", Align::Left),
        ("PARTITION", Align::Right),
        ("CURRENT-OFFSET", Align::Right),
        ("LOG-END-OFFSET", Align::Right),
        ("LAG", Align::Right),
        ("CLIENT-ID", Align::Left),
    ]);
    for row in rows {
        offsets.row(vec![
            description.group_id.clone(),
            row.tp.0.clone(),
            row.tp.1.to_string(),
            dash(row.committed),
            dash(row.log_end),
            dash(row.lag()),
            row.owner
                .as_ref()
                .map_or_else(|| "-".to_string(), |m| m.client_id.clone()),
        ]);
    }
    out.push_str(&offsets.render());
    let total: i64 = rows.iter().filter_map(OffsetRow::lag).sum();
    out.push_str(&format!("\ntotal lag {total}\n"));
    out
}

async fn delete(args: GroupDeleteArgs) -> Result<(), CliError> {
    let admin = admin(&args.connect).await?;
    match admin.delete_group(&args.group).await {
        Ok(()) => print_stdout(&format!("deleted group {}\n", args.group)),
        Err(error) if is_group_not_found(&error) => Err(unknown_group(&args.group, &args.connect)),
        Err(error) => Err(error.into()),
    }
}

/// Where `reset-offsets` moves each partition.
#[derive(Debug, Clone, Copy)]
enum ResetTo {
    Earliest,
    Latest,
    Offset(i64),
    Timestamp(i64),
}

fn reset_target(args: &GroupResetArgs) -> Result<ResetTo, CliError> {
    if args.to_earliest {
        Ok(ResetTo::Earliest)
    } else if args.to_latest {
        Ok(ResetTo::Latest)
    } else if let Some(offset) = args.to_offset {
        Ok(ResetTo::Offset(offset))
    } else if let Some(text) = &args.to_datetime {
        parse_timestamp_ms(text)
            .map(ResetTo::Timestamp)
            .map_err(|e| CliError::Usage(format!("--to-datetime: {e}")))
    } else {
        Err(CliError::Usage(
            "say where to: --to-earliest, --to-latest, --to-offset N or --to-datetime TIME".into(),
        ))
    }
}

async fn reset_offsets(args: GroupResetArgs) -> Result<(), CliError> {
    let target = reset_target(&args)?;
    let admin = admin(&args.connect).await?;
    let group = &args.group;
    if let Some(description) = describe_known(&admin, group).await?
        && !description.members.is_empty()
    {
        // The coordinator would refuse the commit too; saying so first is clearer, and a
        // dry run of a plan that cannot be applied would only mislead.
        return Err(CliError::Failed(format!(
            "group {group} has {} active member{} (state {}); offsets can only be reset \
             while a group has no members: stop its consumers (or wait for their session \
             timeout), then run this again",
            description.members.len(),
            if description.members.len() == 1 {
                ""
            } else {
                "s"
            },
            description.state
        )));
    }
    let topic = &args.topic;
    let info = describe_one(&admin, topic, &args.connect).await?;
    let all: Vec<i32> = info.partitions.iter().map(|p| p.partition).collect();
    let partitions: Vec<i32> = if args.partitions.is_empty() {
        all.clone()
    } else {
        let mut chosen = args.partitions.clone();
        chosen.sort_unstable();
        chosen.dedup();
        if let Some(missing) = chosen.iter().find(|p| !all.contains(p)) {
            return Err(CliError::Client(Error::NoSuchPartition {
                topic: topic.clone(),
                partition: *missing,
                partition_count: all.len(),
            }));
        }
        chosen
    };
    let bounds = log_bounds(&admin, topic, &partitions).await?;
    let tps: Vec<TopicPartition> = partitions.iter().map(|p| (topic.clone(), *p)).collect();
    let current = admin.list_committed_offsets(group, Some(&tps)).await?;
    let by_time = match target {
        ResetTo::Timestamp(ms) => {
            let lookups: Vec<_> = tps
                .iter()
                .map(|tp| (tp.clone(), OffsetSpec::Timestamp(ms)))
                .collect();
            Some(admin.list_offsets(&lookups).await?)
        }
        _ => None,
    };
    let mut plan: BTreeMap<TopicPartition, i64> = BTreeMap::new();
    for tp in &tps {
        let (start, end) = bounds.get(&tp.1).copied().unwrap_or((0, 0));
        let new = match target {
            ResetTo::Earliest => start,
            ResetTo::Latest => end,
            ResetTo::Offset(offset) => offset.clamp(start, end),
            ResetTo::Timestamp(_) => {
                let found = by_time.as_ref().and_then(|answers| answers.get(tp));
                match found {
                    Some(Ok(listed)) if listed.offset >= 0 => listed.offset,
                    // No record at or after the time: everything is older, so the end.
                    Some(Ok(_)) | None => end,
                    Some(Err(error)) => return Err(error.clone().into()),
                }
            }
        };
        plan.insert(tp.clone(), new);
    }
    if !args.dry_run {
        admin.alter_committed_offsets(group, &plan).await?;
    }
    match args.output {
        OutputFormat::Json => print_json(&json!({
            "group": group,
            "dry_run": args.dry_run,
            "partitions": plan
                .iter()
                .map(|(tp, new)| json!({
                    "topic": tp.0,
                    "partition": tp.1,
                    "current_offset": current.get(tp),
                    "new_offset": new,
                }))
                .collect::<Vec<_>>(),
        })),
        OutputFormat::Table => {
            let mut table = Table::new(&[
                ("TOPIC", Align::Left),
                ("PARTITION", Align::Right),
                ("CURRENT-OFFSET", Align::Right),
                ("NEW-OFFSET", Align::Right),
            ]);
            for (tp, new) in &plan {
                table.row(vec![
                    tp.0.clone(),
                    tp.1.to_string(),
                    current
                        .get(tp)
                        .map_or_else(|| "-".to_string(), i64::to_string),
                    new.to_string(),
                ]);
            }
            let mut out = table.render();
            if args.dry_run {
                out.push_str("\ndry run: nothing changed; run again without --dry-run to apply\n");
            } else {
                out.push_str(&format!("\noffsets of group {group} reset\n"));
            }
            print_stdout(&out)
        }
    }
}
