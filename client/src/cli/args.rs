//! The command-line shape of the client subcommands (clap derive types).
//!
//! Every flag has an environment variable; see the module doc of [`crate::cli`] for the
//! naming rule and its one exception.

use std::path::PathBuf;

use clap::builder::BoolishValueParser;
use clap::{Args, Subcommand, ValueEnum};

/// On/off flags read `1`/`0`, `yes`/`no`, `on`/`off` and `true`/`false` from their
/// environment variables, as shells and service files write them.
fn boolish() -> BoolishValueParser {
    BoolishValueParser::new()
}

/// The client subcommands the `spate` binary flattens next to `serve`.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Create, list, describe, alter and delete topics.
    Topic(TopicArgs),
    /// Send stdin lines (or a file's) to a topic, one record per line.
    Produce(ProduceArgs),
    /// Print a topic's records, one per line.
    Consume(ConsumeArgs),
    /// List, describe (with lag), delete consumer groups and reset their offsets.
    Group(GroupArgs),
}

impl ClientCommand {
    /// The subcommand as typed, for error prefixes (`spate topic describe: …`).
    pub fn name(&self) -> &'static str {
        match self {
            ClientCommand::Topic(args) => match args.command {
                TopicCommand::Create(_) => "topic create",
                TopicCommand::List(_) => "topic list",
                TopicCommand::Describe(_) => "topic describe",
                TopicCommand::Alter(_) => "topic alter",
                TopicCommand::Delete(_) => "topic delete",
                TopicCommand::ElectLeaders(_) => "topic elect-leaders",
                TopicCommand::Reassign(_) => "topic reassign",
                TopicCommand::Reassignments(_) => "topic reassignments",
            },
            ClientCommand::Produce(_) => "produce",
            ClientCommand::Consume(_) => "consume",
            ClientCommand::Group(args) => match args.command {
                GroupCommand::List(_) => "group list",
                GroupCommand::Describe(_) => "group describe",
                GroupCommand::Delete(_) => "group delete",
                GroupCommand::ResetOffsets(_) => "group reset-offsets",
            },
        }
    }

    /// Where this command finds the cluster.
    pub fn connect_args(&self) -> &ConnectArgs {
        match self {
            ClientCommand::Topic(args) => match &args.command {
                TopicCommand::Create(args) => &args.connect,
                TopicCommand::List(args) => &args.connect,
                TopicCommand::Describe(args) => &args.connect,
                TopicCommand::Alter(args) => &args.connect,
                TopicCommand::Delete(args) => &args.connect,
                TopicCommand::ElectLeaders(args) => &args.connect,
                TopicCommand::Reassign(args) => &args.connect,
                TopicCommand::Reassignments(args) => &args.connect,
            },
            ClientCommand::Produce(args) => &args.connect,
            ClientCommand::Consume(args) => &args.connect,
            ClientCommand::Group(args) => match &args.command {
                GroupCommand::List(args) => &args.connect,
                GroupCommand::Describe(args) => &args.connect,
                GroupCommand::Delete(args) => &args.connect,
                GroupCommand::ResetOffsets(args) => &args.connect,
            },
        }
    }
}

/// Where the cluster is and how long to wait for it.
#[derive(Debug, Clone, Args)]
pub struct ConnectArgs {
    /// Broker to bootstrap from, host:port[,host:port…].
    #[arg(long, env = "SPATE_BOOTSTRAP", default_value = "127.0.0.1:9092")]
    pub bootstrap: String,
    /// How long to wait for the broker (also while it is still starting: a refused connection
    /// is retried) or for an answer before giving up, in ms.
    #[arg(long, env = "SPATE_TIMEOUT_MS", default_value_t = 10_000)]
    pub timeout_ms: u64,
}

/// Output of listing and describing commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns for a terminal.
    Table,
    /// One JSON document, for scripts.
    Json,
}

