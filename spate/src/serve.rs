//! `spate serve`: its flags, and how they combine with the config file into a
//! [`ServerConfig`].
//!
//! Precedence, lowest first: built-in defaults, the `--config` TOML file, `SPATE_*`
//! environment variables, flags (clap resolves the last two: a flag beats its variable).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use spate_server::ServerConfig;
use spate_server::cluster::config::{ClusterConfig, Roles, parse_voters};
use spate_server::config::tls_paths;
use spate_server::metadata::topic_config;

#[derive(clap::Args)]
pub struct ServeArgs {
    /// TOML config file (see config/server.toml for every key).
    #[arg(long, env = "SPATE_CONFIG")]
    config: Option<PathBuf>,
    /// Folder for partition logs and metadata [default: ./data].
    #[arg(long, env = "SPATE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Kafka listener, host:port; port 0 picks a free one [default: 127.0.0.1:9092].
    #[arg(long, env = "SPATE_LISTEN")]
    listen: Option<SocketAddr>,
    /// host:port that Metadata tells clients to connect to [default: the listen address].
    #[arg(long, env = "SPATE_ADVERTISED_LISTEN")]
    advertised_listen: Option<String>,
    /// Admin HTTP listener (GET /health) [default: 127.0.0.1:9644].
    #[arg(long, env = "SPATE_ADMIN_LISTEN")]
    admin_listen: Option<SocketAddr>,
    /// Shard threads, one per core; 0 = every online core [default: 0].
    #[arg(long, env = "SPATE_CORES")]
    cores: Option<usize>,
    /// Partitions of auto-created topics (num.partitions) [default: 1].
    #[arg(long, env = "SPATE_NUM_PARTITIONS")]
    num_partitions: Option<i32>,
    /// Create unknown topics on Metadata/Produce (auto.create.topics.enable) [default: true].
    #[arg(long, env = "SPATE_AUTO_CREATE_TOPICS")]
    auto_create_topics: Option<bool>,
    /// Default topic flush policy: always | never | <milliseconds> [default: always].
    #[arg(long, env = "SPATE_FLUSH")]
    flush: Option<String>,
    /// Serve fetches by copying instead of sendfile (for comparison; TLS later).
    #[arg(long, env = "SPATE_FETCH_COPY")]
    fetch_copy: bool,
    /// How often retention (retention.ms / retention.bytes) runs, in ms (Kafka's
    /// log.retention.check.interval.ms; default 300000).
    #[arg(long, env = "SPATE_LOG_RETENTION_CHECK_INTERVAL_MS")]
    log_retention_check_interval_ms: Option<u64>,
    /// How long the first rebalance of an empty group waits for more members, in ms
    /// (group.initial.rebalance.delay.ms) [default: 3000].
    #[arg(long, env = "SPATE_GROUP_INITIAL_REBALANCE_DELAY_MS")]
    group_initial_rebalance_delay_ms: Option<i32>,
    /// Smallest session.timeout.ms a consumer may ask for (group.min.session.timeout.ms)
    /// [default: 6000].
    #[arg(long, env = "SPATE_GROUP_MIN_SESSION_TIMEOUT_MS")]
    group_min_session_timeout_ms: Option<i32>,
    /// Largest session.timeout.ms a consumer may ask for (group.max.session.timeout.ms)
    /// [default: 1800000].
    #[arg(long, env = "SPATE_GROUP_MAX_SESSION_TIMEOUT_MS")]
    group_max_session_timeout_ms: Option<i32>,
    /// Partitions of __consumer_offsets, fixed at its creation
    /// (offsets.topic.num.partitions) [default: 50].
    #[arg(long, env = "SPATE_OFFSETS_TOPIC_NUM_PARTITIONS")]
    offsets_topic_num_partitions: Option<i32>,
    /// How long the offsets of an empty group are kept (offsets.retention.minutes)
    /// [default: 10080, 7 days].
    #[arg(long, env = "SPATE_OFFSETS_RETENTION_MINUTES")]
    offsets_retention_minutes: Option<i64>,
    /// This node's id in the cluster (node.id) [default: 0].
    #[arg(long, env = "SPATE_NODE_ID")]
    node_id: Option<i32>,
    /// The cluster id a new cluster takes, and that an existing data dir must carry
    /// (cluster.id) [default: chosen by the first controller].
    #[arg(long, env = "SPATE_CLUSTER_ID")]
    cluster_id: Option<String>,
    /// UDP address of the QUIC listener for controller and replication traffic
    /// (cluster.listen); needed by every node of a multi-node cluster.
    #[arg(long, env = "SPATE_CLUSTER_LISTEN")]
    cluster_listen: Option<SocketAddr>,
    /// host:port peers dial for this node (cluster.advertised.listen) [default: --cluster-listen].
    #[arg(long, env = "SPATE_CLUSTER_ADVERTISED_LISTEN")]
    cluster_advertised_listen: Option<String>,
    /// The metadata quorum, as Kafka's controller.quorum.voters: 1@host:port,2@host:port,…
    /// (each voter's cluster listener) [default: this node alone].
    #[arg(long, env = "SPATE_CONTROLLER_VOTERS")]
    controller_voters: Option<String>,
    /// What this node does: broker, controller, or broker,controller (process.roles)
    /// [default: broker,controller].
    #[arg(long, env = "SPATE_ROLES")]
    roles: Option<String>,
    /// Rack (or zone) of this broker; replicas are spread across racks (broker.rack).
    #[arg(long, env = "SPATE_RACK")]
    rack: Option<String>,
    /// The cluster CA certificate (from `spate cluster ca`).
    #[arg(long, env = "SPATE_CLUSTER_CA")]
    cluster_ca: Option<PathBuf>,
    /// This node's certificate (from `spate cluster cert`).
    #[arg(long, env = "SPATE_CLUSTER_CERT")]
    cluster_cert: Option<PathBuf>,
    /// This node's private key (from `spate cluster cert`).
    #[arg(long, env = "SPATE_CLUSTER_KEY")]
    cluster_key: Option<PathBuf>,
    /// A broker that has not heartbeated for this long is fenced and loses its leaderships
    /// (broker.session.timeout.ms) [default: 9000].
    #[arg(long, env = "SPATE_BROKER_SESSION_TIMEOUT_MS")]
    broker_session_timeout_ms: Option<u64>,
    /// How often a broker heartbeats to the controller (broker.heartbeat.interval.ms)
    /// [default: 2000].
    #[arg(long, env = "SPATE_BROKER_HEARTBEAT_INTERVAL_MS")]
    broker_heartbeat_interval_ms: Option<u64>,
    /// How long a controller waits without hearing from the quorum leader before standing
    /// for election (controller.quorum.election.timeout.ms) [default: 1000].
    #[arg(long, env = "SPATE_CONTROLLER_ELECTION_TIMEOUT_MS")]
    controller_election_timeout_ms: Option<u64>,
    /// Replicas of a topic created without a replication factor (default.replication.factor)
    /// [default: min(3, live brokers)].
    #[arg(long, env = "SPATE_DEFAULT_REPLICATION_FACTOR")]
    default_replication_factor: Option<i16>,
    /// Replicas of __consumer_offsets, capped by the brokers registered
    /// (offsets.topic.replication.factor) [default: 3].
    #[arg(long, env = "SPATE_OFFSETS_TOPIC_REPLICATION_FACTOR")]
    offsets_topic_replication_factor: Option<i16>,
    /// How long SIGTERM waits for this broker's leaderships to move before exiting
    /// (controlled.shutdown.timeout.ms) [default: 30000].
    #[arg(long, env = "SPATE_CONTROLLED_SHUTDOWN_TIMEOUT_MS")]
    controlled_shutdown_timeout_ms: Option<u64>,
    /// A follower that has not caught up with its leader for this long leaves the ISR
    /// (replica.lag.time.max.ms) [default: 30000].
    #[arg(long, env = "SPATE_REPLICA_LAG_TIME_MAX_MS")]
    replica_lag_time_max_ms: Option<u64>,
    /// The default min.insync.replicas of topics that do not set it [default: 1].
    #[arg(long, env = "SPATE_MIN_INSYNC_REPLICAS")]
    min_insync_replicas: Option<i16>,
    /// Bytes per second a leader sends to followers that are catching up, so they cannot
    /// starve produce traffic (leader.replication.throttled.rate) [default: unthrottled].
    #[arg(long, env = "SPATE_LEADER_REPLICATION_THROTTLED_RATE")]
    leader_replication_throttled_rate: Option<u64>,
    /// Move leaderships back to the preferred replicas when they drift
    /// (auto.leader.rebalance.enable) [default: true].
    #[arg(long, env = "SPATE_AUTO_LEADER_REBALANCE_ENABLE")]
    auto_leader_rebalance_enable: Option<bool>,
}

