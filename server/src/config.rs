//! Broker configuration: built-in defaults, then `config/server.toml` (if given), then flags
//! and `SPATE_*` environment variables (applied by the `spate` binary on top of this).
//!
//! Keys use Kafka's broker config names where Kafka has one (`num.partitions`,
//! `socket.request.max.bytes`, `log.retention.ms`…), so an operator's habits carry over.
//! `config/server.toml` ships every key with its default and meaning.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use spate_coordinator::CoordinatorConfig;
use spate_engine::LogConfig;

use crate::cluster::config::{ClusterConfig, Roles, TlsPaths, parse_voters};
use crate::metadata::topic_config;

/// Kafka's `socket.request.max.bytes` default: a larger frame closes the connection before
/// any of it is buffered, so one client cannot make the broker allocate without bound.
pub const REQUEST_SIZE_BYTES_MAX_DEFAULT: u32 = 100 * 1024 * 1024;
/// Default connection cap: each connection costs buffers and a task; 10,000 fits the default
/// `ulimit -n` raised once, and is far above what a single node's clients need.
pub const CONNECTIONS_MAX_DEFAULT: usize = 10_000;
/// Requests a connection may have in flight before the broker stops reading its socket.
/// librdkafka pipelines up to 1,000,000 by default; 64 keeps memory per connection bounded
/// (64 × the request cap in the worst case) while hiding a round trip.
pub const IN_FLIGHT_REQUESTS_PER_CONNECTION_MAX_DEFAULT: usize = 64;

/// Errors while loading the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config: {0}")]
    Invalid(String),
}

/// Everything `spate serve` needs. Built once at start; `Send + Sync`, shared read-only.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where the logs and the metadata live.
    pub data_dir: PathBuf,
    /// Kafka listener address; port 0 picks a free port (printed at start).
    pub listen: SocketAddr,
    /// `host:port` that Metadata tells clients to connect to; `None` = derived from `listen`.
    pub advertised_listen: Option<String>,
    /// Admin HTTP address (`/health`).
    pub admin_listen: SocketAddr,
    /// Shard threads; 0 = one per online core.
    pub cores: usize,
    /// Pin each shard thread to its core.
    pub pin_threads: bool,
    /// Serve Fetch by copying (pread + write) instead of `sendfile`.
    pub fetch_copy: bool,
    /// `socket.request.max.bytes`.
    pub request_size_bytes_max: u32,
    /// `max.connections`.
    pub connections_max: usize,
    /// Spate: requests in flight per connection before reading pauses.
    pub in_flight_requests_per_connection_max: usize,
    /// `num.partitions`: partitions of an auto-created topic (and of CreateTopics with -1).
    pub num_partitions: i32,
    /// `auto.create.topics.enable`: Metadata and Produce create unknown topics.
    pub auto_create_topics: bool,
    /// Broker-wide topic defaults (`log.retention.ms`, `flush`, …).
    pub log_defaults: LogConfig,
    /// `log.retention.check.interval.ms`: how often each shard deletes segments that
    /// `retention.ms` / `retention.bytes` no longer keep.
    pub log_retention_check_interval_ms: u64,
    /// Consumer-group settings (`group.*`, `offsets.*`), as the coordinator takes them.
    pub groups: CoordinatorConfig,
    /// `offsets.topic.num.partitions`: partitions of `__consumer_offsets`, fixed when the
    /// topic is first created (changing it later would move groups between partitions).
    pub offsets_topic_partitions: i32,
    /// Node identity, roles, quorum voters and the cluster listener.
    pub cluster: ClusterConfig,
}

