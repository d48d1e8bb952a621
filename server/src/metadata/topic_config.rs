//! Topic configs: the Kafka names Spate honours, their validation, and how they map onto the
//! engine's [`LogConfig`].
//!
//! A topic stores only its overrides (name → string value, exactly as a client sent them); the
//! effective [`LogConfig`] is the broker defaults with those overrides applied. Keeping the
//! strings means DescribeConfigs answers with what the user set, and a later change of a
//! broker default reaches every topic that did not override it, as in Kafka.

use std::collections::BTreeMap;

use spate_engine::{FlushPolicy, LogConfig};
use spate_protocol::records::TimestampType;

/// Why a topic config was refused; handlers turn this into `INVALID_CONFIG` with this text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("unknown topic config '{0}': Spate supports {SUPPORTED}")]
    Unknown(String),
    #[error("invalid value '{value}' for '{name}': {reason}")]
    InvalidValue {
        name: String,
        value: String,
        reason: &'static str,
    },
    #[error("'{name}={value}' is not supported yet: {reason}")]
    Unsupported {
        name: String,
        value: String,
        reason: &'static str,
    },
}

const SUPPORTED: &str = "retention.ms, retention.bytes, segment.bytes, segment.ms, \
     max.message.bytes, message.timestamp.type, index.interval.bytes, cleanup.policy, flush, \
     min.insync.replicas, unclean.leader.election.enable";

/// Kafka's `min.insync.replicas` default.
pub const MIN_INSYNC_REPLICAS_DEFAULT: i64 = 1;

/// Kafka's lower bound for `segment.bytes`: a segment must hold at least a batch header.
const SEGMENT_BYTES_MIN: i64 = 14;
/// Kafka's lower bound for `index.interval.bytes`: one index entry's size.
const INDEX_INTERVAL_BYTES_MIN: i64 = 4;

/// One supported topic config: its Kafka name and the broker-default value, rendered the way
/// DescribeConfigs reports it.
#[derive(Debug, Clone, Copy)]
pub struct ConfigKey {
    pub name: &'static str,
    /// What the key means, for DescribeConfigs documentation (v3+).
    pub doc: &'static str,
}

/// Every topic config Spate honours, in the order DescribeConfigs lists them.
pub const TOPIC_CONFIG_KEYS: &[ConfigKey] = &[
    ConfigKey {
        name: "cleanup.policy",
        doc: "Only 'delete' (retention by time and size) is supported; 'compact' is not yet.",
    },
    ConfigKey {
        name: "flush",
        doc: "Spate: 'always' fdatasyncs before acking, 'never' leaves it to the OS, a number \
              syncs every that many ms.",
    },
    ConfigKey {
        name: "index.interval.bytes",
        doc: "Log bytes between sparse offset index entries.",
    },
    ConfigKey {
        name: "max.message.bytes",
        doc: "Largest record batch (after compression) a producer may append.",
    },
    ConfigKey {
        name: "min.insync.replicas",
        doc: "With acks=all, the in-sync replicas a write needs before it is acknowledged.",
    },
    ConfigKey {
        name: "message.timestamp.type",
        doc: "CreateTime keeps the producer's timestamps; LogAppendTime stamps on append.",
    },
    ConfigKey {
        name: "retention.bytes",
        doc: "Delete the oldest segments while a partition is larger than this; -1 = unlimited.",
    },
    ConfigKey {
        name: "retention.ms",
        doc: "Delete segments whose newest record is older than this; -1 = unlimited.",
    },
    ConfigKey {
        name: "segment.bytes",
        doc: "Roll to a new segment once the active one reaches this size.",
    },
    ConfigKey {
        name: "segment.ms",
        doc: "Roll to a new segment once the active one is this old.",
    },
    ConfigKey {
        name: "unclean.leader.election.enable",
        doc: "Elect a replica outside the ISR when no ISR member is live (loses data); only \
              false is supported.",
    },
];

