//! `spate topic create|list|describe|alter|delete`; `elect-leaders`, `reassign` and
//! `reassignments` are in [`super::topic_placement`].

use std::sync::Arc;

use serde_json::{Value, json};
use spate_protocol::ErrorCode;

use super::args::{
    ConnectArgs, OutputFormat, TopicAlterArgs, TopicArgs, TopicCommand, TopicCreateArgs,
    TopicDeleteArgs, TopicDescribeArgs, TopicListArgs,
};
use super::error::{CliError, key_value};
use super::output::{Align, Table, config_value_display, print_json, print_stdout};
use super::topic_placement;
use crate::admin::{Admin, AlterConfigOp, ConfigResource, NewTopic, OngoingReassignment};
use crate::error::Error;
use crate::metadata::TopicInfo;
use crate::offsets::{OffsetSpec, TopicPartition};

pub async fn run(args: TopicArgs) -> Result<(), CliError> {
    match args.command {
        TopicCommand::Create(args) => create(args).await,
        TopicCommand::List(args) => list(args).await,
        TopicCommand::Describe(args) => describe(args).await,
        TopicCommand::Alter(args) => alter(args).await,
        TopicCommand::Delete(args) => delete(args).await,
        TopicCommand::ElectLeaders(args) => topic_placement::elect_leaders(args).await,
        TopicCommand::Reassign(args) => topic_placement::reassign(args).await,
        TopicCommand::Reassignments(args) => topic_placement::reassignments(args).await,
    }
}

pub(super) async fn admin(connect: &ConnectArgs) -> Result<Admin, CliError> {
    Ok(Admin::new(connect.client_config()).await?)
}

/// The error for a topic the cluster does not know, with what to do about it.
pub(super) fn unknown_topic(topic: &str, connect: &ConnectArgs) -> CliError {
    CliError::Failed(format!(
        "topic {topic} does not exist on the cluster at {}; check the name with \
         `spate topic list` or create it with `spate topic create {topic}`",
        connect.bootstrap
    ))
}

/// The topic's metadata, or [`unknown_topic`].
pub(super) async fn describe_one(
    admin: &Admin,
    topic: &str,
    connect: &ConnectArgs,
) -> Result<Arc<TopicInfo>, CliError> {
    match admin.describe_topics(&[topic]).await {
        Ok(mut infos) => infos.pop().ok_or_else(|| unknown_topic(topic, connect)),
        Err(Error::Topic {
            code: ErrorCode::UnknownTopicOrPartition,
            ..
        }) => Err(unknown_topic(topic, connect)),
        Err(error) => Err(error.into()),
    }
}

fn parse_configs(configs: &[String]) -> Result<Vec<(String, String)>, CliError> {
    configs
        .iter()
        .map(|text| key_value(text, "--config", "retention.ms=86400000"))
        .collect()
}

async fn create(args: TopicCreateArgs) -> Result<(), CliError> {
    let configs = parse_configs(&args.configs)?;
    let admin = admin(&args.connect).await?;
    let topic = NewTopic {
        name: args.name.clone(),
        partitions: args.partitions,
        replication_factor: args.replication_factor,
        configs,
    };
    match admin.create_topic(topic).await {
        Ok(()) => {}
        Err(Error::Broker {
            code: ErrorCode::TopicAlreadyExists,
            ..
        }) if args.if_not_exists => {
            return print_stdout(&format!("topic {} already exists\n", args.name));
        }
        Err(error) => return Err(error.into()),
    }
    // A new topic takes a moment to get leaders; waiting here lets the next command in a
    // script produce to it at once.
    let info = admin
        .wait_for_topic(&args.name, args.connect.client_config().request_timeout)
        .await?;
    print_stdout(&format!(
        "created topic {} with {} partition{}\n",
        args.name,
        info.partitions.len(),
        plural(info.partitions.len())
    ))
}

fn plural(count: usize) -> &'static str {
    if count == 1 { "" } else { "s" }
}

