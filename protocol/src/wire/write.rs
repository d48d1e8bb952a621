//! Encoding of Kafka's primitive types into a [`Sink`].

use super::varint::write_uvarint;
use super::{EncodeError, Sink, Uuid};

/// Writes a boolean as one byte, 0 or 1.
#[inline]
pub fn write_bool<S: Sink>(sink: &mut S, value: bool) {
    sink.put_slice(&[u8::from(value)]);
}

/// Writes an `int8`.
#[inline]
pub fn write_i8<S: Sink>(sink: &mut S, value: i8) {
    sink.put_slice(&value.to_be_bytes());
}

/// Writes an `int16`.
#[inline]
pub fn write_i16<S: Sink>(sink: &mut S, value: i16) {
    sink.put_slice(&value.to_be_bytes());
}

/// Writes a `uint16`.
#[inline]
pub fn write_u16<S: Sink>(sink: &mut S, value: u16) {
    sink.put_slice(&value.to_be_bytes());
}

/// Writes an `int32`.
#[inline]
pub fn write_i32<S: Sink>(sink: &mut S, value: i32) {
    sink.put_slice(&value.to_be_bytes());
}

/// Writes a `uint32`.
#[inline]
pub fn write_u32<S: Sink>(sink: &mut S, value: u32) {
    sink.put_slice(&value.to_be_bytes());
}

/// Writes an `int64`.
#[inline]
pub fn write_i64<S: Sink>(sink: &mut S, value: i64) {
    sink.put_slice(&value.to_be_bytes());
}

/// Writes a `float64`.
#[inline]
pub fn write_f64<S: Sink>(sink: &mut S, value: f64) {
    sink.put_slice(&value.to_be_bytes());
}

/// Writes a `uuid`.
#[inline]
pub fn write_uuid<S: Sink>(sink: &mut S, value: &Uuid) {
    sink.put_slice(&value.0);
}

/// Writes a length prefix (or the null marker for `None`).
fn write_length<S: Sink>(
    sink: &mut S,
    flexible: bool,
    legacy_limit: usize,
    field: &'static str,
    length: Option<usize>,
) -> Result<(), EncodeError> {
    if flexible {
        let limit = u32::MAX as usize - 1;
        match length {
            None => write_uvarint(sink, 0),
            Some(n) if n <= limit => write_uvarint(sink, n as u32 + 1),
            Some(n) => {
                return Err(EncodeError::TooLong {
                    field,
                    length: n,
                    limit,
                });
            }
        }
        return Ok(());
    }
    match length {
        Some(n) if n > legacy_limit => Err(EncodeError::TooLong {
            field,
            length: n,
            limit: legacy_limit,
        }),
        // Both legacy limits fit their prefix type, checked just above.
        Some(n) if legacy_limit == i16::MAX as usize => {
            write_i16(sink, n as i16);
            Ok(())
        }
        Some(n) => {
            write_i32(sink, n as i32);
            Ok(())
        }
        None if legacy_limit == i16::MAX as usize => {
            write_i16(sink, -1);
            Ok(())
        }
        None => {
            write_i32(sink, -1);
            Ok(())
        }
    }
}

const SHORT_LIMIT: usize = i16::MAX as usize;
const LONG_LIMIT: usize = i32::MAX as usize;

/// Writes a string that may be null.
pub fn write_nullable_string<S: Sink>(
    sink: &mut S,
    flexible: bool,
    field: &'static str,
    value: Option<&str>,
) -> Result<(), EncodeError> {
    write_length(sink, flexible, SHORT_LIMIT, field, value.map(str::len))?;
    if let Some(text) = value {
        sink.put_slice(text.as_bytes());
    }
    Ok(())
}

/// Writes a string.
pub fn write_string<S: Sink>(
    sink: &mut S,
    flexible: bool,
    field: &'static str,
    value: &str,
) -> Result<(), EncodeError> {
    write_nullable_string(sink, flexible, field, Some(value))
}

/// Writes a byte array that may be null.
pub fn write_nullable_bytes<S: Sink>(
    sink: &mut S,
    flexible: bool,
    field: &'static str,
    value: Option<&[u8]>,
) -> Result<(), EncodeError> {
    write_length(sink, flexible, LONG_LIMIT, field, value.map(<[u8]>::len))?;
    if let Some(bytes) = value {
        sink.put_slice(bytes);
    }
    Ok(())
}

/// Writes a byte array.
pub fn write_bytes<S: Sink>(
    sink: &mut S,
    flexible: bool,
    field: &'static str,
    value: &[u8],
) -> Result<(), EncodeError> {
    write_nullable_bytes(sink, flexible, field, Some(value))
}

/// Writes an array that may be null, each element with `element`.
pub fn write_nullable_array<S: Sink, T>(
    sink: &mut S,
    flexible: bool,
    field: &'static str,
    value: Option<&[T]>,
    mut element: impl FnMut(&mut S, &T) -> Result<(), EncodeError>,
) -> Result<(), EncodeError> {
    write_length(sink, flexible, LONG_LIMIT, field, value.map(<[T]>::len))?;
    for item in value.unwrap_or_default() {
        element(sink, item)?;
    }
    Ok(())
}

/// Writes an array.
pub fn write_array<S: Sink, T>(
    sink: &mut S,
    flexible: bool,
    field: &'static str,
    value: &[T],
    element: impl FnMut(&mut S, &T) -> Result<(), EncodeError>,
) -> Result<(), EncodeError> {
    write_nullable_array(sink, flexible, field, Some(value), element)
}

/// Writes the presence marker of a nullable struct.
#[inline]
pub fn write_struct_present<S: Sink>(sink: &mut S, present: bool) {
    write_i8(sink, if present { 1 } else { -1 });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_string_stores_length_plus_one() {
        let mut out = Vec::new();
        write_string(&mut out, true, "s", "ab").unwrap();
        assert_eq!(out, [3, b'a', b'b']);
        let mut out = Vec::new();
        write_nullable_string(&mut out, true, "s", None).unwrap();
        assert_eq!(out, [0]);
    }

    #[test]
    fn legacy_string_longer_than_i16_max_is_refused() {
        let long = "x".repeat(i16::MAX as usize + 1);
        let mut out = Vec::new();
        assert!(matches!(
            write_string(&mut out, false, "s", &long),
            Err(EncodeError::TooLong { .. })
        ));
    }

    #[test]
    fn legacy_null_array_is_minus_one_int32() {
        let mut out = Vec::new();
        write_nullable_array::<_, i32>(&mut out, false, "a", None, |s, v| {
            write_i32(s, *v);
            Ok(())
        })
        .unwrap();
        assert_eq!(out, [0xff, 0xff, 0xff, 0xff]);
    }
}
