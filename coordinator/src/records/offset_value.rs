//! `OffsetCommitValue`, every version Kafka 4.0 knows (`OffsetCommitValue.json`):
//!
//! | version | fields |
//! |---|---|
//! | 0, 2 | offset, metadata, commitTimestamp |
//! | 1 | offset, metadata, commitTimestamp, expireTimestamp |
//! | 3 | offset, leaderEpoch, metadata, commitTimestamp |
//! | 4 | as 3, flexible: compact string, then tagged fields |
//!
//! Fields a version lacks read as Kafka's defaults: leader epoch -1, no expiry (-1).

use bytes::{Bytes, BytesMut};
use spate_protocol::DecodeError;
use spate_protocol::wire::{read_i16, read_i32, read_i64, read_tagged_fields};

use super::primitives::{
    ensure_consumed, put_no_tagged_fields, put_string, read_string_limited, record_error,
};
use super::{OffsetValue, RecordError};

/// What Spate writes when there is no explicit expiry: the newest classic version.
const VERSION_WRITTEN: i16 = 3;
/// The only version that stores `expireTimestamp` (OffsetCommit v1 requests set it).
const VERSION_WITH_EXPIRY: i16 = 1;
/// From here on the value is flexible.
const VERSION_FLEXIBLE_MIN: i16 = 4;
/// The newest version Kafka 4.0 writes.
pub(super) const VERSION_MAX: i16 = 4;

/// The version Spate stores `value` at.
pub(super) fn version_for(value: &OffsetValue) -> i16 {
    if value.expire_timestamp_ms == -1 {
        VERSION_WRITTEN
    } else {
        VERSION_WITH_EXPIRY
    }
}

/// Writes `value` at `version` (0 to [`VERSION_MAX`]); fields the version lacks are dropped.
pub(super) fn write(out: &mut BytesMut, version: i16, value: &OffsetValue) {
    debug_assert!((0..=VERSION_MAX).contains(&version), "version {version}");
    let flexible = version >= VERSION_FLEXIBLE_MIN;
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(&value.offset.to_be_bytes());
    if version >= 3 {
        out.extend_from_slice(&value.leader_epoch.to_be_bytes());
    }
    put_string(out, flexible, &value.metadata);
    out.extend_from_slice(&value.commit_timestamp_ms.to_be_bytes());
    if version == VERSION_WITH_EXPIRY {
        out.extend_from_slice(&value.expire_timestamp_ms.to_be_bytes());
    }
    if flexible {
        put_no_tagged_fields(out);
    }
}

/// Reads a whole value: version prefix, fields, and nothing after them.
pub(super) fn decode(bytes: &[u8]) -> Result<OffsetValue, RecordError> {
    let mut buf = Bytes::copy_from_slice(bytes);
    let version = read_i16(&mut buf, "OffsetCommitValue.version")
        .map_err(|e| record_error("OffsetCommitValue", e))?;
    if !(0..=VERSION_MAX).contains(&version) {
        return Err(RecordError::Malformed(format!(
            "OffsetCommitValue: version {version} is not one Kafka 4.0 writes (0 to {VERSION_MAX})"
        )));
    }
    let context = format!("OffsetCommitValue v{version}");
    let value = read(&mut buf, version).map_err(|e| record_error(&context, e))?;
    ensure_consumed(&buf, &context)?;
    Ok(value)
}

fn read(buf: &mut Bytes, version: i16) -> Result<OffsetValue, DecodeError> {
    let flexible = version >= VERSION_FLEXIBLE_MIN;
    let offset = read_i64(buf, "OffsetCommitValue.offset")?;
    let leader_epoch = if version >= 3 {
        read_i32(buf, "OffsetCommitValue.leaderEpoch")?
    } else {
        -1
    };
    let metadata = read_string_limited(buf, flexible, "OffsetCommitValue.metadata")?;
    let commit_timestamp_ms = read_i64(buf, "OffsetCommitValue.commitTimestamp")?;
    let expire_timestamp_ms = if version == VERSION_WITH_EXPIRY {
        read_i64(buf, "OffsetCommitValue.expireTimestamp")?
    } else {
        -1
    };
    if flexible {
        // No tag is defined yet; later Kafka versions may add some, which we can skip.
        read_tagged_fields(buf, "OffsetCommitValue.taggedFields", |_, _| Ok(false))?;
    }
    Ok(OffsetValue {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp_ms,
        expire_timestamp_ms,
    })
}
