//! `GroupMetadataValue`, every version Kafka 4.0 knows (`GroupMetadataValue.json`):
//!
//! | version | adds |
//! |---|---|
//! | 0 | protocolType, generation, protocol?, leader?, members: memberId, clientId, clientHost, sessionTimeout, subscription, assignment |
//! | 1 | member rebalanceTimeout (after clientHost) |
//! | 2 | currentStateTimestamp (after leader) |
//! | 3 | member groupInstanceId? (after memberId) |
//! | 4 | flexible: compact strings, bytes and arrays; tagged fields after each struct |
//!
//! Fields a version lacks read as Kafka's defaults: no state timestamp (-1), no instance id,
//! and for v0 a rebalance timeout equal to the session timeout (what v0 brokers used).

use bytes::{Bytes, BytesMut};
use spate_protocol::DecodeError;
use spate_protocol::wire::{
    read_array, read_bytes, read_i16, read_i32, read_i64, read_tagged_fields,
};

use super::primitives::{
    check_bytes, check_string, ensure_consumed, put_array_len, put_bytes, put_no_tagged_fields,
    put_nullable_string, put_string, read_nullable_string_limited, read_string_limited,
    record_error,
};
use super::{GroupValue, MemberValue, RecordError};

/// The version Spate writes: the newest classic one.
pub(super) const VERSION_WRITTEN: i16 = 3;
/// From here on the value is flexible.
const VERSION_FLEXIBLE_MIN: i16 = 4;
/// The newest version Kafka 4.0 writes.
pub(super) const VERSION_MAX: i16 = 4;

/// Writes `value` at `version` (0 to [`VERSION_MAX`]); fields the version lacks are dropped.
pub(super) fn write(out: &mut BytesMut, version: i16, value: &GroupValue) {
    debug_assert!((0..=VERSION_MAX).contains(&version), "version {version}");
    let flexible = version >= VERSION_FLEXIBLE_MIN;
    out.extend_from_slice(&version.to_be_bytes());
    put_string(out, flexible, &value.protocol_type);
    out.extend_from_slice(&value.generation.to_be_bytes());
    put_nullable_string(out, flexible, value.protocol.as_deref());
    put_nullable_string(out, flexible, value.leader.as_deref());
    if version >= 2 {
        out.extend_from_slice(&value.current_state_timestamp_ms.to_be_bytes());
    }
    put_array_len(out, flexible, value.members.len());
    for member in &value.members {
        write_member(out, version, member);
    }
    if flexible {
        put_no_tagged_fields(out);
    }
}

fn write_member(out: &mut BytesMut, version: i16, member: &MemberValue) {
    let flexible = version >= VERSION_FLEXIBLE_MIN;
    put_string(out, flexible, &member.member_id);
    if version >= 3 {
        put_nullable_string(out, flexible, member.group_instance_id.as_deref());
    }
    put_string(out, flexible, &member.client_id);
    put_string(out, flexible, &member.client_host);
    if version >= 1 {
        out.extend_from_slice(&member.rebalance_timeout_ms.to_be_bytes());
    }
    out.extend_from_slice(&member.session_timeout_ms.to_be_bytes());
    put_bytes(out, flexible, &member.subscription);
    put_bytes(out, flexible, &member.assignment);
    if flexible {
        put_no_tagged_fields(out);
    }
}

/// Refuses a value whose strings or byte fields the writer would have to cut.
pub(super) fn check_encodable(value: &GroupValue) -> Result<(), RecordError> {
    check_string("protocolType", &value.protocol_type)?;
    check_string("protocol", value.protocol.as_deref().unwrap_or_default())?;
    check_string("leader", value.leader.as_deref().unwrap_or_default())?;
    for member in &value.members {
        check_string("members.memberId", &member.member_id)?;
        let instance_id = member.group_instance_id.as_deref().unwrap_or_default();
        check_string("members.groupInstanceId", instance_id)?;
        check_string("members.clientId", &member.client_id)?;
        check_string("members.clientHost", &member.client_host)?;
        check_bytes("members.subscription", &member.subscription)?;
        check_bytes("members.assignment", &member.assignment)?;
    }
    Ok(())
}

