//! The pieces shared by the record and consumer-protocol codecs: string and byte writers in
//! both the classic and the compact (flexible) encodings, and the read-side checks that
//! `spate_protocol::wire` leaves to its callers.
//!
//! Reading goes through `spate_protocol::wire`, which already checks every length against
//! the remaining bytes before allocating and names the field in its errors. This module adds
//! what stored records need on top: Kafka's 32767-byte cap on strings (also in the compact
//! encoding, whose prefix could say more), and an error for bytes left after the last field.

use bytes::{Bytes, BytesMut};
use spate_protocol::DecodeError;
use spate_protocol::wire::{read_nullable_string, read_string, write_tagged_count, write_uvarint};

use super::{RecordError, STRING_LENGTH_MAX_BYTES};

/// The longest byte field Kafka can store: its classic prefix is an `int32`.
const BYTES_LENGTH_MAX: usize = i32::MAX as usize;

/// Turns a wire error into a record error that also says which structure was being read.
pub(crate) fn record_error(context: &str, error: DecodeError) -> RecordError {
    RecordError::Malformed(format!("{context}: {error}"))
}

/// Rejects bytes left after the last field: a known version has nothing after it.
pub(crate) fn ensure_consumed(buf: &Bytes, context: &str) -> Result<(), RecordError> {
    if buf.is_empty() {
        Ok(())
    } else {
        Err(RecordError::Malformed(format!(
            "{context}: bytes left after the last field ({})",
            buf.len()
        )))
    }
}

/// Reads a string that may be null and is at most [`STRING_LENGTH_MAX_BYTES`] long.
pub(crate) fn read_nullable_string_limited(
    buf: &mut Bytes,
    flexible: bool,
    field: &'static str,
) -> Result<Option<String>, DecodeError> {
    let text = read_nullable_string(buf, flexible, field)?;
    match &text {
        Some(text) if text.len() > STRING_LENGTH_MAX_BYTES => Err(DecodeError::InvalidLength {
            field,
            kind: "string",
            length: i64::try_from(text.len()).unwrap_or(i64::MAX),
        }),
        _ => Ok(text),
    }
}

/// Reads a string that must not be null and is at most [`STRING_LENGTH_MAX_BYTES`] long.
pub(crate) fn read_string_limited(
    buf: &mut Bytes,
    flexible: bool,
    field: &'static str,
) -> Result<String, DecodeError> {
    let text = read_string(buf, flexible, field)?;
    if text.len() > STRING_LENGTH_MAX_BYTES {
        return Err(DecodeError::InvalidLength {
            field,
            kind: "string",
            length: i64::try_from(text.len()).unwrap_or(i64::MAX),
        });
    }
    Ok(text)
}

/// The longest prefix of `text` that Kafka can store, cut at a character boundary.
fn storable(text: &str) -> &str {
    if text.len() <= STRING_LENGTH_MAX_BYTES {
        return text;
    }
    let mut end = STRING_LENGTH_MAX_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Writes a length prefix: `int16`/`int32` in classic versions, `uvarint(n + 1)` in compact
/// ones (0 there, like -1 here, is null). Callers keep `length` within the prefix's range.
fn put_length(out: &mut BytesMut, flexible: bool, wide: bool, length: Option<usize>) {
    if flexible {
        let encoded = length.map_or(0, |n| u32::try_from(n).map_or(u32::MAX, |n| n + 1));
        write_uvarint(out, encoded);
        return;
    }
    let length = length.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX));
    if wide {
        out.extend_from_slice(&(length as i32).to_be_bytes());
    } else {
        out.extend_from_slice(&(length as i16).to_be_bytes());
    }
}

/// Writes a string, cut to [`STRING_LENGTH_MAX_BYTES`] (see `Record::check_encodable`).
pub(crate) fn put_string(out: &mut BytesMut, flexible: bool, text: &str) {
    put_nullable_string(out, flexible, Some(text));
}

/// Writes a string that may be null, cut like [`put_string`].
pub(crate) fn put_nullable_string(out: &mut BytesMut, flexible: bool, text: Option<&str>) {
    let text = text.map(storable);
    put_length(out, flexible, false, text.map(str::len));
    if let Some(text) = text {
        out.extend_from_slice(text.as_bytes());
    }
}

/// Writes a byte field; beyond 2 GiB (never reached: requests are far smaller) it is cut.
pub(crate) fn put_bytes(out: &mut BytesMut, flexible: bool, bytes: &[u8]) {
    let bytes = &bytes[..bytes.len().min(BYTES_LENGTH_MAX)];
    put_length(out, flexible, true, Some(bytes.len()));
    out.extend_from_slice(bytes);
}

/// Writes an array's element count.
pub(crate) fn put_array_len(out: &mut BytesMut, flexible: bool, count: usize) {
    // A count past i32::MAX would need terabytes of elements in memory first.
    assert!(count <= BYTES_LENGTH_MAX, "array of {count} elements");
    put_length(out, flexible, true, Some(count));
}

/// Writes an empty tagged-field section (flexible versions end every struct with one).
pub(crate) fn put_no_tagged_fields(out: &mut BytesMut) {
    write_tagged_count(out, 0);
}

/// Refuses a string that [`put_string`] would have to cut.
pub(crate) fn check_string(field: &str, text: &str) -> Result<(), RecordError> {
    if text.len() > STRING_LENGTH_MAX_BYTES {
        return Err(RecordError::Malformed(format!(
            "{field}: {} bytes exceed the {STRING_LENGTH_MAX_BYTES}-byte limit of a stored \
             string",
            text.len()
        )));
    }
    Ok(())
}

/// Refuses a byte field that [`put_bytes`] would have to cut.
pub(crate) fn check_bytes(field: &str, bytes: &[u8]) -> Result<(), RecordError> {
    if bytes.len() > BYTES_LENGTH_MAX {
        return Err(RecordError::Malformed(format!(
            "{field}: {} bytes exceed the {BYTES_LENGTH_MAX}-byte limit of a stored byte field",
            bytes.len()
        )));
    }
    Ok(())
}
