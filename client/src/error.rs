//! The client's one error type.
//!
//! Every variant names the broker, topic or partition involved and, where the remedy is not
//! obvious, says what to do: these messages end up in operators' terminals and logs, usually
//! far from the code that produced them. Errors are `Clone` because one failure (a lost
//! connection, a rejected batch) completes many waiting futures at once.

use spate_protocol::ErrorCode;

/// What went wrong talking to a Kafka-compatible cluster.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error(
        "cannot connect to broker {broker}: {reason}; check that the broker is running and \
         that the address is reachable from here"
    )]
    Connect { broker: String, reason: String },
    #[error("no bootstrap broker of [{bootstrap}] answered: {last_error}")]
    NoBrokerReachable {
        bootstrap: String,
        last_error: String,
    },
    #[error("connection to broker {broker} lost: {reason}")]
    ConnectionLost { broker: String, reason: String },
    #[error(
        "{api} request to broker {broker} got no answer within {timeout_ms} ms \
         (request.timeout.ms); the connection was closed, check the broker's health and load"
    )]
    Timeout {
        broker: String,
        api: &'static str,
        timeout_ms: u64,
    },
    #[error(
        "broker {broker} serves {api} at versions {broker_min}..={broker_max}, this client \
         at {client_min}..={client_max}; no common version, upgrade the older side"
    )]
    UnsupportedVersion {
        broker: String,
        api: &'static str,
        broker_min: i16,
        broker_max: i16,
        client_min: i16,
        client_max: i16,
    },
    #[error(
        "broker {broker} does not serve {api} at all; it is not Kafka-compatible enough for this call"
    )]
    ApiNotServed { broker: String, api: &'static str },
    #[error("malformed data from broker {broker}: {reason}")]
    Protocol { broker: String, reason: String },
    #[error("could not encode {api} for broker {broker}: {reason}")]
    Encode {
        broker: String,
        api: &'static str,
        reason: String,
    },
    #[error("{what}: broker {broker} answered {code}{}{}", message_suffix(.message), hint_suffix(*.code))]
    Broker {
        broker: String,
        what: String,
        code: ErrorCode,
        message: Option<String>,
    },
    #[error("topic {topic}: {code}{}", hint_suffix(*.code))]
    Topic { topic: String, code: ErrorCode },
    #[error("partition {topic}-{partition}: {code}{}", hint_suffix(*.code))]
    Partition {
        topic: String,
        partition: i32,
        code: ErrorCode,
    },
    #[error("topic {topic} has no partition {partition} (it has {partition_count})")]
    NoSuchPartition {
        topic: String,
        partition: i32,
        partition_count: usize,
    },
    #[error(
        "record of {size_bytes} B for topic {topic} exceeds {limit_name} ({limit_bytes} B); \
         raise {limit_name} or send smaller records"
    )]
    RecordTooLarge {
        topic: String,
        size_bytes: usize,
        limit_name: &'static str,
        limit_bytes: usize,
    },
    #[error(
        "no room in buffer.memory ({buffer_memory_bytes} B) for a record to {topic} after \
         waiting {waited_ms} ms (max.block.ms); the brokers are not keeping up: check them, \
         or raise buffer.memory"
    )]
    BufferExhausted {
        topic: String,
        waited_ms: u64,
        buffer_memory_bytes: usize,
    },
    #[error(
        "record for {topic}-{partition} not delivered within delivery.timeout.ms \
         ({timeout_ms} ms); last error: {last_error}"
    )]
    DeliveryTimeout {
        topic: String,
        partition: i32,
        timeout_ms: u64,
        last_error: String,
    },
    #[error(
        "offset {offset} is out of range for {topic}-{partition} and auto.offset.reset is \
         none; seek to a valid offset (or to the beginning/end) before polling again"
    )]
    OffsetOutOfRange {
        topic: String,
        partition: i32,
        offset: i64,
    },
    #[error(
        "{topic}-{partition} has no position and auto.offset.reset is none; seek it (to an \
         offset, the beginning or the end) before polling"
    )]
    NoOffset { topic: String, partition: i32 },
    #[error("corrupt records from {topic}-{partition} at offset {offset}: {reason}")]
    CorruptRecords {
        topic: String,
        partition: i32,
        offset: i64,
        reason: String,
    },
    #[error("{topic}-{partition} is not assigned to this consumer; assign() it first")]
    NotAssigned { topic: String, partition: i32 },
    #[error("the {0} is closed")]
    Closed(&'static str),
}