/// Whether `name` is a topic config Spate knows.
pub fn is_known(name: &str) -> bool {
    TOPIC_CONFIG_KEYS.iter().any(|k| k.name == name)
}

/// Applies one `name=value` override to `config`, validating it.
pub fn apply(config: &mut LogConfig, name: &str, value: &str) -> Result<(), ConfigError> {
    let invalid = |reason| ConfigError::InvalidValue {
        name: name.to_owned(),
        value: value.to_owned(),
        reason,
    };
    let int_at_least = |min: i64| -> Result<i64, ConfigError> {
        let n: i64 = value
            .trim()
            .parse()
            .map_err(|_| invalid("not an integer"))?;
        if n < min {
            return Err(invalid("below the minimum"));
        }
        Ok(n)
    };
    match name {
        "retention.ms" => config.retention_ms = int_at_least(-1)?,
        "retention.bytes" => config.retention_bytes = int_at_least(-1)?,
        "segment.ms" => config.segment_ms = int_at_least(1)?,
        "segment.bytes" => {
            let n = int_at_least(SEGMENT_BYTES_MIN)?;
            if n > i64::from(i32::MAX) {
                return Err(invalid("above the maximum (2147483647)"));
            }
            config.segment_bytes = n.unsigned_abs();
        }
        "max.message.bytes" => {
            let n = int_at_least(0)?;
            if n > i64::from(i32::MAX) {
                return Err(invalid("above the maximum (2147483647)"));
            }
            config.max_message_bytes =
                u32::try_from(n).map_err(|_| invalid("above the maximum (2147483647)"))?;
        }
        "index.interval.bytes" => {
            let n = int_at_least(INDEX_INTERVAL_BYTES_MIN)?;
            config.index_interval_bytes =
                u32::try_from(n).map_err(|_| invalid("above the maximum (4294967295)"))?;
        }
        "message.timestamp.type" => {
            config.message_timestamp_type = match value {
                "CreateTime" => TimestampType::CreateTime,
                "LogAppendTime" => TimestampType::LogAppendTime,
                _ => return Err(invalid("expected CreateTime or LogAppendTime")),
            }
        }
        "cleanup.policy" => match value {
            "delete" => {}
            "compact" | "compact,delete" | "delete,compact" => {
                return Err(ConfigError::Unsupported {
                    name: name.to_owned(),
                    value: value.to_owned(),
                    reason: "only cleanup.policy=delete is implemented",
                });
            }
            _ => return Err(invalid("expected delete")),
        },
        "flush" => config.flush = parse_flush(value).ok_or_else(|| invalid(FLUSH_EXPECTED))?,
        // Replication settings: stored with the topic and enforced by replication, not by
        // the log; validated here so a bad value is refused at the API.
        "min.insync.replicas" => {
            int_at_least(1)?;
        }
        "unclean.leader.election.enable" => match value {
            "false" => {}
            "true" => {
                return Err(ConfigError::Unsupported {
                    name: name.to_owned(),
                    value: value.to_owned(),
                    reason: "leaders are elected from the ISR only",
                });
            }
            _ => return Err(invalid("expected true or false")),
        },
        _ => return Err(ConfigError::Unknown(name.to_owned())),
    }
    Ok(())
}

const FLUSH_EXPECTED: &str = "expected 'always', 'never' or a positive number of milliseconds";

/// Parses the `flush` config: `always`, `never`, or a positive number of milliseconds.
pub fn parse_flush(value: &str) -> Option<FlushPolicy> {
    match value.trim() {
        "always" => Some(FlushPolicy::Always),
        "never" => Some(FlushPolicy::Never),
        ms => match ms.parse::<u64>() {
            Ok(n) if n > 0 => Some(FlushPolicy::IntervalMs(n)),
            _ => None,
        },
    }
}