#[derive(Debug, Args)]
pub struct TopicArgs {
    #[command(subcommand)]
    pub command: TopicCommand,
}

#[derive(Debug, Subcommand)]
pub enum TopicCommand {
    /// Create a topic.
    Create(TopicCreateArgs),
    /// List topics with their partition counts.
    List(TopicListArgs),
    /// Show a topic's partitions (leader, offsets) and the configs set on it.
    Describe(TopicDescribeArgs),
    /// Add partitions, set or remove configs.
    Alter(TopicAlterArgs),
    /// Delete a topic and its data.
    Delete(TopicDeleteArgs),
    /// Give partitions back to their preferred leaders (or, with --unclean, elect a leader
    /// for leaderless ones from outside the ISR).
    ElectLeaders(TopicElectLeadersArgs),
    /// Move partitions to other brokers (or cancel a move under way).
    Reassign(TopicReassignArgs),
    /// List the partition moves under way.
    Reassignments(TopicReassignmentsArgs),
}

#[derive(Debug, Args)]
pub struct TopicCreateArgs {
    /// Name of the new topic.
    pub name: String,
    /// Partition count [default: the broker's num.partitions].
    #[arg(long, env = "SPATE_PARTITIONS")]
    pub partitions: Option<i32>,
    /// Replication factor [default: the broker's default.replication.factor].
    #[arg(long, env = "SPATE_REPLICATION_FACTOR")]
    pub replication_factor: Option<i16>,
    /// A topic config as key=value, e.g. retention.ms=86400000; repeatable.
    #[arg(long = "config", value_name = "KEY=VALUE", env = "SPATE_TOPIC_CONFIG")]
    pub configs: Vec<String>,
    /// Succeed without changes when the topic already exists.
    #[arg(long, env = "SPATE_IF_NOT_EXISTS", value_parser = boolish())]
    pub if_not_exists: bool,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

#[derive(Debug, Args)]
pub struct TopicListArgs {
    /// Include internal topics such as __consumer_offsets.
    #[arg(long, env = "SPATE_INTERNAL", value_parser = boolish())]
    pub internal: bool,
    #[arg(long, value_enum, env = "SPATE_OUTPUT", default_value = "table")]
    pub output: OutputFormat,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

#[derive(Debug, Args)]
pub struct TopicDescribeArgs {
    /// The topic.
    pub name: String,
    /// Show every config, not only those set on the topic.
    #[arg(long, env = "SPATE_ALL_CONFIGS", value_parser = boolish())]
    pub all_configs: bool,
    #[arg(long, value_enum, env = "SPATE_OUTPUT", default_value = "table")]
    pub output: OutputFormat,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

#[derive(Debug, Args)]
pub struct TopicAlterArgs {
    /// The topic.
    pub name: String,
    /// Grow the topic to this many partitions (Kafka never shrinks a topic).
    #[arg(long, env = "SPATE_PARTITIONS")]
    pub partitions: Option<i32>,
    /// Set a topic config, key=value; repeatable.
    #[arg(long = "config", value_name = "KEY=VALUE", env = "SPATE_TOPIC_CONFIG")]
    pub configs: Vec<String>,
    /// Remove a topic config (back to the broker default); repeatable.
    #[arg(
        long = "delete-config",
        value_name = "KEY",
        env = "SPATE_DELETE_CONFIG"
    )]
    pub delete_configs: Vec<String>,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

#[derive(Debug, Args)]
pub struct TopicDeleteArgs {
    /// The topic.
    pub name: String,
    /// Succeed when the topic does not exist.
    #[arg(long, env = "SPATE_IF_EXISTS", value_parser = boolish())]
    pub if_exists: bool,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

#[derive(Debug, Args)]
pub struct TopicElectLeadersArgs {
    /// The topic.
    pub name: String,
    /// Only this partition; repeatable [default: every partition of the topic].
    #[arg(long = "partition", env = "SPATE_PARTITION")]
    pub partitions: Vec<i32>,
    /// Elect a leader for leaderless partitions from any live replica, even one outside the
    /// ISR: records the lost ISR acknowledged may be gone [default: preferred-leader election].
    #[arg(long, env = "SPATE_UNCLEAN", value_parser = boolish())]
    pub unclean: bool,
    #[arg(long, value_enum, env = "SPATE_OUTPUT", default_value = "table")]
    pub output: OutputFormat,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("target").required(true).multiple(false))]
pub struct TopicReassignArgs {
    /// The topic.
    pub name: String,
    /// The partition to move; repeatable (each gets the same replicas).
    #[arg(long = "partition", env = "SPATE_PARTITION", required = true)]
    pub partitions: Vec<i32>,
    /// The new replicas, broker ids separated by commas; the first is the preferred leader.
    #[arg(
        long,
        value_name = "ID,ID,…",
        value_delimiter = ',',
        group = "target",
        env = "SPATE_REPLICAS"
    )]
    pub replicas: Vec<i32>,
    /// Cancel the move under way: the partition keeps its original replicas.
    #[arg(long, group = "target", env = "SPATE_CANCEL", value_parser = boolish())]
    pub cancel: bool,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

#[derive(Debug, Args)]
pub struct TopicReassignmentsArgs {
    /// Only this topic's partitions [default: every topic].
    pub name: Option<String>,
    #[arg(long, value_enum, env = "SPATE_OUTPUT", default_value = "table")]
    pub output: OutputFormat,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// `acks` as typed on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AcksArg {
    /// Every in-sync replica (idempotent; Kafka's default).
    All,
    /// The leader only.
    #[value(name = "1")]
    Leader,
    /// No answer at all: fastest, and losses go unseen.
    #[value(name = "0")]
    None,
}

/// `compression.type` as typed on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompressionArg {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// Topic to send to (created on first use if the broker auto-creates topics).
    pub topic: String,
    /// Split each line at the first SEP into key and value; a line without SEP is sent
    /// whole as the value, with no key.
    #[arg(long, value_name = "SEP", env = "SPATE_KEY_SEPARATOR")]
    pub key_separator: Option<String>,
    /// A header name=value added to every record; repeatable.
    #[arg(long = "header", value_name = "NAME=VALUE", env = "SPATE_HEADER")]
    pub headers: Vec<String>,
    /// Send every record to this partition [default: by key, or sticky when keyless].
    #[arg(long, env = "SPATE_PARTITION")]
    pub partition: Option<i32>,
    /// Read lines from this file instead of stdin.
    #[arg(long, env = "SPATE_FILE")]
    pub file: Option<PathBuf>,
    /// Acknowledgement to wait for.
    #[arg(long, value_enum, env = "SPATE_ACKS", default_value = "all")]
    pub acks: AcksArg,
    /// Batch compression.
    #[arg(long, value_enum, env = "SPATE_COMPRESSION", default_value = "none")]
    pub compression: CompressionArg,
    /// How long a batch waits for more records before it is sent, in ms.
    #[arg(long, env = "SPATE_LINGER_MS", default_value_t = 5)]
    pub linger_ms: u64,
    /// No summary line on stderr.
    #[arg(long, short, env = "SPATE_QUIET", value_parser = boolish())]
    pub quiet: bool,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// How `consume` prints a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RecordFormat {
    /// The value's bytes, then a newline.
    Raw,
    /// One JSON object per record (see docs/cli.md for how bytes are encoded).
    Json,
    /// partition, offset, timestamp, key, headers and value on one line.
    Detailed,
}