/// Kafka's `offsets.topic.num.partitions` default.
pub const OFFSETS_TOPIC_PARTITIONS_DEFAULT: i32 = 50;

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 9092)),
            advertised_listen: None,
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 9644)),
            cores: 0,
            pin_threads: true,
            fetch_copy: false,
            request_size_bytes_max: REQUEST_SIZE_BYTES_MAX_DEFAULT,
            connections_max: CONNECTIONS_MAX_DEFAULT,
            in_flight_requests_per_connection_max: IN_FLIGHT_REQUESTS_PER_CONNECTION_MAX_DEFAULT,
            num_partitions: 1,
            auto_create_topics: true,
            log_defaults: LogConfig::default(),
            log_retention_check_interval_ms:
                spate_engine::engine::RETENTION_CHECK_INTERVAL_MS_DEFAULT,
            groups: CoordinatorConfig::default(),
            offsets_topic_partitions: OFFSETS_TOPIC_PARTITIONS_DEFAULT,
            cluster: ClusterConfig::default(),
        }
    }
}

/// The TOML file's shape. Every key is optional; names with dots are quoted keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(rename = "data.dir")]
    data_dir: Option<PathBuf>,
    listeners: Option<SocketAddr>,
    #[serde(rename = "advertised.listeners")]
    advertised_listeners: Option<String>,
    #[serde(rename = "admin.listen")]
    admin_listen: Option<SocketAddr>,
    cores: Option<usize>,
    #[serde(rename = "pin.threads")]
    pin_threads: Option<bool>,
    #[serde(rename = "fetch.copy")]
    fetch_copy: Option<bool>,
    #[serde(rename = "socket.request.max.bytes")]
    socket_request_max_bytes: Option<u32>,
    #[serde(rename = "max.connections")]
    max_connections: Option<usize>,
    #[serde(rename = "max.in.flight.requests.per.connection")]
    max_in_flight: Option<usize>,
    #[serde(rename = "num.partitions")]
    num_partitions: Option<i32>,
    #[serde(rename = "auto.create.topics.enable")]
    auto_create_topics_enable: Option<bool>,
    #[serde(rename = "log.retention.ms")]
    log_retention_ms: Option<i64>,
    #[serde(rename = "log.retention.bytes")]
    log_retention_bytes: Option<i64>,
    #[serde(rename = "log.segment.bytes")]
    log_segment_bytes: Option<i64>,
    #[serde(rename = "log.roll.ms")]
    log_roll_ms: Option<i64>,
    #[serde(rename = "message.max.bytes")]
    message_max_bytes: Option<i64>,
    #[serde(rename = "log.message.timestamp.type")]
    log_message_timestamp_type: Option<String>,
    #[serde(rename = "log.index.interval.bytes")]
    log_index_interval_bytes: Option<i64>,
    flush: Option<String>,
    #[serde(rename = "log.retention.check.interval.ms")]
    log_retention_check_interval_ms: Option<u64>,
    #[serde(rename = "group.initial.rebalance.delay.ms")]
    group_initial_rebalance_delay_ms: Option<i32>,
    #[serde(rename = "group.min.session.timeout.ms")]
    group_min_session_timeout_ms: Option<i32>,
    #[serde(rename = "group.max.session.timeout.ms")]
    group_max_session_timeout_ms: Option<i32>,
    #[serde(rename = "group.max.size")]
    group_max_size: Option<usize>,
    #[serde(rename = "offsets.topic.num.partitions")]
    offsets_topic_num_partitions: Option<i32>,
    #[serde(rename = "offsets.retention.minutes")]
    offsets_retention_minutes: Option<i64>,
    #[serde(rename = "offset.metadata.max.bytes")]
    offset_metadata_max_bytes: Option<usize>,
    #[serde(rename = "node.id")]
    node_id: Option<i32>,
    #[serde(rename = "cluster.id")]
    cluster_id: Option<String>,
    #[serde(rename = "cluster.listen")]
    cluster_listen: Option<SocketAddr>,
    #[serde(rename = "cluster.advertised.listen")]
    cluster_advertised_listen: Option<String>,
    #[serde(rename = "controller.quorum.voters")]
    controller_quorum_voters: Option<String>,
    #[serde(rename = "process.roles")]
    process_roles: Option<String>,
    #[serde(rename = "broker.rack")]
    broker_rack: Option<String>,
    #[serde(rename = "cluster.ca")]
    cluster_ca: Option<PathBuf>,
    #[serde(rename = "cluster.cert")]
    cluster_cert: Option<PathBuf>,
    #[serde(rename = "cluster.key")]
    cluster_key: Option<PathBuf>,
    #[serde(rename = "broker.session.timeout.ms")]
    broker_session_timeout_ms: Option<u64>,
    #[serde(rename = "broker.heartbeat.interval.ms")]
    broker_heartbeat_interval_ms: Option<u64>,
    #[serde(rename = "controller.quorum.election.timeout.ms")]
    controller_quorum_election_timeout_ms: Option<u64>,
    #[serde(rename = "default.replication.factor")]
    default_replication_factor: Option<i16>,
    #[serde(rename = "offsets.topic.replication.factor")]
    offsets_topic_replication_factor: Option<i16>,
    #[serde(rename = "controlled.shutdown.timeout.ms")]
    controlled_shutdown_timeout_ms: Option<u64>,
    #[serde(rename = "replica.lag.time.max.ms")]
    replica_lag_time_max_ms: Option<u64>,
    #[serde(rename = "replica.fetch.max.bytes")]
    replica_fetch_max_bytes: Option<u32>,
    #[serde(rename = "replica.fetch.response.max.bytes")]
    replica_fetch_response_max_bytes: Option<u32>,
    #[serde(rename = "replica.fetch.wait.max.ms")]
    replica_fetch_wait_max_ms: Option<u64>,
    #[serde(rename = "leader.replication.throttled.rate")]
    leader_replication_throttled_rate: Option<u64>,
    #[serde(rename = "auto.leader.rebalance.enable")]
    auto_leader_rebalance_enable: Option<bool>,
    #[serde(rename = "leader.imbalance.check.interval.seconds")]
    leader_imbalance_check_interval_seconds: Option<u64>,
    #[serde(rename = "leader.imbalance.per.broker.percentage")]
    leader_imbalance_per_broker_percentage: Option<u32>,
    #[serde(rename = "min.insync.replicas")]
    min_insync_replicas: Option<i16>,
}