/// Renders a flush policy the way `parse_flush` reads it.
pub fn flush_to_string(flush: FlushPolicy) -> String {
    match flush {
        FlushPolicy::Always => "always".to_owned(),
        FlushPolicy::Never => "never".to_owned(),
        FlushPolicy::IntervalMs(ms) => ms.to_string(),
    }
}

/// The value of config `name` in an effective `config`, as DescribeConfigs reports it.
pub fn value_of(config: &LogConfig, name: &str) -> Option<String> {
    Some(match name {
        "cleanup.policy" => "delete".to_owned(),
        "flush" => flush_to_string(config.flush),
        "index.interval.bytes" => config.index_interval_bytes.to_string(),
        "max.message.bytes" => config.max_message_bytes.to_string(),
        "message.timestamp.type" => match config.message_timestamp_type {
            TimestampType::CreateTime => "CreateTime".to_owned(),
            TimestampType::LogAppendTime => "LogAppendTime".to_owned(),
        },
        "retention.bytes" => config.retention_bytes.to_string(),
        "retention.ms" => config.retention_ms.to_string(),
        "segment.bytes" => config.segment_bytes.to_string(),
        "segment.ms" => config.segment_ms.to_string(),
        "min.insync.replicas" => MIN_INSYNC_REPLICAS_DEFAULT.to_string(),
        "unclean.leader.election.enable" => "false".to_owned(),
        _ => return None,
    })
}

/// The effective log config of a topic: `defaults` with `overrides` applied.
pub fn effective(
    defaults: &LogConfig,
    overrides: &BTreeMap<String, String>,
) -> Result<LogConfig, ConfigError> {
    let mut config = defaults.clone();
    for (name, value) in overrides {
        apply(&mut config, name, value)?;
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_map_onto_log_config_fields() {
        let overrides = BTreeMap::from([
            ("retention.ms".to_owned(), "1000".to_owned()),
            ("segment.bytes".to_owned(), "1048576".to_owned()),
            (
                "message.timestamp.type".to_owned(),
                "LogAppendTime".to_owned(),
            ),
            ("flush".to_owned(), "250".to_owned()),
        ]);
        let config = effective(&LogConfig::default(), &overrides).unwrap();
        assert_eq!(config.retention_ms, 1000);
        assert_eq!(config.segment_bytes, 1_048_576);
        assert_eq!(config.message_timestamp_type, TimestampType::LogAppendTime);
        assert_eq!(config.flush, FlushPolicy::IntervalMs(250));
    }

    #[test]
    fn unknown_names_and_bad_values_are_refused() {
        let mut config = LogConfig::default();
        assert!(matches!(
            apply(&mut config, "no.such.config", "1"),
            Err(ConfigError::Unknown(_))
        ));
        assert!(matches!(
            apply(&mut config, "retention.ms", "soon"),
            Err(ConfigError::InvalidValue { .. })
        ));
        assert!(matches!(
            apply(&mut config, "segment.bytes", "13"),
            Err(ConfigError::InvalidValue { .. })
        ));
        assert!(matches!(
            apply(&mut config, "flush", "0"),
            Err(ConfigError::InvalidValue { .. })
        ));
        assert_eq!(config, LogConfig::default());
    }

    #[test]
    fn compaction_is_refused_as_unsupported() {
        let mut config = LogConfig::default();
        assert!(matches!(
            apply(&mut config, "cleanup.policy", "compact"),
            Err(ConfigError::Unsupported { .. })
        ));
        assert!(apply(&mut config, "cleanup.policy", "delete").is_ok());
    }

    #[test]
    fn every_key_renders_a_value_that_parses_back() {
        let defaults = LogConfig::default();
        for key in TOPIC_CONFIG_KEYS {
            let value = value_of(&defaults, key.name).unwrap();
            let mut config = defaults.clone();
            apply(&mut config, key.name, &value).unwrap();
            assert_eq!(config, defaults, "{}", key.name);
        }
    }
}