#[derive(Debug, Args)]
pub struct ConsumeArgs {
    /// Topic to read.
    pub topic: String,
    /// Start at the beginning of each partition (the default start is the end).
    #[arg(long, env = "SPATE_FROM_BEGINNING", conflicts_with_all = ["offset", "from_timestamp"], value_parser = boolish())]
    pub from_beginning: bool,
    /// Start at this offset (of --partition, or of every partition).
    #[arg(long, env = "SPATE_OFFSET", conflicts_with = "from_timestamp")]
    pub offset: Option<i64>,
    /// Start at the first record at or after this time: ms since the epoch, or RFC 3339
    /// (2026-01-31T12:00:00Z).
    #[arg(long, value_name = "MS|RFC3339", env = "SPATE_FROM_TIMESTAMP")]
    pub from_timestamp: Option<String>,
    /// Read only this partition.
    #[arg(long, env = "SPATE_PARTITION")]
    pub partition: Option<i32>,
    /// Stop after this many records (waiting for them if need be).
    #[arg(long, env = "SPATE_COUNT")]
    pub count: Option<u64>,
    /// Keep waiting for new records instead of stopping at the end.
    #[arg(long, env = "SPATE_FOLLOW", value_parser = boolish())]
    pub follow: bool,
    /// Consume as a member of this group: start from its committed offsets and commit.
    #[arg(long, env = "SPATE_GROUP", conflicts_with_all = ["offset", "from_timestamp", "partition"])]
    pub group: Option<String>,
    #[arg(long, value_enum, env = "SPATE_FORMAT", default_value = "raw")]
    pub format: RecordFormat,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

#[derive(Debug, Args)]
pub struct GroupArgs {
    #[command(subcommand)]
    pub command: GroupCommand,
}

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// List consumer groups with their state.
    List(GroupListArgs),
    /// Show a group's members and, per partition, its committed offset and lag.
    Describe(GroupDescribeArgs),
    /// Delete a group without members, and its committed offsets.
    Delete(GroupDeleteArgs),
    /// Move a stopped group's committed offsets.
    ResetOffsets(GroupResetArgs),
}