pub fn serve(args: ServeArgs) -> ExitCode {
    let config = match server_config(args) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("spate serve: {message}");
            return ExitCode::from(2);
        }
    };
    match spate_server::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("spate serve failed: {e}");
            eprintln!("spate serve: {e}");
            ExitCode::FAILURE
        }
    }
}

fn server_config(args: ServeArgs) -> Result<ServerConfig, String> {
    let cluster_args = ClusterArgs::from(&args);
    let mut config = ServerConfig::load(args.config.as_deref()).map_err(|e| e.to_string())?;
    if let Some(v) = args.data_dir {
        config.data_dir = v;
    }
    if let Some(v) = args.listen {
        config.listen = v;
    }
    if args.advertised_listen.is_some() {
        config.advertised_listen = args.advertised_listen;
    }
    if let Some(v) = args.admin_listen {
        config.admin_listen = v;
    }
    if let Some(v) = args.cores {
        config.cores = v;
    }
    if let Some(v) = args.num_partitions {
        config.num_partitions = v;
    }
    if let Some(v) = args.auto_create_topics {
        config.auto_create_topics = v;
    }
    if let Some(v) = args.flush {
        topic_config::apply(&mut config.log_defaults, "flush", &v).map_err(|e| e.to_string())?;
    }
    if args.fetch_copy {
        config.fetch_copy = true;
    }
    if let Some(interval_ms) = args.log_retention_check_interval_ms {
        config.log_retention_check_interval_ms = interval_ms;
    }
    if let Some(v) = args.group_initial_rebalance_delay_ms {
        config.groups.initial_rebalance_delay_ms = v;
    }
    if let Some(v) = args.group_min_session_timeout_ms {
        config.groups.min_session_timeout_ms = v;
    }
    if let Some(v) = args.group_max_session_timeout_ms {
        config.groups.max_session_timeout_ms = v;
    }
    if let Some(v) = args.offsets_topic_num_partitions {
        config.offsets_topic_partitions = v;
    }
    if let Some(minutes) = args.offsets_retention_minutes {
        config.groups.offsets_retention_ms = minutes.saturating_mul(60_000);
    }
    apply_cluster_args(&mut config.cluster, cluster_args)?;
    config.validate().map_err(|e| e.to_string())?;
    Ok(config)
}

