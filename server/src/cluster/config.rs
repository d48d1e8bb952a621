//! The node's cluster settings: who it is, what it does, where its peers are.
//!
//! Names follow KRaft's (`node.id`, `process.roles`, `controller.quorum.voters`,
//! `broker.rack`, `broker.session.timeout.ms`, …) so a Kafka operator's habits carry over.
//! With none of them set, the node is the embedded single node: id 0, broker and controller,
//! a one-member quorum, and no cluster listener at all.

use std::net::SocketAddr;
use std::path::PathBuf;

use spate_cluster::NodeId;

/// Kafka's `broker.session.timeout.ms` default: a broker that has not heartbeated for this
/// long is fenced and its leaderships move.
pub const SESSION_TIMEOUT_MS_DEFAULT: u64 = 9_000;
/// Kafka's `broker.heartbeat.interval.ms` default.
pub const HEARTBEAT_INTERVAL_MS_DEFAULT: u64 = 2_000;
/// Kafka's `controller.quorum.election.timeout.ms` default: a follower that hears nothing
/// from the quorum leader for a random time between this and twice this stands for election.
pub const ELECTION_TIMEOUT_MS_DEFAULT: u64 = 1_000;
/// Kafka's `replica.lag.time.max.ms`: a follower that has not caught up for this long leaves
/// the ISR.
pub const REPLICA_LAG_TIME_MAX_MS_DEFAULT: u64 = 30_000;
/// Kafka's `replica.fetch.max.bytes`: bytes a follower asks for per partition per fetch.
pub const REPLICA_FETCH_MAX_BYTES_DEFAULT: u32 = 1024 * 1024;
/// Kafka's `replica.fetch.response.max.bytes`: bytes per fetch answer, all partitions.
pub const REPLICA_FETCH_RESPONSE_MAX_BYTES_DEFAULT: u32 = 10 * 1024 * 1024;
/// Kafka's `replica.fetch.wait.max.ms`: how long a leader parks a follower's fetch when it has
/// nothing new.
pub const REPLICA_FETCH_WAIT_MAX_MS_DEFAULT: u64 = 500;
/// Kafka's `leader.imbalance.check.interval.seconds` (300), in ms.
pub const LEADER_IMBALANCE_CHECK_INTERVAL_MS_DEFAULT: u64 = 300_000;
/// Kafka's `leader.imbalance.per.broker.percentage`.
pub const LEADER_IMBALANCE_PER_BROKER_PERCENTAGE_DEFAULT: u32 = 10;

/// Shortest election timeout accepted: the quorum leader heartbeats every fifth of it, and
/// a follower's randomized timer needs room below it (see `raft::raft_config`).
pub const ELECTION_TIMEOUT_MS_MIN: u64 = 30;
/// Kafka's `offsets.topic.replication.factor` default (capped by the brokers registered).
pub const OFFSETS_TOPIC_REPLICATION_FACTOR_DEFAULT: i16 = 3;
/// How long a stopping broker waits for the controller to move its leaderships away before
/// it exits anyway (Kafka retries `controlled.shutdown.max.retries` × 5 s).
pub const CONTROLLED_SHUTDOWN_TIMEOUT_MS_DEFAULT: u64 = 30_000;

/// What a node does (`process.roles`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    /// Serves Kafka clients and stores partitions.
    pub broker: bool,
    /// Is a voter of the metadata quorum.
    pub controller: bool,
}

impl Roles {
    pub const BOTH: Roles = Roles {
        broker: true,
        controller: true,
    };

    /// Parses `broker`, `controller` or `broker,controller` (either order).
    pub fn parse(text: &str) -> Result<Roles, String> {
        let mut roles = Roles {
            broker: false,
            controller: false,
        };
        for role in text.split(',').map(str::trim).filter(|r| !r.is_empty()) {
            match role {
                "broker" => roles.broker = true,
                "controller" => roles.controller = true,
                other => {
                    return Err(format!(
                        "unknown role '{other}' in '{text}': use broker, controller or broker,controller"
                    ));
                }
            }
        }
        if !roles.broker && !roles.controller {
            return Err("roles must name broker, controller or both".to_owned());
        }
        Ok(roles)
    }

    pub fn names(&self) -> Vec<&'static str> {
        let mut names = Vec::new();
        if self.broker {
            names.push("broker");
        }
        if self.controller {
            names.push("controller");
        }
        names
    }
}

/// One voter of the metadata quorum: `id@host:port`, the port being its cluster listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voter {
    pub node_id: NodeId,
    pub address: String,
}