fn message_suffix(message: &Option<String>) -> String {
    match message {
        Some(text) if !text.is_empty() => format!(" ({text})"),
        _ => String::new(),
    }
}

fn hint_suffix(code: ErrorCode) -> String {
    match hint(code) {
        Some(text) => format!("; {text}"),
        None => String::new(),
    }
}

/// What an operator can do about a broker error code, for the codes a client meets in
/// practice. `None` where Kafka's own message already says it.
pub fn hint(code: ErrorCode) -> Option<&'static str> {
    Some(match code {
        ErrorCode::UnknownTopicOrPartition => {
            "create the topic first, or enable auto.create.topics.enable on the broker"
        }
        ErrorCode::TopicAlreadyExists => "choose another name, or delete the topic first",
        ErrorCode::InvalidPartitions => "partition counts must be positive and may only grow",
        ErrorCode::InvalidReplicationFactor => {
            "the replication factor cannot exceed the number of brokers"
        }
        ErrorCode::NotLeaderOrFollower | ErrorCode::LeaderNotAvailable => {
            "leadership is moving; the client refreshes metadata and retries"
        }
        ErrorCode::MessageTooLarge | ErrorCode::RecordListTooLarge => {
            "raise max.message.bytes on the topic, or send smaller records"
        }
        ErrorCode::InvalidConfig => "check the config name and value against the broker's docs",
        ErrorCode::PolicyViolation => "the broker's policy refused it; ask its operator",
        ErrorCode::GroupIdNotFound => "check the group id (list groups to see existing ones)",
        ErrorCode::NonEmptyGroup => "stop the group's consumers before deleting it",
        ErrorCode::UnsupportedCompressionType => {
            "the broker does not accept this codec; choose another compression.type"
        }
        _ => return None,
    })
}

impl Error {
    /// Whether retrying the same operation later may succeed: connection trouble, timeouts
    /// and the error codes Kafka marks retriable.
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Connect { .. }
            | Error::NoBrokerReachable { .. }
            | Error::ConnectionLost { .. }
            | Error::Timeout { .. } => true,
            Error::Broker { code, .. }
            | Error::Topic { code, .. }
            | Error::Partition { code, .. } => code.is_retriable(),
            _ => false,
        }
    }

    /// Whether this error means the client's view of leaders or topics is stale.
    pub fn needs_metadata_refresh(&self) -> bool {
        match self {
            Error::Connect { .. } | Error::ConnectionLost { .. } | Error::Timeout { .. } => true,
            Error::Broker { code, .. }
            | Error::Topic { code, .. }
            | Error::Partition { code, .. } => code_needs_metadata_refresh(*code),
            _ => false,
        }
    }
}

/// The codes after which Kafka's clients refresh metadata before retrying: the leader moved
/// or the topic's shape changed.
pub fn code_needs_metadata_refresh(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::NotLeaderOrFollower
            | ErrorCode::LeaderNotAvailable
            | ErrorCode::UnknownTopicOrPartition
            | ErrorCode::UnknownTopicId
            | ErrorCode::FencedLeaderEpoch
            | ErrorCode::UnknownLeaderEpoch
            | ErrorCode::NotController
            | ErrorCode::InconsistentTopicId
            | ErrorCode::OffsetNotAvailable
    )
}

/// The code for a wire value; undefined values read as `UNKNOWN_SERVER_ERROR`, as in Kafka's
/// clients.
pub fn error_code(code: i16) -> ErrorCode {
    ErrorCode::from_i16(code).unwrap_or(ErrorCode::UnknownServerError)
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