impl ServerConfig {
    /// Defaults, overlaid with the TOML file at `path` if one is given.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigFileError> {
        let mut config = Self::default();
        if let Some(path) = path {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigFileError::Read {
                path: path.to_owned(),
                source,
            })?;
            config
                .apply_toml(&text)
                .map_err(|message| ConfigFileError::Parse {
                    path: path.to_owned(),
                    message,
                })?;
        }
        Ok(config)
    }

    /// Applies the keys present in a TOML document.
    pub fn apply_toml(&mut self, text: &str) -> Result<(), String> {
        let file: ConfigFile = toml::from_str(text).map_err(|e| e.to_string())?;
        set(&mut self.data_dir, file.data_dir);
        set(&mut self.listen, file.listeners);
        if file.advertised_listeners.is_some() {
            self.advertised_listen = file.advertised_listeners;
        }
        set(&mut self.admin_listen, file.admin_listen);
        set(&mut self.cores, file.cores);
        set(&mut self.pin_threads, file.pin_threads);
        set(&mut self.fetch_copy, file.fetch_copy);
        set(
            &mut self.request_size_bytes_max,
            file.socket_request_max_bytes,
        );
        set(&mut self.connections_max, file.max_connections);
        set(
            &mut self.in_flight_requests_per_connection_max,
            file.max_in_flight,
        );
        set(&mut self.num_partitions, file.num_partitions);
        set(&mut self.auto_create_topics, file.auto_create_topics_enable);
        set(
            &mut self.log_retention_check_interval_ms,
            file.log_retention_check_interval_ms,
        );
        let groups = &mut self.groups;
        set(
            &mut groups.initial_rebalance_delay_ms,
            file.group_initial_rebalance_delay_ms,
        );
        set(
            &mut groups.min_session_timeout_ms,
            file.group_min_session_timeout_ms,
        );
        set(
            &mut groups.max_session_timeout_ms,
            file.group_max_session_timeout_ms,
        );
        set(&mut groups.max_group_size, file.group_max_size);
        set(
            &mut groups.offset_metadata_max_bytes,
            file.offset_metadata_max_bytes,
        );
        if let Some(minutes) = file.offsets_retention_minutes {
            groups.offsets_retention_ms = minutes.saturating_mul(60_000);
        }
        set(
            &mut self.offsets_topic_partitions,
            file.offsets_topic_num_partitions,
        );
        let cluster = &mut self.cluster;
        set(&mut cluster.node_id, file.node_id);
        if file.cluster_id.is_some() {
            cluster.cluster_id = file.cluster_id;
        }
        if file.cluster_listen.is_some() {
            cluster.listen = file.cluster_listen;
        }
        if file.cluster_advertised_listen.is_some() {
            cluster.advertised_listen = file.cluster_advertised_listen;
        }
        if let Some(voters) = file.controller_quorum_voters {
            cluster.voters =
                Some(parse_voters(&voters).map_err(|e| format!("controller.quorum.voters: {e}"))?);
        }
        if let Some(roles) = file.process_roles {
            cluster.roles = Roles::parse(&roles).map_err(|e| format!("process.roles: {e}"))?;
        }
        if file.broker_rack.is_some() {
            cluster.rack = file.broker_rack;
        }
        cluster.tls = tls_paths(
            cluster.tls.take(),
            file.cluster_ca,
            file.cluster_cert,
            file.cluster_key,
        )?;
        set(
            &mut cluster.session_timeout_ms,
            file.broker_session_timeout_ms,
        );
        set(
            &mut cluster.heartbeat_interval_ms,
            file.broker_heartbeat_interval_ms,
        );
        set(
            &mut cluster.election_timeout_ms,
            file.controller_quorum_election_timeout_ms,
        );
        if file.default_replication_factor.is_some() {
            cluster.default_replication_factor = file.default_replication_factor;
        }
        set(
            &mut cluster.offsets_topic_replication_factor,
            file.offsets_topic_replication_factor,
        );
        set(
            &mut cluster.controlled_shutdown_timeout_ms,
            file.controlled_shutdown_timeout_ms,
        );
        set(
            &mut cluster.replica_lag_time_max_ms,
            file.replica_lag_time_max_ms,
        );
        set(
            &mut cluster.replica_fetch_max_bytes,
            file.replica_fetch_max_bytes,
        );
        set(
            &mut cluster.replica_fetch_response_max_bytes,
            file.replica_fetch_response_max_bytes,
        );
        set(
            &mut cluster.replica_fetch_wait_max_ms,
            file.replica_fetch_wait_max_ms,
        );
        if file.leader_replication_throttled_rate.is_some() {
            cluster.leader_replication_throttled_rate = file.leader_replication_throttled_rate;
        }
        set(
            &mut cluster.auto_leader_rebalance_enable,
            file.auto_leader_rebalance_enable,
        );
        if let Some(seconds) = file.leader_imbalance_check_interval_seconds {
            cluster.leader_imbalance_check_interval_ms = seconds.saturating_mul(1000);
        }
        set(
            &mut cluster.leader_imbalance_per_broker_percentage,
            file.leader_imbalance_per_broker_percentage,
        );
        set(&mut cluster.min_insync_replicas, file.min_insync_replicas);
        let topic_keys = [
            ("retention.ms", file.log_retention_ms.map(|v| v.to_string())),
            (
                "retention.bytes",
                file.log_retention_bytes.map(|v| v.to_string()),
            ),
            (
                "segment.bytes",
                file.log_segment_bytes.map(|v| v.to_string()),
            ),
            ("segment.ms", file.log_roll_ms.map(|v| v.to_string())),
            (
                "max.message.bytes",
                file.message_max_bytes.map(|v| v.to_string()),
            ),
            ("message.timestamp.type", file.log_message_timestamp_type),
            (
                "index.interval.bytes",
                file.log_index_interval_bytes.map(|v| v.to_string()),
            ),
            ("flush", file.flush),
        ];
        for (name, value) in topic_keys {
            if let Some(value) = value {
                topic_config::apply(&mut self.log_defaults, name, &value)
                    .map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    }

    /// Checks relations between settings that single values cannot express.
    pub fn validate(&self) -> Result<(), ConfigFileError> {
        let bad = |m: &str| Err(ConfigFileError::Invalid(m.to_owned()));
        if !(1..=crate::metadata::PARTITION_COUNT_MAX).contains(&self.num_partitions) {
            return bad("num.partitions must be between 1 and 10000");
        }
        if self.in_flight_requests_per_connection_max == 0 {
            return bad("max.in.flight.requests.per.connection must be at least 1");
        }
        if self.log_retention_check_interval_ms == 0 {
            return bad("log.retention.check.interval.ms must be at least 1");
        }
        let groups = &self.groups;
        if groups.min_session_timeout_ms < 1
            || groups.min_session_timeout_ms > groups.max_session_timeout_ms
        {
            return bad(
                "group.min.session.timeout.ms must be at least 1 and at most group.max.session.timeout.ms",
            );
        }
        if groups.initial_rebalance_delay_ms < 0 {
            return bad("group.initial.rebalance.delay.ms must not be negative");
        }
        if groups.max_group_size == 0 {
            return bad("group.max.size must be at least 1");
        }
        if groups.offsets_retention_ms < 60_000 {
            return bad("offsets.retention.minutes must be at least 1");
        }
        if !(1..=1000).contains(&self.offsets_topic_partitions) {
            return bad("offsets.topic.num.partitions must be between 1 and 1000");
        }
        if self.connections_max == 0 {
            return bad("max.connections must be at least 1");
        }
        if self.request_size_bytes_max < 1024 {
            return bad("socket.request.max.bytes must be at least 1024");
        }
        self.cluster.validate().map_err(ConfigFileError::Invalid)
    }

    /// The `host:port` clients are told to connect to.
    ///
    /// Defaults to the bound address; when bound to the wildcard address, to the host name,
    /// since `0.0.0.0` is not an address a client can dial.
    pub fn advertised_address(&self, bound: SocketAddr) -> (String, u16) {
        if let Some(adv) = &self.advertised_listen {
            if let Some((host, Ok(port))) = adv.rsplit_once(':').map(|(h, p)| (h, p.parse::<u16>()))
            {
                let host = host.trim_start_matches('[').trim_end_matches(']');
                return (host.to_owned(), if port == 0 { bound.port() } else { port });
            }
            return (adv.clone(), bound.port());
        }
        if bound.ip().is_unspecified() {
            return (
                host_name().unwrap_or_else(|| "localhost".to_owned()),
                bound.port(),
            );
        }
        (bound.ip().to_string(), bound.port())
    }
}

/// Merges certificate paths given one by one (file, then flags) into the three that go
/// together; a partial set is an error once all sources are applied (see `validate`).
pub fn tls_paths(
    current: Option<TlsPaths>,
    ca: Option<PathBuf>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
) -> Result<Option<TlsPaths>, String> {
    if ca.is_none() && cert.is_none() && key.is_none() {
        return Ok(current);
    }
    let (old_ca, old_cert, old_key) = match current {
        Some(paths) => (Some(paths.ca), Some(paths.cert), Some(paths.key)),
        None => (None, None, None),
    };
    match (ca.or(old_ca), cert.or(old_cert), key.or(old_key)) {
        (Some(ca), Some(cert), Some(key)) => Ok(Some(TlsPaths { ca, cert, key })),
        _ => Err(
            "the cluster CA, certificate and key go together: give all three of cluster.ca, cluster.cert and cluster.key (--cluster-ca, --cluster-cert, --cluster-key)"
                .to_owned(),
        ),
    }
}

fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}

