//! Decoding of Kafka's primitive types from the front of a `Bytes`.
//!
//! Rules every function here keeps, so that generated code cannot break them:
//! - check the remaining length before reading or slicing, so nothing panics;
//! - check a length or count against the remaining bytes before allocating, so a 4-byte
//!   frame cannot ask for gigabytes (the `kafka-protocol` 0.18 abort);
//! - name the field in every error.

use bytes::{Buf, Bytes};

use super::Uuid;
use super::varint::read_uvarint;
use crate::decode_error::DecodeError;

/// The most an array's length field may make us reserve before any element is decoded.
///
/// Elements are still accepted beyond this (the `Vec` grows as they arrive, each one having
/// consumed real bytes); the cap only stops a count that is plausible against the remaining
/// bytes from reserving many times that in memory when elements are large structs.
pub const ARRAY_PREALLOC_BYTES_MAX: usize = 64 * 1024;

fn fixed<const N: usize>(buf: &mut Bytes, field: &'static str) -> Result<[u8; N], DecodeError> {
    if buf.remaining() < N {
        return Err(DecodeError::Truncated {
            field,
            needed_bytes: N,
            remaining_bytes: buf.remaining(),
        });
    }
    let mut out = [0u8; N];
    buf.copy_to_slice(&mut out);
    Ok(out)
}

/// Reads a boolean; like Kafka, any non-zero byte is true.
pub fn read_bool(buf: &mut Bytes, field: &'static str) -> Result<bool, DecodeError> {
    Ok(fixed::<1>(buf, field)?[0] != 0)
}

/// Reads an `int8`.
pub fn read_i8(buf: &mut Bytes, field: &'static str) -> Result<i8, DecodeError> {
    Ok(i8::from_be_bytes(fixed(buf, field)?))
}

/// Reads an `int16`.
pub fn read_i16(buf: &mut Bytes, field: &'static str) -> Result<i16, DecodeError> {
    Ok(i16::from_be_bytes(fixed(buf, field)?))
}

/// Reads a `uint16`.
pub fn read_u16(buf: &mut Bytes, field: &'static str) -> Result<u16, DecodeError> {
    Ok(u16::from_be_bytes(fixed(buf, field)?))
}

/// Reads an `int32`.
pub fn read_i32(buf: &mut Bytes, field: &'static str) -> Result<i32, DecodeError> {
    Ok(i32::from_be_bytes(fixed(buf, field)?))
}

/// Reads a `uint32`.
pub fn read_u32(buf: &mut Bytes, field: &'static str) -> Result<u32, DecodeError> {
    Ok(u32::from_be_bytes(fixed(buf, field)?))
}

/// Reads an `int64`.
pub fn read_i64(buf: &mut Bytes, field: &'static str) -> Result<i64, DecodeError> {
    Ok(i64::from_be_bytes(fixed(buf, field)?))
}

/// Reads a `float64` (IEEE 754, big-endian).
pub fn read_f64(buf: &mut Bytes, field: &'static str) -> Result<f64, DecodeError> {
    Ok(f64::from_be_bytes(fixed(buf, field)?))
}

/// Reads a `uuid`.
pub fn read_uuid(buf: &mut Bytes, field: &'static str) -> Result<Uuid, DecodeError> {
    Ok(Uuid(fixed(buf, field)?))
}

/// Which legacy length prefix a non-flexible value uses.
#[derive(Clone, Copy)]
enum LegacyPrefix {
    /// Strings: `int16`.
    Short,
    /// Bytes, records and arrays: `int32`.
    Long,
}

