//! Per-partition log settings, with Kafka's names and defaults.

use spate_protocol::records::TimestampType;

/// When appended bytes are forced to stable storage.
///
/// Spate is durable by default: `Always` fdatasyncs before an append is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FlushPolicy {
    /// fdatasync before the append future resolves (and before consumers can see the data).
    #[default]
    Always,
    /// fdatasync on a timer; an ack means "written to the page cache".
    IntervalMs(u64),
    /// Leave it to the OS (and, later, to replication).
    Never,
}

/// Settings of one partition's log. Field names follow the Kafka topic config they mirror.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// `segment.bytes`: roll to a new segment once the active one reaches this size.
    pub segment_bytes: u64,
    /// `segment.ms`: roll once the active segment's first batch is this old.
    pub segment_ms: i64,
    /// `retention.bytes`: delete the oldest segments while the log is larger; -1 = unlimited.
    pub retention_bytes: i64,
    /// `retention.ms`: delete segments whose newest record is older; -1 = unlimited.
    pub retention_ms: i64,
    /// `max.message.bytes`: the largest batch (after compression) a producer may append.
    pub max_message_bytes: u32,
    /// `message.timestamp.type`: whether the broker overwrites timestamps on append.
    pub message_timestamp_type: TimestampType,
    /// `index.interval.bytes`: how many log bytes between sparse index entries.
    pub index_interval_bytes: u32,
    /// `flush` (Spate): see [`FlushPolicy`].
    pub flush: FlushPolicy,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 60 * 60 * 1000,
            retention_bytes: -1,
            retention_ms: 7 * 24 * 60 * 60 * 1000,
            max_message_bytes: 1_048_588,
            message_timestamp_type: TimestampType::CreateTime,
            index_interval_bytes: 4096,
            flush: FlushPolicy::Always,
        }
    }
}