/// The cluster flags, moved out of [`ServeArgs`] so applying them reads as one step.
struct ClusterArgs {
    node_id: Option<i32>,
    cluster_id: Option<String>,
    cluster_listen: Option<SocketAddr>,
    cluster_advertised_listen: Option<String>,
    controller_voters: Option<String>,
    roles: Option<String>,
    rack: Option<String>,
    cluster_ca: Option<PathBuf>,
    cluster_cert: Option<PathBuf>,
    cluster_key: Option<PathBuf>,
    broker_session_timeout_ms: Option<u64>,
    broker_heartbeat_interval_ms: Option<u64>,
    controller_election_timeout_ms: Option<u64>,
    default_replication_factor: Option<i16>,
    offsets_topic_replication_factor: Option<i16>,
    controlled_shutdown_timeout_ms: Option<u64>,
    replica_lag_time_max_ms: Option<u64>,
    min_insync_replicas: Option<i16>,
    leader_replication_throttled_rate: Option<u64>,
    auto_leader_rebalance_enable: Option<bool>,
}

impl From<&ServeArgs> for ClusterArgs {
    fn from(args: &ServeArgs) -> Self {
        Self {
            node_id: args.node_id,
            cluster_id: args.cluster_id.clone(),
            cluster_listen: args.cluster_listen,
            cluster_advertised_listen: args.cluster_advertised_listen.clone(),
            controller_voters: args.controller_voters.clone(),
            roles: args.roles.clone(),
            rack: args.rack.clone(),
            cluster_ca: args.cluster_ca.clone(),
            cluster_cert: args.cluster_cert.clone(),
            cluster_key: args.cluster_key.clone(),
            broker_session_timeout_ms: args.broker_session_timeout_ms,
            broker_heartbeat_interval_ms: args.broker_heartbeat_interval_ms,
            controller_election_timeout_ms: args.controller_election_timeout_ms,
            default_replication_factor: args.default_replication_factor,
            offsets_topic_replication_factor: args.offsets_topic_replication_factor,
            controlled_shutdown_timeout_ms: args.controlled_shutdown_timeout_ms,
            replica_lag_time_max_ms: args.replica_lag_time_max_ms,
            min_insync_replicas: args.min_insync_replicas,
            leader_replication_throttled_rate: args.leader_replication_throttled_rate,
            auto_leader_rebalance_enable: args.auto_leader_rebalance_enable,
        }
    }
}

