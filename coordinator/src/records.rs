//! The `__consumer_offsets` record format: Kafka's keys and values, byte for byte.
//!
//! Spate stores committed offsets and group metadata as records of an internal topic, as Kafka
//! does. Writing Kafka's own layouts (rather than a private one) means Kafka's tooling — the
//! `kafka-console-consumer` offsets formatter, `kafka-dump-log --offsets-decoder`, Cruise
//! Control — reads Spate's topic and agrees with the coordinator about what it holds.
//!
//! A key starts with a big-endian `int16` that is really the record type: 0 and 1 are offset
//! commits (one layout), 2 is group metadata. A value starts with its own `int16` version.
//! Spate writes offset keys v1, group keys v2, offset values v3 (v1 when an explicit expiry
//! is set, the only version that carries one) and group values v3, and reads every version
//! Kafka 4.0 can leave behind, including the flexible v4 values. Newer value versions are
//! rejected: KIP-915 made a version bump the signal of an incompatible change.
//!
//! What this module does not do: decide which records to write (the coordinator), or read
//! the record types Kafka 4.0 adds for KIP-848 and share groups (key versions 3 and up),
//! which Spate never writes; those come back as [`RecordError`] for the caller to skip.

mod group_value;
mod offset_value;
pub(crate) mod primitives;
#[cfg(test)]
mod tests;

use bytes::{Bytes, BytesMut};
use spate_protocol::wire::{read_i16, read_i32};

use primitives::{check_string, ensure_consumed, put_string, read_string_limited, record_error};