/// Reads a length prefix; `None` is the null marker. The length is not yet checked against
/// the remaining bytes.
fn read_length(
    buf: &mut Bytes,
    flexible: bool,
    prefix: LegacyPrefix,
    field: &'static str,
    kind: &'static str,
) -> Result<Option<u64>, DecodeError> {
    let length: i64 = if flexible {
        // Compact encodings store length + 1 so that 0 can mean null.
        i64::from(read_uvarint(buf, field)?) - 1
    } else {
        match prefix {
            LegacyPrefix::Short => i64::from(read_i16(buf, field)?),
            LegacyPrefix::Long => i64::from(read_i32(buf, field)?),
        }
    };
    match length {
        -1 => Ok(None),
        n if n < -1 => Err(DecodeError::InvalidLength {
            field,
            kind,
            length: n,
        }),
        n => Ok(Some(n.unsigned_abs())),
    }
}

/// Splits `length` bytes off the front of `buf` after checking they exist.
fn take(
    buf: &mut Bytes,
    length: u64,
    field: &'static str,
    kind: &'static str,
) -> Result<Bytes, DecodeError> {
    match usize::try_from(length) {
        Ok(n) if n <= buf.remaining() => Ok(buf.split_to(n)),
        _ => Err(DecodeError::LengthExceedsRemaining {
            field,
            kind,
            length: i64::try_from(length).unwrap_or(i64::MAX),
            remaining_bytes: buf.remaining(),
        }),
    }
}

/// Takes exactly `length` bytes (no prefix) as a zero-copy slice.
pub fn read_raw(buf: &mut Bytes, length: u64, field: &'static str) -> Result<Bytes, DecodeError> {
    take(buf, length, field, "raw")
}

fn utf8(bytes: Bytes, field: &'static str) -> Result<String, DecodeError> {
    match std::str::from_utf8(&bytes) {
        Ok(text) => Ok(text.to_owned()),
        Err(_) => Err(DecodeError::InvalidUtf8 { field }),
    }
}

/// Reads a string that may be null (`int16` or compact length prefix).
pub fn read_nullable_string(
    buf: &mut Bytes,
    flexible: bool,
    field: &'static str,
) -> Result<Option<String>, DecodeError> {
    match read_length(buf, flexible, LegacyPrefix::Short, field, "string")? {
        None => Ok(None),
        Some(length) => Ok(Some(utf8(take(buf, length, field, "string")?, field)?)),
    }
}

/// Reads a string that must not be null.
pub fn read_string(
    buf: &mut Bytes,
    flexible: bool,
    field: &'static str,
) -> Result<String, DecodeError> {
    read_nullable_string(buf, flexible, field)?.ok_or(DecodeError::UnexpectedNull { field })
}

/// Reads a byte array that may be null, as a zero-copy slice of `buf`.
pub fn read_nullable_bytes(
    buf: &mut Bytes,
    flexible: bool,
    field: &'static str,
) -> Result<Option<Bytes>, DecodeError> {
    match read_length(buf, flexible, LegacyPrefix::Long, field, "bytes")? {
        None => Ok(None),
        Some(length) => Ok(Some(take(buf, length, field, "bytes")?)),
    }
}

/// Reads a byte array that must not be null, as a zero-copy slice of `buf`.
pub fn read_bytes(
    buf: &mut Bytes,
    flexible: bool,
    field: &'static str,
) -> Result<Bytes, DecodeError> {
    read_nullable_bytes(buf, flexible, field)?.ok_or(DecodeError::UnexpectedNull { field })
}

/// Reads an array that may be null, decoding each element with `element`.
///
/// `element_size_bytes_min` is the fewest bytes one element can occupy on the wire (at least
/// 1): a count that could not fit in the remaining bytes is rejected before anything is
/// allocated, and the up-front reservation is further capped by [`ARRAY_PREALLOC_BYTES_MAX`].
pub fn read_nullable_array<T>(
    buf: &mut Bytes,
    flexible: bool,
    field: &'static str,
    element_size_bytes_min: usize,
    mut element: impl FnMut(&mut Bytes) -> Result<T, DecodeError>,
) -> Result<Option<Vec<T>>, DecodeError> {
    let Some(count) = read_length(buf, flexible, LegacyPrefix::Long, field, "array")? else {
        return Ok(None);
    };
    let size_min = element_size_bytes_min.max(1) as u64;
    let remaining_bytes = buf.remaining();
    if count.saturating_mul(size_min) > remaining_bytes as u64 {
        return Err(DecodeError::LengthExceedsRemaining {
            field,
            kind: "array",
            length: i64::try_from(count).unwrap_or(i64::MAX),
            remaining_bytes,
        });
    }
    // `count` <= remaining bytes here, so it fits in usize.
    let count = count as usize;
    let reserve_max = ARRAY_PREALLOC_BYTES_MAX / std::mem::size_of::<T>().max(1);
    let mut items = Vec::with_capacity(count.min(reserve_max));
    for _ in 0..count {
        items.push(element(buf)?);
    }
    Ok(Some(items))
}