/// Parses Kafka's `controller.quorum.voters`: `1@host:port,2@host:port,…`.
pub fn parse_voters(text: &str) -> Result<Vec<Voter>, String> {
    let mut voters: Vec<Voter> = Vec::new();
    for item in text.split(',').map(str::trim).filter(|v| !v.is_empty()) {
        let (id, address) = item.split_once('@').ok_or_else(|| {
            format!("voter '{item}' must look like ID@HOST:PORT (e.g. 1@10.0.0.1:9093)")
        })?;
        let node_id: NodeId = id
            .parse()
            .ok()
            .filter(|id: &NodeId| *id >= 0)
            .ok_or_else(|| format!("voter '{item}': '{id}' is not a node id (0 or more)"))?;
        let port_ok = address.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
        });
        if !port_ok {
            return Err(format!(
                "voter '{item}': '{address}' must be HOST:PORT with a port above 0"
            ));
        }
        if voters.iter().any(|v| v.node_id == node_id) {
            return Err(format!("voter id {node_id} is listed twice"));
        }
        voters.push(Voter {
            node_id,
            address: address.to_owned(),
        });
    }
    if voters.is_empty() {
        return Err("the voter list is empty".to_owned());
    }
    Ok(voters)
}

/// The cluster CA, this node's certificate and its key, as made by `spate cluster ca` and
/// `spate cluster cert`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsPaths {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The cluster part of [`crate::ServerConfig`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// `node.id`.
    pub node_id: NodeId,
    /// `cluster.id`: the id a new cluster takes, or the one an existing data dir must have.
    /// Unset: the first controller leader picks one.
    pub cluster_id: Option<String>,
    /// `cluster.listen`: UDP address of the QUIC listener (controller and replication).
    pub listen: Option<SocketAddr>,
    /// `cluster.advertised.listen`: `host:port` peers dial; unset = `listen`.
    pub advertised_listen: Option<String>,
    /// `controller.quorum.voters`; unset = this node alone.
    pub voters: Option<Vec<Voter>>,
    /// `process.roles`.
    pub roles: Roles,
    /// `broker.rack`.
    pub rack: Option<String>,
    pub tls: Option<TlsPaths>,
    /// `broker.session.timeout.ms`.
    pub session_timeout_ms: u64,
    /// `broker.heartbeat.interval.ms`.
    pub heartbeat_interval_ms: u64,
    /// `controller.quorum.election.timeout.ms`.
    pub election_timeout_ms: u64,
    /// `default.replication.factor`; unset = min(3, live brokers).
    pub default_replication_factor: Option<i16>,
    /// `offsets.topic.replication.factor`.
    pub offsets_topic_replication_factor: i16,
    /// Spate: how long SIGTERM waits for leaderships to move before exiting.
    pub controlled_shutdown_timeout_ms: u64,
    /// `replica.lag.time.max.ms`.
    pub replica_lag_time_max_ms: u64,
    /// `replica.fetch.max.bytes`.
    pub replica_fetch_max_bytes: u32,
    /// `replica.fetch.response.max.bytes`.
    pub replica_fetch_response_max_bytes: u32,
    /// `replica.fetch.wait.max.ms`.
    pub replica_fetch_wait_max_ms: u64,
    /// `leader.replication.throttled.rate` (KIP-73): bytes per second a leader sends to
    /// followers that are catching up (not in the ISR); `None` = unthrottled.
    pub leader_replication_throttled_rate: Option<u64>,
    /// `auto.leader.rebalance.enable`.
    pub auto_leader_rebalance_enable: bool,
    /// `leader.imbalance.check.interval.seconds`, in ms.
    pub leader_imbalance_check_interval_ms: u64,
    /// `leader.imbalance.per.broker.percentage`.
    pub leader_imbalance_per_broker_percentage: u32,
    /// `min.insync.replicas`: the broker default for topics that do not set it.
    pub min_insync_replicas: i16,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            node_id: 0,
            cluster_id: None,
            listen: None,
            advertised_listen: None,
            voters: None,
            roles: Roles::BOTH,
            rack: None,
            tls: None,
            session_timeout_ms: SESSION_TIMEOUT_MS_DEFAULT,
            heartbeat_interval_ms: HEARTBEAT_INTERVAL_MS_DEFAULT,
            election_timeout_ms: ELECTION_TIMEOUT_MS_DEFAULT,
            default_replication_factor: None,
            offsets_topic_replication_factor: OFFSETS_TOPIC_REPLICATION_FACTOR_DEFAULT,
            controlled_shutdown_timeout_ms: CONTROLLED_SHUTDOWN_TIMEOUT_MS_DEFAULT,
            replica_lag_time_max_ms: REPLICA_LAG_TIME_MAX_MS_DEFAULT,
            replica_fetch_max_bytes: REPLICA_FETCH_MAX_BYTES_DEFAULT,
            replica_fetch_response_max_bytes: REPLICA_FETCH_RESPONSE_MAX_BYTES_DEFAULT,
            replica_fetch_wait_max_ms: REPLICA_FETCH_WAIT_MAX_MS_DEFAULT,
            leader_replication_throttled_rate: None,
            auto_leader_rebalance_enable: true,
            leader_imbalance_check_interval_ms: LEADER_IMBALANCE_CHECK_INTERVAL_MS_DEFAULT,
            leader_imbalance_per_broker_percentage: LEADER_IMBALANCE_PER_BROKER_PERCENTAGE_DEFAULT,
            min_insync_replicas: 1,
        }
    }
}

