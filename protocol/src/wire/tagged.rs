//! Tagged fields: the extension section at the end of every struct in flexible versions.
//!
//! Layout: `uvarint count`, then per field `uvarint tag`, `uvarint size`, `size` bytes. Tags
//! this codec knows are decoded by the generated code; the rest are kept as
//! [`RawTaggedField`]s and written back unchanged, so a proxy or newer peer loses nothing.

use bytes::{Buf, Bytes};

use super::Sink;
use super::read::read_raw;
use super::varint::{read_uvarint, write_uvarint};
use crate::decode_error::DecodeError;

/// The most tagged fields one struct may carry.
///
/// Kafka 4.0 defines at most four tags on any struct; real clients send fewer. The limit keeps
/// a hostile frame from turning into millions of small `RawTaggedField` allocations.
pub const TAGGED_FIELDS_MAX: usize = 256;

/// Each tagged field needs at least a one-byte tag and a one-byte size.
const TAGGED_FIELD_SIZE_BYTES_MIN: u64 = 2;

/// A tagged field this codec does not know, kept verbatim.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RawTaggedField {
    /// The field's tag number.
    pub tag: u32,
    /// The field's encoded value, a zero-copy slice of the frame when decoded.
    pub data: Bytes,
}

/// Reads a tagged-field section.
///
/// `known` is offered each tag with a buffer holding exactly that field's bytes; it returns
/// `Ok(true)` if it decoded the field, `Ok(false)` (without consuming) to keep it as unknown.
pub fn read_tagged_fields(
    buf: &mut Bytes,
    field: &'static str,
    mut known: impl FnMut(u32, &mut Bytes) -> Result<bool, DecodeError>,
) -> Result<Vec<RawTaggedField>, DecodeError> {
    let count = u64::from(read_uvarint(buf, field)?);
    if count > TAGGED_FIELDS_MAX as u64 {
        return Err(DecodeError::TooManyTaggedFields {
            field,
            count,
            limit: TAGGED_FIELDS_MAX,
        });
    }
    if count * TAGGED_FIELD_SIZE_BYTES_MIN > buf.remaining() as u64 {
        return Err(DecodeError::LengthExceedsRemaining {
            field,
            kind: "tagged field count",
            length: count as i64,
            remaining_bytes: buf.remaining(),
        });
    }
    let mut unknown = Vec::new();
    for _ in 0..count {
        let tag = read_uvarint(buf, field)?;
        let size_bytes = read_uvarint(buf, field)?;
        let mut data = read_raw(buf, u64::from(size_bytes), field)?;
        if !known(tag, &mut data)? {
            unknown.push(RawTaggedField { tag, data });
        }
    }
    Ok(unknown)
}

/// Writes one raw tagged field.
pub fn write_raw_tagged_field<S: Sink>(sink: &mut S, tag: u32, data: &[u8]) {
    write_uvarint(sink, tag);
    // A tagged field longer than u32::MAX cannot have been decoded, and a caller-built one
    // that large cannot be framed anyway (frames are i32-sized); saturate rather than wrap.
    write_uvarint(sink, u32::try_from(data.len()).unwrap_or(u32::MAX));
    sink.put_slice(data);
}

/// Writes the count that opens a tagged-field section.
pub fn write_tagged_count<S: Sink>(sink: &mut S, count: usize) {
    // Decoded structs hold at most `TAGGED_FIELDS_MAX`; a caller-built one with more than
    // u32::MAX fields cannot exist in memory, so saturating never changes real output.
    write_uvarint(sink, u32::try_from(count).unwrap_or(u32::MAX));
}

/// Writes the tag and size that precede a known tagged field's value.
pub fn write_tagged_header<S: Sink>(sink: &mut S, tag: u32, size_bytes: usize) {
    write_uvarint(sink, tag);
    write_uvarint(sink, u32::try_from(size_bytes).unwrap_or(u32::MAX));
}

/// Writes the unknown fields from `*next_index` on whose tag is below `tag_limit`, so that
/// unknown and known fields come out in ascending tag order, as Kafka writes them.
pub fn write_unknown_tags_below<S: Sink>(
    sink: &mut S,
    unknown: &[RawTaggedField],
    next_index: &mut usize,
    tag_limit: u64,
) {
    while let Some(raw) = unknown.get(*next_index) {
        if u64::from(raw.tag) >= tag_limit {
            break;
        }
        write_raw_tagged_field(sink, raw.tag, &raw.data);
        *next_index += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_tags_are_kept_verbatim_and_known_ones_consumed() {
        // count 2; tag 0 size 1 [9]; tag 5 size 2 [1 2]
        let mut buf = Bytes::from_static(&[2, 0, 1, 9, 5, 2, 1, 2]);
        let mut seen = None;
        let unknown = read_tagged_fields(&mut buf, "M", |tag, data| {
            if tag == 0 {
                seen = Some(data.get_u8());
                return Ok(true);
            }
            Ok(false)
        })
        .unwrap();
        assert_eq!(seen, Some(9));
        assert_eq!(
            unknown,
            vec![RawTaggedField {
                tag: 5,
                data: Bytes::from_static(&[1, 2])
            }]
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn absurd_tagged_field_count_is_refused() {
        let mut buf = Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert!(matches!(
            read_tagged_fields(&mut buf, "M", |_, _| Ok(false)),
            Err(DecodeError::TooManyTaggedFields { .. })
        ));
    }

    #[test]
    fn tagged_field_size_beyond_frame_is_refused() {
        let mut buf = Bytes::from_static(&[1, 0, 100, 1]);
        assert!(matches!(
            read_tagged_fields(&mut buf, "M", |_, _| Ok(false)),
            Err(DecodeError::LengthExceedsRemaining { .. })
        ));
    }
}