async fn list(args: TopicListArgs) -> Result<(), CliError> {
    let admin = admin(&args.connect).await?;
    let metadata = admin.client().refresh_all_metadata().await?;
    let mut topics: Vec<&TopicInfo> = metadata
        .topics
        .values()
        .map(|t| t.as_ref())
        .filter(|t| t.error == ErrorCode::None && (args.internal || !t.is_internal))
        .collect();
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    match args.output {
        OutputFormat::Json => print_json(&Value::Array(
            topics
                .iter()
                .map(|t| {
                    json!({
                        "name": t.name,
                        "partitions": t.partitions.len(),
                        "internal": t.is_internal,
                    })
                })
                .collect(),
        )),
        OutputFormat::Table => {
            let mut table = Table::new(&[("TOPIC", Align::Left), ("PARTITIONS", Align::Right)]);
            for topic in &topics {
                table.row(vec![topic.name.clone(), topic.partitions.len().to_string()]);
            }
            if table.is_empty() {
                return print_stdout("no topics\n");
            }
            print_stdout(&table.render())
        }
    }
}

/// Start and end offsets per partition; a partition whose lookup failed has `None`.
async fn log_offsets(
    admin: &Admin,
    info: &TopicInfo,
) -> Result<Vec<(Option<i64>, Option<i64>)>, CliError> {
    let partitions: Vec<TopicPartition> = info
        .partitions
        .iter()
        .map(|p| (info.name.clone(), p.partition))
        .collect();
    let lookup = |spec: OffsetSpec| -> Vec<(TopicPartition, OffsetSpec)> {
        partitions.iter().map(|tp| (tp.clone(), spec)).collect()
    };
    let starts = admin.list_offsets(&lookup(OffsetSpec::Earliest)).await?;
    let ends = admin.list_offsets(&lookup(OffsetSpec::Latest)).await?;
    let offset =
        |answers: &std::collections::HashMap<_, Result<crate::offsets::ListedOffset, Error>>,
         tp: &TopicPartition| {
            answers
                .get(tp)
                .and_then(|r| r.as_ref().ok())
                .map(|listed| listed.offset)
        };
    Ok(partitions
        .iter()
        .map(|tp| (offset(&starts, tp), offset(&ends, tp)))
        .collect())
}