/// Reads a whole value: version prefix, fields, and nothing after them.
pub(super) fn decode(bytes: &[u8]) -> Result<GroupValue, RecordError> {
    let mut buf = Bytes::copy_from_slice(bytes);
    let version = read_i16(&mut buf, "GroupMetadataValue.version")
        .map_err(|e| record_error("GroupMetadataValue", e))?;
    if !(0..=VERSION_MAX).contains(&version) {
        return Err(RecordError::Malformed(format!(
            "GroupMetadataValue: version {version} is not one Kafka 4.0 writes (0 to {VERSION_MAX})"
        )));
    }
    let context = format!("GroupMetadataValue v{version}");
    let value = read(&mut buf, version).map_err(|e| record_error(&context, e))?;
    ensure_consumed(&buf, &context)?;
    Ok(value)
}

fn read(buf: &mut Bytes, version: i16) -> Result<GroupValue, DecodeError> {
    let flexible = version >= VERSION_FLEXIBLE_MIN;
    let protocol_type = read_string_limited(buf, flexible, "GroupMetadataValue.protocolType")?;
    let generation = read_i32(buf, "GroupMetadataValue.generation")?;
    let protocol = read_nullable_string_limited(buf, flexible, "GroupMetadataValue.protocol")?;
    let leader = read_nullable_string_limited(buf, flexible, "GroupMetadataValue.leader")?;
    let current_state_timestamp_ms = if version >= 2 {
        read_i64(buf, "GroupMetadataValue.currentStateTimestamp")?
    } else {
        -1
    };
    let members = read_array(
        buf,
        flexible,
        "GroupMetadataValue.members",
        member_size_bytes_min(version),
        |buf| read_member(buf, version),
    )?;
    if flexible {
        read_tagged_fields(buf, "GroupMetadataValue.taggedFields", |_, _| Ok(false))?;
    }
    Ok(GroupValue {
        protocol_type,
        generation,
        protocol,
        leader,
        current_state_timestamp_ms,
        members,
    })
}

fn read_member(buf: &mut Bytes, version: i16) -> Result<MemberValue, DecodeError> {
    let flexible = version >= VERSION_FLEXIBLE_MIN;
    let member_id = read_string_limited(buf, flexible, "MemberMetadata.memberId")?;
    let group_instance_id = if version >= 3 {
        read_nullable_string_limited(buf, flexible, "MemberMetadata.groupInstanceId")?
    } else {
        None
    };
    let client_id = read_string_limited(buf, flexible, "MemberMetadata.clientId")?;
    let client_host = read_string_limited(buf, flexible, "MemberMetadata.clientHost")?;
    let rebalance_timeout_ms = if version >= 1 {
        Some(read_i32(buf, "MemberMetadata.rebalanceTimeout")?)
    } else {
        None
    };
    let session_timeout_ms = read_i32(buf, "MemberMetadata.sessionTimeout")?;
    let subscription = read_bytes(buf, flexible, "MemberMetadata.subscription")?;
    let assignment = read_bytes(buf, flexible, "MemberMetadata.assignment")?;
    if flexible {
        read_tagged_fields(buf, "MemberMetadata.taggedFields", |_, _| Ok(false))?;
    }
    Ok(MemberValue {
        member_id,
        group_instance_id,
        client_id,
        client_host,
        rebalance_timeout_ms: rebalance_timeout_ms.unwrap_or(session_timeout_ms),
        session_timeout_ms,
        subscription,
        assignment,
    })
}

/// The fewest bytes one member occupies at `version`, so that a member count the remaining
/// bytes cannot hold is refused before anything is allocated.
fn member_size_bytes_min(version: i16) -> usize {
    let flexible = version >= VERSION_FLEXIBLE_MIN;
    let (string, bytes, tags) = if flexible { (1, 1, 1) } else { (2, 4, 0) };
    let strings = if version >= 3 { 4 } else { 3 };
    let rebalance_timeout = if version >= 1 { 4 } else { 0 };
    let session_timeout = 4;
    strings * string + rebalance_timeout + session_timeout + 2 * bytes + tags
}