#[derive(Debug, Args)]
pub struct GroupListArgs {
    #[arg(long, value_enum, env = "SPATE_OUTPUT", default_value = "table")]
    pub output: OutputFormat,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

#[derive(Debug, Args)]
pub struct GroupDescribeArgs {
    /// The group id.
    pub group: String,
    #[arg(long, value_enum, env = "SPATE_OUTPUT", default_value = "table")]
    pub output: OutputFormat,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

#[derive(Debug, Args)]
pub struct GroupDeleteArgs {
    /// The group id.
    pub group: String,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("target").required(true).multiple(false))]
pub struct GroupResetArgs {
    /// The group id.
    pub group: String,
    /// The topic whose offsets move.
    #[arg(long, env = "SPATE_TOPIC")]
    pub topic: String,
    /// Only this partition; repeatable [default: every partition of the topic].
    #[arg(long = "partition", env = "SPATE_PARTITION")]
    pub partitions: Vec<i32>,
    /// To the log start offset.
    #[arg(long, group = "target", env = "SPATE_TO_EARLIEST", value_parser = boolish())]
    pub to_earliest: bool,
    /// To the log end offset (skip everything not yet read).
    #[arg(long, group = "target", env = "SPATE_TO_LATEST", value_parser = boolish())]
    pub to_latest: bool,
    /// To this offset, clamped to the partition's [start, end] range.
    #[arg(long, group = "target", env = "SPATE_TO_OFFSET")]
    pub to_offset: Option<i64>,
    /// To the first record at or after this RFC 3339 time (or ms since the epoch).
    #[arg(
        long,
        group = "target",
        value_name = "RFC3339",
        env = "SPATE_TO_DATETIME"
    )]
    pub to_datetime: Option<String>,
    /// Print the plan without changing anything.
    #[arg(long, env = "SPATE_DRY_RUN", value_parser = boolish())]
    pub dry_run: bool,
    #[arg(long, value_enum, env = "SPATE_OUTPUT", default_value = "table")]
    pub output: OutputFormat,
    #[command(flatten)]
    pub connect: ConnectArgs,
}