pub(super) fn node_list(nodes: &[i32]) -> String {
    nodes
        .iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// The topic's partition moves under way; none if the cluster cannot say (a broker without
/// ListPartitionReassignments), since describe is still useful without them.
async fn reassignments_of(admin: &Admin, info: &TopicInfo) -> Vec<OngoingReassignment> {
    let partitions: Vec<TopicPartition> = info
        .partitions
        .iter()
        .map(|p| (info.name.clone(), p.partition))
        .collect();
    admin
        .list_partition_reassignments(Some(&partitions))
        .await
        .unwrap_or_default()
}

/// `+4 -3`: the replicas a move adds and removes, for the describe table.
fn moving_text(moving: Option<&OngoingReassignment>) -> String {
    let Some(r) = moving else {
        return String::new();
    };
    let added = r.adding_replicas.iter().map(|n| format!("+{n}"));
    let removed = r.removing_replicas.iter().map(|n| format!("-{n}"));
    added.chain(removed).collect::<Vec<_>>().join(" ")
}

fn or_dash(value: Option<i64>) -> String {
    value.map_or_else(|| "-".to_string(), |v| v.to_string())
}

async fn describe(args: TopicDescribeArgs) -> Result<(), CliError> {
    let admin = admin(&args.connect).await?;
    let info = describe_one(&admin, &args.name, &args.connect).await?;
    let offsets = log_offsets(&admin, &info).await?;
    let moving = reassignments_of(&admin, &info).await;
    let moving_of = |partition: i32| moving.iter().find(|r| r.partition == partition);
    let configs: Vec<_> = admin
        .describe_configs(&ConfigResource::Topic(args.name.clone()))
        .await?
        .into_iter()
        .filter(|c| args.all_configs || c.is_explicit())
        .collect();
    let value_text = |c: &crate::admin::ConfigEntry| match (&c.value, c.is_sensitive) {
        (_, true) => "(sensitive)".to_string(),
        (Some(value), false) => value.clone(),
        (None, false) => String::new(),
    };
    match args.output {
        OutputFormat::Json => {
            let partitions: Vec<Value> = info
                .partitions
                .iter()
                .zip(&offsets)
                .map(|(p, (start, end))| {
                    json!({
                        "partition": p.partition,
                        "leader": p.leader_id,
                        "replicas": p.replicas,
                        "isr": p.isr,
                        "adding_replicas": moving_of(p.partition).map_or(&[][..], |r| &r.adding_replicas[..]),
                        "removing_replicas": moving_of(p.partition).map_or(&[][..], |r| &r.removing_replicas[..]),
                        "log_start_offset": start,
                        "log_end_offset": end,
                    })
                })
                .collect();
            let config_map: serde_json::Map<String, Value> = configs
                .iter()
                .map(|c| (c.name.clone(), Value::String(value_text(c))))
                .collect();
            print_json(&json!({
                "name": info.name,
                "topic_id": info.topic_id.to_string(),
                "internal": info.is_internal,
                "partitions": partitions,
                "configs": config_map,
            }))
        }
        OutputFormat::Table => {
            let mut out = format!(
                "topic {}  id {}  {} partition{}\n\n",
                info.name,
                info.topic_id,
                info.partitions.len(),
                plural(info.partitions.len())
            );
            let mut columns = vec![
                ("PARTITION", Align::Right),
                ("LEADER", Align::Right),
                ("REPLICAS", Align::Left),
                ("ISR", Align::Left),
                ("START-OFFSET", Align::Right),
                ("END-OFFSET", Align::Right),
            ];
            // Only while a move is under way, so the usual table stays as it was.
            if !moving.is_empty() {
                columns.push(("REASSIGNING", Align::Left));
            }
            let mut table = Table::new(&columns);
            for (p, (start, end)) in info.partitions.iter().zip(&offsets) {
                let mut row = vec![
                    p.partition.to_string(),
                    p.leader_id.to_string(),
                    node_list(&p.replicas),
                    node_list(&p.isr),
                    or_dash(*start),
                    or_dash(*end),
                ];
                if !moving.is_empty() {
                    row.push(moving_text(moving_of(p.partition)));
                }
                table.row(row);
            }
            out.push_str(&table.render());
            out.push('\n');
            if configs.is_empty() {
                out.push_str("configs: none set on the topic (broker defaults apply)\n");
            } else {
                let mut table = Table::new(&[("CONFIG", Align::Left), ("VALUE", Align::Left)]);
                for c in &configs {
                    table.row(vec![
                        c.name.clone(),
                        config_value_display(&c.name, &value_text(c)),
                    ]);
                }
                out.push_str(&table.render());
            }
            print_stdout(&out)
        }
    }
}

async fn alter(args: TopicAlterArgs) -> Result<(), CliError> {
    let mut changes: Vec<AlterConfigOp> = parse_configs(&args.configs)?
        .into_iter()
        .map(|(key, value)| AlterConfigOp::Set(key, value))
        .collect();
    changes.extend(
        args.delete_configs
            .iter()
            .cloned()
            .map(AlterConfigOp::Delete),
    );
    if args.partitions.is_none() && changes.is_empty() {
        return Err(CliError::Usage(
            "nothing to change: give --partitions N, --config KEY=VALUE or --delete-config KEY"
                .into(),
        ));
    }
    let admin = admin(&args.connect).await?;
    let info = describe_one(&admin, &args.name, &args.connect).await?;
    let mut done = Vec::new();
    if let Some(count) = args.partitions {
        let current = info.partitions.len();
        if usize::try_from(count).ok() == Some(current) {
            done.push(format!("already has {current} partitions"));
        } else {
            admin.create_partitions(&args.name, count).await?;
            admin
                .wait_for_topic(&args.name, args.connect.client_config().request_timeout)
                .await?;
            done.push(format!("grew from {current} to {count} partitions"));
        }
    }
    if !changes.is_empty() {
        admin
            .incremental_alter_configs(&ConfigResource::Topic(args.name.clone()), &changes)
            .await?;
        for change in &changes {
            match change {
                AlterConfigOp::Set(key, value) => done.push(format!("set {key}={value}")),
                AlterConfigOp::Delete(key) => done.push(format!("removed {key}")),
                AlterConfigOp::Append(..) | AlterConfigOp::Subtract(..) => {}
            }
        }
    }
    print_stdout(&format!("topic {}: {}\n", args.name, done.join(", ")))
}

async fn delete(args: TopicDeleteArgs) -> Result<(), CliError> {
    let admin = admin(&args.connect).await?;
    match admin.delete_topic(&args.name).await {
        Ok(()) => print_stdout(&format!("deleted topic {}\n", args.name)),
        Err(Error::Topic {
            code: ErrorCode::UnknownTopicOrPartition,
            ..
        }) => {
            if args.if_exists {
                print_stdout(&format!("topic {} does not exist\n", args.name))
            } else {
                Err(CliError::Failed(format!(
                    "topic {} does not exist on the cluster at {}, so there is nothing to \
                     delete (--if-exists makes that a success)",
                    args.name, args.connect.bootstrap
                )))
            }
        }
        Err(error) => Err(error.into()),
    }
}