/// Reads an array that must not be null.
pub fn read_array<T>(
    buf: &mut Bytes,
    flexible: bool,
    field: &'static str,
    element_size_bytes_min: usize,
    element: impl FnMut(&mut Bytes) -> Result<T, DecodeError>,
) -> Result<Vec<T>, DecodeError> {
    read_nullable_array(buf, flexible, field, element_size_bytes_min, element)?
        .ok_or(DecodeError::UnexpectedNull { field })
}

/// Reads the presence marker of a nullable struct: `-1` is null, anything else present
/// (Kafka writes 1 and reads any non-negative value as present).
pub fn read_struct_present(buf: &mut Bytes, field: &'static str) -> Result<bool, DecodeError> {
    Ok(read_i8(buf, field)? >= 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_count_beyond_remaining_bytes_is_rejected_before_allocating() {
        let mut buf = Bytes::from_static(&[0x7f, 0xff, 0xff, 0xff]);
        let err = read_array(&mut buf, false, "M.f", 4, |b| read_i32(b, "M.f")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "M.f: array length 2147483647 exceeds 0 remaining bytes"
        );
    }

    #[test]
    fn string_length_beyond_remaining_bytes_is_rejected() {
        let mut buf = Bytes::from_static(&[0x00, 0x05, b'a']);
        assert!(matches!(
            read_string(&mut buf, false, "M.s"),
            Err(DecodeError::LengthExceedsRemaining { length: 5, .. })
        ));
    }

    #[test]
    fn null_markers_decode_as_none_in_both_encodings() {
        let mut legacy = Bytes::from_static(&[0xff, 0xff]);
        assert_eq!(read_nullable_string(&mut legacy, false, "s").unwrap(), None);
        let mut compact = Bytes::from_static(&[0x00]);
        assert_eq!(read_nullable_string(&mut compact, true, "s").unwrap(), None);
        let mut compact = Bytes::from_static(&[0x00]);
        assert_eq!(
            read_string(&mut compact, true, "s"),
            Err(DecodeError::UnexpectedNull { field: "s" })
        );
    }

    #[test]
    fn negative_length_other_than_minus_one_is_invalid() {
        let mut buf = Bytes::from_static(&[0xff, 0xff, 0xff, 0xfe]);
        assert!(matches!(
            read_nullable_bytes(&mut buf, false, "b"),
            Err(DecodeError::InvalidLength { length: -2, .. })
        ));
    }

    #[test]
    fn bytes_are_a_slice_of_the_input_not_a_copy() {
        let frame = Bytes::from_static(&[0, 0, 0, 3, 7, 8, 9, 1]);
        let mut buf = frame.clone();
        let bytes = read_bytes(&mut buf, false, "b").unwrap();
        assert_eq!(&bytes[..], &[7, 8, 9]);
        assert_eq!(bytes.as_ptr(), frame[4..].as_ptr());
        assert_eq!(buf.len(), 1);
    }

    #[test]
    fn invalid_utf8_string_is_an_error() {
        let mut buf = Bytes::from_static(&[0x00, 0x01, 0xff]);
        assert_eq!(
            read_string(&mut buf, false, "s"),
            Err(DecodeError::InvalidUtf8 { field: "s" })
        );
    }
}