/// A record of `__consumer_offsets`: a committed offset, or a group's metadata. `value`
/// `None` is a tombstone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Offset {
        group: String,
        topic: String,
        partition: i32,
        value: Option<OffsetValue>,
    },
    Group {
        group: String,
        value: Option<GroupValue>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetValue {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
    /// -1: none.
    pub expire_timestamp_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub current_state_timestamp_ms: i64,
    pub members: Vec<MemberValue>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberValue {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// Why a stored record could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("{0}")]
    Malformed(String),
}

/// The longest string a record can hold: Kafka prefixes strings with an `int16` length and
/// rejects longer ones even in the compact (flexible) encoding.
pub const STRING_LENGTH_MAX_BYTES: usize = i16::MAX as usize;

/// Key version (record type) of an offset commit as Kafka wrote it before 0.10.1; same layout
/// as [`OFFSET_KEY_VERSION`].
const OFFSET_KEY_VERSION_LEGACY: i16 = 0;
/// Key version Spate writes for offset commits.
const OFFSET_KEY_VERSION: i16 = 1;
/// Key version (record type) of group metadata.
const GROUP_KEY_VERSION: i16 = 2;

impl Record {
    pub fn group_id(&self) -> &str {
        match self {
            Record::Offset { group, .. } | Record::Group { group, .. } => group,
        }
    }

    /// The key, in Kafka's layout: offset keys v1, group keys v2.
    ///
    /// Strings longer than [`STRING_LENGTH_MAX_BYTES`] cannot be stored and are cut at a
    /// character boundary; [`Record::check_encodable`] lets the caller refuse them first.
    pub fn encode_key(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(64);
        match self {
            Record::Offset {
                group,
                topic,
                partition,
                ..
            } => {
                out.extend_from_slice(&OFFSET_KEY_VERSION.to_be_bytes());
                put_string(&mut out, false, group);
                put_string(&mut out, false, topic);
                out.extend_from_slice(&partition.to_be_bytes());
            }
            Record::Group { group, .. } => {
                out.extend_from_slice(&GROUP_KEY_VERSION.to_be_bytes());
                put_string(&mut out, false, group);
            }
        }
        out.freeze()
    }

    /// The value, or `None` for a tombstone. Offset values are v3, or v1 when
    /// `expire_timestamp_ms` is set (v1 has no leader epoch, so that is lost, as in Kafka);
    /// group values are v3.
    pub fn encode_value(&self) -> Option<Bytes> {
        let mut out = BytesMut::with_capacity(128);
        match self {
            Record::Offset { value, .. } => {
                let value = value.as_ref()?;
                offset_value::write(&mut out, offset_value::version_for(value), value);
            }
            Record::Group { value, .. } => {
                let value = value.as_ref()?;
                group_value::write(&mut out, group_value::VERSION_WRITTEN, value);
            }
        }
        Some(out.freeze())
    }

    /// Reads a record from its key and value (`None`: tombstone).
    ///
    /// Safe on hostile bytes: every length is checked against what remains before anything
    /// is allocated, and bytes left over after the last field of a known version are an
    /// error, since Spate's own writer never leaves any.
    pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<Record, RecordError> {
        let mut key_buf = Bytes::copy_from_slice(key);
        let key_version =
            read_i16(&mut key_buf, "key.version").map_err(|e| record_error("key", e))?;
        match key_version {
            OFFSET_KEY_VERSION_LEGACY | OFFSET_KEY_VERSION => {
                let context = "OffsetCommitKey";
                let group = read_string_limited(&mut key_buf, false, "OffsetCommitKey.group")
                    .map_err(|e| record_error(context, e))?;
                let topic = read_string_limited(&mut key_buf, false, "OffsetCommitKey.topic")
                    .map_err(|e| record_error(context, e))?;
                let partition = read_i32(&mut key_buf, "OffsetCommitKey.partition")
                    .map_err(|e| record_error(context, e))?;
                ensure_consumed(&key_buf, context)?;
                let value = value.map(offset_value::decode).transpose()?;
                Ok(Record::Offset {
                    group,
                    topic,
                    partition,
                    value,
                })
            }
            GROUP_KEY_VERSION => {
                let context = "GroupMetadataKey";
                let group = read_string_limited(&mut key_buf, false, "GroupMetadataKey.group")
                    .map_err(|e| record_error(context, e))?;
                ensure_consumed(&key_buf, context)?;
                let value = value.map(group_value::decode).transpose()?;
                Ok(Record::Group { group, value })
            }
            other => Err(RecordError::Malformed(format!(
                "key: record type (key version) {other} is not an offset commit (0, 1) or \
                 group metadata (2)"
            ))),
        }
    }

    /// Whether every field fits Kafka's layout (strings up to [`STRING_LENGTH_MAX_BYTES`],
    /// byte fields up to `i32::MAX`), so that [`Record::encode_key`] and
    /// [`Record::encode_value`] store it unchanged. The error names the field.
    pub fn check_encodable(&self) -> Result<(), RecordError> {
        check_string("group", self.group_id())?;
        match self {
            Record::Offset { topic, value, .. } => {
                check_string("topic", topic)?;
                if let Some(value) = value {
                    check_string("metadata", &value.metadata)?;
                }
            }
            Record::Group { value, .. } => {
                if let Some(value) = value {
                    group_value::check_encodable(value)?;
                }
            }
        }
        Ok(())
    }
}

/// The `__consumer_offsets` partition that owns `group_id`: Kafka's
/// `Utils.abs(groupId.hashCode()) % partitions`, so tools that compute it agree.
///
/// `hashCode` is Java's: `s[0]*31^(n-1) + … + s[n-1]` over UTF-16 code units, wrapping in
/// `i32`. `Utils.abs` maps `i32::MIN` to 0 and is `Math.abs` otherwise. A non-positive
/// partition count has no answer; 0 keeps the caller's indexing in range.
pub fn partition_for(group_id: &str, partitions: i32) -> i32 {
    if partitions <= 0 {
        return 0;
    }
    let hash = java_string_hash(group_id);
    let positive = if hash == i32::MIN { 0 } else { hash.abs() };
    positive % partitions
}

/// Java's `String.hashCode()`.
fn java_string_hash(text: &str) -> i32 {
    text.encode_utf16().fold(0i32, |hash, unit| {
        hash.wrapping_mul(31).wrapping_add(i32::from(unit))
    })
}
