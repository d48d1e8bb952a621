//! Zig-zag variable-length integers, as the records inside a v2 batch use them.
//!
//! Kafka borrows protobuf's encoding: seven bits per byte, least significant group first, the
//! high bit set on every byte but the last, and the sign folded into bit 0 (zig-zag) so small
//! negative numbers stay short. A 32-bit value takes at most 5 bytes and a 64-bit value at most
//! 10; a longer run of continuation bits is malformed, which is how we bound every loop here.
//! The unsigned varints of flexible message versions are the codegen layer's, not these.

use bytes::BufMut;

use super::error::RecordError;

/// Longest valid encoding of a 32-bit varint: ceil(32 / 7).
pub const VARINT_SIZE_MAX_BYTES: usize = 5;
/// Longest valid encoding of a 64-bit varlong: ceil(64 / 7).
pub const VARLONG_SIZE_MAX_BYTES: usize = 10;

/// Reads a zig-zag varlong from the front of `bytes`, returning the value and bytes consumed.
///
/// `field` names the record field in the error, so a malformed batch can be diagnosed.
pub fn read_varlong(bytes: &[u8], field: &'static str) -> Result<(i64, usize), RecordError> {
    let mut raw: u64 = 0;
    for index in 0..VARLONG_SIZE_MAX_BYTES {
        let Some(&byte) = bytes.get(index) else {
            return Err(RecordError::Truncated {
                field,
                needed_bytes: index + 1,
                available_bytes: bytes.len(),
            });
        };
        let group = u64::from(byte & 0x7f);
        let shift = 7 * index as u32;
        // The tenth byte may only carry the single top bit of a u64.
        if index == VARLONG_SIZE_MAX_BYTES - 1 && group > 1 {
            return Err(RecordError::VarintOverflow { field });
        }
        raw |= group << shift;
        if byte & 0x80 == 0 {
            return Ok((zigzag_decode_64(raw), index + 1));
        }
    }
    Err(RecordError::VarintOverflow { field })
}

/// Reads a zig-zag varint (32-bit) from the front of `bytes`.
pub fn read_varint(bytes: &[u8], field: &'static str) -> Result<(i32, usize), RecordError> {
    let mut raw: u32 = 0;
    for index in 0..VARINT_SIZE_MAX_BYTES {
        let Some(&byte) = bytes.get(index) else {
            return Err(RecordError::Truncated {
                field,
                needed_bytes: index + 1,
                available_bytes: bytes.len(),
            });
        };
        let group = u32::from(byte & 0x7f);
        // The fifth byte may only carry the top four bits of a u32.
        if index == VARINT_SIZE_MAX_BYTES - 1 && group > 0x0f {
            return Err(RecordError::VarintOverflow { field });
        }
        raw |= group << (7 * index as u32);
        if byte & 0x80 == 0 {
            return Ok((zigzag_decode_32(raw), index + 1));
        }
    }
    Err(RecordError::VarintOverflow { field })
}

/// Appends `value` as a zig-zag varlong.
pub fn put_varlong(out: &mut impl BufMut, value: i64) {
    let mut raw = ((value << 1) ^ (value >> 63)) as u64;
    while raw >= 0x80 {
        out.put_u8((raw as u8 & 0x7f) | 0x80);
        raw >>= 7;
    }
    out.put_u8(raw as u8);
}

/// Appends `value` as a zig-zag varint.
pub fn put_varint(out: &mut impl BufMut, value: i32) {
    put_varlong(out, i64::from(value));
}

/// Bytes [`put_varint`] would write for `value`.
pub fn varint_size_bytes(value: i32) -> usize {
    let mut raw = ((i64::from(value) << 1) ^ (i64::from(value) >> 63)) as u64;
    let mut size_bytes = 1;
    while raw >= 0x80 {
        raw >>= 7;
        size_bytes += 1;
    }
    size_bytes
}

fn zigzag_decode_64(raw: u64) -> i64 {
    ((raw >> 1) as i64) ^ -((raw & 1) as i64)
}

fn zigzag_decode_32(raw: u32) -> i32 {
    ((raw >> 1) as i32) ^ -((raw & 1) as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_signed_values_take_one_byte_as_kafka_writes_them() {
        let mut out = Vec::new();
        put_varint(&mut out, -1);
        put_varint(&mut out, 1);
        put_varint(&mut out, 63);
        put_varint(&mut out, 64);
        assert_eq!(out, vec![0x01, 0x02, 0x7e, 0x80, 0x01]);
        assert_eq!(read_varint(&out, "t").unwrap(), (-1, 1));
        assert_eq!(read_varint(&out[3..], "t").unwrap(), (64, 2));
    }

    #[test]
    fn extremes_round_trip_at_maximum_length() {
        for value in [i32::MIN, i32::MAX, 0, -64, 64] {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            assert_eq!(out.len(), varint_size_bytes(value));
            assert!(out.len() <= VARINT_SIZE_MAX_BYTES);
            assert_eq!(read_varint(&out, "t").unwrap(), (value, out.len()));
        }
        for value in [i64::MIN, i64::MAX, 0, -1] {
            let mut out = Vec::new();
            put_varlong(&mut out, value);
            assert!(out.len() <= VARLONG_SIZE_MAX_BYTES);
            assert_eq!(read_varlong(&out, "t").unwrap(), (value, out.len()));
        }
    }

    #[test]
    fn overlong_and_truncated_encodings_are_errors() {
        assert_eq!(
            read_varint(&[0xff; 6], "keyLength"),
            Err(RecordError::VarintOverflow { field: "keyLength" })
        );
        assert_eq!(
            read_varint(&[0xff, 0xff, 0xff, 0xff, 0x10], "x"),
            Err(RecordError::VarintOverflow { field: "x" })
        );
        assert_eq!(
            read_varlong(&[0xff; 11], "timestampDelta"),
            Err(RecordError::VarintOverflow {
                field: "timestampDelta"
            })
        );
        assert!(matches!(
            read_varint(&[0x80], "length"),
            Err(RecordError::Truncated {
                field: "length",
                ..
            })
        ));
    }
}
