//! Unsigned (LEB128) and zig-zag varints, as used by flexible versions and record batches.

use bytes::{Buf, Bytes};

use super::Sink;
use crate::decode_error::DecodeError;

/// A u32 needs at most 5 groups of 7 bits; a longer encoding is malformed, not just large.
const UVARINT32_BYTES_MAX: usize = 5;

/// Reads an unsigned varint of at most 32 bits (Kafka's `readUnsignedVarint`).
pub fn read_uvarint(buf: &mut Bytes, field: &'static str) -> Result<u32, DecodeError> {
    let mut value: u32 = 0;
    for index in 0..UVARINT32_BYTES_MAX {
        if !buf.has_remaining() {
            return Err(DecodeError::Truncated {
                field,
                needed_bytes: index + 1,
                remaining_bytes: 0,
            });
        }
        let byte = buf.get_u8();
        let bits = u32::from(byte & 0x7f);
        if index == UVARINT32_BYTES_MAX - 1 && bits > 0x0f {
            // The fifth group may only carry the top 4 bits of a u32.
            return Err(DecodeError::VarintTooLong {
                field,
                max_bytes: UVARINT32_BYTES_MAX,
            });
        }
        value |= bits << (7 * index);
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(DecodeError::VarintTooLong {
        field,
        max_bytes: UVARINT32_BYTES_MAX,
    })
}

/// Reads a zig-zag signed varint of at most 32 bits (Kafka's `readVarint`).
pub fn read_varint(buf: &mut Bytes, field: &'static str) -> Result<i32, DecodeError> {
    let raw = read_uvarint(buf, field)?;
    Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32))
}

/// Writes an unsigned varint.
#[inline]
pub fn write_uvarint<S: Sink>(sink: &mut S, value: u32) {
    let mut scratch = [0u8; UVARINT32_BYTES_MAX];
    let mut len = 0;
    let mut rest = value;
    while rest >= 0x80 {
        scratch[len] = (rest as u8 & 0x7f) | 0x80;
        rest >>= 7;
        len += 1;
    }
    scratch[len] = rest as u8;
    sink.put_slice(&scratch[..=len]);
}

/// Writes a zig-zag signed varint.
#[inline]
pub fn write_varint<S: Sink>(sink: &mut S, value: i32) {
    write_uvarint(sink, ((value << 1) ^ (value >> 31)) as u32);
}

/// Bytes an unsigned varint of `value` occupies.
#[inline]
pub fn uvarint_len(value: u32) -> usize {
    let significant_bits = 32 - value.leading_zeros() as usize;
    significant_bits.max(1).div_ceil(7)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uvarint_round_trips_edges_and_reports_its_length() {
        for value in [0, 1, 127, 128, 16_383, 16_384, u32::MAX / 2, u32::MAX] {
            let mut out = Vec::new();
            write_uvarint(&mut out, value);
            assert_eq!(out.len(), uvarint_len(value), "{value}");
            let mut buf = Bytes::from(out);
            assert_eq!(read_uvarint(&mut buf, "t").unwrap(), value);
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn varint_zigzag_round_trips_negative_values() {
        for value in [0, -1, 1, i32::MIN, i32::MAX, -64, 64] {
            let mut out = Vec::new();
            write_varint(&mut out, value);
            let mut buf = Bytes::from(out);
            assert_eq!(read_varint(&mut buf, "t").unwrap(), value);
        }
    }

    #[test]
    fn uvarint_longer_than_five_bytes_is_an_error_not_a_wrap() {
        let mut buf = Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        assert!(matches!(
            read_uvarint(&mut buf, "t"),
            Err(DecodeError::VarintTooLong { .. })
        ));
        let mut buf = Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 0x1f]);
        assert!(read_uvarint(&mut buf, "t").is_err());
    }

    #[test]
    fn truncated_uvarint_is_an_error() {
        let mut buf = Bytes::from_static(&[0x80]);
        assert!(matches!(
            read_uvarint(&mut buf, "t"),
            Err(DecodeError::Truncated { .. })
        ));
    }
}
