//! Reading the embedded consumer protocol (ConsumerProtocolSubscription and
//! ConsumerProtocolAssignment) that members of `protocol_type = "consumer"` groups carry.
//!
//! The broker treats JoinGroup metadata and SyncGroup assignments as opaque bytes; it only
//! looks inside to describe a group (which topics it reads, which partitions each member
//! holds). So these readers answer `None` rather than an error: bytes that are not a
//! consumer subscription are a fact about the client, not a failure of the broker.
//!
//! Layouts (`ConsumerProtocol*.json`, never flexible):
//! - subscription: `int16` version; topics `[string]`; userData nullable bytes; v1+
//!   ownedPartitions `[{topic, [int32]}]`; v2+ generationId `int32`; v3+ rackId nullable string.
//! - assignment: `int16` version; assignedPartitions `[{topic, [int32]}]`; userData nullable
//!   bytes. All versions share this layout.
//!
//! As in Kafka's clients, a version newer than 3 is read with the v3 layout and anything after
//! it is ignored: the schema promises new versions only append fields. Bytes left after the
//! last field of a known version mean the bytes are not what their version says: `None`.

use bytes::Bytes;
use spate_protocol::DecodeError;
use spate_protocol::wire::{read_array, read_i16, read_i32, read_nullable_bytes};

use crate::records::primitives::{read_nullable_string_limited, read_string_limited};

/// The newest version of either structure in Kafka 4.0.
const VERSION_MAX: i16 = 3;

/// The fewest bytes a `{topic, [int32]}` entry occupies: two length prefixes.
const TOPIC_PARTITIONS_SIZE_BYTES_MIN: usize = 2 + 4;

/// The topics a consumer member subscribes to, from its JoinGroup protocol metadata.
/// `None` if the bytes are not a consumer subscription.
pub fn subscribed_topics(metadata: &[u8]) -> Option<Vec<String>> {
    let mut buf = Bytes::copy_from_slice(metadata);
    let version = read_version(&mut buf)?;
    let topics = read_array(&mut buf, false, "Subscription.topics", 2, |buf| {
        read_string_limited(buf, false, "Subscription.topics")
    })
    .ok()?;
    // The remaining fields are read only to check the bytes are what the version says.
    read_nullable_bytes(&mut buf, false, "Subscription.userData").ok()?;
    if version >= 1 {
        read_topic_partitions(&mut buf, "Subscription.ownedPartitions").ok()?;
    }
    if version >= 2 {
        read_i32(&mut buf, "Subscription.generationId").ok()?;
    }
    if version >= 3 {
        read_nullable_string_limited(&mut buf, false, "Subscription.rackId").ok()?;
    }
    fully_read(&buf, version).then_some(topics)
}

/// The partitions in a consumer assignment, as (topic, partitions).
///
/// Empty bytes are an empty assignment: that is what a group holds for a member before
/// the leader's SyncGroup, and what some clients send for a member with nothing assigned.
pub fn assigned_partitions(assignment: &[u8]) -> Option<Vec<(String, Vec<i32>)>> {
    if assignment.is_empty() {
        return Some(Vec::new());
    }
    let mut buf = Bytes::copy_from_slice(assignment);
    let version = read_version(&mut buf)?;
    let partitions = read_topic_partitions(&mut buf, "Assignment.assignedPartitions").ok()?;
    read_nullable_bytes(&mut buf, false, "Assignment.userData").ok()?;
    fully_read(&buf, version).then_some(partitions)
}

/// Reads the version prefix; negative versions do not exist.
fn read_version(buf: &mut Bytes) -> Option<i16> {
    read_i16(buf, "version").ok().filter(|v| *v >= 0)
}

/// Whether nothing is left that the version should not have: trailing bytes are allowed
/// only after a version newer than this reader knows.
fn fully_read(buf: &Bytes, version: i16) -> bool {
    buf.is_empty() || version > VERSION_MAX
}

fn read_topic_partitions(
    buf: &mut Bytes,
    field: &'static str,
) -> Result<Vec<(String, Vec<i32>)>, DecodeError> {
    read_array(buf, false, field, TOPIC_PARTITIONS_SIZE_BYTES_MIN, |buf| {
        let topic = read_string_limited(buf, false, "TopicPartition.topic")?;
        let partitions = read_array(buf, false, "TopicPartition.partitions", 4, |buf| {
            read_i32(buf, "TopicPartition.partitions")
        })?;
        Ok((topic, partitions))
    })
}

#[cfg(test)]
mod tests;