impl ClusterConfig {
    /// The quorum's voters: the configured list, or this node alone.
    pub fn voters(&self) -> Vec<Voter> {
        match &self.voters {
            Some(voters) => voters.clone(),
            None => vec![Voter {
                node_id: self.node_id,
                address: self.advertised_address().unwrap_or_default(),
            }],
        }
    }

    /// The address peers dial for this node, if it listens at all.
    pub fn advertised_address(&self) -> Option<String> {
        if let Some(address) = &self.advertised_listen {
            return Some(address.clone());
        }
        self.listen.map(|addr| addr.to_string())
    }

    /// Whether this node talks to other nodes (and so needs a listener and certificates).
    pub fn is_multi_node(&self) -> bool {
        !self.roles.controller || self.voters().iter().any(|v| v.node_id != self.node_id)
    }

    /// Checks the settings against each other, with messages that say what to change.
    pub fn validate(&self) -> Result<(), String> {
        if self.node_id < 0 {
            return Err(format!("node.id {} must be 0 or more", self.node_id));
        }
        if let Some(id) = &self.cluster_id {
            spate_cluster::image::check_cluster_id(id)?;
        }
        if let Some(rack) = &self.rack
            && (rack.is_empty() || rack.len() > spate_cluster::image::NAME_BYTES_MAX)
        {
            return Err("broker.rack must be 1 to 255 characters".to_owned());
        }
        let voters = self.voters();
        let is_voter = voters.iter().any(|v| v.node_id == self.node_id);
        if self.roles.controller && !is_voter {
            return Err(format!(
                "node {} has the controller role but is not in controller.quorum.voters ({}); add it or use --roles broker",
                self.node_id,
                voters_text(&voters)
            ));
        }
        if !self.roles.controller && is_voter {
            return Err(format!(
                "node {} is in controller.quorum.voters but does not have the controller role; use --roles broker,controller",
                self.node_id
            ));
        }
        if let (Some(voters), Some(listen)) = (&self.voters, self.listen)
            && let Some(me) = voters.iter().find(|v| v.node_id == self.node_id)
        {
            let matches = match &self.advertised_listen {
                Some(advertised) => *advertised == me.address,
                None => {
                    me.address
                        .rsplit_once(':')
                        .and_then(|(_, port)| port.parse::<u16>().ok())
                        == Some(listen.port())
                }
            };
            if !matches {
                return Err(format!(
                    "controller.quorum.voters gives node {} the address {}, but it listens on {} (cluster.advertised.listen {}); make them agree, or the other voters cannot reach it",
                    self.node_id,
                    me.address,
                    listen,
                    self.advertised_listen.as_deref().unwrap_or("unset")
                ));
            }
        }
        if self.is_multi_node() {
            if self.listen.is_none() {
                return Err(
                    "a node of a multi-node cluster needs --cluster-listen HOST:PORT (UDP, for controller and replication traffic)"
                        .to_owned(),
                );
            }
            if self.tls.is_none() {
                return Err(
                    "cluster traffic is mutually authenticated: give --cluster-ca, --cluster-cert and --cluster-key (make them with `spate cluster ca` and `spate cluster cert`)"
                        .to_owned(),
                );
            }
        }
        if self.session_timeout_ms == 0 || self.heartbeat_interval_ms == 0 {
            return Err(
                "broker.session.timeout.ms and broker.heartbeat.interval.ms must be above 0"
                    .to_owned(),
            );
        }
        if self.heartbeat_interval_ms >= self.session_timeout_ms {
            return Err(format!(
                "broker.heartbeat.interval.ms ({}) must be below broker.session.timeout.ms ({})",
                self.heartbeat_interval_ms, self.session_timeout_ms
            ));
        }
        if self.election_timeout_ms < ELECTION_TIMEOUT_MS_MIN {
            return Err(format!(
                "controller.quorum.election.timeout.ms must be at least {ELECTION_TIMEOUT_MS_MIN}"
            ));
        }
        if self.default_replication_factor.is_some_and(|rf| rf < 1) {
            return Err("default.replication.factor must be at least 1".to_owned());
        }
        if self.offsets_topic_replication_factor < 1 {
            return Err("offsets.topic.replication.factor must be at least 1".to_owned());
        }
        if self.min_insync_replicas < 1 {
            return Err("min.insync.replicas must be at least 1".to_owned());
        }
        if self.replica_lag_time_max_ms == 0 || self.replica_fetch_wait_max_ms == 0 {
            return Err(
                "replica.lag.time.max.ms and replica.fetch.wait.max.ms must be above 0".to_owned(),
            );
        }
        if self.replica_fetch_max_bytes < 1024 || self.replica_fetch_response_max_bytes < 1024 {
            return Err(
                "replica.fetch.max.bytes and replica.fetch.response.max.bytes must be at least 1024"
                    .to_owned(),
            );
        }
        if self.leader_replication_throttled_rate == Some(0) {
            return Err(
                "leader.replication.throttled.rate must be above 0 (leave it unset for no throttle)"
                    .to_owned(),
            );
        }
        if self.leader_imbalance_check_interval_ms == 0
            || self.leader_imbalance_per_broker_percentage > 100
        {
            return Err("leader.imbalance.check.interval.seconds must be above 0 and leader.imbalance.per.broker.percentage at most 100".to_owned());
        }
        Ok(())
    }
}