fn host_name() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use spate_engine::FlushPolicy;

    #[test]
    fn shipped_config_file_parses_to_the_defaults() {
        let text = include_str!("../../config/server.toml");
        let mut config = ServerConfig::default();
        config.apply_toml(text).unwrap();
        let defaults = ServerConfig::default();
        assert_eq!(config.listen, defaults.listen);
        assert_eq!(config.num_partitions, defaults.num_partitions);
        assert_eq!(config.log_defaults, defaults.log_defaults);
        assert_eq!(
            config.request_size_bytes_max,
            REQUEST_SIZE_BYTES_MAX_DEFAULT
        );
        assert_eq!(
            format!("{:?}", config.groups),
            format!("{:?}", defaults.groups)
        );
        assert_eq!(
            config.offsets_topic_partitions,
            OFFSETS_TOPIC_PARTITIONS_DEFAULT
        );
        assert_eq!(config.cluster, defaults.cluster);
    }

    #[test]
    fn cluster_keys_are_read_and_checked_together() {
        let mut config = ServerConfig::default();
        config
            .apply_toml(
                "\"node.id\" = 2\n\"controller.quorum.voters\" = \"1@127.0.0.1:9093,2@127.0.0.1:9094\"\n\"cluster.listen\" = \"127.0.0.1:9094\"\n\"broker.rack\" = \"r1\"\n",
            )
            .unwrap();
        assert_eq!(config.cluster.node_id, 2);
        assert_eq!(config.cluster.rack.as_deref(), Some("r1"));
        let missing_certs = config.validate().unwrap_err().to_string();
        assert!(missing_certs.contains("--cluster-ca"), "{missing_certs}");
        assert!(config.apply_toml("\"cluster.ca\" = \"ca.pem\"").is_err());
        config
            .apply_toml("\"cluster.ca\" = \"ca.pem\"\n\"cluster.cert\" = \"n.pem\"\n\"cluster.key\" = \"n.key\"")
            .unwrap();
        assert!(config.validate().is_ok());
        assert!(config.apply_toml("\"process.roles\" = \"router\"").is_err());
    }

    #[test]
    fn group_keys_are_read_and_checked() {
        let mut config = ServerConfig::default();
        config
            .apply_toml(
                "\"group.initial.rebalance.delay.ms\" = 0\n\"offsets.retention.minutes\" = 2\n\"offsets.topic.num.partitions\" = 3\n",
            )
            .unwrap();
        assert_eq!(config.groups.initial_rebalance_delay_ms, 0);
        assert_eq!(config.groups.offsets_retention_ms, 120_000);
        assert_eq!(config.offsets_topic_partitions, 3);
        assert!(config.validate().is_ok());
        config.groups.min_session_timeout_ms = config.groups.max_session_timeout_ms + 1;
        assert!(config.validate().is_err());
    }

    #[test]
    fn file_keys_override_defaults_and_unknown_keys_are_refused() {
        let mut config = ServerConfig::default();
        config
            .apply_toml("\"num.partitions\" = 4\nflush = \"never\"\nlisteners = \"0.0.0.0:0\"")
            .unwrap();
        assert_eq!(config.num_partitions, 4);
        assert_eq!(config.log_defaults.flush, FlushPolicy::Never);
        assert!(config.apply_toml("\"no.such.key\" = 1").is_err());
        assert!(config.apply_toml("flush = \"sometimes\"").is_err());
    }

    #[test]
    fn advertised_address_prefers_the_flag_then_the_bound_address() {
        let mut config = ServerConfig::default();
        let bound: SocketAddr = "127.0.0.1:5555".parse().unwrap();
        assert_eq!(config.advertised_address(bound), ("127.0.0.1".into(), 5555));
        config.advertised_listen = Some("broker.example:19092".into());
        assert_eq!(
            config.advertised_address(bound),
            ("broker.example".into(), 19092)
        );
        config.advertised_listen = None;
        let wildcard: SocketAddr = "0.0.0.0:5555".parse().unwrap();
        assert_ne!(config.advertised_address(wildcard).0, "0.0.0.0");
    }
}