fn apply_cluster_args(cluster: &mut ClusterConfig, args: ClusterArgs) -> Result<(), String> {
    if let Some(v) = args.node_id {
        cluster.node_id = v;
    }
    if args.cluster_id.is_some() {
        cluster.cluster_id = args.cluster_id;
    }
    if args.cluster_listen.is_some() {
        cluster.listen = args.cluster_listen;
    }
    if args.cluster_advertised_listen.is_some() {
        cluster.advertised_listen = args.cluster_advertised_listen;
    }
    if let Some(voters) = args.controller_voters {
        cluster.voters =
            Some(parse_voters(&voters).map_err(|e| format!("--controller-voters: {e}"))?);
    }
    if let Some(roles) = args.roles {
        cluster.roles = Roles::parse(&roles).map_err(|e| format!("--roles: {e}"))?;
    }
    if args.rack.is_some() {
        cluster.rack = args.rack;
    }
    cluster.tls = tls_paths(
        cluster.tls.take(),
        args.cluster_ca,
        args.cluster_cert,
        args.cluster_key,
    )?;
    if let Some(v) = args.broker_session_timeout_ms {
        cluster.session_timeout_ms = v;
    }
    if let Some(v) = args.broker_heartbeat_interval_ms {
        cluster.heartbeat_interval_ms = v;
    }
    if let Some(v) = args.controller_election_timeout_ms {
        cluster.election_timeout_ms = v;
    }
    if args.default_replication_factor.is_some() {
        cluster.default_replication_factor = args.default_replication_factor;
    }
    if let Some(v) = args.offsets_topic_replication_factor {
        cluster.offsets_topic_replication_factor = v;
    }
    if let Some(v) = args.controlled_shutdown_timeout_ms {
        cluster.controlled_shutdown_timeout_ms = v;
    }
    if let Some(v) = args.replica_lag_time_max_ms {
        cluster.replica_lag_time_max_ms = v;
    }
    if let Some(v) = args.min_insync_replicas {
        cluster.min_insync_replicas = v;
    }
    if args.leader_replication_throttled_rate.is_some() {
        cluster.leader_replication_throttled_rate = args.leader_replication_throttled_rate;
    }
    if let Some(v) = args.auto_leader_rebalance_enable {
        cluster.auto_leader_rebalance_enable = v;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Cli, Command};
    use clap::Parser;

    fn serve_args(args: &[&str]) -> ServeArgs {
        let cli = Cli::try_parse_from([&["spate", "serve"], args].concat()).unwrap();
        match cli.command {
            Command::Serve(args) => *args,
            Command::Client(_) | Command::Bench(_) | Command::Cluster(_) => {
                panic!("parsed as a client command")
            }
        }
    }

    #[test]
    fn serve_without_flags_is_the_embedded_default() {
        let config = server_config(serve_args(&[])).unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:9092");
        assert_eq!(config.admin_listen.to_string(), "127.0.0.1:9644");
        assert_eq!(config.data_dir, PathBuf::from("./data"));
        assert_eq!(config.num_partitions, 1);
        assert!(config.auto_create_topics);
        assert!(!config.fetch_copy);
    }

    #[test]
    fn flags_override_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("server.toml");
        std::fs::write(
            &file,
            "\"num.partitions\" = 4\nflush = \"never\"\ncores = 3\n",
        )
        .unwrap();
        let config = server_config(serve_args(&[
            "--config",
            file.to_str().unwrap(),
            "--num-partitions",
            "6",
            "--listen",
            "127.0.0.1:0",
            "--fetch-copy",
        ]))
        .unwrap();
        assert_eq!(config.num_partitions, 6);
        assert_eq!(config.cores, 3);
        assert_eq!(
            config.log_defaults.flush,
            spate_server::metadata::topic_config::parse_flush("never").unwrap()
        );
        assert_eq!(config.listen.port(), 0);
        assert!(config.fetch_copy);
    }

    #[test]
    fn bad_values_are_refused_before_starting() {
        assert!(server_config(serve_args(&["--flush", "sometimes"])).is_err());
        assert!(server_config(serve_args(&["--num-partitions", "0"])).is_err());
        assert!(Cli::try_parse_from(["spate", "serve", "--listen", "nowhere"]).is_err());
    }
}