fn voters_text(voters: &[Voter]) -> String {
    voters
        .iter()
        .map(|v| format!("{}@{}", v.node_id, v.address))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voters_parse_like_kafka_and_bad_ones_are_explained() {
        let voters = parse_voters("1@127.0.0.1:9093, 2@node2:9093,3@[::1]:9093").unwrap();
        assert_eq!(voters.len(), 3);
        assert_eq!(voters[1].node_id, 2);
        assert_eq!(voters[1].address, "node2:9093");
        for bad in [
            "",
            "1",
            "x@h:1",
            "-1@h:1",
            "1@h",
            "1@h:0",
            "1@h:1,1@h:2",
            "1@:5",
        ] {
            assert!(parse_voters(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn roles_parse_in_any_order() {
        assert_eq!(Roles::parse("controller,broker").unwrap(), Roles::BOTH);
        assert!(Roles::parse("broker").unwrap().broker);
        assert!(!Roles::parse("broker").unwrap().controller);
        assert!(Roles::parse("").is_err());
        assert!(Roles::parse("broker,router").is_err());
    }

    #[test]
    fn the_default_is_a_single_node_with_no_listener() {
        let config = ClusterConfig::default();
        assert!(!config.is_multi_node());
        assert!(config.validate().is_ok());
        assert_eq!(config.voters().len(), 1);
    }

    #[test]
    fn a_multi_node_cluster_needs_a_listener_and_certificates() {
        let mut config = ClusterConfig {
            node_id: 1,
            voters: Some(parse_voters("1@127.0.0.1:9093,2@127.0.0.1:9094").unwrap()),
            ..ClusterConfig::default()
        };
        assert!(config.validate().unwrap_err().contains("--cluster-listen"));
        config.listen = Some("127.0.0.1:9193".parse().unwrap());
        assert!(
            config
                .validate()
                .unwrap_err()
                .contains("listens on 127.0.0.1:9193")
        );
        config.listen = Some("127.0.0.1:9093".parse().unwrap());
        assert!(config.validate().unwrap_err().contains("--cluster-ca"));
        config.tls = Some(TlsPaths {
            ca: "ca.pem".into(),
            cert: "node-1.pem".into(),
            key: "node-1.key".into(),
        });
        assert!(config.validate().is_ok());
        config.node_id = 5;
        assert!(
            config
                .validate()
                .unwrap_err()
                .contains("not in controller.quorum.voters")
        );
        config.roles = Roles::parse("broker").unwrap();
        assert!(config.validate().is_ok());
    }
}
